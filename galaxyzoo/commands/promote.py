"""`galaxyzoo promote`: register the best run's model and point the alias `champion` at it."""

from galaxyzoo.commands.run_choice import add_ranking_options, add_scope_options


def add_parser(subparsers):
    p = subparsers.add_parser(
        "promote",
        help="register the best finished run's model as galaxyzoo-cnn@champion",
        description="Pick the best finished run with a logged model by a metric, package its model with the crop "
        "(an MLflow pyfunc model), register it as a new version (or reuse the version that already holds that run's "
        "model) and point an alias at it.",
    )
    add_scope_options(p)
    p.add_argument("--run", default="", metavar="RUN_ID",
                   help="register this finished run's model, e.g. an ensemble run (`galaxyzoo ensemble`), "
                   "instead of choosing one (wins over --sweep-run and --experiment-name)")
    add_ranking_options(p)
    p.add_argument("--model-name", default="galaxyzoo-cnn", help="registered model name (default galaxyzoo-cnn)")
    p.add_argument("--alias", default="champion", help="alias to point at the version (default champion)")
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
