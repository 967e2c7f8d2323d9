"""`galaxyzoo compare`: a table of an experiment's or a sweep's runs (the old Excel sheet)."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "compare",
        help="table of runs: differing params, final metrics, duration",
        description="Print one row per MLflow run of an experiment (or per trial of a sweep): the parameters "
        "that differ between runs, the final metrics and the duration, best first.",
    )
    p.add_argument("--experiment-name", default="galaxyzoo", help="MLflow experiment (default galaxyzoo)")
    p.add_argument("--sweep-run", default="", metavar="RUN_ID",
                   help="list the trials of this sweep parent run instead (wins over --experiment-name)")
    p.add_argument("--sort", default="val_rmse", metavar="METRIC",
                   help="metric to sort by, best first (R² metrics descending, others ascending; default val_rmse)")
    p.add_argument("--format", choices=("text", "csv", "markdown"), default="text", help="output format (default text)")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.tracking import compare
    from galaxyzoo.tracking import mlflow_runs

    client = mlflow_runs.connect(mlflow_runs.tracking_uri(args.tracking_uri), create=False)  # it only reads
    _, runs = compare.runs_of(client, experiment_name=args.experiment_name, sweep_run=args.sweep_run.strip() or None)
    print(compare.render(compare.runs_table(runs, sort=args.sort), args.format), end="")
    return 0
