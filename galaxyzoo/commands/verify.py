"""`galaxyzoo verify`: check the derived files (DB, split, crop stores) against what built them."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "verify",
        help="check crop stores (sizes, every crop's crc32) and that DB, split and stores match the raw folder",
        description="Run after a crash, a copy or a disk error. With --raw alone, checks RAW.derived/: "
        "the DB and its split were built from RAW as it is now, and every crop store there is sound "
        "(file sizes, records, the crc32 of every crop). Exit 0 when all is sound, 2 naming what is not.",
    )
    p.add_argument("--raw", metavar="DIR", help="raw data folder the files were built from")
    p.add_argument("--db", metavar="PATH", help="SQLite database written by ingest (default: RAW.derived's)")
    p.add_argument("--store", metavar="DIR", action="append", default=[],
                   help="crop store folder (repeatable; default: every store in RAW.derived)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.errors import GalaxyZooError
    from galaxyzoo.data.workspace import verify

    if not (args.raw or args.db or args.store):
        raise GalaxyZooError("verify needs --raw, --db or --store: which files to check")
    for line in verify(args.raw, args.db, args.store):
        print(line)
    return 0
