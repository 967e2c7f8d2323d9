"""Several sweep workers on one study, for real: separate processes on one journal, a killed worker; and
the throwaway PostgreSQL servers of the multi-machine tests (test_sweep_server, test_sweep_faults)."""

import atexit
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]
PG_USER = "postgres"


def _pg_bindir() -> tuple[Path | None, str]:
    """The PostgreSQL server binaries' folder (`pg_config --bindir`), or None and why not."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"pg_config not usable ({exc})"
    bindir = Path(out)
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (bindir / b).is_file()]
    if missing:
        return None, f"{bindir} lacks the server binaries {', '.join(missing)} (install postgresql)"
    return bindir, ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throwaway PostgreSQL server: `pg(database, driver="")` is a URL; `stop()` and `start()` it."""

    def __init__(self, bindir: Path, root: Path, as_pg: list[str]):
        self.bindir, self.root, self.as_pg = bindir, root, as_pg
        self.data, self.port = root / "data", _free_port()

    def __call__(self, database: str, driver: str = "") -> str:
        return f"postgresql{driver}://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def run(self, *args):
        return subprocess.run([*self.as_pg, *map(str, args)], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self.run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-o",
                 f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")


def _as_pg() -> list[str]:
    """initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user."""
    return ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []


def _new_root(prefix: str) -> Path:
    """A fresh /tmp folder the server's user owns (pytest's tmp folders are private to the current user)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER, PG_USER)
    return root


@functools.cache
def _seed_cluster(bindir: Path) -> Path:
    """One stopped cluster per test process, holding `optuna` and an MLflow-migrated `mlflow` database.

    Each `postgres` server starts from a copy of its data folder: initdb and MLflow's schema
    migrations cost ~10 s of CPU, a copy well under one.
    """
    import mlflow

    root = _new_root("galaxyzoo-pg-seed-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    pg = Postgres(bindir, root, _as_pg())
    pg.run(bindir / "initdb", "-D", pg.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
    pg.start()
    try:
        for database in ("optuna", "mlflow"):
            pg.run(bindir / "createdb", "-h", "127.0.0.1", "-p", pg.port, "-U", PG_USER, database)
        mlflow.MlflowClient(pg("mlflow", "+psycopg2")).search_experiments()  # creates and migrates the schema
    finally:
        pg.stop()
    return pg.data


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 with the databases `optuna` (empty) and `mlflow`
    (MLflow's schema, no experiment yet): a `Postgres`, started from a copy of `_seed_cluster`."""
    bindir, why = _pg_bindir()
    if bindir is None:
        print(f"skipping: {why}")
        pytest.skip(f"PostgreSQL server binaries absent: {why}")
    seed = _seed_cluster(bindir)
    root = _new_root("galaxyzoo-pg-")
    pg = Postgres(bindir, root, _as_pg())
    pg.run("cp", "-a", seed, pg.data)
    pg.start()
    try:
        yield pg
    finally:
        subprocess.run([*pg.as_pg, str(bindir / "pg_ctl"), "-D", str(pg.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _worker(sweep_file: Path, cwd: Path, env: dict, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "galaxyzoo", "sweep", "--config", str(sweep_file), *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(worker: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, out[-4000:]
    return out


def _finish_all(workers: list[subprocess.Popen]) -> list[str]:
    """Each worker's output, in order. When one fails, the others are killed, not left running in
    their own sessions after the test (and its database) are gone."""
    try:
        return [_finish(w) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()


@pytest.mark.slow
def test_two_workers_share_one_journal_file(tiny_sweep_file, tmp_path):
    """The no-database option: the study in Optuna's JournalStorage over one file (`--storage journal:///...`)."""
    import mlflow
    import optuna

    journal = tmp_path / "shared" / "study.log"
    tracking_uri = seeded_uri(tmp_path)
    logs = _two_workers(tiny_sweep_file, tmp_path, tracking_uri, f"journal:///{journal}", 2)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    _assert_one_study(mlflow.MlflowClient(tracking_uri), trials, 2, logs, "workers", "shared")
    assert sorted(p.name for p in journal.parent.iterdir()) == ["study.log", "study.log.sweep.lock"]


def _two_workers(sweep_file: Path, cwd: Path, tracking_uri: str, storage: str, n_trials: int) -> list[str]:
    """Run two workers of the study `shared` at once, to `n_trials` finished trials; their logs."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ("--storage", storage, "--study-name", "shared", "--n-trials", str(n_trials), "--epochs", "1",
            "--set", "tracking.experiment_name=workers")
    return _finish_all([_worker(sweep_file, cwd, env, *args) for _ in range(2)])


def _assert_one_study(client, trials, n_trials: int, logs: list[str], experiment: str, study: str):
    """Exactly `n_trials` finished trials of `study`, each number once, all nested under one parent run
    in `experiment` that summarises them and names both workers; returns (all its runs, parent, children).

    Two workers on PostgreSQL (the study, and MLflow behind a tracking server) are test_sweep_server's.
    """
    import optuna

    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == n_trials, [t.state for t in trials]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))

    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    # one sweep, one parent: the second worker found the first one's by its tag
    (parent,) = [r for r in runs if "galaxyzoo.sweep" in r.data.tags]
    assert parent.info.status == "FINISHED" and parent.info.run_name == f"sweep {study}", logs
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == sorted(numbers)
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in children}
    assert {r.info.run_name.removesuffix(" (pruned)") for r in children} == {f"{study} trial {n}" for n in numbers}
    # the summary covers the whole study, under the trials' own metric key
    best = min(t.value for t in trials if t.value is not None)
    assert parent.data.metrics["val_rmse"] == pytest.approx(best)
    for key in ("val_rmse", "trials_complete"):  # each worker summarises; each state of the study is logged once
        steps = [m.step for m in client.get_metric_history(parent.info.run_id, key)]
        assert len(steps) == len(set(steps)) and max(steps) == len(trials), steps
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == n_trials
    workers = [k for k in parent.data.tags if k.startswith("galaxyzoo.worker.")]
    assert len(workers) == 2 and all('"state": "completed"' in parent.data.tags[k] for k in workers)
    return runs, parent, children


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_killed_workers_trial_fails_and_is_retried(tiny_sweep_file, tmp_path):
    """SIGKILL a worker mid-trial: the next worker finds the trial stale (no heartbeat), marks it and
    its MLflow run failed, and retries it with the same params to reach the study's one finished trial."""
    import mlflow
    import optuna

    storage, tracking_uri = f"sqlite:///{tmp_path / 'optuna.db'}", seeded_uri(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ("--n-trials", "1", "--epochs", "15", "--heartbeat", "1")
    doomed = _worker(tiny_sweep_file, tmp_path, env, *args)
    try:
        deadline = time.monotonic() + 300
        while not _training_started(tracking_uri):
            assert doomed.poll() is None, doomed.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first worker never started training"
            time.sleep(0.5)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
    time.sleep(3)  # more than the grace period (twice the heartbeat)
    _finish(_worker(tiny_sweep_file, tmp_path, env, *args))

    trials = optuna.load_study(study_name="tiny_sweep", storage=storage).get_trials()
    states = [t.state.name for t in trials]
    assert states == ["FAIL", "COMPLETE"], states
    retry = trials[1]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    assert retry.params == trials[0].params
    client = mlflow.MlflowClient(tracking_uri)
    dead_run = client.get_run(trials[0].user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["trial_state"] == "failed"
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).data.tags["retry_of_trial"] == "0"


def _training_started(tracking_uri: str) -> bool:
    """Whether a trial's run has logged its first epoch (so its worker is inside fit)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("galaxyzoo")
    if experiment is None:
        return False
    runs = client.search_runs([experiment.experiment_id], "tags.trial_number = '0'")
    return bool(runs) and "loss" in runs[0].data.metrics
