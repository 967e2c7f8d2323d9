"""Hyperparameter sweeps: an Optuna study whose trials are nested MLflow training runs.

```python
from galaxyzoo.sweep import run_sweep
result = run_sweep("sweeps/quickstart.yaml", n_trials=6)
result.parent_run_id, result.best_value, result.best_params
```

One call is one *worker*. It opens a parent MLflow run (the sweep file and
settings as params and artifacts), then takes trials from the study until the
study holds `n_trials` finished (complete or pruned) trials, counting every
worker's. Each trial is `train.train` on the trial's config, nested under the
parent, with the same logging as any training plus the tags `trial_number`
and `trial_state` (complete / pruned / failed). A Keras callback reports the
validation metric to the trial after every epoch, so a median or Hyperband
pruner can stop a poor trial early. The parent finally gets the summary: the
trials table (CSV), the optimisation-history, intermediate-values and
parameter-importance plots, and the best value, trial and parameters.

Workers share a study through its storage (`--storage postgresql://...`, or
the default SQLite file beside the MLflow database). Taking a trial happens
under a lock (a PostgreSQL advisory lock, or a file lock for SQLite), so two
workers never overshoot `n_trials`. A heartbeat marks a killed worker's trial
failed and queues a retry of it; a restarted sweep loads the same study and
carries on. `--backend keras-tuner` runs the same file with keras-tuner
(`galaxyzoo.tuner`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from galaxyzoo import compare, config, tracking, tuner
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.search_space import PRUNERS, OptunaSuggest, SweepSpec, load_sweep, optuna_class

logger = logging.getLogger(__name__)

BACKENDS = ("optuna", "keras-tuner")
OPTUNA_DB = "optuna.db"
HEARTBEAT_SECONDS = 60
MAX_RETRY = 2  # retries of a trial whose worker died
MAX_CONSECUTIVE_FAILURES = 3  # a worker gives up after this many failed trials in a row
STATES = ("complete", "pruned", "failed")


@dataclass(frozen=True)
class SweepResult:
    """What one worker's sweep produced (the best values cover the whole study)."""

    study_name: str
    storage: str  # with any password hidden
    parent_run_id: str
    trials_run: int  # trials this worker ran
    finished: int  # complete + pruned trials in the study
    best_value: float | None
    best_params: dict[str, Any]
    best_run_id: str | None


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
    progress: bool = True,
) -> SweepResult:
    """Run one sweep worker; see the module docstring.

    Args:
        sweep_file: the sweep YAML (`search_space.load_sweep`).
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
    study_name = study_name or spec.name
    env_run = tracking.run_id_from_env()
    uri = tracking.tracking_uri(None if env_run else base_cfg.tracking.tracking_uri)
    # Trials must land in the parent's store whatever their config says.
    extra.append(f"tracking.tracking_uri={json.dumps(uri)}")
    if backend == "keras-tuner":
        if storage:
            raise GalaxyZooError("--storage is for the optuna backend; keras-tuner keeps its state under data.workdir")
        storage = str(tuner.project_dir(base_cfg.data.workdir, study_name))
    else:
        storage = database_url(storage) if storage else default_storage(uri)
    _prepare_data(base_cfg, progress)
    client = tracking.connect(uri)
    experiment_id = (
        client.get_run(env_run).info.experiment_id
        if env_run
        else tracking.experiment_id(client, base_cfg.tracking.experiment_name)
    )
    tags = {compare.TAG_SWEEP: study_name, "sweep_file": str(spec.path), "backend": backend}
    with tracking.open_run(client, experiment_id=experiment_id, run_id=env_run, run_name=study_name,
                           tags=tags) as parent:
        parent_id = parent.info.run_id
        with tracking.recording_outcome(client, parent_id):
            _log_sweep_setup(client, parent_id, spec, base_cfg, extra, study_name, storage, n_trials, backend)
            runner = TrialRunner(client, spec, extra, parent_id, study_name)
            if backend == "optuna":
                with _quiet_optuna_warnings():
                    study, ran = _optimize(spec, runner, base_cfg, storage, study_name, n_trials, extra,
                                           heartbeat_seconds)
            else:
                study, ran = tuner.search(spec, runner, base_cfg, study_name, n_trials)
            result = _summarise(client, parent_id, spec, study, study_name, storage, ran)
    return result


def default_storage(tracking_uri: str) -> str:
    """`sqlite:///<folder of the MLflow SQLite db>/optuna.db`, else `./optuna.db`."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent
    else:
        folder = Path.cwd()
    return f"sqlite:///{folder / OPTUNA_DB}"


