"""Hyperparameter sweeps: an Optuna study whose trials are nested MLflow training runs.

```python
from galaxyzoo.sweep.worker import run_sweep
result = run_sweep("sweeps/quickstart.yaml", n_trials=6)
result.parent_run_id, result.best_value, result.best_params
```

One call is one *worker*. All workers of one study share one parent MLflow
run, named `sweep <study>` and found by the tag `galaxyzoo.sweep_key` (a hash
of the study name and storage): the first worker creates it, later ones join
it (reopening it when the study is extended). The parent holds the sweep file
and settings as params and artifacts, and a `galaxyzoo.worker.<host>-<pid>`
tag per worker that the worker refreshes every heartbeat. A worker takes
trials from the study until it holds `n_trials` finished (complete or pruned)
trials, counting every worker's. Each trial is `training.run.train` on the trial's
config, nested under the parent and named `<study> trial <n>`, with the same logging
as any training plus the tags `trial_number`, `trial_state` (complete /
pruned / failed) and `trial_values`. A Keras callback reports the validation
metric to the trial after every epoch, so a median or Hyperband pruner can
stop a poor trial early. Each worker leaving writes the summary on the
parent: the trials table (CSV), the optimisation-history, intermediate-values
and parameter-importance plots, and the best value (as the study metric and
`best_<metric>`), trial and parameters; the last worker ends the parent.

Workers share a study through its storage (`--storage postgresql://...`, or
the default SQLite file beside the MLflow database). Taking a trial happens
under a lock (a PostgreSQL advisory lock, or a file lock for SQLite), so two
workers never overshoot `n_trials`. A killed worker leaves stale state that
the next worker repairs, under the same lock: a trial without heartbeat (or
whose process on this machine is gone) is failed, its MLflow run closed
FAILED, and a retry queued; a parent left RUNNING with no live worker is taken
over. A worker waits while other workers' trials could still finish the
study, so it never reports a study done that is not. `--backend keras-tuner`
runs the same file with keras-tuner (`sweep.keras_tuner_backend`).

This module is the worker's loop; the rest of `galaxyzoo.sweep` holds one job
each: `parent` (the parent run, worker entries, heartbeats), `trial` (one
trial, either backend), `optuna_backend` (the study, ask/tell, dead trials),
`storage` (storage URLs, the retrying database, the study lock), `summary`
and `plots` (what each leaving worker writes on the parent).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
from pathlib import Path

from galaxyzoo.config import experiment
from galaxyzoo.config.engine import identifier_problem
from galaxyzoo.config.sweep_spec import PRUNERS, load_sweep
from galaxyzoo.data import workspace
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.sweep import keras_tuner_backend
from galaxyzoo.sweep.optuna_backend import StaleTrials, open_study, optimize, quiet_optuna_warnings
from galaxyzoo.sweep.parent import (HEARTBEAT_SECONDS, Worker, close_failed, join_parent, log_setup, sweep_key,
                                    worker_on)
from galaxyzoo.sweep.storage import database_url, default_storage, study_lock
from galaxyzoo.sweep.summary import SweepResult, summarise
from galaxyzoo.sweep.trial import TrialRunner
from galaxyzoo.system.locks import writer_lock
from galaxyzoo.tracking import mlflow_runs, names

logger = logging.getLogger(__name__)

BACKENDS = ("optuna", "keras-tuner")
DB_RETRY_SECONDS = 120  # how long a running worker waits out a lost database connection before it stops


def run_sweep(
    sweep_file: str | os.PathLike,
    *,
    n_trials: int | None = None,
    epochs: int | None = None,
    data: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    storage: str | None = None,
    study_name: str | None = None,
    backend: str = "optuna",
    pruner: str | None = None,
    heartbeat_seconds: int = HEARTBEAT_SECONDS,
    db_retry_seconds: float = DB_RETRY_SECONDS,
    project_run_id: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run one sweep worker; see the module docstring.

    Args:
        sweep_file: the sweep YAML (`config.sweep_spec.load_sweep`).
        n_trials: finished trials the study should reach (default: the file's `study.n_trials`).
        epochs, data: shorthands for the overrides `train.epochs=N` and `data.source=DATA`.
        overrides: more `KEY=VALUE` changes for every trial (after the file's `set:`).
        storage: Optuna storage URL (default: `optuna.db` beside the MLflow SQLite database).
        study_name: default: the sweep's name, so a rerun continues the same study.
        backend: "optuna" or "keras-tuner".
        pruner: replace the file's `study.pruner` ("median", "hyperband" or "none"); the file's
            `pruner_params` are kept only when it names the same pruner.
        heartbeat_seconds: how often a running trial proves its worker alive; a trial silent
            for twice as long is failed (and retried) by the next worker that looks.
        db_retry_seconds: once the study is open, how long every call to its database (and the
            PostgreSQL study lock) keeps retrying a lost connection before the worker stops.
        project_run_id: the run `mlflow run . -e sweep` created for this worker (the CLI passes
            MLFLOW_RUN_ID): the study's parent run, or, when the study already has one, a run
            that points to it.
        progress: show progress bars while the data is built.
    """
    if backend not in BACKENDS:
        raise GalaxyZooError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    spec = load_sweep(sweep_file)
    if pruner is not None and pruner != spec.study.pruner:
        if pruner not in PRUNERS:
            raise GalaxyZooError(f"--pruner: expected one of {', '.join(PRUNERS)}, got {pruner!r}")
        spec = dataclasses.replace(spec, study=dataclasses.replace(spec.study, pruner=pruner, pruner_params={}))
    extra = [*overrides]
    if epochs is not None:
        extra.append(f"train.epochs={epochs}")
    if data:
        extra.append(f"data.source={json.dumps(data)}")  # JSON quoting keeps a path a YAML string
    base_cfg = spec.base_config(extra)  # also checks the overrides
    n_trials = spec.study.n_trials if n_trials is None else n_trials
    if n_trials < 1:
        raise GalaxyZooError(f"--n-trials must be at least 1, got {n_trials}")
    if study_name and (problem := identifier_problem(study_name)):  # it names a folder and runs, as the file's
        raise GalaxyZooError(f"--study-name: {problem}")
    study_name = study_name or spec.name
    uri = mlflow_runs.tracking_uri(None if project_run_id else base_cfg.tracking.tracking_uri)
    # Trials must land in the parent's store whatever their config says.
    extra.append(f"tracking.tracking_uri={json.dumps(uri)}")
    if backend == "keras-tuner":
        if storage:
            raise GalaxyZooError("--storage is for the optuna backend; keras-tuner keeps its state under data.workdir")
        storage = str(keras_tuner_backend.project_dir(base_cfg.data.workdir, study_name))
    else:
        storage = database_url(storage) if storage else default_storage(uri)
    client = mlflow_runs.connect(uri)
    experiment_id = (
        client.get_run(project_run_id).info.experiment_id
        if project_run_id
        else mlflow_runs.experiment_id(client, base_cfg.tracking.experiment_name)
    )
    key = sweep_key(study_name, storage)
    lock = functools.partial(study_lock, storage, study_name, retry_seconds=db_retry_seconds)
    study, on_stale = None, StaleTrials(client, experiment_id, key)
    if backend == "optuna":  # a bad storage or another search space fails here, before any run exists
        with quiet_optuna_warnings():
            study = open_study(spec, base_cfg, storage, study_name, extra, heartbeat_seconds, on_stale,
                               db_retry_seconds)
    # keras-tuner's oracle lives in one process: a second worker on the study would train every trial again.
    one_worker = writer_lock(storage) if backend == "keras-tuner" else contextlib.nullcontext()
    with one_worker:
        _prepare_data(base_cfg, progress)
        tags = {names.TAG_SWEEP: study_name, names.TAG_SWEEP_KEY: key, names.TAG_SWEEP_FILE: str(spec.path),
                names.TAG_SWEEP_BACKEND: backend,
                names.TAG_NOTE: f"{backend} sweep {study_name} of {spec.path.name}, searching "
                + "; ".join(f"{p.name} {p.describe()}" for p in spec.params)}
        me = Worker.me()
        with lock():
            parent_id = join_parent(client, experiment_id, key, study_name, storage, tags, me, heartbeat_seconds,
                                    project_run_id)
        with worker_on(client, parent_id, me, heartbeat_seconds, lock) as leave:
            # Under the lock: two workers joining at once would both find a param unlogged and log it, and
            # a SQL store refuses the second (a duplicate key).
            with lock():
                log_setup(client, parent_id, spec, base_cfg, extra, study_name, storage, n_trials, backend)
            runner = TrialRunner(client, spec, extra, parent_id, study_name, key)
            if backend == "optuna":
                with quiet_optuna_warnings():
                    ran, running, stale = optimize(study, spec, runner, lock, n_trials, me, heartbeat_seconds,
                                                   on_stale)
            else:
                stale = _close_dead_tuner_trials(client, experiment_id, key, keras_tuner_backend.ended_trials(
                    keras_tuner_backend.project_dir(base_cfg.data.workdir, study_name)))
                (study, ran), running = keras_tuner_backend.search(spec, runner, base_cfg, study_name, n_trials), 0
            leave.update(ran=ran)
            result = summarise(client, parent_id, spec, study, study_name, storage, ran, running, stale)
        return result


