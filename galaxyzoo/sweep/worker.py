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
trials, counting every worker's. Each trial is `train.train` on the trial's
config, nested under the parent and named `trial <n>`, with the same logging
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
runs the same file with keras-tuner (`galaxyzoo.tuner`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from galaxyzoo.config import experiment
from galaxyzoo.tracking import mlflow_runs
from galaxyzoo.sweep import keras_tuner_backend
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.config.sweep_spec import PRUNERS, SweepSpec, load_sweep, optuna_class
from galaxyzoo.sweep.optuna_backend import OptunaSuggest
from galaxyzoo.tracking import names

logger = logging.getLogger(__name__)

BACKENDS = ("optuna", "keras-tuner")
OPTUNA_DB = "optuna.db"
JOURNAL = "journal:///"  # + a path, as in sqlite:///: Optuna's JournalStorage over one file, no database
HEARTBEAT_SECONDS = 60
DB_RETRY_SECONDS = 120  # how long a running worker waits out a lost database connection before it stops
MAX_RETRY = 2  # retries of a trial whose worker died
MAX_CONSECUTIVE_FAILURES = 3  # a worker gives up after this many failed trials in a row
STATES = ("complete", "pruned", "failed")
# Tags of the study's parent run (and names.TAG_SWEEP_KEY on its trials too).


@dataclass(frozen=True)
class SweepResult:
    """What one worker's sweep produced (the best values cover the whole study)."""

    study_name: str
    storage: str  # with any password hidden
    parent_run_id: str
    trials_run: int  # trials this worker ran
    finished: int  # complete + pruned trials in the study
    running: int  # trials other workers were still running when this one left
    stale: int  # trials of dead workers that this worker failed (each retried up to MAX_RETRY times)
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
    db_retry_seconds: float = DB_RETRY_SECONDS,
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
        db_retry_seconds: once the study is open, how long every call to its database (and the
            PostgreSQL study lock) keeps retrying a lost connection before the worker stops.
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
    env_run = mlflow_runs.run_id_from_env()
    uri = mlflow_runs.tracking_uri(None if env_run else base_cfg.tracking.tracking_uri)
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
        client.get_run(env_run).info.experiment_id
        if env_run
        else mlflow_runs.experiment_id(client, base_cfg.tracking.experiment_name)
    )
    key = sweep_key(study_name, storage)
    lock = functools.partial(study_lock, storage, study_name, retry_seconds=db_retry_seconds)
    study, on_stale = None, _StaleTrials(client, experiment_id, key)
    if backend == "optuna":  # a bad storage or another search space fails here, before any run exists
        with _quiet_optuna_warnings():
            study = _open_study(spec, base_cfg, storage, study_name, extra, heartbeat_seconds, on_stale,
                                db_retry_seconds)
    _prepare_data(base_cfg, progress)
    tags = {names.TAG_SWEEP: study_name, names.TAG_SWEEP_KEY: key, "sweep_file": str(spec.path), "backend": backend,
            "mlflow.note.content": f"{backend} sweep {study_name} of {spec.path.name}, searching "
            + "; ".join(f"{p.name} {p.describe()}" for p in spec.params)}
    me = Worker.me()
    with lock():
        parent_id, created = join_parent(client, experiment_id, key, study_name, storage, tags, me,
                                         heartbeat_seconds, env_run)
    with _worker_on(client, parent_id, me, heartbeat_seconds, lock) as leave:
        _log_sweep_setup(client, parent_id, spec, base_cfg, extra, study_name, storage, n_trials, backend,
                         artifacts=created)
        runner = TrialRunner(client, spec, extra, parent_id, study_name, key)
        if backend == "optuna":
            with _quiet_optuna_warnings():
                ran, running, stale = _optimize(study, spec, runner, lock, n_trials, me, heartbeat_seconds,
                                                on_stale)
        else:
            (study, ran), running, stale = keras_tuner_backend.search(spec, runner, base_cfg, study_name, n_trials), 0, 0
        leave.update(ran=ran)
        result = _summarise(client, parent_id, spec, study, study_name, storage, ran, running, stale)
    return result


def sweep_key(study_name: str, storage: str) -> str:
    """What the workers of one study find their shared parent run by: 16 hex digits of study and storage."""
    return hashlib.sha1(f"{hide_password(storage)}\n{study_name}".encode()).hexdigest()[:16]


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


