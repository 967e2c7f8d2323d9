"""`galaxyzoo evaluate`: score a trained model on its test split."""

from __future__ import annotations

from galaxyzoo.commands.images import add_switch


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="score a run's or registered model on the test split",
        description="Score a model on the test split of the data it was trained on (read from its run's "
        "config.yaml): RMSE, both R^2 variants, Kaggle cumulative RMSE and a table per question.",
    )
    p.add_argument("--model", required=True, metavar="URI",
                   help="a run id, runs:/RUN_ID/model, models:/NAME@ALIAS, models:/NAME/VERSION or a local path")
    p.add_argument("--data", default="", metavar="synthetic|RAW_DIR", help="override data.source")
    p.add_argument("--experiment", default="", metavar="FILE",
                   help="experiment file for a model that no run logged (otherwise the run's config is used)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE ...",
                   help="override config keys of the model's config (as for `galaxyzoo train`)")
    p.add_argument("--out", default="", metavar="DIR", help="also write metrics.json and per_question_metrics.csv")
    add_switch(p, "--tta", "also score the mean prediction over the 8 rotations and flips of each crop (logged as "
                   "test_*_tta); default: the model's config, evaluate.tta")
    p.add_argument("--batch-size", type=int, default=None, help="prediction batch size (default: min(train's, 512))")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(func=run, epochs="")


def run(args) -> int:
    from galaxyzoo.commands.train import overrides_from_args

    from galaxyzoo.registry.evaluate import evaluate, format_report
    from galaxyzoo.tracking.mlflow_runs import run_id_from_env

    overrides = overrides_from_args(args)
    if args.tta is not None:  # given, it wins over the model's config
        overrides.append(f"evaluate.tta={'true' if args.tta else 'false'}")
    result = evaluate(
        args.model,
        experiment_file=args.experiment.strip() or None,
        overrides=overrides,
        out_dir=args.out.strip() or None,
        batch_size=args.batch_size,
        tracking_uri=args.tracking_uri,
        project_run_id=run_id_from_env(),
    )
    print(format_report(result))
    return 0
