"""`galaxyzoo embed`: the features a registered model's head reads, one row per raw galaxy image."""

from galaxyzoo.commands.images import add_image_options, report_failed


def add_parser(subparsers):
    p = subparsers.add_parser(
        "embed",
        help="write the network's features before its head for raw GZ2 images",
        description="Crop each raw image as predict does, run the packaged model's network up to its head and "
        "write one row of features per image, in input order: a .parquet table (file, error, e0...) or a .npy "
        "matrix with OUT.index.csv naming its rows. An unreadable image gets NaN features and an error.",
    )
    add_image_options(p, "embeddings.parquet",
                      "output .parquet or .npy (default embeddings.parquet); written only once every image is done",
                      "replace --out (and its index) if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from galaxyzoo.registry import embed
    from galaxyzoo.tracking import mlflow_runs

    summary = embed.embed_files(args.model, args.images, args.out, progress=sys.stderr.isatty(),
                                overwrite=args.overwrite, workers=args.workers,
                                tracking_uri=mlflow_runs.tracking_uri(args.tracking_uri))
    ok = report_failed(summary)
    print(f"wrote {summary.out}" + (f" and {summary.index}" if summary.index else "")
          + f": {ok} of {summary.total} images embedded, {summary.dims} features each"
          + (f", {len(summary.failed)} failed (see the error column)" if summary.failed else ""))
    return 2 if not ok else 0  # as predict: no usable input at all is the user's to fix