def _prepare_data(cfg: experiment.ExperimentConfig, progress: bool) -> None:
    """Build the data once, before any trial, under a lock: workers on one machine share it."""
    from filelock import FileLock

    from galaxyzoo.data import workspace

    workdir = Path(cfg.data.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with FileLock(workdir / ".sweep-data.lock"):
        workspace.build_for(cfg.data, progress=progress)


def _log_sweep_setup(client, run_id, spec: SweepSpec, base_cfg, extra, study_name, storage, n_trials, backend, *,
                     artifacts: bool):
    """The parent run's params (settings, searched ranges) and, when it is new, artifacts (sweep file,
    base config). MLflow params never change: a worker joining with other settings (a bigger
    --n-trials) keeps the first worker's and says which differ."""
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
    logged = client.get_run(run_id).data.params
    differ = sorted(k for k, v in params.items() if k in logged and logged[k] != str(v))
    if differ:
        logger.warning("parent run %s keeps the first worker's %s (this worker: %s)", run_id, ", ".join(differ),
                       ", ".join(f"{k}={params[k]}" for k in differ))
    mlflow_runs.log_params(client, run_id, {k: v for k, v in params.items() if k not in logged})
    if not artifacts:
        return
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(spec.path, Path(tmp) / "sweep.yaml")
        experiment.dump_yaml(base_cfg, Path(tmp) / "base_config.yaml")
        client.log_artifacts(run_id, tmp)


# ---------------------------------------------------------------- the study's one parent run


@dataclass(frozen=True)
class Worker:
    """One sweep process, as its parent-run tag and its trials' `worker` attribute name it."""

    host: str
    pid: int
    started: float  # the process's start time: tells a live pid from a reused one

    @classmethod
    def me(cls) -> "Worker":
        import psutil

        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    @classmethod
    def of(cls, record: Any) -> "Worker | None":
        """The worker a tag value or trial attribute names (None for a record without one)."""
        try:
            return cls(str(record["host"]), int(record["pid"]), float(record["started"]))
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def name(self) -> str:
        return f"{self.host}-{self.pid}"

    @property
    def tag(self) -> str:
        return names.TAG_WORKER_PREFIX + re.sub(r"[^\w.-]", "_", self.name)  # MLflow's tag-key alphabet

    def record(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    def gone(self) -> bool:
        """Whether this worker's process is certainly dead: it ran on this machine and is not running."""
        import psutil

        if self.host != socket.gethostname():
            return False  # another machine: only its heartbeat can tell
        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) > 1
        except psutil.NoSuchProcess:
            return True


def _live(entry: dict[str, Any], now: float) -> bool:
    """Whether a worker entry of a parent run belongs to a worker still at work."""
    worker = Worker.of(entry)
    if entry.get("state") != "running" or worker is None:
        return False
    if worker.host == socket.gethostname():
        return not worker.gone()
    return now - float(entry.get("beat", 0)) <= 2 * float(entry.get("every", HEARTBEAT_SECONDS))


def _workers(run) -> dict[str, dict[str, Any]]:
    """`{tag: entry}` of the workers recorded on a parent run."""
    entries = {}
    for key, value in run.data.tags.items():
        if key.startswith(names.TAG_WORKER_PREFIX):
            with contextlib.suppress(ValueError):
                entries[key] = json.loads(value)
    return entries


def join_parent(client, experiment_id: str, key: str, study_name: str, storage: str, tags: dict[str, str],
                me: Worker, heartbeat_seconds: int, env_run: str | None) -> tuple[str, bool]:
    """`(parent run id, whether this worker created it)`; call it under the study lock.

    The study's parent is the oldest run tagged with its `key`. One left
    RUNNING by killed workers is taken over (tag `galaxyzoo.recovered`); a
    finished one is reopened. Any other RUNNING run claiming the study (an
    older version's per-worker parent) without a live worker is closed FAILED
    with the reason in `galaxyzoo.closed_why`.
    """
    now = time.time()
    claims = client.search_runs([experiment_id], f"tags.`{names.TAG_SWEEP}` = '{mlflow_runs._quote(study_name)}'")
    parents = sorted((r for r in claims if r.data.tags.get(names.TAG_SWEEP_KEY) == key), key=lambda r: r.info.start_time)
    parent = parents[0] if parents else None
    for run in claims:
        same_study = run.data.tags.get(names.TAG_SWEEP_KEY) == key or run.data.params.get("sweep.storage") == hide_password(storage)
        if (run is parent or not same_study or run.info.status != "RUNNING" or run.info.run_id == env_run
                or any(_live(e, now) for e in _workers(run).values())):
            continue
        why = (f"closed by worker {me.name} at {_stamp(now)}: a parent of study {study_name} left RUNNING with "
               f"no live worker; the study's trials nest under run {parent.info.run_id if parent else 'a new run'}")
        mlflow_runs.set_tags(client, run.info.run_id, _lost(run, now))
        close_failed(client, run.info.run_id, why)
        logger.warning("run %s: %s", run.info.run_id, why)
        for child in client.search_runs([experiment_id], f"tags.`{names.PARENT_TAG}` = '{run.info.run_id}' "
                                        "and attributes.status = 'RUNNING'"):
            close_failed(client, child.info.run_id, f"its parent run {run.info.run_id} was left RUNNING by a "
                                                    "dead worker", trial=True)
    if parent is None:
        name = {"mlflow.runName": f"sweep {study_name}"}
        if env_run:  # under `mlflow run`, the run it made is the parent
            mlflow_runs.set_tags(client, env_run, {**tags, **name})
            client.update_run(env_run, name=name["mlflow.runName"])
            return env_run, True
        from mlflow.tracking.context.registry import resolve_tags

        run = client.create_run(experiment_id, tags=resolve_tags({**tags, **name}), run_name=name["mlflow.runName"])
        return run.info.run_id, True
    parent_id = parent.info.run_id
    lost = _lost(parent, now)
    if parent.info.status == "RUNNING" and not any(_live(e, now) for e in _workers(parent).values()):
        why = (f"taken over by worker {me.name} at {_stamp(now)}: no live worker "
               f"(stopped: {', '.join(k.removeprefix(names.TAG_WORKER_PREFIX) for k in lost) or 'unknown'})")
        lost[names.TAG_RECOVERED] = why
        logger.warning("parent run %s of study %s: %s", parent_id, study_name, why)
    elif parent.info.status != "RUNNING":
        lost[names.TAG_REOPENED] = f"reopened by worker {me.name} at {_stamp(now)} (was {parent.info.status})"
        client.update_run(parent_id, status="RUNNING")
    mlflow_runs.set_tags(client, parent_id, {**lost, names.TAG_OUTCOME: "running"})
    if env_run:  # `mlflow run`'s own run only points at the study's parent
        mlflow_runs.set_tags(client, env_run, {names.TAG_PARENT_OF_WORKER: parent_id, "mlflow.note.content":
                                            f"a worker of sweep {study_name}; its trials nest under run {parent_id}"})
    logger.info("joining the parent run %s of study %s", parent_id, study_name)
    return parent_id, False


def _lost(run, now: float) -> dict[str, str]:
    """Tags marking the dead workers among a run's "running" worker entries as lost."""
    return {tag: json.dumps({**entry, "state": "lost", "noticed": now})
            for tag, entry in _workers(run).items() if entry.get("state") == "running" and not _live(entry, now)}


@contextlib.contextmanager
def _worker_on(client, parent_id: str, me: Worker, heartbeat_seconds: int, lock) -> Iterator[dict[str, Any]]:
    """Keep this worker's entry on the parent fresh while the block runs; then leave the parent.

    Yields a dict whose items (e.g. `ran`) go into the final entry. Leaving
    records how this worker ended; the last live worker also ends the parent
    run with that outcome (completed, failed, interrupted).
    """
    entry: dict[str, Any] = {**me.record(), "state": "running", "every": heartbeat_seconds}
    final: dict[str, Any] = {}

    def beat():
        mlflow_runs.set_tags(client, parent_id, {me.tag: json.dumps({**entry, "beat": time.time()})})

    outcome = "completed"
    try:
        with _beating(heartbeat_seconds, beat, f"parent run {parent_id}"):
            yield final
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    except BaseException as exc:
        outcome = "failed"
        final["error"] = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        with lock():
            mlflow_runs.set_tags(client, parent_id, {me.tag: json.dumps({**entry, **final, "state": outcome,
                                                                      "beat": time.time()})})
            others = [e for t, e in _workers(client.get_run(parent_id)).items()
                      if t != me.tag and _live(e, time.time())]
            if not others and outcome == "failed":
                close_failed(client, parent_id, f"its last worker {me.name} failed: {final['error']}")
            elif not others:
                mlflow_runs.finish_run(client, parent_id, outcome)


def close_failed(client, run_id: str, why: str, *, trial: bool = False) -> None:
    """End a run its own worker can no longer end: FAILED, with `why` in the tag `galaxyzoo.closed_why`."""
    tags = {names.TAG_CLOSED_WHY: why, **({names.TAG_TRIAL_STATE: "failed"} if trial else {})}
    mlflow_runs.set_tags(client, run_id, tags)
    mlflow_runs.finish_run(client, run_id, "failed")


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


# ---------------------------------------------------------------- one trial, any backend


class TrialRunner:
    """Trains one trial as a nested run and records its state; shared by both backends."""

    def __init__(self, client, spec: SweepSpec, extra: list[str], parent_run_id: str, study_name: str, key: str):
        self.client, self.spec, self.extra = client, spec, extra
        self.parent_run_id, self.study_name, self.key = parent_run_id, study_name, key
        self.experiment_id = client.get_run(parent_run_id).info.experiment_id

    def __call__(self, number: int, values: dict[str, Any], *, extra=(), callbacks=(), pruned=(),
                 tags=None, note: str = "") -> tuple[str, float]:
        """Train trial `number`; return `(run_id, final value of the study metric)`.

        The run is named `trial <number>`; its description names the sweep, the
        trial and its values (and `note`, e.g. what it retries). Raises what
        `train` raises (a `pruned` exception after the run ended as pruned); a
        config the trial's values make invalid is a GalaxyZooError.
        """
        from galaxyzoo.training.run import train

        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        description = f"Sweep {self.study_name}, trial {number}: {shown}.{' ' + note if note else ''}"
        cfg = self.spec.trial_config(values, [*self.extra, *extra, f"description={json.dumps(description)}"])
        trial_tags = {
            names.TAG_TRIAL_NUMBER: str(number),
            names.TAG_TRIAL_STATE: "running",
            names.TAG_TRIAL_VALUES: shown,
            names.TAG_SWEEP_KEY: self.key,
            "study_name": self.study_name,
            **(tags or {}),
        }
        try:
            result = train(
                cfg,
                experiment_file=str(self.spec.base),
                parent_run_id=self.parent_run_id,
                run_name=f"trial {number}",
                extra_tags=trial_tags,
                extra_callbacks=list(callbacks),
                pruned_exceptions=tuple(pruned),
                verbose=2,
                progress=False,
            )
        except BaseException as exc:
            if run_id := self.run_of(number):
                if isinstance(exc, tuple(pruned)):
                    self._mark_pruned(run_id, number, description, exc)
                else:
                    self.client.set_tag(run_id, names.TAG_TRIAL_STATE, "failed")
            raise
        self.client.set_tag(result.run_id, names.TAG_TRIAL_STATE, "complete")
        series = result.history.get(self.spec.study.metric, [])
        if not series:
            raise GalaxyZooError(f"trial {number} logged no {self.spec.study.metric}")
        return result.run_id, series[-1][1]

    def _mark_pruned(self, run_id: str, number: int, description: str, exc: BaseException) -> None:
        """A pruned trial did what the study asked: FINISHED (not KILLED, which the MLflow UI shows as
        a failure), named `trial <n> (pruned)`, its description saying after which epoch."""
        mlflow_runs.set_tags(self.client, run_id, {names.TAG_TRIAL_STATE: "pruned",
                                                "mlflow.note.content": f"{description} {_sentence(str(exc))}."})
        self.client.update_run(run_id, status="FINISHED", name=f"trial {number} (pruned)")

    def run_of(self, number: int) -> str | None:
        """The MLflow run of trial `number` under this parent, if training got as far as creating it."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{names.PARENT_TAG}` = '{self.parent_run_id}' "
            f"and tags.{names.TAG_TRIAL_NUMBER} = '{number}'",
        )
        return runs[0].info.run_id if runs else None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _short(value: Any) -> str:
    """A searched value as the runs table shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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


def _open_study(spec: SweepSpec, base_cfg, storage_url: str, study_name: str, extra: list[str],
                heartbeat_seconds: int, on_stale_trial, retry_seconds: float = 0):
    """Create or load the shared study (checking the storage answers and the search space matches)."""
    import optuna

    if "://" not in storage_url:  # checked first: the lock would take it for a folder
        raise GalaxyZooError(
            f"--storage: expected a database URL (sqlite:///optuna.db, postgresql://...) or {JOURNAL}FILE, "
            f"got {storage_url!r}")
    with study_lock(storage_url, study_name):  # two workers creating the tables or the study at once would collide
        storage = _storage(storage_url, heartbeat_seconds, on_stale_trial, retry_seconds)
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            pruner=_pruner(spec, base_cfg.train.epochs),
            direction=spec.study.direction,
            load_if_exists=True,
        )
        _claim_study(study, spec, extra)
        study.sampler = _sampler(spec, already=len(study.get_trials(deepcopy=False)))
    return study


