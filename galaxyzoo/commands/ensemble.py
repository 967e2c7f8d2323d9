"""`galaxyzoo ensemble`: log the mean of the best finished runs' predictions as one scored, packaged run."""

from galaxyzoo.commands.run_choice import add_ranking_options, add_scope_options


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ensemble",
        help="average the top-k finished runs of a sweep or experiment (or named runs) into one run",
        description="Rank the finished runs with a logged model by a metric, as `galaxyzoo promote` does, and "
        "log the mean of the best K as one MLflow run: scored on the test split like a training run and "
        "holding one packaged model, which `galaxyzoo promote --run RUN_ID` registers.",
    )
    add_scope_options(p)
    p.add_argument("--runs", nargs="+", default=[], metavar="RUN_ID",
                   help="average exactly these runs (space- or comma-separated) (wins over --sweep-run and --experiment-name)")
    p.add_argument("--top-k", "--top_k", type=int, default=3, help="how many of the best runs to average (default 3)")
    add_ranking_options(p)
    p.add_argument("--batch-size", type=int, default=None, help="prediction batch size (default: min(train's, 512))")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from galaxyzoo.tracking import mlflow_runs
    from galaxyzoo.training.ensemble import ensemble

    client = mlflow_runs.connect(mlflow_runs.tracking_uri(args.tracking_uri))
    result = ensemble(
        client,
        experiment_name=args.experiment_name.strip() or None,
        sweep_run=args.sweep_run.strip() or None,
        # `-P runs="ID ID"` under `mlflow run` arrives as one argument: ids split on spaces or commas.
        run_ids=[r for arg in args.runs for r in arg.replace(",", " ").split()],
        top_k=args.top_k,
        metric=args.metric,
        mode=args.mode,
        batch_size=args.batch_size,
        project_run_id=mlflow_runs.run_id_from_env(),
        progress=sys.stderr.isatty(),
    )
    print(f"ensemble of {len(result.members)} from {result.scope}: {', '.join(result.members)}")
    print(f"logged as run {result.run_id}: test_rmse {result.metrics['test_rmse']:.5g}, "
          f"val_rmse {result.metrics['val_rmse']:.5g}")
    print(f"register it with `galaxyzoo promote --run {result.run_id}`")
    return 0