def _close_dead_tuner_trials(client, experiment_id: str, key: str, ended: set[int] | None) -> int:
    """Close FAILED, with the reason, the keras-tuner trial runs a killed worker left unrecorded; returns how many.

    Called under the study's one-worker lock, so no live worker runs them. Unrecorded: RUNNING, or
    FINISHED by the training but not among the trials whose end keras-tuner recorded (`ended`), which
    its reload trains again (or, with no tuner file yet, replaces with a fresh draw): such a run would
    otherwise stand beside the retrain as a second finished run of the trial, or as one of a trial the
    sweep never had, for promote and compare to pick. With `ended` None (no study folder: new, or
    removed to start afresh) the finished runs are an earlier study's, and kept.
    """
    study = f"tags.`{names.TAG_SWEEP_KEY}` = '{key}'"
    runs = {r.info.run_id: r for query in (f"{study} and attributes.status = 'RUNNING'",
                                           f"{study} and attributes.status = 'FINISHED'")
            for r in client.search_runs([experiment_id], query)}
    dead = [r for r in runs.values() if names.TAG_TRIAL_NUMBER in r.data.tags  # not the parent, ours now
            and (r.info.status == "RUNNING"
                 or (ended is not None and int(r.data.tags[names.TAG_TRIAL_NUMBER]) not in ended))]
    for run in dead:
        why = (f"the worker of trial {run.data.tags[names.TAG_TRIAL_NUMBER]} died before keras-tuner recorded the "
               "trial's end; keras-tuner trains it again")
        close_failed(client, run.info.run_id, why, trial=True)
        logger.warning("%s (run %s closed)", why, run.info.run_id)
    return len(dead)


def _prepare_data(cfg: experiment.ExperimentConfig, progress: bool) -> None:
    """Build the data once, before any trial, under a lock: workers on one machine share it."""
    from filelock import FileLock

    workdir = Path(cfg.data.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with FileLock(workdir / ".sweep-data.lock"):
        workspace.build_for(cfg.data, progress=progress)
