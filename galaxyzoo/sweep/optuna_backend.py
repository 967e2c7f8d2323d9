"""The Optuna backend of `galaxyzoo sweep`: the shared study, its ask/tell loop, and repairing dead trials.

```python
with quiet_optuna_warnings():
    study = open_study(spec, base_cfg, storage_url, "quickstart", extra, 60, on_stale)
    ran, running, stale = optimize(study, spec, runner, lock, n_trials, Worker.me(), 60, on_stale)
```

Workers ask for a trial under the study lock (`take_trial`), then draw its
values and train it outside the lock, telling the study how it ended. A
trial whose worker died (no heartbeat, its process gone, or its entry on the
parent run no longer live) is failed, its MLflow run closed FAILED, and a
retry with the same values queued (`StaleTrials`), at most `MAX_RETRY` times.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import warnings
from typing import Any, Iterator

from galaxyzoo.config.sweep_spec import SweepSpec, optuna_class
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.sweep.parent import Worker, beating, close_failed, live, worker_entries
from galaxyzoo.sweep.storage import JOURNAL, open_storage, services_lost, study_lock
from galaxyzoo.sweep.trial import TrialRunner, spelled, trial_callback
from galaxyzoo.tracking import names

logger = logging.getLogger(__name__)

MAX_RETRY = 2  # retries of a trial whose worker died or whose connection dropped
MAX_CONSECUTIVE_FAILURES = 3  # a worker gives up after this many failed trials in a row
# How often a waiting worker looks at the study again (at most every heartbeat): it ends within
# seconds of the last trial finishing elsewhere, not up to a heartbeat (60 s by default) later.
WAIT_POLL_SECONDS = 5
# A worker names itself on its trial right after asking for it. A trial another worker has seen without a
# name for this long was asked for by a worker killed in between (or by a create retried in a database
# restart): no heartbeat or worker entry will ever call it dead, and every worker would wait for it.
# Timed on the seeing worker's own clock: the trial's start is another machine's local time.
UNNAMED_TRIAL_SECONDS = 600


class OptunaSuggest:
    """`Suggest` over an `optuna.Trial`."""

    def __init__(self, trial):
        self.trial = trial

    def float(self, name, low, high, *, log, step):
        return self.trial.suggest_float(name, low, high, log=log, step=step)

    def int(self, name, low, high, *, log, step):
        return self.trial.suggest_int(name, low, high, log=log, step=step)

    def categorical(self, name, choices):
        return self.trial.suggest_categorical(name, choices)


# ---------------------------------------------------------------- the shared study


def open_study(spec: SweepSpec, base_cfg, storage_url: str, study_name: str, extra: list[str],
               heartbeat_seconds: int, on_stale_trial, retry_seconds: float = 0):
    """Create or load the shared study (checking the storage answers and the search space matches)."""
    import optuna

    if "://" not in storage_url:  # checked first: the lock would take it for a folder
        raise GalaxyZooError(
            f"--storage: expected a database URL (sqlite:///optuna.db, postgresql://...) or {JOURNAL}FILE, "
            f"got {storage_url!r}")
    with study_lock(storage_url, study_name):  # two workers creating the tables or the study at once would collide
        storage = open_storage(storage_url, heartbeat_seconds, on_stale_trial, retry_seconds)
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
def quiet_optuna_warnings() -> Iterator[None]:
    """The heartbeat API is marked experimental, and Optuna expects it only inside optimize():
    this module drives it by hand (ask/tell under a lock), on purpose."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


# ---------------------------------------------------------------- ask, train, tell


