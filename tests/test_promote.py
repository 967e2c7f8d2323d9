"""`galaxyzoo promote`: the best finished run's packaged model, registered, behind an alias."""

import pytest

from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError


def _client(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def test_promotes_the_best_trial_and_points_the_alias_at_it(finished_sweep, capsys):
    from galaxyzoo import predict

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = _client(uri)
    trials = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    best = min(trials, key=lambda r: r.data.metrics["val_rmse"])
    worst = max(trials, key=lambda r: r.data.metrics["val_rmse"])

    assert main(["promote", "--sweep-run", result.parent_run_id, "--model-name", "promote-test",
                 "--tracking-uri", uri]) == 0
    assert "models:/promote-test@champion now points at it" in capsys.readouterr().out
    version = client.get_model_version_by_alias("promote-test", "champion")
    assert version.run_id == best.info.run_id == result.best_run_id
    assert version.tags["source_run_id"] == best.info.run_id and version.tags["selected_by"] == "min val_rmse"
    description = version.description
    assert best.info.run_id in description and f"val_rmse: {best.data.metrics['val_rmse']:.5g}" in description
    assert "```yaml" in description and "conv_filters: [8, 16]" in description  # the run's resolved config
    # the registered model is the packaged one (crop + network), not the bare Keras model
    assert isinstance(predict.load_packaged("models:/promote-test@champion").unwrap_python_model(),
                      predict.PackagedModel)
    # evaluate scores the champion's network on its test split, as its training run did
    from galaxyzoo.evaluate import evaluate

    scored = evaluate("models:/promote-test@champion", tracking_uri=uri, progress=False)
    assert scored.run_id == best.info.run_id
    assert scored.metrics["rmse"] == pytest.approx(best.data.metrics["test_rmse"], abs=1e-5)

    assert main(["promote", "--experiment-name", "galaxyzoo", "--mode", "max", "--model-name", "promote-test",
                 "--tracking-uri", uri]) == 0
    moved = client.get_model_version_by_alias("promote-test", "champion")
    assert moved.version == 2 and moved.run_id == worst.info.run_id
    assert client.get_model_version("promote-test", "1").aliases == []  # the alias moved, it was not copied

    # R² grows with quality: without --mode, the highest value wins.
    finished = [r for r in trials if r.info.status == "FINISHED"]
    top_r2 = max(finished, key=lambda r: r.data.metrics["val_r2_flat"])
    assert main(["promote", "--sweep-run", result.parent_run_id, "--metric", "val_r2_flat",
                 "--model-name", "promote-test", "--tracking-uri", uri]) == 0
    assert client.get_model_version_by_alias("promote-test", "champion").run_id == top_r2.info.run_id


def test_refuses_when_no_finished_run_has_a_model(tmp_path, capsys):
    from galaxyzoo import promote

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _client(uri)
    experiment = client.create_experiment("empty")
    finished = client.create_run(experiment).info.run_id
    client.log_metric(finished, "val_rmse", 0.2)
    client.set_terminated(finished, "FINISHED")
    client.create_run(experiment)  # still running
    assert main(["promote", "--experiment-name", "empty", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "nothing to promote in experiment 'empty': no finished run has a logged model" in err
    assert "(2 runs, 1 finished)" in err
    with pytest.raises(GalaxyZooError, match="no MLflow experiment 'nope'"):
        promote.promote(client, experiment_name="nope")


def test_refuses_a_metric_no_run_has(finished_sweep):
    from galaxyzoo import promote

    folder, result = finished_sweep
    client = _client(f"sqlite:///{folder / 'mlflow.db'}")
    with pytest.raises(GalaxyZooError, match="none of the 2 finished runs with a model has the metric 'val_auc'"):
        promote.promote(client, sweep_run=result.parent_run_id, metric="val_auc")
