"""`galaxyzoo promote`: the best finished run's packaged model, registered, behind an alias."""

import pytest

from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError
from stores import seeded_uri


def _client(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def test_promotes_the_best_trial_and_points_the_alias_at_it(finished_sweep, capsys):
    from galaxyzoo.registry import packaged as packaged_mod

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = _client(uri)
    trials = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    best = min(trials, key=lambda r: r.data.metrics["val_rmse"])
    worst = max(trials, key=lambda r: r.data.metrics["val_rmse"])

    assert main(["promote", "--sweep-run", result.parent_run_id, "--model-name", "promote-test",
                 "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "models:/promote-test@champion now points at it" in out and "promote → promote-test v1" in out
    assert f"compared 2 finished run(s) with a model in sweep run {result.parent_run_id}" in out
    assert out.index(best.info.run_id) < out.index(worst.info.run_id)  # ranked, winner first
    version = client.get_model_version_by_alias("promote-test", "champion")
    assert version.run_id == best.info.run_id == result.best_run_id
    assert version.tags["source_run_id"] == best.info.run_id and version.tags["selected_by"] == "min val_rmse"
    description = version.description
    # the registry's versions table previews the first line unrendered: plain text saying what won
    first = description.splitlines()[0]
    assert first.startswith(f"{best.info.run_name}: val_rmse {best.data.metrics['val_rmse']:.5g}, lowest of 2 runs")
    assert "trained on synthetic galaxies" in first and not any(c in first for c in "*`")
    assert best.info.run_id in description and f"val_rmse: {best.data.metrics['val_rmse']:.5g}" in description
    assert "```yaml" in description and "conv_filters: [8, 16]" in description  # the run's resolved config
    # what goes in and out, how to call it, the data, and what it beat
    assert "column `image`: a raw 424×424 Galaxy Zoo 2 JPEG" in description and "37 vote fractions" in description
    assert 'mlflow.pyfunc.load_model("models:/promote-test/1")' in description and "/invocations" in description
    split_id = best.data.tags["data.split_id"]
    assert "**Training data**: synthetic galaxies" in description and f"split `{split_id}`" in description
    assert f"runner-up `{worst.info.run_id}`" in description and version.tags["compared_runs"] == "2"
    registered = client.get_registered_model("promote-test")
    assert "raw 424×424 GZ2 JPEG" in registered.description and registered.tags["project"] == "galaxyzoo"
    # the registered model is the packaged one the training run logged (crop + network), not a new copy
    (packaged,) = client.search_logged_models(
        [best.info.experiment_id], filter_string=f"name = 'packaged_model' AND source_run_id = '{best.info.run_id}'")
    assert packaged.model_id in version.source
    assert isinstance(packaged_mod.load_packaged("models:/promote-test@champion").unwrap_python_model(),
                      packaged_mod.PackagedModel)
    # evaluate scores the champion's network on its test split, as its training run did
    from galaxyzoo.registry.evaluate import evaluate

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
    from galaxyzoo.registry import promote

    uri = seeded_uri(tmp_path)
    client = _client(uri)
    experiment = client.create_experiment("empty")
    training = {"config_hash": "abc"}  # trainings, as far as the listing goes, but neither logged a model
    finished = client.create_run(experiment, tags=training).info.run_id
    client.log_metric(finished, "val_rmse", 0.2)
    client.set_terminated(finished, "FINISHED")
    client.create_run(experiment, tags=training)  # still running
    assert main(["promote", "--experiment-name", "empty", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "nothing to promote in experiment 'empty': no finished run has a logged model" in err
    assert "(2 runs, 1 finished)" in err
    with pytest.raises(GalaxyZooError, match="no MLflow experiment 'nope'"):
        promote.promote(client, experiment_name="nope")


def test_refuses_a_metric_no_run_has(finished_sweep):
    from galaxyzoo.registry import promote

    folder, result = finished_sweep
    client = _client(f"sqlite:///{folder / 'mlflow.db'}")
    with pytest.raises(GalaxyZooError,
                       match="none of the 2 finished runs with a model has a finite value of the metric 'val_auc'"):
        promote.promote(client, sweep_run=result.parent_run_id, metric="val_auc")


def test_registers_in_the_clients_store_whatever_mlflow_points_at(finished_sweep, tmp_path):
    import mlflow

    from galaxyzoo.registry import promote

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(seeded_uri(tmp_path))  # another store, as an earlier call may have left it
    promoted = promote.promote(mlflow.MlflowClient(uri), sweep_run=result.parent_run_id, model_name="elsewhere-test")
    version = mlflow.MlflowClient(uri).get_model_version_by_alias("elsewhere-test", "champion")
    assert version.run_id == promoted.run_id == result.best_run_id
    assert mlflow.MlflowClient(seeded_uri(tmp_path)).search_registered_models() == []


def test_a_version_a_killed_promote_left_untagged_is_finished_not_duplicated(finished_sweep, caplog):
    """Killed between registering and tagging, a promote leaves a version without description, tags or
    alias; the rerun finishes that version instead of registering a second one beside it."""
    import mlflow

    from galaxyzoo.registry import promote

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    best = client.get_run(result.best_run_id)
    mlflow.set_tracking_uri(uri)
    mlflow.register_model(promote.packaged_model_uri(client, best), "orphan-test")  # what the kill left
    promoted = promote.promote(client, sweep_run=result.parent_run_id, model_name="orphan-test")
    assert promoted.version == 1 and _versions(client)["orphan-test"] == 1
    version = client.get_model_version_by_alias("orphan-test", "champion")
    assert int(version.version) == 1 and version.tags["source_run_id"] == best.info.run_id and version.description
    assert "orphan-test v1 already holds this model of run" in caplog.text
    # Killed after the tags but before the alias (set last): the rerun still finishes v1.
    client.delete_registered_model_alias("orphan-test", "champion")
    assert promote.promote(client, sweep_run=result.parent_run_id, model_name="orphan-test").version == 1
    assert _versions(client)["orphan-test"] == 1


def test_promoting_a_run_again_keeps_its_one_version(finished_sweep):
    """One run's model is one version: promoting it again, or back after another run held the alias,
    points the alias at that version instead of registering copies (it once went v1, v2, v1)."""
    import mlflow

    from galaxyzoo.registry import promote

    folder, result = finished_sweep
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    again = [promote.promote(client, run_id=result.best_run_id, model_name="again-test").version for _ in range(3)]
    assert again == [1, 1, 1] and _versions(client)["again-test"] == 1
    other = next(r.info.run_id for r in client.search_runs([client.get_run(result.best_run_id).info.experiment_id])
                 if r.info.run_id != result.best_run_id and r.data.tags.get("mlflow.parentRunId")
                 and "val_rmse" in r.data.metrics)
    assert promote.promote(client, run_id=other, model_name="again-test").version == 2
    back = promote.promote(client, run_id=result.best_run_id, model_name="again-test")
    assert back.version == 1 and _versions(client)["again-test"] == 2
    assert client.get_model_version_by_alias("again-test", "champion").run_id == result.best_run_id
    # A second alias for the same run goes on the same version, whose record says why @champion points there.
    before = client.get_model_version("again-test", "1")
    staged = promote.promote(client, run_id=result.best_run_id, model_name="again-test", alias="staging",
                             metric="val_r2_flat")
    after = client.get_model_version("again-test", "1")
    assert staged.version == 1 and set(after.aliases) == {"champion", "staging"}
    assert (after.description, after.tags) == (before.description, before.tags)
    # A version no alias points at any more is recorded again, without the earlier metric's tag.
    client.delete_registered_model_alias("again-test", "champion")
    client.delete_registered_model_alias("again-test", "staging")
    promote.promote(client, run_id=result.best_run_id, model_name="again-test", metric="val_r2_flat")
    tags = client.get_model_version("again-test", "1").tags
    assert tags["selected_by"] == "max val_r2_flat" and "val_r2_flat" in tags and "val_rmse" not in tags


def _versions(client) -> dict[str, int]:
    return {m.name: len(client.search_model_versions(f"name = '{m.name}'")) for m in client.search_registered_models()}


@pytest.mark.parametrize("option, value, why", [
    ("--alias", "bad alias/../x", "Invalid alias name"),
    ("--alias", "latest", "reserved"),
    ("--model-name", "", "Missing value"),
    ("--model-name", "a/b", "cannot contain '/'"),
])
def test_refuses_a_bad_name_before_registering_anything(finished_sweep, capsys, option, value, why):
    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = _client(uri)
    before = _versions(client)
    args = ["promote", "--sweep-run", result.parent_run_id, "--tracking-uri", uri, "--model-name", "names-test"]
    assert main([*args, option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"galaxyzoo: error: {option} {value!r}: ") and why in err and len(err.splitlines()) == 1
    assert _versions(client) == before  # no version was registered without its alias


def test_bare_promote_finds_runs_in_the_default_experiment(tiny_experiment, tmp_path, capsys, monkeypatch):
    """`mlflow run . -e sweep` without --experiment-name trains into `Default`; a plain promote finds it."""
    monkeypatch.chdir(tmp_path)  # MLflow puts `Default`'s artifacts under ./mlruns
    from galaxyzoo.config import experiment
    from galaxyzoo.training.run import train

    uri = seeded_uri(tmp_path)
    cfg = experiment.load_experiment(tiny_experiment, [f"tracking.tracking_uri={uri}", "tracking.experiment_name=Default"])
    trained = train(cfg, runs_dir=tmp_path / "runs", verbose=0, progress=False)
    client = _client(uri)
    other = client.create_run("0").info.run_id  # another project's run in Default is not a candidate
    client.log_metric(other, "val_rmse", 0.0)
    client.create_logged_model(experiment_id="0", name="model", source_run_id=other)
    client.set_terminated(other, "FINISHED")
    promote_run = client.create_run("0").info.run_id  # what `mlflow run . -e promote` would create
    monkeypatch.setenv("MLFLOW_RUN_ID", promote_run)

    assert main(["promote", "--model-name", "bare-test", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "compared 1 finished run(s) with a model in experiment 'Default'" in out and trained.run_id in out
    assert client.get_model_version_by_alias("bare-test", "champion").run_id == trained.run_id
    assert client.get_run(promote_run).info.run_name == "promote → bare-test v1"
    # a run from before training logged its packaged model gets one packaged by promote
    (packaged,) = client.search_logged_models(["0"], filter_string="name = 'packaged_model'")
    client.delete_logged_model(packaged.model_id)
    assert main(["promote", "--model-name", "bare-test", "--tracking-uri", uri]) == 0
    (repackaged,) = client.search_logged_models(["0"], filter_string="name = 'packaged_model'")
    assert repackaged.model_id != packaged.model_id and repackaged.source_run_id == trained.run_id
    assert repackaged.model_id in client.get_model_version_by_alias("bare-test", "champion").source
    # one packaged by an earlier layout of the package (its pickle names another class) is packaged again
    client.set_logged_model_tags(repackaged.model_id, {"galaxyzoo.packaged_class": "galaxyzoo.predict.PackagedModel"})
    assert main(["promote", "--model-name", "bare-test", "--tracking-uri", uri]) == 0
    newest = client.get_model_version_by_alias("bare-test", "champion").source
    assert repackaged.model_id not in newest
    (current,) = [m for m in client.search_logged_models(["0"], filter_string="name = 'packaged_model'")
                  if m.model_id in newest]
    assert current.tags["galaxyzoo.packaged_class"] == "galaxyzoo.registry.packaged.PackagedModel"
    # an explicit experiment is still the scope
    assert main(["promote", "--experiment-name", "galaxyzoo", "--tracking-uri", uri]) == 2
    assert "no MLflow experiment 'galaxyzoo'" in capsys.readouterr().err


def test_promote_imports_no_tensorflow_and_names_the_packaged_classes():
    """Finding a run's packaged model is a tag lookup by class name, so `galaxyzoo promote` needs no Keras."""
    import subprocess
    import sys

    from galaxyzoo.registry.packaged import EnsembleModel, PackagedModel
    from galaxyzoo.tracking import names

    code = "import sys, galaxyzoo.registry.promote; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert [f"{c.__module__}.{c.__qualname__}" for c in (PackagedModel, EnsembleModel)] == [
        names.PACKAGED_CLASS, names.ENSEMBLE_CLASS]
