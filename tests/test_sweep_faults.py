"""Sweep workers outlast their services' restarts: the study's PostgreSQL and the MLflow tracking server."""

import os
import re
import threading

import pytest
from test_sweep_server import tracking_server  # noqa: F401 (a fixture)
from test_sweep_workers import _worker, postgres  # noqa: F401 (postgres is a fixture)

from galaxyzoo.errors import GalaxyZooError


class Output:
    """A running process's output, read line by line in a thread, to wait for a line in it."""

    def __init__(self, process):
        self.process, self.lines, self.changed = process, [], threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        self.process.wait()
        with self.changed:
            self.changed.notify_all()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, since: int = 0) -> None:
        """Until a line after the first `since` lines holds `text`; fails (with the output) if the
        process ends first."""
        def seen() -> bool:
            return any(text in line for line in self.lines[since:])

        with self.changed:
            self.changed.wait_for(lambda: seen() or self.process.poll() is not None, timeout=900)
            assert seen(), f"never saw {text!r}:\n{self.text()[-4000:]}"

    def finish(self) -> str:
        self.thread.join(900)
        assert self.process.returncode == 0, self.text()[-4000:]
        with pytest.raises(ProcessLookupError):  # nothing of the worker's process group is left
            os.killpg(self.process.pid, 0)
        return self.text()


def _start(sweep_file, tmp_path, server, postgres, study: str, n_trials: int) -> Output:  # noqa: F811
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return Output(_worker(sweep_file, tmp_path, env, "--storage", postgres("optuna"), "--study-name", study,
                          "--n-trials", str(n_trials), "--epochs", "1", "--pruner", "none",
                          "--set", "tracking.experiment_name=faults"))


def _assert_whole(server, postgres, study: str, n_trials: int, log: str) -> None:  # noqa: F811
    """Exactly `n_trials` trials, all complete, numbered 0..n-1, each with one FINISHED run under the parent."""
    import mlflow
    import optuna

    trials = optuna.load_study(study_name=study, storage=postgres("optuna", "+psycopg2")).get_trials()
    assert [(t.number, t.state.name) for t in trials] == [(n, "COMPLETE") for n in range(n_trials)], log[-4000:]
    client = mlflow.MlflowClient(server.uri)
    runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    (parent,) = [r for r in runs if "galaxyzoo.sweep" in r.data.tags]
    assert parent.info.status == "FINISHED", log[-4000:]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    assert sorted((int(r.data.tags["trial_number"]), r.info.status) for r in children) == [
        (n, "FINISHED") for n in range(n_trials)]
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in children}


@pytest.mark.slow
def test_worker_outlasts_a_postgresql_and_a_tracking_server_restart(postgres, tracking_server, tiny_sweep_file,  # noqa: F811
                                                                    tmp_path):
    """PostgreSQL (the study and the tracking server's store) goes down after the first trial and stays
    down until the worker says it is waiting for it; after the second trial the tracking server is
    killed and comes back on the same port and store once the worker is retrying (MLflow's HTTP
    retries). The worker goes on to the end, and no trial or run is lost or doubled."""
    worker = _start(tiny_sweep_file, tmp_path, tracking_server, postgres, "restarts", 3)
    worker.wait_for("trial 0: val_rmse=")  # told: the next take needs the database
    postgres.stop()
    try:
        worker.wait_for("retrying for up to")
    finally:
        postgres.start()
    worker.wait_for("trial 1: val_rmse=")
    told = len(worker.lines)
    tracking_server.stop()
    try:
        worker.wait_for("Retrying (", since=told)  # urllib3's warning: a request to the server is being retried
    finally:
        tracking_server.start()
    log = worker.finish()
    # The warning names the storage and the step that was retried: the lock's connection, or whichever
    # storage call was in flight when the database went (timing decides which).
    waits = [line for line in log.splitlines() if "retrying for up to" in line]
    assert waits and all(re.search(r"--storage postgresql\S*://\S+: (cannot connect|[a-z_]+): ", w) for w in waits), waits
    _assert_whole(tracking_server, postgres, "restarts", 3, log)


