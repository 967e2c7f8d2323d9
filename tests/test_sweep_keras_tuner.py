"""The keras-tuner backend: the same sweep file, trials as nested MLflow runs, a resumable search."""

from pathlib import Path

import pytest
from stores import seeded_uri


def _client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture
def hyperband_sweep(tiny_experiment, tmp_path) -> Path:
    path = tmp_path / "kt.yaml"
    path.write_text(
        f"base: {tiny_experiment}\n"
        "set: {train.epochs: 2}\n"
        "keras_tuner: {algorithm: hyperband, factor: 2, seed: 1}\n"
        "params:\n"
        "  train.learning_rate: {low: 1e-3, high: 1e-2, log: true}\n"
        "  model.head: {choices: [sigmoid, softmax-per-question]}\n"
        "  model.batch_norm: {choices: [true, false]}\n"
    )
    return path


@pytest.mark.slow
def test_keras_tuner_hyperband_trials_are_nested_runs(hyperband_sweep, tiny_workdir, tmp_path, caplog):
    import pandas as pd

    from galaxyzoo.sweep.worker import run_sweep

    uri = [f"tracking.tracking_uri={seeded_uri(tmp_path)}"]
    study = f"kt-{tmp_path.name}"  # the tuner's state lives in the shared data.workdir
    result = run_sweep(hyperband_sweep, backend="keras-tuner", n_trials=3, study_name=study, overrides=uri,
                       progress=False)
    assert result.trials_run == 3 and result.finished == 3
    assert result.storage == str(tiny_workdir / "keras-tuner" / study)
    client = _client(tmp_path)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["sweep.backend"] == "keras-tuner"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert sorted(r.data.tags["trial_number"] for r in children) == ["0", "1", "2"]
    for run in children:
        tags = run.data.tags
        assert tags["trial_state"] == "complete" and {"val_rmse", "test_rmse"} <= set(run.data.metrics)
        # Hyperband's budget for the trial is the epochs it trained
        assert run.data.params["train.epochs"] == tags["tuner_epochs"]
    assert {r.data.tags["tuner_epochs"] for r in children} == {"1", "2"}
    table = pd.read_csv(client.download_artifacts(result.parent_run_id, "trials.csv", str(tmp_path)))
    assert list(table["state"]) == ["complete"] * 3 and table["duration_s"].gt(0).all()
    best = table.loc[table["value"].idxmin()]
    assert result.best_run_id == best["mlflow_run_id"]
    assert parent.data.tags["plot_note.intermediate_values"] == "no trial reported per-epoch values"
    # keras-tuner keeps a boolean choice as 1 or 0; the summary spells it as the trial's param does
    best_run = client.get_run(result.best_run_id)
    assert parent.data.tags["best.model.batch_norm"] == best_run.data.params["model.batch_norm"] in ("true", "false")
    assert isinstance(result.best_params["model.batch_norm"], bool)  # not keras-tuner's 1 or 0

    again = run_sweep(hyperband_sweep, backend="keras-tuner", n_trials=3, study_name=study, overrides=uri,
                      progress=False)
    assert again.trials_run == 0 and again.finished == 3  # the search continued from its saved state
    assert again.stale == 0  # and closed none of the finished trials' runs
    assert all(client.get_run(r.info.run_id).info.status == "FINISHED" for r in children)

    # Hyperband's two brackets for 2 epochs and factor 2 hold 3 + 2 trials: a larger budget is not met silently
    with caplog.at_level("WARNING", logger="galaxyzoo.sweep.keras_tuner_backend"):
        more = run_sweep(hyperband_sweep, backend="keras-tuner", n_trials=7, study_name=study, overrides=uri,
                         progress=False)
    assert more.trials_run == 2 and more.finished == 5
    assert "keras-tuner ended the search after 5 of the 7 trials asked: Hyperband's brackets for 2 epochs" \
        in caplog.text


def test_keras_tuner_takes_no_optuna_storage(hyperband_sweep):
    from galaxyzoo.errors import GalaxyZooError
    from galaxyzoo.sweep.worker import run_sweep

    with pytest.raises(GalaxyZooError, match="--storage is for the optuna backend"):
        run_sweep(hyperband_sweep, backend="keras-tuner", storage="sqlite:///x.db")


def test_a_second_keras_tuner_worker_on_a_study_is_refused_before_any_run(hyperband_sweep, tiny_workdir, tmp_path):
    """keras-tuner's oracle lives in one process: a second worker would train every trial again."""
    import mlflow

    from galaxyzoo.errors import GalaxyZooError
    from galaxyzoo.sweep.keras_tuner_backend import project_dir
    from galaxyzoo.sweep.worker import run_sweep
    from galaxyzoo.system.locks import writer_lock

    uri = seeded_uri(tmp_path)
    study = f"kt-busy-{tmp_path.name}"
    with writer_lock(project_dir(tiny_workdir, study)):  # as the first worker holds it
        with pytest.raises(GalaxyZooError, match=rf"keras-tuner/{study} is being written by another process"):
            run_sweep(hyperband_sweep, backend="keras-tuner", n_trials=1, study_name=study,
                      overrides=[f"tracking.tracking_uri={uri}"], progress=False)
    client = mlflow.MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow
def test_a_killed_workers_trial_run_is_closed_failed_when_the_search_goes_on(hyperband_sweep, tiny_workdir,
                                                                              tmp_path):
    """Under the one-worker lock a RUNNING trial run is a dead worker's: closed FAILED, with the reason, and its
    checkpoint folder removed; so is one the training FINISHED but the sweep never marked complete (killed in
    between), which would otherwise stand as a second finished run of the retrained trial."""
    import mlflow

    from galaxyzoo.sweep.keras_tuner_backend import project_dir
    from galaxyzoo.sweep.parent import sweep_key
    from galaxyzoo.sweep.worker import run_sweep

    uri = seeded_uri(tmp_path)
    study = f"kt-dead-{tmp_path.name}"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("galaxyzoo")
    key = sweep_key(study, str(project_dir(tiny_workdir, study)))
    checkpoint = tmp_path / "runs" / "dead"
    checkpoint.mkdir(parents=True)
    (checkpoint / "checkpoint-epoch0001.weights.h5").write_bytes(b"weights")
    dead = client.create_run(experiment_id, tags={"galaxyzoo.sweep_key": key, "trial_number": "0",
                                                  "checkpoint_dir": str(checkpoint)}).info.run_id
    unrecorded = client.create_run(experiment_id, tags={"galaxyzoo.sweep_key": key, "trial_number": "1",
                                                        "trial_state": "running"}).info.run_id
    client.set_terminated(unrecorded, "FINISHED")
    # killed after the sweep marked it complete, but before keras-tuner recorded its end
    complete = client.create_run(experiment_id, tags={"galaxyzoo.sweep_key": key, "trial_number": "2",
                                                      "trial_state": "complete"}).info.run_id
    client.set_terminated(complete, "FINISHED")
    result = run_sweep(hyperband_sweep, backend="keras-tuner", n_trials=1, study_name=study,
                       overrides=[f"tracking.tracking_uri={uri}"], progress=False)
    assert result.trials_run == 1 and result.stale == 3
    for run_id, number in ((dead, 0), (unrecorded, 1), (complete, 2)):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["trial_state"] == "failed"
        why = run.data.tags["galaxyzoo.closed_why"]
        assert why == (f"the worker of trial {number} died before keras-tuner recorded the trial's end; "
                       "keras-tuner trains it again")
    assert not checkpoint.exists() and not (tmp_path / "runs" / "dead.lock").exists()


def test_the_trials_keras_tuner_recorded_as_ended_and_a_damaged_record(tmp_path):
    """What a rerun keeps: the trials in oracle.json's end order, none without the tuner file (a fresh oracle
    then); keras-tuner writes oracle.json in place, so a kill can cut it: one line, not a traceback."""
    from galaxyzoo.errors import GalaxyZooError
    from galaxyzoo.sweep.keras_tuner_backend import ended_trials

    assert ended_trials(tmp_path / "gone") is None  # no study here: nothing of it to reconcile
    (tmp_path / "oracle.json").write_text('{"end_order": ["00", "02"], "ongoing_trials": {}}')
    assert ended_trials(tmp_path) == set()  # no tuner0.json: the first trial never ended
    (tmp_path / "tuner0.json").write_text("{}")
    assert ended_trials(tmp_path) == {0, 2}
    # end_trial saves the end before the trial leaves the ongoing ones: the reload trains it again
    (tmp_path / "oracle.json").write_text('{"end_order": ["00", "02"], "ongoing_trials": {"tuner0": "02"}}')
    assert ended_trials(tmp_path) == {0}
    (tmp_path / "oracle.json").write_text('{"ongoing_trials": {"tuner0": "0')
    with pytest.raises(GalaxyZooError, match=r"oracle.json: damaged keras-tuner state \(JSONDecodeError: .*"
                                             rf"remove {tmp_path} to start the study afresh"):
        ended_trials(tmp_path)


def test_a_removed_study_folder_leaves_its_finished_runs_alone(tmp_path):
    """The damaged-state message says to remove the study's folder to start afresh: its finished runs must
    then stay FINISHED, not be closed as a dead worker's; a RUNNING one is still a dead worker's."""
    import mlflow

    from galaxyzoo.sweep.worker import _close_dead_tuner_trials

    client = mlflow.MlflowClient(seeded_uri(tmp_path))
    experiment_id = client.create_experiment("galaxyzoo")
    tags = {"galaxyzoo.sweep_key": "k", "trial_state": "complete"}
    finished = client.create_run(experiment_id, tags={**tags, "trial_number": "0"}).info.run_id
    client.set_terminated(finished, "FINISHED")
    running = client.create_run(experiment_id, tags={**tags, "trial_number": "1"}).info.run_id
    assert _close_dead_tuner_trials(client, experiment_id, "k", None) == 1
    assert client.get_run(finished).info.status == "FINISHED" and client.get_run(running).info.status == "FAILED"


def test_the_summary_study_spells_boolean_choices_and_logs_nothing(capfd):
    """keras-tuner keeps a boolean choice as 1; Optuna would announce the in-memory study it only summarises."""
    from types import SimpleNamespace

    import optuna

    from galaxyzoo.sweep.keras_tuner_backend import _as_optuna_study

    space = {"model.batch_norm": optuna.distributions.CategoricalDistribution([True, False]),
             "train.batch_size": optuna.distributions.CategoricalDistribution([16, 32])}
    spec = SimpleNamespace(distributions=lambda: space, study=SimpleNamespace(direction="minimize"))
    trial = SimpleNamespace(status="COMPLETED", score=0.25, message=None,
                            hyperparameters=SimpleNamespace(values={"model.batch_norm": 1, "train.batch_size": 32}))
    runner = SimpleNamespace(run_of=lambda number: None)
    study = _as_optuna_study(spec, SimpleNamespace(trials={"0": trial}), runner, "kt")
    params = study.best_trial.params
    assert params == {"model.batch_norm": True, "train.batch_size": 32} and params["model.batch_norm"] is True
    assert "A new study created" not in capfd.readouterr().err
