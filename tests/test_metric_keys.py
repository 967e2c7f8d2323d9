"""Metrics as the MLflow UI shows them: epoch steps from 1, a readable learning rate, named questions."""

import math

import pytest

from galaxyzoo import schema
from galaxyzoo.config.experiment import load_experiment
from stores import seeded_uri

PER_EPOCH = ("loss", "rmse", "r2_flat", "val_loss", "val_rmse", "val_r2_flat", "lr", "log10_lr", "epoch_seconds")


@pytest.fixture(scope="module")
def two_epochs(tiny_experiment, tmp_path_factory):
    """A 2-epoch tiny training in its own SQLite store: (client, TrainResult)."""
    import mlflow

    from galaxyzoo.training.run import train

    uri = seeded_uri(tmp_path_factory.mktemp('metric-keys'))
    cfg = load_experiment(tiny_experiment, [f"tracking.tracking_uri={uri}", "epochs=2"])
    return mlflow.MlflowClient(uri), train(cfg, experiment_file=str(tiny_experiment), progress=False, verbose=0)


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_every_per_epoch_key_is_logged_at_steps_1_to_n(two_epochs):
    client, result = two_epochs
    for key in PER_EPOCH:
        assert _steps(client, result.run_id, key) == [1, 2], key  # "Epoch 1/2" in the console is step 1
    # What train() hands on (and draws in training_curves.png) is numbered the same way.
    assert [step for step, _ in result.history["loss"]] == [1, 2]


def test_learning_rate_is_also_logged_as_its_log10(two_epochs):
    client, result = two_epochs
    lr = {m.step: m.value for m in client.get_metric_history(result.run_id, "lr")}
    log10_lr = {m.step: m.value for m in client.get_metric_history(result.run_id, "log10_lr")}
    assert lr == pytest.approx({1: 1e-3, 2: 1e-3})  # quickstart's rate, kept under its old key
    assert log10_lr == pytest.approx({step: math.log10(value) for step, value in lr.items()})
    assert log10_lr[1] == pytest.approx(-3.0)


def test_per_question_test_metrics_name_the_question(two_epochs):
    client, result = two_epochs
    logged = client.get_run(result.run_id).data.metrics
    per_question = {key for key in logged if key.startswith("test_rmse_t")}
    assert per_question == {f"test_rmse_{q.id}_{q.slug}" for q in schema.QUESTIONS}
    assert "test_rmse_t01_smooth_or_features" in per_question and "test_rmse_t01" not in logged
    assert logged["test_rmse_t08_odd_feature"] == pytest.approx(result.metrics["test_rmse_t08_odd_feature"])


def test_sweep_prunes_on_the_steps_mlflow_shows(finished_sweep):
    """Optuna's intermediate values and the trial run's `val_rmse` history share their steps."""
    import mlflow
    import optuna

    folder, result = finished_sweep
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{folder / 'optuna.db'}")
    reported = [t for t in study.trials if t.intermediate_values]
    assert reported
    for trial in reported:
        run_id = trial.user_attrs["mlflow_run_id"]
        assert sorted(trial.intermediate_values) == _steps(client, run_id, "val_rmse"), trial.number