def _optimize(study, spec: SweepSpec, runner: TrialRunner, lock, n_trials: int, me: Worker,
              heartbeat_seconds: int, on_stale: _StaleTrials) -> tuple[int, int, int]:
    """Take trials from the shared study until it holds `n_trials` finished ones.

    Returns `(trials run here, trials still running elsewhere, stale trials this worker failed)`.
    While the study is short of `n_trials` only because other workers' trials
    are running, the worker waits: one of them may die, and its retry is then
    this worker's to run. Optuna's journal keeps no trial heartbeats: there a
    trial is dead when its worker's entry on the parent run is (`_live`).
    """
    import optuna

    storage = study._storage
    journal = isinstance(storage, optuna.storages.JournalStorage)
    study_id = storage.get_study_id_from_name(study.study_name)
    ran, failures, waiting = 0, 0, False
    orphans_due = 0.0  # the orphan-run search costs an MLflow query: at most once a heartbeat

    def repair():
        nonlocal orphans_due
        entries = _workers(runner.client.get_run(runner.parent_run_id)) if journal else {}
        _fail_dead_trials(study, on_stale, entries)
        if time.monotonic() >= orphans_due:
            _close_orphan_runs(study, runner, on_stale)
            orphans_due = time.monotonic() + heartbeat_seconds

    while True:
        with lock() as held:
            trial, finished, running = take_trial(study, n_trials, me, repair)
        if trial is not None and held.lost:
            with lock():
                trial = _keep_if_room(study, trial, n_trials)
            if trial is None:
                continue
        if finished >= n_trials:
            break
        if trial is None:
            if not waiting:
                logger.info("study %s: %d finished, %d running elsewhere; waiting for them (or for a retry)",
                            study.study_name, finished, running)
            waiting = True
            time.sleep(heartbeat_seconds)
            continue
        waiting = False
        ran += 1
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
            storage.get_trial(trial_id))
        beating = contextlib.nullcontext() if journal else _beating(
            heartbeat_seconds, functools.partial(storage.record_heartbeat, trial_id), f"trial {trial.number}")
        with beating:
            state = _run_optuna_trial(study, trial, spec, runner, retry_of)
        failures = failures + 1 if state == "failed" else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise GalaxyZooError(
                f"{failures} trials failed in a row (last: {trial.user_attrs.get('error', 'see the log')}); "
                "stopping this worker"
            )
    return ran, running, on_stale.count