def database_url(url: str) -> str:
    """`postgresql://` with the driver that is installed: SQLAlchemy 2.1 means psycopg 3 by
    default, while the project installs psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _prepare_data(cfg: config.ExperimentConfig, progress: bool) -> None:
    """Build the data once, before any trial, under a lock: workers on one machine share it."""
    from galaxyzoo import workspace

    workdir = Path(cfg.data.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with file_lock(workdir / ".sweep-data.lock"):
        workspace.build_for(cfg.data, progress=progress)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on one machine (flock on `path`)."""
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_sweep_setup(client, run_id, spec: SweepSpec, base_cfg, extra, study_name, storage, n_trials, backend):
    """The parent run's params (settings, searched ranges) and artifacts (sweep file, base config)."""
    s = spec.study
    params = {
        "sweep.file": str(spec.path),
        "sweep.base": str(spec.base),
        "sweep.study_name": study_name,
        "sweep.storage": hide_password(storage),
        "sweep.backend": backend,
        "sweep.n_trials": n_trials,
        "sweep.metric": s.metric,
        "sweep.direction": s.direction,
        "sweep.sampler": f"{s.sampler} {json.dumps(s.sampler_params)} seed={s.seed}",
        "sweep.pruner": f"{s.pruner} {json.dumps(s.pruner_params)}",
        "sweep.overrides": " ".join(o for o in (*spec.fixed, *extra) if not o.startswith("tracking.")),
        **{f"space.{p.name}": p.describe() for p in spec.params},
    }
    tracking.log_params(client, run_id, params)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(spec.path, Path(tmp) / "sweep.yaml")
        config.dump_yaml(base_cfg, Path(tmp) / "base_config.yaml")
        client.log_artifacts(run_id, tmp)


# ---------------------------------------------------------------- one trial, any backend


