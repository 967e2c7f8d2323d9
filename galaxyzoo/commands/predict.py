"""`galaxyzoo predict`: 37 vote fractions and the most likely tree path for raw galaxy images."""

from galaxyzoo.commands.images import add_image_options, report_failed


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict",
        help="classify raw GZ2 images with a registered model",
        description="Crop each raw image as in training, run the packaged model and write one CSV row per "
        "image: the 37 answer fractions, the most likely answer path and the crop branch. An unreadable image "
        "gets an error in its row and does not stop the others.",
    )
    add_image_options(p, "predictions.csv",
                      "output CSV (default predictions.csv); written only once every image is done",
                      "replace --out if it exists (never an input image)",
                      tta_help="average each image's prediction over the 8 rotations and flips of its crop "
                      "(8x the work)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from galaxyzoo.registry import predict
    from galaxyzoo.tracking import mlflow_runs

    summary = predict.predict_files(args.model, args.images, args.out, progress=sys.stderr.isatty(),
                                    overwrite=args.overwrite, workers=args.workers, tta=bool(args.tta),
                                    tracking_uri=mlflow_runs.tracking_uri(args.tracking_uri))
    ok = report_failed(summary)
    print(f"wrote {summary.out}: {ok} of {summary.total} images predicted"
          + (f", {len(summary.failed)} failed (see the error column)" if summary.failed else ""))
    return 2 if not ok else 0  # no usable input at all is the user's to fix, like any bad input