def take_trial(study, n_trials: int, me: Worker, repair) -> tuple[Any, int, int]:
    """`(trial or None, finished, running)`: what a worker does under the study lock.

    `repair()` first fails what dead workers left; then a new trial is asked
    for (a queued retry first, else one from the sampler) unless the finished
    and running trials already make `n_trials`. The trial's values are drawn
    later, outside the lock (TPE samples each parameter at its `suggest_*`).
    """
    import optuna

    repair()
    states = optuna.trial.TrialState
    counted = [t.state for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED,
                                                                          states.RUNNING))]
    running = counted.count(states.RUNNING)
    finished = len(counted) - running
    if finished + running >= n_trials:
        return None, finished, running
    trial = study.ask()
    trial.set_user_attr("worker", me.record())
    return trial, finished, running


def _keep_if_room(study, trial, n_trials: int):
    """Recount, under a fresh lock, after the lock was lost while `trial` was asked for (another
    worker may have taken a trial meanwhile): keep `trial` if the study still needs it, else
    fail it unrun (failed trials do not count), so the study never holds more than `n_trials`
    finished and running trials. Returns `trial`, or None when it was failed."""
    import optuna

    states = optuna.trial.TrialState
    others = [t for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.RUNNING))
              if t.number != trial.number]
    if len(others) < n_trials:
        return trial
    trial.set_user_attr("error", "not run: the study lock was lost in a database restart while it was "
                                 "asked for, and other workers' trials fill the study")
    study.tell(trial, state=states.FAIL)
    logger.warning("trial %d: not run, the study is full (its lock was lost in a database restart)", trial.number)
    return None