def optimize(study, spec: SweepSpec, runner: TrialRunner, lock, n_trials: int, me: Worker,
             heartbeat_seconds: int, on_stale: StaleTrials) -> tuple[int, int, int]:
    """Take trials from the shared study until it holds `n_trials` finished ones.

    Returns `(trials run here, trials still running elsewhere, stale trials this worker failed)`.
    While the study is short of `n_trials` only because other workers' trials
    are running, the worker waits: one of them may die, and its retry is then
    this worker's to run. Optuna's journal keeps no trial heartbeats: there a
    trial is dead when its worker's entry on the parent run is (`parent.live`).
    """
    import optuna

    storage = study._storage
    journal = isinstance(storage, optuna.storages.JournalStorage)
    study_id = storage.get_study_id_from_name(study.study_name)
    ran, failures, waiting = 0, 0, False
    orphans_due = 0.0  # the orphan-run search costs an MLflow query: at most once a heartbeat
    unnamed: dict[int, float] = {}  # running trials no worker has named, and when this worker first saw each

    def repair():
        nonlocal orphans_due
        entries = worker_entries(runner.client.get_run(runner.parent_run_id)) if journal else {}
        _fail_dead_trials(study, on_stale, entries, unnamed)
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
            time.sleep(min(heartbeat_seconds, WAIT_POLL_SECONDS))
            continue
        waiting = False
        ran += 1
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
            storage.get_trial(trial_id))
        heartbeat = contextlib.nullcontext() if journal else beating(
            heartbeat_seconds, functools.partial(storage.record_heartbeat, trial_id), f"trial {trial.number}")
        with heartbeat:
            state = _run_trial(study, trial, spec, runner, retry_of, on_stale.retry)
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


def _run_trial(study, trial, spec: SweepSpec, runner: TrialRunner, retry_of: int | None, retry) -> str:
    """Run one trial and tell the study how it ended: "complete", "pruned" or "failed". A trial the
    database or the tracking server failed (a connection dropped mid-call: `services_lost`) is failed and,
    like a dead worker's, queued again by `retry` (Optuna's retry callback)."""
    import optuna

    tags, note = ({}, "") if retry_of is None else (
        {names.TAG_RETRY_OF: str(retry_of)}, f"Retries trial {retry_of}, which its worker's death or a dropped "
                                             "connection ended.")
    values = spec.sample(OptunaSuggest(trial))
    logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={spelled(v)}" for k, v in values.items()))
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
        if services_lost(exc):  # not the trial's fault: its values get another try
            retry(study, study._storage.get_trial(trial._trial_id))  # a copy: before this attempt's error is set
            trial.set_user_attr("error", f"lost connection: {type(exc).__name__}: {exc}"[:1000])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("trial %d failed: a connection dropped (%s: %s); a retry is queued", trial.number,
                           type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return "failed"
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


# ---------------------------------------------------------------- what dead workers leave


class StaleTrials:
    """What happens to a trial whose worker died: Optuna queues a retry with the same params,
    and its MLflow run (left RUNNING by the dead worker) is closed FAILED with the reason."""

    def __init__(self, client, experiment_id: str, key: str):
        import optuna

        self.client, self.experiment_id, self.key = client, experiment_id, key
        with quiet_optuna_warnings():  # built for every worker, keras-tuner's too: no warning on each start
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


def _fail_dead_trials(study, on_stale: StaleTrials, entries: dict[str, dict[str, Any]],
                      unnamed: dict[int, float]) -> None:
    """Fail (and queue a retry of) every running trial whose worker is dead: silent for longer than
    the grace period (Optuna's check), known gone because it ran on this machine (no need to wait),
    or whose worker's entry among the parent run's `entries` is no longer live; or that this worker has
    seen unnamed for `UNNAMED_TRIAL_SECONDS` (`unnamed`: trial number -> monotonic time first seen)."""
    import optuna

    optuna.storages.fail_stale_trials(study)  # does nothing for a storage without heartbeats
    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = Worker.of(trial.user_attrs.get("worker"))
        if worker is None:
            if time.monotonic() - unnamed.setdefault(trial.number, time.monotonic()) <= UNNAMED_TRIAL_SECONDS:
                continue
        elif not (worker.gone() or ((entry := entries.get(worker.tag)) is not None and not live(entry, now))):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                on_stale(study, storage.get_trial(trial_id))


def _close_orphan_runs(study, runner: TrialRunner, on_stale: StaleTrials) -> None:
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
