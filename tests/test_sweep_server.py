"""Sweep workers as a team runs them: over HTTP to a real `mlflow server` (PostgreSQL backend,
proxied artifacts), with the Optuna study in PostgreSQL; then promote and predict from elsewhere."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_sweep_workers import _assert_one_study, _finish_all, _free_port, _worker, postgres  # noqa: F401 (postgres is a fixture)

from galaxyzoo.cli import main


class TrackingServer:
    """`mlflow server` on 127.0.0.1 with a PostgreSQL backend and its own artifact folder."""

    def __init__(self, backend: str, artifacts: Path, log: Path):
        self.backend, self.artifacts, self.log = backend, artifacts, log
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", "1", "--backend-store-uri", self.backend,
                   "--artifacts-destination", self.artifacts.as_uri()]
        # As docs/sweeps.md advises: galaxyzoo uses none of the server's job runner (8 more processes).
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env=env)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server never answered /health"
            time.sleep(0.5)

    def stop(self) -> None:
        """Kill the server and its workers at once: what a crash does (a graceful stop takes ~15 s)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(60)


@pytest.fixture
def tracking_server(postgres, tmp_path):  # noqa: F811 (the fixture imported above)
    server = TrackingServer(postgres("mlflow", "+psycopg2"), tmp_path / "server-artifacts", tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_workers_log_through_a_tracking_server(postgres, tracking_server, tiny_sweep_file, real_images_dir,  # noqa: F811
                                               tmp_path):
    import mlflow
    import optuna

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.uri, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ("--storage", postgres("optuna"), "--study-name", "served", "--n-trials", "2", "--epochs", "1",
            "--set", "tracking.experiment_name=served")
    folders = [tmp_path / f"worker{i}" for i in range(2)]
    for folder in folders:
        folder.mkdir()
    logs = _finish_all([_worker(tiny_sweep_file, folder, env, *args) for folder in folders])

    trials = optuna.load_study(study_name="served", storage=postgres("optuna", "+psycopg2")).get_trials()
    client = mlflow.MlflowClient(tracking_server.uri)
    runs, parent, children = _assert_one_study(client, trials, 2, logs, "served", "served")
    assert len(children) == len(runs) - 1  # every run of the sweep is under its parent
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"sweep.yaml", "trials.csv"}

    # every complete trial's model comes back through the server, from its artifact store (the
    # figures take the same path; test_train checks them, and drawing them here costs ~20 CPU-s)
    # (MLflow resolves a run's logged model with the process's tracking URI, whatever it is passed)
    mlflow.set_tracking_uri(tracking_server.uri)  # for this test only (conftest's `_own_tracking_uri`)
    complete = [r for r in children if r.data.tags["trial_state"] == "complete"]
    assert complete, [r.data.tags["trial_state"] for r in children]
    for run in complete:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        model = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model",
                                                    dst_path=str(tmp_path / "fetched" / run.info.run_id / "m"))
        assert (Path(model) / "MLmodel").is_file()
    assert any((tmp_path / "server-artifacts").rglob("MLmodel"))  # stored by the server, not by the workers

    # a third process, knowing only the server, promotes the best trial; the champion then predicts
    third = tmp_path / "third"
    third.mkdir()
    promoted = subprocess.run([sys.executable, "-m", "galaxyzoo", "promote", "--sweep-run", parent.info.run_id],
                              cwd=third, env=env, capture_output=True, text=True, timeout=600)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    champion = client.get_model_version_by_alias("galaxyzoo-cnn", "champion")
    assert champion.run_id == min(complete, key=lambda r: r.data.metrics["val_rmse"]).info.run_id
    image = sorted(real_images_dir.glob("*.jpg"))[0]
    # (predict in this process, knowing only the server too: another process would add ~12 s of imports)
    assert main(["predict", "--model", "models:/galaxyzoo-cnn@champion", str(image), "--out", str(third / "preds.csv"),
                 "--tracking-uri", tracking_server.uri]) == 0
    assert image.name in (third / "preds.csv").read_text()

    # the workers wrote nothing into their working folders: runs, artifacts and study live in the services
    assert [_files(f) for f in folders] == [[], []]