def _fail_dead_trials(study, on_stale: _StaleTrials, entries: dict[str, dict[str, Any]]) -> None:
    """Fail (and queue a retry of) every running trial whose worker is dead: silent for longer than
    the grace period (Optuna's check), known gone because it ran on this machine (no need to wait),
    or whose worker's entry among the parent run's `entries` is no longer live."""
    import optuna

    optuna.storages.fail_stale_trials(study)  # does nothing for a storage without heartbeats
    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = Worker.of(trial.user_attrs.get("worker"))
        if worker is None:
            continue
        entry = entries.get(worker.tag)
        if not (worker.gone() or (entry is not None and not _live(entry, now))):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                on_stale(study, storage.get_trial(trial_id))


def _close_orphan_runs(study, runner: TrialRunner, on_stale: _StaleTrials) -> None:
    """Close FAILED every RUNNING trial run of the study whose Optuna trial is not running any more
    (its worker died before it could end the run)."""
    import optuna

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    running = runner.client.search_runs(
        [runner.experiment_id], f"tags.`{names.TAG_SWEEP_KEY}` = '{runner.key}' and attributes.status = 'RUNNING'")
    for run in running:
        if names.TAG_TRIAL_NUMBER not in run.data.tags:
            continue  # the parent run
        trial = trials.get(int(run.data.tags[names.TAG_TRIAL_NUMBER]))
        if trial is None or trial.state != optuna.trial.TrialState.RUNNING:
            state = "missing" if trial is None else trial.state.name
            on_stale.close(run.info.run_id, f"its Optuna trial is {state} but the run was left RUNNING")


