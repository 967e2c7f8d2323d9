"""`galaxyzoo embed`: the features a registered model's head reads, one row per raw galaxy image."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "embed",
        help="write the network's features before its head for raw GZ2 images",
        description="Crop each raw image as predict does, run the packaged model's network up to its head and "
        "write one row of features per image, in input order: a .parquet table (file, error, e0...) or a .npy "
        "matrix with OUT.index.csv naming its rows. An unreadable image gets NaN features and an error.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_DIR", help="image files, or folders of .jpg/.jpeg/.png")
    p.add_argument("--model", default="models:/galaxyzoo-cnn@champion",
                   help="a packaged model URI (default models:/galaxyzoo-cnn@champion, set by `galaxyzoo promote`)")
    p.add_argument("--out", default="embeddings.parquet",
                   help="output .parquet or .npy (default embeddings.parquet); written only once every image is done")
    p.add_argument("--overwrite", action="store_true", help="replace --out (and its index) if it exists")
    p.add_argument("--tracking-uri",
                   help="MLflow store holding the model (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from galaxyzoo.registry import embed
    from galaxyzoo.tracking import mlflow_runs

    summary = embed.embed_files(args.model, args.images, args.out, progress=sys.stderr.isatty(),
                                overwrite=args.overwrite, tracking_uri=mlflow_runs.tracking_uri(args.tracking_uri))
    for file, why in summary.failed:
        print(f"galaxyzoo: {file}: {why}", file=sys.stderr)
    ok = summary.total - len(summary.failed)
    print(f"wrote {summary.out}" + (f" and {summary.index}" if summary.index else "")
          + f": {ok} of {summary.total} images embedded, {summary.dims} features each"
          + (f", {len(summary.failed)} failed (see the error column)" if summary.failed else ""))
    return 2 if not ok else 0  # as predict: no usable input at all is the user's to fix
