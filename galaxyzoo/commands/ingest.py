"""`galaxyzoo ingest`: the raw GZ2 CSVs and images -> SQLite table `galaxy_data`."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ingest",
        help="join the GZ2 catalogue and filename mapping into SQLite table galaxy_data",
        description="Read RAW/gz2_hart16.csv, RAW/gz2_filename_mapping.csv and list RAW/images/; "
        "write table galaxy_data (one row per galaxy with an image) and ingest_report to DB.",
    )
    p.add_argument("--raw", required=True, metavar="DIR", help="raw data folder (as written by download or synth)")
    p.add_argument("--db", required=True, metavar="PATH", help="SQLite database file to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing database file")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.data.ingest import ingest

    report = ingest(args.raw, args.db, overwrite=args.overwrite)
    print(f"ingested {args.raw} -> {args.db}")
    for line in report.lines():
        print(line)
    return 0
