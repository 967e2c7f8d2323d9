"""End to end: `mlflow run` of the `main` entry point (the JAX backend's run is in test_jax.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(**extra) -> dict:
    # MLproject commands call `python`: this interpreter's folder goes first on PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_RUN_ID", None)
    return {**env, **extra}


def _only_run(uri: str, experiment: str):
    import mlflow

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


@pytest.mark.slow
def test_mlflow_run_main_records_params_metrics_artifacts_and_model(tiny_experiment, tiny_workdir, tmp_path):
    import mlflow

    uri = seeded_uri(tmp_path)
    # --storage-dir: where `mlflow run` makes its folder for `path` params (else a new one in /tmp, left there)
    cmd = [str(BIN / "mlflow"), "run", str(REPO), "-e", "main", "--env-manager", "local", "--experiment-name", "e2e",
           "--storage-dir", str(tmp_path), "-P", f"experiment={tiny_experiment}", "-P", "epochs=2",
           "-P", f"set=seed=1,workdir={tiny_workdir}"]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    client, run = _only_run(uri, "e2e")  # one run: the trainer used the run `mlflow run` made
    assert run.info.status == "FINISHED"
    params, tags = run.data.params, run.data.tags
    assert (params["train.epochs"], params["train.seed"], tags["data.workdir"]) == ("2", "1", str(tiny_workdir))
    assert tags["version.keras_backend"] == "tensorflow" and tags["data.kind"] == "synthetic"
    assert tags["mlflow.project.entryPoint"] == "main"
    assert (tags["experiment_file"], tags["outcome"]) == (str(tiny_experiment), "completed")
    # MLflow's own params of the entry point: the declared one and the two given; no empty defaults
    from galaxyzoo.config.experiment import knobs, load_experiment

    cfg = load_experiment(tiny_experiment, ["epochs=2", "seed=1", f"workdir={tiny_workdir}"])
    assert set(params) - set(knobs(cfg)) == {"experiment", "epochs", "set"} and "" not in params.values()
    for key in ("loss", "val_loss", "rmse", "val_rmse", "r2_flat", "val_r2_flat", "lr"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
    for key in ("test_rmse", "test_r2_flat", "test_r2_mean_columns", "test_rmse_cumulative",
                "test_rmse_t11_arms_number"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    # (the figures under plots/ are test_train's: they cost ~11 s a run)
    assert {"config.yaml", "training_log.csv", "per_question_metrics.csv"} <= artifacts
    mlflow.set_tracking_uri(uri)
    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path))
    assert model.output_shape == (None, 37)