def test_a_lost_connection_is_retried_then_reported_on_one_line(monkeypatch, caplog):
    """Lost connections are retried with growing waits until the budget is spent, then one line;
    other database errors are not retried."""
    import sqlalchemy

    from galaxyzoo.sweep import storage

    clock = [0.0]
    waits = []
    monkeypatch.setattr(storage.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(storage.time, "sleep", lambda s: (waits.append(s), clock.__setitem__(0, clock[0] + s)))
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection\nmore"))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise lost
        return "answer"

    url = "postgresql://sweeper:secret@db/optuna"
    assert storage.patiently(flaky, url, "tell", 60) == "answer"
    assert waits == [1, 2, 4]

    def dead():
        raise lost

    waits.clear()
    with pytest.raises(GalaxyZooError) as error:
        storage.patiently(dead, url, "tell", 40)
    assert waits == [1, 2, 4, 8, 15, 10]  # the last wait is what the budget has left
    message = str(error.value)
    assert "\n" not in message and "secret" not in message
    assert "--storage postgresql://sweeper:***@db/optuna: tell: the database did not come back within 40 s" in message
    assert "server closed the connection" in message

    # A connection that died inside a transaction, as Optuna reports it on the commit: retried too.
    import optuna

    pending = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    pending.__cause__ = sqlalchemy.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    calls.clear()

    def died_in_a_transaction():
        calls.append(1)
        if len(calls) < 2:
            raise pending
        return "answer"

    waits.clear()
    with caplog.at_level("WARNING", logger="galaxyzoo.sweep.storage"):
        assert storage.patiently(died_in_a_transaction, url, "_get_trials", 60) == "answer" and waits == [1]
    # the warning gives SQLAlchemy's reason, not Optuna's generic wrapper text
    assert "_get_trials: Can't reconnect until invalid transaction is rolled back" in caplog.text

    def bad_query():
        raise sqlalchemy.exc.ProgrammingError("SELECT nope", {}, Exception("syntax error"))

    waits.clear()
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        storage.patiently(bad_query, url, "tell", 60)
    with pytest.raises(sqlalchemy.exc.OperationalError):  # 0 seconds: no retry (start-up reports at once)
        storage.patiently(dead, url, "tell", 0)
    assert waits == []


def test_storage_calls_retry_through_optuna(tmp_path, monkeypatch):
    """The study's storage retries a call whose connection was lost (Optuna wraps the error), and a
    tell whose commit went through before the answer was lost counts as told."""
    import optuna
    import sqlalchemy

    from galaxyzoo.sweep import optuna_backend
    from galaxyzoo.sweep import storage as sweep_storage

    monkeypatch.setattr(sweep_storage.time, "sleep", lambda s: None)
    with optuna_backend.quiet_optuna_warnings():  # the heartbeat the sweep's storage keeps
        storage = sweep_storage.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", 60, None, 30)
        study = optuna.create_study(storage=storage, study_name="s")
        trial = study.ask()
    real = optuna.storages.RDBStorage.set_trial_state_values
    answers = []

    def commits_then_loses(self, trial_id, state, values=None):
        if not answers:  # the first tell commits, then its answer is lost
            answers.append(real(self, trial_id, state, values))
            raise optuna.exceptions.StorageInternalError("commit") from sqlalchemy.exc.OperationalError(
                "COMMIT", {}, Exception("connection reset"))
        return real(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", commits_then_loses)
    study.tell(trial, 0.5)
    assert [(t.number, t.state.name, t.value) for t in study.get_trials()] == [(0, "COMPLETE", 0.5)]


def test_cli_db_retry_and_a_spent_tracking_server_retry_are_one_line(monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    from galaxyzoo.sweep import worker
    from galaxyzoo.cli import main

    assert main(["sweep", "--db-retry", "-1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--db-retry: expected 0 or more seconds, got -1")

    def gone(*args, **kwargs):
        raise MlflowException("API request to http://tracking:5000/api/2.0/mlflow/runs/get failed with exception "
                              "HTTPConnectionPool(host='tracking', port=5000): Max retries exceeded\nTraceback ...")

    monkeypatch.setattr(worker, "run_sweep", gone)
    assert main(["sweep", "--db-retry", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the MLflow tracking server stopped answering: API request to http://tracking:5000" in err


def test_a_trial_asked_while_the_lock_was_lost_runs_only_if_the_study_has_room():
    """After a PostgreSQL restart ended the advisory lock mid-take, the worker recounts: its trial is
    kept while the study needs it, and failed unrun (not counted) once other workers filled it."""
    import optuna

    from galaxyzoo.sweep import optuna_backend

    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    mine = study.ask()
    assert optuna_backend._keep_if_room(study, mine, 2) is mine
    study.ask()  # another worker's, taken while this one's lock was gone
    assert optuna_backend._keep_if_room(study, mine, 2) is None
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "FAIL", "RUNNING"]
    assert "lock was lost" in study.get_trials()[1].user_attrs["error"]


def test_a_trial_no_worker_named_is_failed_once_it_is_old_enough():
    """A worker killed between asking for a trial and naming itself on it left a RUNNING trial that no
    heartbeat or worker entry would ever call dead: every other worker waited for it for ever."""
    import optuna

    from galaxyzoo.sweep import optuna_backend
    from galaxyzoo.sweep.parent import Worker

    study = optuna.create_study()
    unnamed = study.ask()  # the killed worker's
    named = study.ask()
    named.set_user_attr("worker", Worker.me().record())  # this live process's
    failed, seen = [], {}
    optuna_backend._fail_dead_trials(study, lambda s, t: failed.append(t.number), {}, seen)
    assert failed == [] and list(seen) == [unnamed.number]  # just seen: its worker may be about to name itself
    seen[unnamed.number] -= optuna_backend.UNNAMED_TRIAL_SECONDS + 1  # as if first seen over 10 minutes ago
    optuna_backend._fail_dead_trials(study, lambda s, t: failed.append(t.number), {}, seen)
    assert failed == [unnamed.number]
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "RUNNING"]


def test_a_trial_a_dropped_connection_failed_is_queued_again_and_a_bad_trial_is_not():
    """A tracking-server restart that cut a model's upload short failed the trial, and its values were never
    tried again; a trial that fails on its own stays failed."""
    from types import SimpleNamespace

    import optuna

    from galaxyzoo.sweep import optuna_backend
    from galaxyzoo.sweep.storage import services_lost

    def upload_cut_short(*args, **kwargs):
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            raise RuntimeError("Failed to download artifacts from path 'model'") from None  # context kept

    def nan_loss(*args, **kwargs):
        raise ValueError("the loss is nan")

    from mlflow.exceptions import MlflowException

    assert services_lost(pytest.raises(RuntimeError, upload_cut_short).value)
    assert not services_lost(ValueError("the loss is nan"))
    assert services_lost(MlflowException("API request to http://t:5000/api failed with exception Max retries"))
    # the server answered, refusing: trying again would be refused again
    assert not services_lost(MlflowException("API request to endpoint /api/2.0/mlflow-artifacts failed with "
                                             "error code 413 != 200. Response body: 'Request Entity Too Large'"))
    spec = SimpleNamespace(sample=lambda suggest: {"x": suggest.trial.suggest_float("x", 0, 1)},
                           study=SimpleNamespace(metric="val_rmse"))
    with optuna_backend.quiet_optuna_warnings():  # "experimental", as the workers build it
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
    study = optuna.create_study()
    for runner in (upload_cut_short, nan_loss):
        runner.run_of = lambda number: None
    assert optuna_backend._run_trial(study, study.ask(), spec, upload_cut_short, None, retry) == "failed"
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]  # queued again...
    assert "lost connection" in study.get_trials()[0].user_attrs["error"]
    assert "error" not in study.get_trials()[1].user_attrs  # the copy does not carry the attempt's error
    again = study.ask()
    assert again.number == 1 and again.params == study.get_trials()[0].params  # ...with its values
    assert optuna_backend._run_trial(study, again, spec, nan_loss, None, retry) == "failed"
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "FAIL"]  # a bad trial is not
