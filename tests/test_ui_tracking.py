"""What the MLflow UI shows of a training run, asserted through MLflow's API rather than pixels:
params (names and count), tags, dataset inputs, system metrics, the logged models' metrics at the
final step, and the experiment's kind and description."""

import json
import os
from pathlib import Path

import pytest

from galaxyzoo.tracking import mlflow_runs
from galaxyzoo.cli import main
from galaxyzoo.config.experiment import config_hash, knobs, load_experiment
from stores import seeded_uri

MAX_PARAMS = 54  # the config's knobs (docs/training.md); the compare view's axes stay readable


def _uri(folder: Path) -> str:
    return seeded_uri(folder)  # a copy of an empty store: MLflow's migrations cost seconds (stores.py)


@pytest.fixture(scope="module")
def ui_run(tiny_experiment, tmp_path_factory):
    """A 2-epoch training with system metrics sampled every 0.05 s: (client, config, TrainResult)."""
    import mlflow

    from galaxyzoo.training.run import train

    folder = tmp_path_factory.mktemp("ui-run")
    cfg = load_experiment(tiny_experiment, [f"tracking.tracking_uri={_uri(folder)}", "epochs=2"])
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "0.05"  # MLflow's default is 10 s
    try:
        result = train(cfg, experiment_file=str(tiny_experiment), runs_dir=folder / "runs", verbose=0,
                       progress=False)
    finally:
        del os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"]
    return mlflow.MlflowClient(_uri(folder)), cfg, result


def test_params_are_the_config_knobs_and_the_rest_is_tagged(ui_run, tmp_path):
    client, cfg, result = ui_run
    run = client.get_run(result.run_id)
    params, tags = run.data.params, run.data.tags
    assert params == knobs(cfg) and len(params) <= MAX_PARAMS
    assert "" not in params.values()
    # nothing that differs per run by construction, nor a tracking setting, is a param
    for key in params:
        assert not key.startswith(("callback.", "version.", "runtime.", "tracking.")), key
        assert key not in ("config_hash", "name", "description", "data.workdir", "data.split_id"), key
    # moved, still findable
    assert tags["config_hash"] == config_hash(cfg)
    assert tags["version.keras_backend"] == "tensorflow" and tags["version.mlflow"]
    assert tags["runtime.backend"] == "tensorflow" and tags["runtime.gpus"] == "0"
    assert tags["runtime.precision"] == "float32" and tags["runtime.distribution"] == "none"
    assert tags["data.kind"] == "synthetic" and len(tags["data.split_id"]) == 12
    assert tags["data.workdir"] == cfg.data.workdir and tags["tracking.experiment_name"] == "galaxyzoo"
    assert sum(int(tags[f"data.n_{p}"]) for p in ("train", "val", "test")) > 100
    # the callbacks as built are in the config artifact, which still loads as the config
    config_file = client.download_artifacts(result.run_id, "config.yaml", str(tmp_path))
    text = Path(config_file).read_text()
    assert "EarlyStopping(" in text and "EpochCheckpoint(" in text
    assert config_hash(load_experiment(config_file)) == config_hash(cfg)


def test_the_three_parts_are_dataset_inputs_with_split_and_store_digest(ui_run):
    client, _, result = ui_run
    run = client.get_run(result.run_id)
    tags = run.data.tags
    inputs = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
              for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "train", "val"]
    digest = f"{tags['data.split_id']}-{tags['data.store_content_id'][:12]}"
    for part, dataset in inputs.items():
        assert dataset.name == f"synthetic-{part}" and dataset.digest == digest
        assert json.loads(dataset.profile)["num_rows"] == int(tags[f"data.n_{part}"])
        assert "crops" in json.loads(dataset.source)["uri"]  # the crop store it streamed from


def test_logged_models_show_the_final_epoch_test_and_best_metrics(ui_run):
    client, cfg, result = ui_run
    models = {m.name: m for m in client.search_logged_models([result.experiment_id],
                                                             filter_string=f"source_run_id = '{result.run_id}'")}
    assert sorted(models) == ["model", "packaged_model"]
    steps = [step for step, _ in result.history["val_rmse"]]
    assert len(steps) == 2  # the first epoch's step is not the one the models show
    final_step = steps[-1]
    for name, model in models.items():
        metrics = {m.key: m for m in client.get_logged_model(model.model_id).metrics}
        assert {m.step for m in metrics.values()} == {final_step}, name
        assert metrics["val_rmse"].value == pytest.approx(result.history["val_rmse"][-1][1]), name
        assert metrics["test_rmse"].value == pytest.approx(result.metrics["test_rmse"]), name
        best = min(v for _, v in result.history["val_rmse"])
        assert metrics["best_val_rmse"].value == pytest.approx(best), name
        assert client.get_logged_model(model.model_id).params == knobs(cfg), name


def test_a_finished_training_run_predicts_through_its_packaged_model(ui_run, real_images_dir, tmp_path, capsys):
    """`predict --model runs:/RUN_ID/packaged_model` works without promote."""
    client, _, result = ui_run
    out = tmp_path / "predictions.csv"
    image = sorted(real_images_dir.glob("*.jpg"))[0]
    assert main(["predict", str(image), "--model", f"runs:/{result.run_id}/packaged_model", "--out", str(out),
                 "--tracking-uri", client.tracking_uri]) == 0
    import pandas as pd

    frame = pd.read_csv(out)
    assert len(frame) == 1 and frame["t01_smooth_or_features_a01_smooth"].between(0, 1).all()


def test_system_metrics_are_logged_by_default(ui_run):
    client, cfg, result = ui_run
    assert cfg.tracking.system_metrics is True
    keys = client.get_run(result.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in keys and "system/system_memory_usage_megabytes" in keys


def test_experiments_get_the_model_training_kind_without_overwriting_a_users(tmp_path):
    import mlflow

    client = mlflow_runs.connect(_uri(tmp_path))
    created = client.get_experiment(mlflow_runs.experiment_id(client, "fresh"))
    assert created.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "Galaxy Zoo 2" in created.tags["mlflow.note.content"]

    mine = client.create_experiment("mine", tags={"mlflow.experimentKind": "genai_development",
                                                  "mlflow.note.content": "my notes"})
    assert mlflow_runs.experiment_id(client, "mine") == mine
    kept = client.get_experiment(mine).tags
    assert (kept["mlflow.experimentKind"], kept["mlflow.note.content"]) == ("genai_development", "my notes")

    # `Default`, where a bare `mlflow run` puts its runs, exists without a kind until the project uses it
    assert "mlflow.experimentKind" not in client.get_experiment("0").tags
    mlflow_runs.mark_experiment(client, "0")
    assert mlflow.MlflowClient(_uri(tmp_path)).get_experiment("0").tags["mlflow.experimentKind"] == \
        "custom_model_development"


def test_two_trials_of_a_sweep_differ_only_in_the_searched_keys(finished_sweep):
    import mlflow

    folder, result = finished_sweep
    client = mlflow.MlflowClient(_uri(folder))
    trials = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(trials) == 2
    first, second = (t.data.params for t in trials)
    assert set(first) == set(second) and len(first) <= MAX_PARAMS
    differing = {k for k in first if first[k] != second[k]}
    assert "train.learning_rate" in differing and differing <= {"train.learning_rate", "model.head"}