class TrialRunner:
    """Trains one trial as a nested run and records its state; shared by both backends."""

    def __init__(self, client, spec: SweepSpec, extra: list[str], parent_run_id: str, study_name: str):
        self.client, self.spec, self.extra = client, spec, extra
        self.parent_run_id, self.study_name = parent_run_id, study_name
        self.experiment_id = client.get_run(parent_run_id).info.experiment_id

    def __call__(self, number: int, values: dict[str, Any], *, extra=(), callbacks=(), pruned=(),
                 tags=None) -> tuple[str, float]:
        """Train trial `number`; return `(run_id, final value of the study metric)`.

        Raises what `train` raises (a `pruned` exception after the run ended as
        pruned); a config the trial's values make invalid is a GalaxyZooError.
        """
        from galaxyzoo.train import train

        cfg = self.spec.trial_config(values, [*self.extra, *extra])
        trial_tags = {
            compare.TAG_TRIAL_NUMBER: str(number),
            compare.TAG_TRIAL_STATE: "running",
            "study_name": self.study_name,
            **(tags or {}),
        }
        try:
            result = train(
                cfg,
                experiment_file=str(self.spec.base),
                parent_run_id=self.parent_run_id,
                run_name=f"{self.study_name}-trial-{number}",
                extra_tags=trial_tags,
                extra_callbacks=list(callbacks),
                pruned_exceptions=tuple(pruned),
                verbose=2,
                progress=False,
            )
        except BaseException as exc:
            run_id = self.run_of(number)
            if run_id:
                state = "pruned" if isinstance(exc, tuple(pruned)) else "failed"
                self.client.set_tag(run_id, compare.TAG_TRIAL_STATE, state)
            raise
        self.client.set_tag(result.run_id, compare.TAG_TRIAL_STATE, "complete")
        series = result.history.get(self.spec.study.metric, [])
        if not series:
            raise GalaxyZooError(f"trial {number} logged no {self.spec.study.metric}")
        return result.run_id, series[-1][1]

    def run_of(self, number: int) -> str | None:
        """The MLflow run of trial `number` under this parent, if training got as far as creating it."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{tracking.PARENT_TAG}` = '{self.parent_run_id}' "
            f"and tags.{compare.TAG_TRIAL_NUMBER} = '{number}'",
        )
        return runs[0].info.run_id if runs else None


def trial_callback(trial, metric: str):
    """A Keras callback tying a training to its Optuna `trial`.

    It records the trial's MLflow run id on the trial as soon as training
    starts (so a worker that later finds the trial stale can close the run),
    reports `metric` after every epoch, and raises `optuna.TrialPruned` when
    the pruner says so (train() then ends the run as pruned).
    """
    import keras
    import mlflow
    import optuna

    class OptunaTrial(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            active = mlflow.active_run()
            if active is not None:
                trial.set_user_attr("mlflow_run_id", active.info.run_id)

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None or not math.isfinite(float(value)):
                return  # a NaN epoch is judged by the final value; the pruner cannot rank it
            trial.report(float(value), step=epoch + 1)  # step = epochs trained so far
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {metric}={float(value):.5f}")

    return OptunaTrial()


# ---------------------------------------------------------------- the Optuna backend


def _optimize(spec: SweepSpec, runner: TrialRunner, base_cfg, storage_url: str, study_name: str, n_trials: int,
              extra: list[str], heartbeat_seconds: int):
    """Take trials from the shared study until it holds `n_trials` finished ones; `(study, trials run here)`."""
    import optuna

    lock = functools.partial(study_lock, storage_url, study_name)
    with lock():  # two workers creating the tables or the study at once would collide
        storage = _storage(storage_url, heartbeat_seconds, _stale_trial_handler(runner.client))
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            pruner=_pruner(spec, base_cfg.train.epochs),
            direction=spec.study.direction,
            load_if_exists=True,
        )
        _claim_study(study, spec, extra)
        study.sampler = _sampler(spec, already=len(study.get_trials(deepcopy=False)))
    study_id = storage.get_study_id_from_name(study_name)
    states = optuna.trial.TrialState
    counted = (states.COMPLETE, states.PRUNED, states.RUNNING)  # running: another worker's, or a dead one's
    ran, failures = 0, 0
    while True:
        with lock():
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial -> FAIL, and a retry is queued
            if len(study.get_trials(deepcopy=False, states=counted)) >= n_trials:
                break
            trial = study.ask()  # a queued retry first, else a new trial from the sampler
        ran += 1
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
            storage.get_trial(trial_id))
        with _heartbeat(storage, trial_id, heartbeat_seconds):
            state = _run_optuna_trial(study, trial, spec, runner, retry_of)
        failures = failures + 1 if state == "failed" else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise GalaxyZooError(
                f"{failures} trials failed in a row (last: {trial.user_attrs.get('error', 'see the log')}); "
                "stopping this worker"
            )
    return study, ran


def _run_optuna_trial(study, trial, spec: SweepSpec, runner: TrialRunner, retry_of: int | None) -> str:
    """Run one trial and tell the study how it ended: "complete", "pruned" or "failed"."""
    import optuna

    tags = {} if retry_of is None else {"retry_of_trial": str(retry_of)}
    values = spec.sample(OptunaSuggest(trial))
    logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in values.items()))
    try:
        run_id, value = runner(
            trial.number, values, callbacks=[trial_callback(trial, spec.study.metric)],
            pruned=(optuna.TrialPruned,), tags=tags,
        )
    except optuna.TrialPruned as exc:
        _remember_run(trial, runner)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        logger.info("trial %d %s", trial.number, exc)
        return "pruned"
    except KeyboardInterrupt:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as exc:  # one bad trial (e.g. NaN loss, an invalid combination) must not end the sweep
        _remember_run(trial, runner)
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        logger.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
        return "failed"
    if not math.isfinite(value):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        runner.client.set_tag(run_id, compare.TAG_TRIAL_STATE, "failed")
        return "failed"
    study.tell(trial, value)
    logger.info("trial %d: %s=%.5f", trial.number, spec.study.metric, value)
    return "complete"


def _remember_run(trial, runner: TrialRunner) -> None:
    """Record the trial's run when training failed before the callback could."""
    if "mlflow_run_id" not in trial.user_attrs and (run_id := runner.run_of(trial.number)):
        trial.set_user_attr("mlflow_run_id", run_id)


