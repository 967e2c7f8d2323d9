"""`galaxyzoo split`: the stratified train/val/test split of galaxy_data, saved in the database."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "split",
        help="split galaxy_data into train/val/test (the seed's stratified split)",
        description="Split galaxy_data as the seed did (test 25%, seed 32, stratified on class_reduced), "
        "hold out a validation part of train, and save tables split and split_meta in DB.",
    )
    p.add_argument("--db", required=True, metavar="PATH", help="SQLite database written by ingest")
    p.add_argument("--test-size", type=float, default=0.25, help="fraction of all rows for test (default 0.25)")
    p.add_argument("--val-size", type=float, default=0.1, help="fraction of train for validation (default 0.1)")
    p.add_argument("--seed", type=int, default=32, help="random_state of both splits (default 32)")
    p.add_argument("--overwrite", action="store_true", help="replace a saved split made differently")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.data.split import make_split

    info = make_split(args.db, args.test_size, args.val_size, args.seed, overwrite=args.overwrite)
    print(info.describe())
    return 0
