"""The options of the commands that choose runs as `galaxyzoo promote` does (promote, ensemble)."""


def add_scope_options(parser) -> None:
    """`--experiment-name` and `--sweep-run`: where the runs are chosen from (`registry.promote.scope`)."""
    # The underscore spellings are what `mlflow run . -e promote -P experiment_name=...` appends.
    parser.add_argument("--experiment-name", "--experiment_name", default="",
                        help="MLflow experiment to choose from (default: the one holding the latest galaxyzoo "
                        "training, e.g. Default after a bare `mlflow run . -e sweep`)")
    parser.add_argument("--sweep-run", "--sweep_run", default="", metavar="RUN_ID",
                        help="choose among this sweep parent run's trials instead (wins over --experiment-name)")


def add_ranking_options(parser) -> None:
    """`--metric` and `--mode`: how the runs are ranked (`registry.promote.resolve_mode`)."""
    parser.add_argument("--metric", default="val_rmse", help="final metric to rank runs by (default val_rmse)")
    parser.add_argument("--mode", choices=("auto", "min", "max"), default="auto",
                        help="min: lower is better; max: higher; auto (default): max for R² metrics, else min")
