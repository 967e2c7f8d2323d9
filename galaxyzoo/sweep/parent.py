"""The study's one parent run: finding or making it, its workers' entries and heartbeats, closing runs.

```python
key = sweep_key("quickstart", storage)
with study_lock(storage, "quickstart"):
    parent_id = join_parent(client, experiment_id, key, "quickstart", storage, tags, me, 60, None)
with worker_on(client, parent_id, me, 60, lock) as leave:
    ...  # trials; leave.update(ran=n) goes into this worker's final entry
```

All workers of one study share one parent MLflow run, found by the tag
`galaxyzoo.sweep_key`. Each worker keeps a `galaxyzoo.worker.<host>-<pid>`
entry on it fresh (`beating`); an entry whose worker is gone, or silent for
two heartbeats, is not live. The last live worker to leave ends the parent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from galaxyzoo.config import experiment
from galaxyzoo.config.sweep_spec import SweepSpec
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.sweep.storage import hide_password
from galaxyzoo.system.locks import remove_with_lock_file, writer_lock
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import mlflow_runs, names

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60


def sweep_key(study_name: str, storage: str) -> str:
    """What the workers of one study find their shared parent run by: 16 hex digits of study and storage."""
    return hashlib.sha1(f"{hide_password(storage)}\n{study_name}".encode()).hexdigest()[:16]


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


def live(entry: dict[str, Any], now: float) -> bool:
    """Whether a worker entry of a parent run belongs to a worker still at work."""
    worker = Worker.of(entry)
    if entry.get("state") != "running" or worker is None:
        return False
    if worker.host == socket.gethostname():
        return not worker.gone()
    return now - float(entry.get("beat", 0)) <= 2 * float(entry.get("every", HEARTBEAT_SECONDS))


def worker_entries(run) -> dict[str, dict[str, Any]]:
    """`{tag: entry}` of the workers recorded on a parent run."""
    entries = {}
    for key, value in run.data.tags.items():
        if key.startswith(names.TAG_WORKER_PREFIX):
            with contextlib.suppress(ValueError):
                entries[key] = json.loads(value)
    return entries


def join_parent(client, experiment_id: str, key: str, study_name: str, storage: str, tags: dict[str, str],
                me: Worker, heartbeat_seconds: int, env_run: str | None) -> str:
    """The parent run id, found or created; call it under the study lock.

    The study's parent is the oldest run tagged with its `key`. One left
    RUNNING by killed workers is taken over (tag `galaxyzoo.recovered`); a
    finished one is reopened. Any other RUNNING run claiming the study (an
    older version's per-worker parent) without a live worker is closed FAILED
    with the reason in `galaxyzoo.closed_why`.
    """
    now = time.time()
    claims = client.search_runs([experiment_id], f"tags.`{names.TAG_SWEEP}` = '{mlflow_runs.quote(study_name)}'")
    parents = sorted((r for r in claims if r.data.tags.get(names.TAG_SWEEP_KEY) == key), key=lambda r: r.info.start_time)
    parent = parents[0] if parents else None
    for run in claims:
        same_study = (run.data.tags.get(names.TAG_SWEEP_KEY) == key
                      or run.data.params.get(names.SWEEP_PARAM_PREFIX + "storage") == hide_password(storage))
        if (run is parent or not same_study or run.info.status != "RUNNING" or run.info.run_id == env_run
                or any(live(e, now) for e in worker_entries(run).values())):
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
        name = {names.TAG_RUN_NAME: f"sweep {study_name}"}
        if env_run:  # under `mlflow run`, the run it made is the parent
            mlflow_runs.set_tags(client, env_run, {**tags, **name})
            client.update_run(env_run, name=name[names.TAG_RUN_NAME])
            return env_run
        from mlflow.tracking.context.registry import resolve_tags

        run = client.create_run(experiment_id, tags=resolve_tags({**tags, **name}), run_name=name[names.TAG_RUN_NAME])
        return run.info.run_id
    parent_id = parent.info.run_id
    lost = _lost(parent, now)
    if parent.info.status == "RUNNING" and not any(live(e, now) for e in worker_entries(parent).values()):
        why = (f"taken over by worker {me.name} at {_stamp(now)}: no live worker "
               f"(stopped: {', '.join(k.removeprefix(names.TAG_WORKER_PREFIX) for k in lost) or 'unknown'})")
        lost[names.TAG_RECOVERED] = why
        logger.warning("parent run %s of study %s: %s", parent_id, study_name, why)
    elif parent.info.status != "RUNNING":
        lost[names.TAG_REOPENED] = f"reopened by worker {me.name} at {_stamp(now)} (was {parent.info.status})"
        client.update_run(parent_id, status="RUNNING")
    mlflow_runs.set_tags(client, parent_id, {**lost, names.TAG_OUTCOME: "running"})
    if env_run:  # `mlflow run`'s own run only points at the study's parent
        mlflow_runs.set_tags(client, env_run, {names.TAG_PARENT_OF_WORKER: parent_id, names.TAG_NOTE:
                                               f"a worker of sweep {study_name}; its trials nest under run {parent_id}"})
    logger.info("joining the parent run %s of study %s", parent_id, study_name)
    return parent_id


def _lost(run, now: float) -> dict[str, str]:
    """Tags marking the dead workers among a run's "running" worker entries as lost."""
    return {tag: json.dumps({**entry, "state": "lost", "noticed": now})
            for tag, entry in worker_entries(run).items() if entry.get("state") == "running" and not live(entry, now)}


def log_setup(client, run_id, spec: SweepSpec, base_cfg, extra, study_name, storage, n_trials, backend):
    """The parent run's params (settings, searched ranges) and artifacts (sweep file, base config), those it
    lacks: a worker killed after creating the parent leaves them to the next. MLflow params never change:
    a worker joining with other settings (a bigger
    --n-trials) keeps the first worker's and says which differ. Call it under the study lock: two
    workers reading the params at once would both log the missing ones, and a SQL store refuses the
    second write."""
    s = spec.study
    settings = {
        "file": str(spec.path),
        "base": str(spec.base),
        "study_name": study_name,
        "storage": hide_password(storage),
        "backend": backend,
        "n_trials": n_trials,
        "metric": s.metric,
        "direction": s.direction,
        "sampler": f"{s.sampler} {json.dumps(s.sampler_params)} seed={s.seed}",
        "pruner": f"{s.pruner} {json.dumps(s.pruner_params)}",
        "overrides": " ".join(_last_per_key(o for o in (*spec.fixed, *extra) if not o.startswith("tracking."))),
    }
    params = {
        **{names.SWEEP_PARAM_PREFIX + k: v for k, v in settings.items()},
        **{names.SPACE_PARAM_PREFIX + p.name: p.describe() for p in spec.params},
    }
    logged = client.get_run(run_id).data.params
    differ = sorted(k for k, v in params.items() if k in logged and logged[k] != str(v))
    if differ:
        logger.warning("parent run %s keeps the first worker's %s (this worker: %s)", run_id, ", ".join(differ),
                       ", ".join(f"{k}={params[k]}" for k in differ))
    mlflow_runs.log_params(client, run_id, {k: v for k, v in params.items() if k not in logged})
    present = {f.path for f in client.list_artifacts(run_id)}
    if {names.SWEEP_FILE_ARTIFACT, names.BASE_CONFIG_ARTIFACT} <= present:
        return
    with scratch() as tmp:
        shutil.copy(spec.path, Path(tmp) / names.SWEEP_FILE_ARTIFACT)
        experiment.dump_yaml(base_cfg, Path(tmp) / names.BASE_CONFIG_ARTIFACT)
        client.log_artifacts(run_id, tmp)


@contextlib.contextmanager
def worker_on(client, parent_id: str, me: Worker, heartbeat_seconds: int, lock) -> Iterator[dict[str, Any]]:
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
        with beating(heartbeat_seconds, beat, f"parent run {parent_id}"):
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
            others = [e for t, e in worker_entries(client.get_run(parent_id)).items()
                      if t != me.tag and live(e, time.time())]
            if not others and outcome == "failed":
                close_failed(client, parent_id, f"its last worker {me.name} failed: {final['error']}")
            elif not others:
                mlflow_runs.finish_run(client, parent_id, outcome)


@contextlib.contextmanager
def beating(seconds: int, beat, what: str) -> Iterator[None]:
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


def close_failed(client, run_id: str, why: str, *, trial: bool = False) -> None:
    """End a run its own worker can no longer end: FAILED, with `why` in the tag `galaxyzoo.closed_why`.

    A trial's checkpoint folder goes too (sweep trials are never resumed, so it would only fill the
    disk), unless a live process holds its lock.
    """
    mlflow_runs.close_failed(client, run_id, why, {names.TAG_TRIAL_STATE: "failed"} if trial else None)
    checkpoint = client.get_run(run_id).data.tags.get(names.TAG_CHECKPOINT_DIR) if trial else None
    if checkpoint and Path(checkpoint).is_dir():  # not one on another machine: its lock is not visible here
        with contextlib.suppress(GalaxyZooError), writer_lock(checkpoint):
            remove_with_lock_file(checkpoint)


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _last_per_key(overrides) -> list[str]:
    """`KEY=VALUE` overrides with only the last of each key, the one that wins, in the order they take effect."""
    last = {}
    for item in overrides:
        key = item.split("=", 1)[0]
        last.pop(key, None)
        last[key] = item
    return list(last.values())