@contextlib.contextmanager
def _quiet_optuna_warnings() -> Iterator[None]:
    """The heartbeat API is marked experimental, and Optuna expects it only inside optimize():
    this module drives it by hand (ask/tell under a lock), on purpose."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def _stale_trial_handler(client):
    """What happens to a trial whose worker stopped beating: Optuna queues a retry with the
    same params, and its MLflow run (left RUNNING by the dead worker) is closed as failed."""
    import optuna

    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)

    def handle(study, trial) -> None:
        retry(study, trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            tracking.set_tags(client, run_id, {compare.TAG_TRIAL_STATE: "failed", tracking.TAG_OUTCOME: "failed"})
            client.set_terminated(run_id, "FAILED")
        logger.warning("trial %d: its worker stopped (no heartbeat); marked failed, a retry is queued", trial.number)

    return handle


def _storage(url: str, heartbeat_seconds: int, on_stale_trial):
    import optuna

    if "://" not in url:
        raise GalaxyZooError(f"--storage: expected a database URL (sqlite:///optuna.db, postgresql://...), got {url!r}")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
    except Exception as exc:  # SQLAlchemy's errors name the driver problem; keep it to one line
        raise GalaxyZooError(f"--storage {hide_password(url)}: cannot open the Optuna storage: {exc}") from None


def _sampler(spec: SweepSpec, already: int):
    """The study's sampler. A seeded sampler is offset by the trials the study already has, so
    a restarted sweep does not redraw its first trials' values (it stays reproducible)."""
    seed = None if spec.study.seed is None else spec.study.seed + already
    return optuna_class("sampler", spec.study.sampler)(seed=seed, **spec.study.sampler_params)


def _pruner(spec: SweepSpec, epochs: int):
    params = dict(spec.study.pruner_params)
    if spec.study.pruner == "hyperband":
        params.setdefault("max_resource", epochs)  # steps are epochs; "auto" would guess from the first trial
    return optuna_class("pruner", spec.study.pruner)(**params)


def _claim_study(study, spec: SweepSpec, extra: list[str]) -> None:
    """Record which search space the study holds; refuse to mix another into it."""
    space = spec.space_hash(extra)
    found = study.user_attrs.get("space_hash")
    if found is None:
        study.set_user_attr("space_hash", space)
        study.set_user_attr("sweep_file", str(spec.path))
    elif found != space:
        raise GalaxyZooError(
            f"study {study.study_name!r} was started from another search space or base config "
            f"({study.user_attrs.get('sweep_file')}, space {found}; this one is {space}); "
            "give this sweep another --study-name, or run the same file with the same overrides"
        )


