"""`galaxyzoo synth`: write a synthetic GZ2 sample in the real release's file formats."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic GZ2 sample (catalogue, mapping, images, truth)",
        description="Write a synthetic Galaxy Zoo 2 sample with the real files and quirks: "
        "DIR/gz2_hart16.csv, DIR/gz2_filename_mapping.csv, DIR/images/{asset_id}.jpg and DIR/truth.csv.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; must be empty)")
    p.add_argument("--n", type=int, required=True, help="number of galaxies in gz2_hart16.csv")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes identical files (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.data.synth import generate

    out = generate(args.out, n=args.n, seed=args.seed, overwrite=args.overwrite, workers=args.workers)
    print(f"wrote a synthetic GZ2 sample of {args.n} galaxies to {out}")
    return 0
