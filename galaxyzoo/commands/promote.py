"""`galaxyzoo promote`: register the best run's model and point the alias `champion` at it."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "promote",
        help="register the best finished run's model as galaxyzoo-cnn@champion",
        description="Pick the best finished run with a logged model by a metric, package its model with the crop "
        "(an MLflow pyfunc model), register it as a new version and point an alias at it.",
    )
    # The underscore spellings are what `mlflow run . -e promote -P experiment_name=...` appends.
    p.add_argument("--experiment-name", "--experiment_name", default="",
                   help="MLflow experiment to choose from (default: the one holding the latest galaxyzoo "
                   "training, e.g. Default after a bare `mlflow run . -e sweep`)")
    p.add_argument("--sweep-run", "--sweep_run", default="", metavar="RUN_ID",
                   help="choose among this sweep parent run's trials instead (wins over --experiment-name)")
    p.add_argument("--run", default="", metavar="RUN_ID",
                   help="register this finished run's model, e.g. an ensemble run (`galaxyzoo ensemble`), "
                   "instead of choosing one (wins over --sweep-run and --experiment-name)")
    p.add_argument("--metric", default="val_rmse", help="final metric to rank runs by (default val_rmse)")
    p.add_argument("--mode", choices=("auto", "min", "max"), default="auto",
                   help="min: lower is better; max: higher; auto (default): max for R² metrics, else min")
    p.add_argument("--model-name", default="galaxyzoo-cnn", help="registered model name (default galaxyzoo-cnn)")
    p.add_argument("--alias", default="champion", help="alias to point at the new version (default champion)")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    from galaxyzoo.registry import promote
    from galaxyzoo.tracking import mlflow_runs

    client = mlflow_runs.connect(mlflow_runs.tracking_uri(args.tracking_uri))
    result = promote.promote(
        client,
        experiment_name=args.experiment_name.strip() or None,
        sweep_run=args.sweep_run.strip() or None,
        run_id=args.run.strip() or None,
        metric=args.metric,
        mode=args.mode,
        model_name=args.model_name,
        alias=args.alias,
        project_run_id=mlflow_runs.run_id_from_env(),
    )
    print(f"compared {result.candidates} finished run(s) with a model in {result.scope}, by {result.metric}:")
    shown = 5
    for rank, (run_id, name, value) in enumerate(result.ranking[:shown], 1):
        print(f"  {rank}. {name or '-'} ({run_id}) {result.metric} {value:.5g}")
    if len(result.ranking) > shown:
        print(f"  ... and {len(result.ranking) - shown} more (`galaxyzoo compare` lists them all)")
    print(f"promote → {result.model_name} v{result.version} from run {result.run_id}; "
          f"{result.model_uri} now points at it")
    return 0