@contextlib.contextmanager
def study_lock(storage_url: str, study_name: str) -> Iterator[None]:
    """A lock all workers of one study share: a PostgreSQL advisory lock, or a file lock for SQLite.

    Other databases get no lock (two workers may then overshoot n_trials by one).
    """
    if storage_url.startswith("sqlite:///"):
        db = Path(storage_url.removeprefix("sqlite:///")).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(db.with_name(db.name + ".lock")):
            yield
    elif storage_url.startswith("postgresql"):
        import sqlalchemy

        key = zlib.crc32(f"galaxyzoo-sweep:{study_name}".encode())
        engine = sqlalchemy.create_engine(storage_url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
    else:
        yield


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int, seconds: int) -> Iterator[None]:
    """Record the trial's heartbeat every `seconds` while it runs (what Optuna's optimize() does)."""
    stop = threading.Event()

    def beat():
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # a database hiccup must not kill the trial; the next beat retries
                logger.warning("heartbeat of trial id %d failed: %s", trial_id, exc)
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------- the summary on the parent run


def _summarise(client, parent_id: str, spec: SweepSpec, study, study_name: str, storage: str, ran: int) -> SweepResult:
    """Trials table, plots, best value and params on the parent run."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    count = {name: sum(t.state == state for t in trials)
             for name, state in (("complete", states.COMPLETE), ("pruned", states.PRUNED), ("failed", states.FAIL))}
    metric = spec.study.metric
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_trial
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trials_table(trials).to_csv(folder / "trials.csv", index=False)
        notes = _plots(study, folder, metric)
        client.log_artifacts(parent_id, tmp)
    summary = {f"trials_{k}": v for k, v in count.items()}
    summary["trials_run_by_this_worker"] = ran
    if best is not None:
        summary[f"best_{metric}"] = best.value
    tracking.log_metrics(client, parent_id, summary)
    tags = {f"plot_note.{k}": v for k, v in notes.items()}
    if best is not None:
        tags.update({"best_trial_number": str(best.number), "best_run_id": best.user_attrs.get("mlflow_run_id", "")})
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()})
    tracking.set_tags(client, parent_id, tags)
    finished = count["complete"] + count["pruned"]
    if best is None:
        logger.warning("study %s has no complete trial yet", study_name)
    return SweepResult(
        study_name=study_name,
        storage=hide_password(storage),
        parent_run_id=parent_id,
        trials_run=ran,
        finished=finished,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        best_run_id=None if best is None else best.user_attrs.get("mlflow_run_id"),
    )


def trials_table(trials) -> "Any":
    """One row per trial: number, state, value, duration, MLflow run, params, error."""
    import pandas as pd

    rows = []
    for t in trials:
        attrs = dict(t.user_attrs)
        duration = attrs.pop("duration_s", None)
        if duration is None and t.datetime_complete and t.datetime_start:
            duration = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "epochs_reported": len(t.intermediate_values),
            "duration_s": duration,
            "mlflow_run_id": attrs.pop("mlflow_run_id", ""),
            **{f"param:{k}": v for k, v in t.params.items()},
            **attrs,  # e.g. keras-tuner's bracket and epochs, a retry's origin
            "error": attrs.pop("error", ""),
        })
    return pd.DataFrame(rows)


def _plots(study, folder: Path, metric: str) -> dict[str, str]:
    """Optimisation history, intermediate values and parameter importances as PNGs.

    Returns a note for each plot that could not be drawn (e.g. importances need
    at least two complete trials) instead of failing the sweep.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    reported = sum(bool(t.intermediate_values) for t in trials)
    wanted = {  # plot, what it needs, why it is missing
        "optimization_history": (ovm.plot_optimization_history, complete >= 1, "no complete trial yet"),
        "intermediate_values": (ovm.plot_intermediate_values, reported >= 1, "no trial reported per-epoch values"),
        "param_importances": (ovm.plot_param_importances, complete >= 2, "needs at least 2 complete trials"),
    }
    notes = {}
    for name, (plot, possible, why) in wanted.items():
        if not possible:
            notes[name] = why
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study, target_name=metric) if name != "intermediate_values" else plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes[name] = f"not drawn: {exc}"
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        figure.savefig(folder / f"{name}.png", dpi=110)
        plt.close(figure)
    return notes
