"""`galaxyzoo sweep`: an Optuna (or keras-tuner) search whose trials are nested MLflow runs."""

import sys

from galaxyzoo.commands.train import split_assignments
from galaxyzoo.errors import GalaxyZooError


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sweep",
        help="search hyperparameters; every trial is a nested MLflow training run",
        description="Run one sweep worker: take trials from the study until it holds N finished trials "
        "(all workers together), training each as a nested MLflow run under the study's one parent run. "
        "Empty values mean 'use the sweep file's' (the MLproject passes \"\" for unset parameters).",
    )
    p.add_argument("--config", default="sweeps/quickstart.yaml", help="sweep file (default sweeps/quickstart.yaml)")
    p.add_argument("--n-trials", "--n_trials", default="", help="finished trials the study should reach (default: the file's)")
    p.add_argument("--epochs", default="", help="epochs per trial (shorthand for --set train.epochs=N)")
    p.add_argument("--data", default="", help="'synthetic' or a raw GZ2 folder (shorthand for --set data.source=...)")
    p.add_argument("--storage", default="",
                   help="Optuna storage URL shared by workers, e.g. postgresql://user@host/optuna "
                   "(default: optuna.db beside the MLflow SQLite database)")
    p.add_argument("--study-name", "--study_name", default="",
                   help="Optuna study; workers with the same name share it (default: the sweep's name)")
    p.add_argument("--backend", default="optuna", help="optuna (default) or keras-tuner")
    p.add_argument("--pruner", default="", help="median, hyperband or none (default: the file's study.pruner)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE ...",
                   help="change config keys for every trial (after the file's set:), as for `galaxyzoo train --set`")
    p.add_argument("--heartbeat", default="60", metavar="SECONDS",
                   help="trial heartbeat; a trial silent for twice this is failed and retried (default 60)")
    p.add_argument("--db-retry", "--db_retry", default="120", metavar="SECONDS",
                   help="how long a running worker retries a lost connection to the study's database "
                   "(a restart) before it stops with one line (default 120; 0: stop at once)")
    p.set_defaults(func=run)


def _int(value: str, option: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise GalaxyZooError(f"{option}: expected a whole number, got {value!r}") from None


def _heartbeat(value: str) -> int:
    """Seconds between a worker's heartbeats (default 60); a dead worker's trial fails after a few."""
    seconds = _int(value, "--heartbeat")
    if seconds is None:
        return 60
    if seconds < 1:
        raise GalaxyZooError(f"--heartbeat: expected at least 1 second, got {seconds}")
    return seconds


def _seconds(value: str, option: str, default: int) -> int:
    seconds = _int(value, option)
    if seconds is None:
        return default
    if seconds < 0:
        raise GalaxyZooError(f"{option}: expected 0 or more seconds, got {seconds}")
    return seconds


def run(args) -> int:
    from mlflow.exceptions import MlflowException

    from galaxyzoo.sweep.trial import spelled
    from galaxyzoo.sweep.worker import DB_RETRY_SECONDS, run_sweep
    from galaxyzoo.tracking.mlflow_runs import run_id_from_env

    try:
        result = run_sweep(
            args.config,
            n_trials=_int(args.n_trials, "--n-trials"),
            epochs=_int(args.epochs, "--epochs"),
            data=args.data.strip() or None,
            overrides=[a for text in args.set for a in split_assignments(text)],
            storage=args.storage.strip() or None,
            study_name=args.study_name.strip() or None,
            backend=args.backend.strip() or "optuna",
            pruner=args.pruner.strip() or None,
            heartbeat_seconds=_heartbeat(args.heartbeat),
            db_retry_seconds=_seconds(args.db_retry, "--db-retry", DB_RETRY_SECONDS),
            project_run_id=run_id_from_env(),
            progress=sys.stderr.isatty(),
        )
    except MlflowException as exc:
        if not str(exc).startswith("API request to"):  # MLflow's words once its own HTTP retries are spent
            raise
        raise GalaxyZooError(f"the MLflow tracking server stopped answering: {str(exc).splitlines()[0]}; "
                             "rerun the worker once it is back (it repairs what this one left)") from None
    best = "no complete trial yet" if result.best_value is None else (
        f"best {result.best_value:.5f} (run {result.best_run_id}): "
        + ", ".join(f"{k}={spelled(v)}" for k, v in result.best_params.items())
    )
    print(f"parent run: {result.parent_run_id}; {best}")
    # Last, so a wrapper reading one line learns whether the study is done.
    print(f"study {result.study_name} ({result.storage}): {result.finished} finished, {result.running} running "
          f"elsewhere, {result.stale} stale (failed and retried); {result.trials_run} run by this worker")
    return 0
