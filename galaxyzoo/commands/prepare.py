"""`galaxyzoo prepare`: crop every galaxy image into the uint8 crop store."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "prepare",
        help="crop every galaxy image into one memory-mapped uint8 store (parallel, resumable)",
        description="Crop RAW/images/{asset_id}.jpg for every asset_id of table galaxy_data with the "
        "seed's algorithm into a crop store. An interrupted run resumes where it stopped.",
    )
    p.add_argument("--raw", required=True, help="raw data folder holding images/{asset_id}.jpg")
    p.add_argument("--db", required=True, help="SQLite database with table galaxy_data (`galaxyzoo ingest`)")
    p.add_argument("--out", required=True, help="crop store folder to create or resume")
    p.add_argument("--size", type=int, default=106, help="crop side in pixels (default 106, the seed's)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 grayscale (default), 3 colour")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: every core)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing store and prepare it again")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.data.prepare import prepare

    report = prepare(
        args.raw, args.db, args.out, size=args.size, channels=args.channels,
        workers=args.workers, overwrite=args.overwrite,
    )
    print(report.summary())
    return 0
