"""Stale state a killed sweep worker leaves, and what the next worker does with it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def _sweep_runs(client) -> list:
    experiment = client.get_experiment_by_name("galaxyzoo")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_worker_waits_for_a_trial_running_elsewhere_then_retries_it(tiny_sweep_file, tmp_path):
    """A trial another machine's worker holds keeps the study short: the worker does not report the
    study done, it waits; once the trial's heartbeat is stale it fails it and runs the retry.

    The same store holds a parent of the study left RUNNING by a dead worker of an older version
    (no worker entries), with a trial run still RUNNING: both are closed FAILED, saying why."""
    import optuna

    from galaxyzoo.tracking import mlflow_runs
    from galaxyzoo.sweep.worker import run_sweep

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    heartbeats = optuna.storages.RDBStorage(storage, heartbeat_interval=1)
    held = optuna.create_study(study_name="elsewhere", storage=heartbeats).ask()
    held.set_user_attr("worker", {"host": "another-machine", "pid": 1, "started": 0.0})
    heartbeats.record_heartbeat(held._trial_id)
    client = _client(tmp_path)
    experiment = mlflow_runs.experiment_id(client, "galaxyzoo")
    stray = client.create_run(experiment, tags={"galaxyzoo.sweep": "elsewhere"}).info.run_id
    client.log_param(stray, "sweep.storage", storage)
    stray_trial = client.create_run(experiment, tags={"mlflow.parentRunId": stray}).info.run_id

    result = run_sweep(tiny_sweep_file, n_trials=1, study_name="elsewhere", storage=storage, heartbeat_seconds=1,
                       overrides=[f"tracking.tracking_uri={seeded_uri(tmp_path)}"], progress=False)

    trials = optuna.load_study(study_name="elsewhere", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert (result.finished, result.running, result.stale, result.trials_run) == (1, 0, 1, 1)
    for run_id, why in ((stray, "left RUNNING with no live worker"), (stray_trial, "left RUNNING by a dead worker")):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and why in run.data.tags["galaxyzoo.closed_why"]
    parent = client.get_run(result.parent_run_id)
    assert result.parent_run_id != stray and parent.info.status == "FINISHED"


def test_a_parent_left_without_its_setup_artifacts_gets_them_from_the_next_worker(tiny_sweep_file, tmp_path):
    """A worker killed just after creating the parent run leaves it without sweep.yaml and base_config.yaml;
    the worker that takes the parent over uploads them, and one that finds them leaves them be."""
    from galaxyzoo.config.sweep_spec import load_sweep
    from galaxyzoo.sweep.parent import log_setup
    from galaxyzoo.tracking import mlflow_runs

    client = _client(tmp_path)
    parent = client.create_run(mlflow_runs.experiment_id(client, "galaxyzoo")).info.run_id
    spec = load_sweep(tiny_sweep_file)
    setup = (spec, spec.base_config([]), [], "s", "sqlite:///optuna.db", 2, "optuna")
    log_setup(client, parent, *setup)
    artifacts = {f.path: f.file_size for f in client.list_artifacts(parent)}
    assert set(artifacts) == {"sweep.yaml", "base_config.yaml"}
    log_setup(client, parent, *setup)
    assert {f.path: f.file_size for f in client.list_artifacts(parent)} == artifacts


def test_a_waiting_worker_looks_again_every_few_seconds_not_every_heartbeat(monkeypatch):
    """Waiting on trials running elsewhere, a worker looks at the study every WAIT_POLL_SECONDS (when
    the heartbeat is longer), so it ends soon after the last of them finishes rather than a heartbeat later."""
    import contextlib
    from types import SimpleNamespace

    from galaxyzoo.sweep import optuna_backend

    # (trial taken, finished, running elsewhere) under the lock: twice short by one running trial, then done
    answers = iter([(None, 1, 1), (None, 1, 1), (None, 2, 0)])
    monkeypatch.setattr(optuna_backend, "take_trial", lambda study, n_trials, me, repair: next(answers))
    sleeps = []
    monkeypatch.setattr(optuna_backend.time, "sleep", sleeps.append)
    study = SimpleNamespace(study_name="s", _storage=SimpleNamespace(get_study_id_from_name=lambda name: 0))
    lock = lambda: contextlib.nullcontext(SimpleNamespace(lost=False))  # noqa: E731
    ran = optuna_backend.optimize(study, None, None, lock, 2, None, heartbeat_seconds=60,
                                  on_stale=SimpleNamespace(count=0))
    assert ran == (0, 0, 0) and sleeps == [optuna_backend.WAIT_POLL_SECONDS] * 2
    assert optuna_backend.WAIT_POLL_SECONDS < 60


@pytest.mark.slow
def test_worker_restarted_at_once_takes_over_a_killed_workers_trial_and_parent(tiny_sweep_file, tmp_path):
    """SIGKILL a worker mid-trial and restart it at once, well inside the heartbeat's grace period:
    it sees the dead process (same machine), fails the trial and closes its run, takes over the
    study's parent run, and finishes the study instead of exiting short of n_trials."""
    import optuna
    import psutil

    tracking_uri = seeded_uri(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # A 60 s grace period: the old code counted the dead trial as running and stopped short.
    args = ("--n-trials", "1", "--epochs", "15", "--heartbeat", "30")
    client = _client(tmp_path)
    client.search_experiments()  # create the store before polling it
    doomed = _worker(tiny_sweep_file, tmp_path, env, *args)
    try:
        while not _training_started(client):
            assert doomed.poll() is None, doomed.communicate()[0][-3000:]
            time.sleep(0.5)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
    assert not [p for p in psutil.process_iter() if _group(p) == doomed.pid], "the killed worker left processes"
    (parent_before,) = [r for r in _sweep_runs(client) if "galaxyzoo.sweep" in r.data.tags]
    assert parent_before.info.status == "RUNNING"

    restarted = _worker(tiny_sweep_file, tmp_path, env, *args)
    out, _ = restarted.communicate(timeout=600)
    assert restarted.returncode == 0, out[-4000:]
    last = out.strip().splitlines()[-1]
    assert "1 finished, 0 running elsewhere, 1 stale (failed and retried); 1 run by this worker" in last, last

    trials = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{tmp_path / 'optuna.db'}").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    runs = _sweep_runs(client)
    parents = [r for r in runs if "galaxyzoo.sweep" in r.data.tags]
    assert [p.info.run_id for p in parents] == [parent_before.info.run_id]  # taken over, not duplicated
    parent = parents[0]
    assert parent.info.status == "FINISHED" and "taken over by worker" in parent.data.tags["galaxyzoo.recovered"]
    dead = client.get_run(trials[0].user_attrs["mlflow_run_id"])
    assert dead.info.status == "FAILED" and "died" in dead.data.tags["galaxyzoo.closed_why"]
    assert dead.data.tags["mlflow.parentRunId"] == parent.info.run_id
    retry = client.get_run(trials[1].user_attrs["mlflow_run_id"])
    assert retry.data.tags["retry_of_trial"] == "0" and retry.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "Retries trial 0" in retry.data.tags["mlflow.note.content"]


def _worker(sweep_file: Path, cwd: Path, env: dict, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "galaxyzoo", "sweep", "--config", str(sweep_file), *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _group(process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _training_started(client) -> bool:
    """Whether trial 0's run has logged its first epoch (so its worker is inside fit)."""
    runs = [r for r in _sweep_runs(client) if r.data.tags.get("trial_number") == "0"]
    return bool(runs) and "loss" in runs[0].data.metrics