def _run_optuna_trial(study, trial, spec: SweepSpec, runner: TrialRunner, retry_of: int | None) -> str:
    """Run one trial and tell the study how it ended: "complete", "pruned" or "failed"."""
    import optuna

    tags, note = ({}, "") if retry_of is None else ({"retry_of_trial": str(retry_of)},
                                                      f"Retries trial {retry_of}, whose worker died.")
    values = spec.sample(OptunaSuggest(trial))
    logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in values.items()))
    try:
        run_id, value = runner(
            trial.number, values, callbacks=[trial_callback(trial, spec.study.metric)],
            pruned=(optuna.TrialPruned,), tags=tags, note=note,
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
        runner.client.set_tag(run_id, names.TAG_TRIAL_STATE, "failed")
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


class _StaleTrials:
    """What happens to a trial whose worker died: Optuna queues a retry with the same params,
    and its MLflow run (left RUNNING by the dead worker) is closed FAILED with the reason."""

    def __init__(self, client, experiment_id: str, key: str):
        import optuna

        self.client, self.experiment_id, self.key = client, experiment_id, key
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        self.count = 0  # stale trials this worker failed

    def __call__(self, study, trial) -> None:
        self.retry(study, trial)
        self.count += 1
        why = f"the worker of trial {trial.number} died (no heartbeat, or its process is gone); a retry is queued"
        run_id = trial.user_attrs.get("mlflow_run_id") or self._run_of(trial.number)
        if run_id:
            self.close(run_id, why)
        logger.warning("trial %d: %s", trial.number, why)

    def close(self, run_id: str, why: str) -> None:
        close_failed(self.client, run_id, why, trial=True)

    def _run_of(self, number: int) -> str | None:
        """The trial's run when the worker died before recording it on the trial."""
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{names.TAG_SWEEP_KEY}` = '{self.key}' and tags.{names.TAG_TRIAL_NUMBER} = '{number}' "
            "and attributes.status = 'RUNNING'")
        return runs[0].info.run_id if runs else None


def journal_path(url: str) -> Path:
    """The log file of a `journal:///PATH` storage (relative to the current folder unless PATH starts
    with `/`, as in `sqlite:///`), checked: a file path whose folder exists or can be made."""
    path = Path(url.removeprefix(JOURNAL))
    if not path.name or path.is_dir():
        raise GalaxyZooError(f"--storage {url}: expected {JOURNAL}PATH to a log file, e.g. "
                             f"{JOURNAL}optuna-journal.log; {str(path) or 'the path'} is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GalaxyZooError(f"--storage {url}: cannot make the folder {path.parent}: {exc.strerror}") from None
    return path.resolve()


def _storage(url: str, heartbeat_seconds: int, on_stale_trial, retry_seconds: float = 0):
    """The study's storage; a database one retries a lost connection for `retry_seconds` (`_patiently`)."""
    import optuna

    if url.startswith(JOURNAL):  # no heartbeats in Optuna's journal: _optimize judges its workers itself
        path = journal_path(url)
        try:
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        except OSError as exc:
            raise GalaxyZooError(_storage_error(url, f"cannot open the journal {path}", exc)) from None
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return _patient_rdb_storage()(
            url,
            retry_seconds=retry_seconds,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
    except Exception as exc:  # SQLAlchemy's errors name the driver problem; keep it to one line
        raise GalaxyZooError(_storage_error(url, "cannot open the Optuna storage", exc)) from None


def _connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it: Optuna wraps SQLAlchemy's errors) is a lost or refused
    database connection, which a retry may cure, rather than a bad query or bad data."""
    from sqlalchemy import exc as db

    while exc is not None:
        if isinstance(exc, (db.OperationalError, db.InterfaceError)) or (
                isinstance(exc, db.DBAPIError) and exc.connection_invalidated):
            return True
        exc = exc.__cause__
    return False


def _patiently(call, url: str, what: str, retry_seconds: float):
    """`call()`, tried again after a lost database connection (a restart, a failover) with waits of
    1, 2, 4 ... at most 15 seconds, for `retry_seconds` in all; then one line naming the storage."""
    deadline, delay = time.monotonic() + retry_seconds, 1.0
    while True:
        try:
            return call()
        except Exception as exc:
            left = deadline - time.monotonic()
            if retry_seconds <= 0 or not _connection_lost(exc):  # 0: at start-up a dead database is the user's to fix
                raise
            if left <= 0:
                raise GalaxyZooError(_storage_error(
                    url, f"{what}: the database did not come back within {retry_seconds:g} s "
                    "(sweep --db-retry); rerun the worker once it answers", exc)) from None
            logger.warning("%s; retrying for up to %.0f s more", _storage_error(url, what, exc), left)
            time.sleep(min(delay, left))
            delay = min(2 * delay, 15.0)


# RDBStorage's calls that each run in a transaction of their own, so a retry redoes a whole one
# (Optuna's cache calls the underscored ones).
_STORAGE_CALLS = (
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "set_study_user_attr", "set_study_system_attr", "get_trial_user_attrs",
    "get_trial_system_attrs", "_create_new_trial", "_set_trial_param", "get_trial_param",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "_get_trials", "_get_best_trial_id",
    "record_heartbeat", "_get_stale_trial_ids",
)


@functools.cache
def _patient_rdb_storage():
    """Optuna's RDBStorage whose every call outlasts a short database outage (`_patiently`);
    made on first use, so importing this module does not import Optuna."""
    import optuna

    rdb = optuna.storages.RDBStorage

    def patient(name):
        method = getattr(rdb, name)

        @functools.wraps(method)
        def call(self, *args, **kwargs):
            return _patiently(functools.partial(method, self, *args, **kwargs), self.url, name,
                              self.retry_seconds)
        return call

    class PatientRDBStorage(rdb):
        def __init__(self, url: str, *, retry_seconds: float, **kwargs):
            self.retry_seconds = retry_seconds
            super().__init__(url, **kwargs)

        def set_trial_state_values(self, trial_id, state, values=None):
            """A tell whose commit went through but whose answer was lost finds its trial finished
            when retried: that is success, not an error."""
            tries = 0

            def tell():
                nonlocal tries
                tries += 1
                try:
                    return rdb.set_trial_state_values(self, trial_id, state, values)
                except optuna.exceptions.UpdateFinishedTrialError:
                    if tries > 1 and rdb.get_trial(self, trial_id).state == state:
                        return True
                    raise
            return _patiently(tell, self.url, "set_trial_state_values", self.retry_seconds)

    for name in _STORAGE_CALLS:
        setattr(PatientRDBStorage, name, patient(name))
    return PatientRDBStorage


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


@dataclass
class Held:
    """What `study_lock` yields: `lost` turns true when the lock's database session died while the
    block ran (a PostgreSQL restart ends it, and with it the advisory lock)."""

    lost: bool = False


@contextlib.contextmanager
def study_lock(storage: str, study_name: str, *, retry_seconds: float = 0) -> Iterator[Held]:
    """A lock all workers of one study share: a PostgreSQL advisory lock, or a file lock for SQLite,
    the journal (both: one machine, or a file system whose locks hold across machines) and
    keras-tuner's project folder.

    Taking the PostgreSQL lock retries a lost connection for `retry_seconds` (`_patiently`).
    Other databases get no lock (two workers may then overshoot n_trials by one).
    """
    from filelock import FileLock

    held = Held()
    if storage.startswith("sqlite:///"):
        db = Path(storage.removeprefix("sqlite:///")).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(db.with_name(db.name + ".lock")):
            yield held
    elif storage.startswith(JOURNAL):  # not <log>.lock: Optuna's journal takes that name for its own lock
        log = journal_path(storage)
        with FileLock(log.with_name(log.name + ".sweep.lock")):
            yield held
    elif "://" not in storage:  # keras-tuner's project folder
        Path(storage).mkdir(parents=True, exist_ok=True)
        with FileLock(Path(storage) / ".sweep.lock"):
            yield held
    elif storage.startswith("postgresql"):
        import sqlalchemy

        key = zlib.crc32(f"galaxyzoo-sweep:{study_name}".encode())
        engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)

        def lock():
            connection = engine.connect()
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            except BaseException:
                connection.close()
                raise
            return connection

        try:
            try:
                connection = _patiently(lock, storage, "cannot connect", retry_seconds)
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise GalaxyZooError(_storage_error(storage, "cannot connect", exc)) from None
            try:
                yield held
            finally:
                try:  # false, or an error, when the session (and so the lock) ended while the block ran
                    held.lost = not connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                                       {"k": key}).scalar()
                except sqlalchemy.exc.SQLAlchemyError:
                    held.lost = True
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    connection.close()
        finally:
            engine.dispose()
    else:
        yield held


def _storage_error(url: str, what: str, exc: Exception) -> str:
    """One line: the storage (password hidden), what failed, and the driver's first line of why."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"--storage {hide_password(url)}: {what}: {reason[0] if reason else type(exc).__name__}"


@contextlib.contextmanager
def _beating(seconds: int, beat, what: str) -> Iterator[None]:
    """Call `beat()` now and every `seconds` while the block runs (a trial's or a worker's heartbeat)."""
    stop = threading.Event()

    def loop():
        while True:
            try:
                beat()
            except Exception as exc:  # a database hiccup must not kill the work; the next beat retries
                logger.warning("heartbeat of %s failed: %s", what, exc)
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=loop, name=f"heartbeat {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------- the summary on the parent run


def _summarise(client, parent_id: str, spec: SweepSpec, study, study_name: str, storage: str, ran: int,
               running: int, stale: int) -> SweepResult:
    """Trials table, plots, best value and params on the parent run (the whole study's, whichever
    worker writes them)."""
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
    if best is not None:  # under the trials' own key too, so the parent's row fills the same column
        summary.update({metric: best.value, f"best_{metric}": best.value})
    mlflow_runs.log_metrics(client, parent_id, summary)
    tags = {f"plot_note.{k}": v for k, v in notes.items()}
    if best is not None:
        tags.update({"best_trial_number": str(best.number), "best_run_id": best.user_attrs.get("mlflow_run_id", "")})
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()})
    mlflow_runs.set_tags(client, parent_id, tags)
    finished = count["complete"] + count["pruned"]
    if best is None:
        logger.warning("study %s has no complete trial yet", study_name)
    return SweepResult(
        study_name=study_name,
        storage=hide_password(storage),
        parent_run_id=parent_id,
        trials_run=ran,
        finished=finished,
        running=running,
        stale=stale,
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
