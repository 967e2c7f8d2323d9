"""Training as MLflow runs: what a run records, resume after a kill, reproducibility, errors, evaluate."""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from galaxyzoo import schema
from galaxyzoo.cli import main
from galaxyzoo.commands.train import split_assignments
from galaxyzoo.config.experiment import config_hash, flatten, load_experiment
from galaxyzoo.errors import GalaxyZooError
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]
PER_EPOCH = ("loss", "rmse", "r2_flat", "val_loss", "val_rmse", "val_r2_flat", "lr")
FINAL = ("test_rmse", "test_r2_flat", "test_r2_mean_columns", "test_rmse_cumulative", "test_loss",
         *(f"test_rmse_{q.id}_{q.slug}" for q in schema.QUESTIONS))
# Two trainings of one config on the same data agree this closely on CPU (docs/training.md).
REPRO_ATOL = 1e-5


def _uri(folder: Path) -> str:
    return seeded_uri(folder)  # a copy of an empty store: MLflow's migrations cost seconds (stores.py)


def _cfg(experiment: Path, folder: Path, *overrides: str):
    return load_experiment(experiment, [f"tracking.tracking_uri={_uri(folder)}", *overrides])


def _client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(_uri(folder))


def _artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _train(cfg, experiment: Path, **kwargs):
    from galaxyzoo.training.run import train

    return train(cfg, experiment_file=str(experiment), progress=False, verbose=0, **kwargs)


@pytest.fixture(scope="module")
def first_run(tiny_experiment, tmp_path_factory):
    """One 2-epoch training of the tiny experiment: (tracking folder, config, TrainResult)."""
    folder = tmp_path_factory.mktemp("first-run")
    cfg = _cfg(tiny_experiment, folder, "epochs=2", "tracking.plots=true")
    return folder, cfg, _train(cfg, tiny_experiment)


# ---------------------------------------------------------------- what a run records


def test_run_logs_the_knobs_as_params_and_versions_data_runtime_as_tags(first_run, tmp_path):
    from galaxyzoo.config.experiment import knobs

    folder, cfg, result = first_run
    client = _client(folder)
    run = client.get_run(result.run_id)
    params, tags = run.data.params, run.data.tags
    assert params == knobs(cfg)
    for key, value in flatten(cfg).items():
        if key.startswith("warm_start."):  # a cold start records none (test_warm_start.py: a warm one's tags)
            assert key not in params and key not in tags and cfg.warm_start.init_from is None, key
            continue
        assert params.get(key, tags.get(key)) == value or key in ("name", "description"), key
    for lib in ("keras", "keras_backend", "tensorflow", "mlflow", "numpy", "galaxyzoo"):
        assert tags[f"version.{lib}"], lib
    assert tags["data.kind"] == "synthetic"
    assert len(tags["data.split_id"]) == 12
    assert int(tags["data.n_train"]) + int(tags["data.n_val"]) + int(tags["data.n_test"]) > 100
    assert tags["runtime.precision"] == "float32" and tags["runtime.distribution"] == "none"
    # The description was written for the file; the note says what the command line changed in it
    note = tags["mlflow.note.content"]
    assert note.endswith("Changed from tiny.yaml: train.epochs 1 -> 2.")
    # The callbacks as built, in the config artifact
    text = Path(client.download_artifacts(result.run_id, "config.yaml", str(tmp_path))).read_text()
    early = next(line for line in text.splitlines() if "callback.early_stopping:" in line)
    assert "EarlyStopping(" in early and "monitor=loss" in early and "patience=7" in early
    assert "factor=0.1" in text and "every=10" in text and "append=True" in text
    assert "callback.checkpoint: EpochCheckpoint(" in text


def test_run_logs_every_epoch_and_the_final_test_metrics(first_run):
    folder, _, result = first_run
    client = _client(folder)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for key in PER_EPOCH:
        assert _steps(client, result.run_id, key) == [1, 2], key
    assert _history(client, result.run_id, "lr") == pytest.approx([0.001, 0.001])
    for key in FINAL:
        assert run.data.metrics[key] == pytest.approx(result.metrics[key]), key
    assert 0 < result.metrics["test_rmse"] < 1
    assert result.epochs == 2 and result.resumed_from is None
    assert result.best("val_loss") == min(_history(client, result.run_id, "val_loss"))


def test_run_tags_make_runs_comparable(first_run, tiny_experiment):
    folder, cfg, result = first_run
    tags = _client(folder).get_run(result.run_id).data.tags
    assert tags["experiment_file"] == str(tiny_experiment)
    assert tags["config_hash"] == config_hash(cfg)
    assert (tags["head"], tags["loss"], tags["data.kind"]) == ("sigmoid", "mse", "synthetic")
    assert tags["version.galaxyzoo"] and tags["outcome"] == "completed"
    assert tags["mlflow.runName"] == "tiny"


def test_run_artifacts_log_plots_table_config_and_model(first_run, tmp_path):
    import mlflow

    folder, cfg, result = first_run
    client = _client(folder)
    paths = _artifact_paths(client, result.run_id)
    expected = {"config.yaml", "training_log.csv", "per_question_metrics.csv", "plots/training_curves.png",
                "plots/test_crops.png", *(f"plots/pred_vs_true/{q.id}.png" for q in schema.QUESTIONS)}
    assert expected <= paths

    config_file = client.download_artifacts(result.run_id, "config.yaml", str(tmp_path))
    assert config_hash(load_experiment(config_file)) == config_hash(cfg)
    with open(client.download_artifacts(result.run_id, "training_log.csv", str(tmp_path))) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"loss", "lr", "r2_flat", "rmse", "val_loss"} <= set(rows[0])
    assert "learning_rate" not in rows[0]  # Keras's own key is replaced by the seed's `lr`
    with open(client.download_artifacts(result.run_id, "per_question_metrics.csv", str(tmp_path))) as fh:
        table = list(csv.DictReader(fh))
    assert [r["question"] for r in table] == [q.id for q in schema.QUESTIONS]

    model_dir = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/model", dst_path=str(tmp_path))
    info = mlflow.models.get_model_info(model_dir)
    assert "keras" in info.flavors
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 32, 32, 1)
    assert info.saved_input_example_info is not None
    model = mlflow.keras.load_model(model_dir)
    assert model.predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0).shape == (2, 37)
    # The checkpoint served only a resume; the finished run's folder is gone, and so is the scratch folder
    # its trainer held from the run's creation (galaxyzoo.held_by: how a kill before the checkpoint is seen).
    tags = client.get_run(result.run_id).data.tags
    assert not Path(tags["checkpoint_dir"]).exists()
    held = json.loads(tags["galaxyzoo.held_by"])
    assert held["scratch"].startswith(tempfile.gettempdir()) and not Path(held["scratch"]).exists()


def test_same_config_on_same_data_reproduces_the_metrics(first_run, tiny_experiment):
    folder, cfg, first = first_run
    # The same training without figures (tracking.plots=false): the metrics may not notice.
    second = _train(_cfg(tiny_experiment, folder, "epochs=2"), tiny_experiment)
    assert second.run_id != first.run_id
    client = _client(folder)
    paths = _artifact_paths(client, second.run_id)
    assert "per_question_metrics.csv" in paths and not any(p.startswith("plots/") for p in paths)
    for key in PER_EPOCH:
        np.testing.assert_allclose(_history(client, second.run_id, key), _history(client, first.run_id, key),
                                   atol=REPRO_ATOL, err_msg=key)
    for key in FINAL:
        assert second.metrics[key] == pytest.approx(first.metrics[key], abs=REPRO_ATOL), key


FIT_SCRIPT = textwrap.dedent(
    """
    import sys
    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.training.fit import fit, make_loss

    cfg = load_experiment(sys.argv[1], ["epochs=2"])
    dataset = load_dataset(cfg.data, with_counts=make_loss(cfg.train).needs_counts, progress=False)
    result = fit(cfg, dataset, sys.argv[2], verbose=0)
    print(len(result.history["loss"]), result.model.output_shape[-1], "mlflow" in sys.modules)
    """
)


def test_fit_trains_a_model_without_mlflow(tiny_experiment, tmp_path):
    # The benchmark's path: a trained model, its CSV log and checkpoint folder, and MLflow never imported.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/never.db"}
    done = subprocess.run([sys.executable, "-c", FIT_SCRIPT, str(tiny_experiment), str(tmp_path / "run")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["2", "37", "False"]
    assert (tmp_path / "run" / "training_log.csv").is_file()
    assert not (tmp_path / "never.db").exists()


# ---------------------------------------------------------------- resume


REFIT_EPOCHS = 20  # the head refit's cap in KILL_SCRIPT and beside it: on the tiny data it would run 300
KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from galaxyzoo.training import callbacks, head_refit
    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.training.run import train

    where, kill_epoch = sys.argv[3].split(":")

    def kill_at(epoch):
        if epoch == int(kill_epoch):
            os.kill(os.getpid(), signal.SIGKILL)

    class KillAfterEpoch(keras.callbacks.Callback):
        # Runs after the built-in callbacks, so the epoch is logged and checkpointed.
        def on_epoch_end(self, epoch, logs=None):
            if where == "after-checkpoint":
                kill_at(epoch)

    save = callbacks.EpochCheckpoint.on_epoch_end

    def save_or_die(self, epoch, logs=None):
        # Between the epoch's MLflow metric log (the callback before) and its checkpoint.
        if where == "before-checkpoint":
            kill_at(epoch)
        save(self, epoch, logs)

    callbacks.EpochCheckpoint.on_epoch_end = save_or_die

    class KillInRefit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kill_at(epoch)

    head_refit.MAX_EPOCHS = REFIT_EPOCHS
    fit_head = head_refit.fit_on_features

    def fit_head_or_die(head, data, **kwargs):
        # The head's fit gets one more callback: the training's epochs are all done and checkpointed.
        if where == "refit":
            fit = head.fit
            head.fit = lambda *args, callbacks=(), **kw: fit(*args, callbacks=[*callbacks, KillInRefit()], **kw)
        return fit_head(head, data, **kwargs)

    head_refit.fit_on_features = fit_head_or_die
    from galaxyzoo.registry import packaged
    log_packaged = packaged.log_packaged_model

    def log_packaged_or_die(*args, **kwargs):
        # Both models are logged and READY; the run is not finished yet.
        uri = log_packaged(*args, **kwargs)
        if where == "after-models":
            os.kill(os.getpid(), signal.SIGKILL)
        return uri

    packaged.log_packaged_model = log_packaged_or_die
    cfg = load_experiment(sys.argv[1], sys.argv[4:])
    train(cfg, experiment_file=sys.argv[2], extra_callbacks=[KillAfterEpoch()], progress=False, verbose=0)
    """
).replace("REFIT_EPOCHS", str(REFIT_EPOCHS))


@pytest.fixture(scope="module")
def straight_run(tiny_experiment, tmp_path_factory):
    """An uninterrupted 3-epoch training: (client, TrainResult), what a resumed one must match."""
    folder = tmp_path_factory.mktemp("straight")
    return _client(folder), _train(_cfg(tiny_experiment, folder, "epochs=3"), tiny_experiment)


def _kill_training(tiny_experiment, folder: Path, point: str, overrides: list[str]) -> None:
    """Run KILL_SCRIPT until it SIGKILLs itself at `point`; check nothing of it is left running."""
    import psutil

    script = folder / "kill.py"
    script.write_text(KILL_SCRIPT)
    (folder / "tmp").mkdir(exist_ok=True)  # its own temporary folder: what the kill leaves there can be seen
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(folder / "tmp")}
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_experiment), str(tiny_experiment), point,
                             *overrides], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    left = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == proc.pid:  # its session's process group: any child it started
                left.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    assert left == []


@pytest.mark.slow
@pytest.mark.parametrize("point, logged, checkpointed", [
    ("after-checkpoint:1", [1, 2], 2),
    # Killed after the metric log of epoch 1 but before its checkpoint: the resume trains
    # epoch 1 again, and its metrics must not be logged a second time.
    ("before-checkpoint:1", [1, 2], 1),
    # Killed after the last epoch's checkpoint: nothing left to train on resume.
    ("after-checkpoint:2", [1, 2, 3], 3),
    # Killed after logging both models: the resume logs them again, and only its own stay.
    ("after-models:2", [1, 2, 3], 3),
])
def test_killed_training_resumes_in_the_same_run(point, logged, checkpointed, tiny_experiment, straight_run,
                                                 tmp_path, caplog, monkeypatch):
    import tempfile

    overrides = [f"tracking.tracking_uri={_uri(tmp_path)}", "epochs=3"]
    _kill_training(tiny_experiment, tmp_path, point, overrides)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert list((tmp_path / "tmp").glob("galaxyzoo-train.tmp-*"))  # the folder the killed trainer held

    client = _client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("galaxyzoo").experiment_id])
    assert run.info.status == "RUNNING"  # nobody could end it: the process died
    assert _steps(client, run.info.run_id, "loss") == logged

    cfg = load_experiment(tiny_experiment, overrides)
    with caplog.at_level("INFO", logger="galaxyzoo.training"):  # run, fit and record log
        resumed = _train(cfg, tiny_experiment, resume="auto")
    assert resumed.run_id == run.info.run_id and resumed.resumed_from == checkpointed and resumed.epochs == 3
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert sorted(m.name for m in models) == ["model", "packaged_model"]  # once each, whenever the kill came
    assert list((tmp_path / "tmp").glob("galaxyzoo-*")) == []  # swept by the resume, which holds none of its own
    if checkpointed == 3:  # said so, not "resuming at epoch 4 of 3"
        assert "nothing left to train (all 3 epochs ran)" in caplog.text
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    for key in (*PER_EPOCH, "epoch_seconds"):
        assert _steps(client, run.info.run_id, key) == [1, 2, 3], key  # each step once
    last = _steps(client, run.info.run_id, "loss")[-1]
    for key in (*FINAL, "best_val_rmse"):
        assert _steps(client, run.info.run_id, key) == [last], key  # at the last epoch, once
    with open(client.download_artifacts(run.info.run_id, "training_log.csv", str(tmp_path))) as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["0", "1", "2"]

    # The resumed history is the one an uninterrupted training writes: weights, optimizer
    # state and the shuffling order all continue where they stopped.
    other, straight = straight_run
    for key in PER_EPOCH:
        np.testing.assert_allclose(_history(client, resumed.run_id, key), _history(other, straight.run_id, key),
                                   atol=REPRO_ATOL, err_msg=key)
    for key in FINAL:
        assert resumed.metrics[key] == pytest.approx(straight.metrics[key], abs=REPRO_ATOL), key


@pytest.mark.slow
def test_a_run_killed_during_the_head_refit_refits_again_and_records_it_once(tiny_experiment, tmp_path,
                                                                            monkeypatch):
    """The refit writes nothing until the run records: a kill there replays it from the last checkpoint."""
    from galaxyzoo.training import head_refit

    monkeypatch.setattr(head_refit, "MAX_EPOCHS", REFIT_EPOCHS)
    sets = ["model.head=dirichlet", "train.loss=dirichlet-learned", "epochs=2", "train.refit_head=true"]
    straight = _train(_cfg(tiny_experiment, tmp_path / "straight", *sets), tiny_experiment)
    assert straight.metrics["head_refit_epochs"] > 3  # so a kill at the refit's third epoch is mid-way
    overrides = [f"tracking.tracking_uri={_uri(tmp_path)}", *sets]
    _kill_training(tiny_experiment, tmp_path, "refit:2", overrides)

    client = _client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("galaxyzoo").experiment_id])
    assert run.info.status == "RUNNING" and _steps(client, run.info.run_id, "loss") == [1, 2]
    assert not any(key.startswith("head_refit") or key.startswith("test_") for key in run.data.metrics)
    resumed = _train(load_experiment(tiny_experiment, overrides), tiny_experiment, resume="auto")
    assert resumed.run_id == run.info.run_id and resumed.resumed_from == 2
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    for key in ("head_refit_val_loss_before", "head_refit_val_loss", "head_refit_epochs", "test_rmse"):
        assert _steps(client, run.info.run_id, key) == [2], key  # once, at the last epoch
        assert resumed.metrics[key] == pytest.approx(straight.metrics[key], abs=REPRO_ATOL), key


START_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import mlflow  # the slow imports first, so both processes reach the store together
    from galaxyzoo.tracking import mlflow_runs

    folder, name = Path(sys.argv[1]), sys.argv[2]
    (folder / f"ready-{name}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    # What `train` does before any data is loaded: open the store, the experiment, a run.
    client = mlflow_runs.connect(sys.argv[3])
    client.create_run(mlflow_runs.experiment_id(client, "galaxyzoo"))
    """
)


@pytest.mark.slow
def test_two_trainings_started_at_once_on_a_fresh_store_both_start(tmp_path):
    import time

    script = tmp_path / "start.py"
    script.write_text(START_SCRIPT)
    # Once is enough: without the lock, one of the two crashed on every try (3 of 3).
    fresh = f"sqlite:///{tmp_path / 'mlflow.db'}"  # not seeded: the two processes race to create it
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), name, fresh],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab") and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
    client = _client(tmp_path)
    assert len(client.search_runs([client.get_experiment_by_name("galaxyzoo").experiment_id])) == 2


def test_resume_auto_without_an_unfinished_run_starts_a_new_one(first_run, tiny_experiment):
    folder, cfg, first = first_run
    # first_run finished, so there is nothing to continue.
    from galaxyzoo.tracking import mlflow_runs

    client = _client(folder)
    found = mlflow_runs.find_resumable_run(client, first.experiment_id, str(tiny_experiment), config_hash(cfg))
    assert found is None


def test_resume_auto_closes_runs_killed_before_their_first_checkpoint_that_no_one_trains(tmp_path):
    """Killed in its first epoch, a run has no checkpoint to resume and would stay RUNNING for ever."""
    from mlflow.tracking import MlflowClient

    from galaxyzoo.system.locks import writer_lock
    from galaxyzoo.training import run as training_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("galaxyzoo")
    same = {"config_hash": "abc", "experiment_file": "x.yaml"}
    folders = {name: tmp_path / "runs" / name for name in ("dead", "live", "resumable", "other", "elsewhere")}
    for name, folder in folders.items():
        if name != "elsewhere":  # trained on another machine: its folder and lock are not here to judge
            folder.mkdir(parents=True)
    (folders["resumable"] / "state.json").write_text("{}")
    ids = {name: client.create_run(experiment, tags={**same, "checkpoint_dir": str(folder)}).info.run_id
           for name, folder in folders.items()}
    client.set_tag(ids["other"], "config_hash", "def")
    with writer_lock(folders["live"]):  # as the training that is still in its first epoch holds it
        training_run._close_killed_before_a_checkpoint(client, experiment, "x.yaml", "abc")
    dead = client.get_run(ids["dead"])
    assert dead.info.status == "FAILED" and not folders["dead"].exists()
    assert dead.data.tags["galaxyzoo.closed_why"] == "killed before its first checkpoint: nothing to resume"
    for name in ("live", "resumable", "other"):
        assert client.get_run(ids[name]).info.status == "RUNNING" and folders[name].is_dir()
    assert client.get_run(ids["elsewhere"]).info.status == "RUNNING" and not folders["elsewhere"].exists()


def test_resume_auto_closes_a_run_killed_before_it_named_its_checkpoint_folder(tmp_path):
    """Between creating its run and naming its folder a kill leaves no checkpoint_dir tag: the scratch folder the
    run names from its creation (galaxyzoo.held_by) tells the dead trainer from a live one."""
    import json
    import socket

    from mlflow.tracking import MlflowClient

    from galaxyzoo.system.locks import writer_lock
    from galaxyzoo.training import run as training_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("galaxyzoo")
    same = {"config_hash": "abc", "experiment_file": "x.yaml"}
    held = {name: tmp_path / f"galaxyzoo-train.tmp-{name}" for name in ("dead", "live", "swept")}
    held["dead"].mkdir()
    held["live"].mkdir()  # "swept": a later command removed the killed trainer's unheld folder
    ids = {name: client.create_run(experiment, tags={**same, "galaxyzoo.held_by": json.dumps(
        {"host": socket.gethostname(), "scratch": str(folder)})}).info.run_id for name, folder in held.items()}
    ids["elsewhere"] = client.create_run(experiment, tags={**same, "galaxyzoo.held_by": json.dumps(
        {"host": "another-machine", "scratch": str(tmp_path / "x")})}).info.run_id
    ids["untagged"] = client.create_run(experiment, tags=same).info.run_id  # made before the tag existed
    with writer_lock(held["live"]):  # its trainer is still between creating the run and naming its folder
        training_run._close_killed_before_a_checkpoint(client, experiment, "x.yaml", "abc")
    for name in ("dead", "swept"):
        run = client.get_run(ids[name])
        assert run.info.status == "FAILED", name
        assert run.data.tags["galaxyzoo.closed_why"] == "killed before its first checkpoint: nothing to resume"
    for name in ("live", "elsewhere", "untagged"):
        assert client.get_run(ids[name]).info.status == "RUNNING", name


def test_resume_refuses_finished_unknown_and_differently_configured_runs(first_run, tiny_experiment):
    from galaxyzoo.training.run import train

    folder, cfg, first = first_run
    with pytest.raises(GalaxyZooError, match="already finished"):
        train(cfg, resume=first.run_id)
    with pytest.raises(GalaxyZooError, match="no such run"):
        train(cfg, resume="0" * 32)
    client = _client(folder)
    other = client.create_run(first.experiment_id, tags={"config_hash": "000000000000"})
    with pytest.raises(GalaxyZooError, match="another config"):
        train(cfg, resume=other.info.run_id)


# ---------------------------------------------------------------- command line


def test_set_splits_on_spaces_and_on_commas_before_a_key():
    assert split_assignments("") == []
    assert split_assignments("epochs=2 batch_size=8") == ["epochs=2", "batch_size=8"]
    assert split_assignments("epochs=2,model.conv_filters=[16,32],seed=3") == [
        "epochs=2", "model.conv_filters=[16,32]", "seed=3"]
    # inside quotes a space, a comma before KEY= and a `#` are the value's; the quotes stay for YAML
    assert split_assignments("tracking.tags.note='a b, seed=7 # 2' epochs=3") == [
        "tracking.tags.note='a b, seed=7 # 2'", "epochs=3"]
    assert split_assignments('description="x y",seed=1') == ['description="x y"', "seed=1"]
    with pytest.raises(GalaxyZooError, match="no closing quotation"):
        split_assignments("tracking.tags.note='a b")


def test_a_quoted_set_value_is_one_string(tmp_path):
    """`'null'`, `'1.0'` and text holding `, KEY=` or `#` stay one string, not a null, a float or two keys."""
    assignments = split_assignments("tracking.tags.note='first try, seed=7 # 2' tracking.tags.v='1.0' "
                                    "tracking.run_name='null'")
    cfg = load_experiment(REPO / "experiments" / "quickstart.yaml", assignments)
    assert cfg.tracking.tags == {"note": "first try, seed=7 # 2", "v": "1.0"} and cfg.tracking.run_name == "null"
    assert cfg.train.seed == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--experiment", "missing.yaml"], "missing.yaml: experiment file not found"),
        (["--epochs", "ten"], "train.epochs: expected an integer, got 'ten'"),
        (["--set", "model.head=tanh"], "model.head: expected one of"),
        (["--set", "train.epochz=3"], "unknown key 'train.epochz'"),
        (["--set", "train.loss_params={alpha: 1}"], "train.loss_params"),
        (["--data", "no/such/folder"], "raw GZ2 folder not found"),
    ],
)
def test_bad_input_is_one_line_error(argv, message, tiny_experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--experiment" not in argv:
        argv = ["--experiment", str(tiny_experiment), "--set", f"tracking.tracking_uri={_uri(tmp_path)}", *argv]
    assert main(["train", *argv]) == 2
    # MLflow may log a line of its own first (creating a new database); ours is one line, last.
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("galaxyzoo: error: ") and message in lines[-1]
    assert not any("Traceback" in line for line in lines)
    if (tmp_path / "mlflow.db").exists():  # refused before any run was opened
        client = _client(tmp_path)
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_resume_inside_mlflow_run_is_refused(tiny_experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    argv = ["train", "--experiment", str(tiny_experiment), "--set", f"tracking.tracking_uri={_uri(tmp_path)}",
            "--resume", "auto"]
    assert main(argv) == 2
    assert "cannot be used inside `mlflow run`" in capsys.readouterr().err


# ---------------------------------------------------------------- heads, losses, evaluate


def test_softmax_head_with_dirichlet_loss_trains_and_evaluates_the_same(tiny_experiment, tmp_path, monkeypatch,
                                                                       capsys, caplog, own_tempdir):
    from galaxyzoo.registry.evaluate import evaluate

    cfg = _cfg(tiny_experiment, tmp_path, "head=softmax-per-question", "loss=dirichlet-multinomial",
               "tracking.system_metrics=false", "evaluate.tta=true")
    result = _train(cfg, tiny_experiment)
    run = _client(tmp_path).get_run(result.run_id)
    assert (run.data.tags["head"], run.data.tags["loss"]) == ("softmax-per-question", "dirichlet-multinomial")
    assert not [k for k in run.data.metrics if k.startswith("system/")]  # switched off
    # With test-time augmentation both figures: every test metric, and again with TTA.
    plain = [k for k in run.data.metrics if k.startswith("test_") and not k.endswith("_tta")]
    assert {f"{k}_tta" for k in plain} == {k for k in run.data.metrics if k.endswith("_tta")}
    assert run.data.tags["evaluate.tta"] == "true" and "evaluate.tta" not in run.data.params
    assert run.data.metrics["test_rmse_tta"] != run.data.metrics["test_rmse"]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(tmp_path))
    # MLflow downloads the model and config to load them: nothing may stay behind
    before = sorted(own_tempdir.iterdir())
    scored = evaluate(result.run_id, progress=False)  # a bare run id: its model, its config
    assert sorted(own_tempdir.iterdir()) == before
    assert scored.run_id == result.run_id and scored.n == int(run.data.tags["data.n_test"])
    t05 = next(q for q in schema.QUESTIONS if q.id == "t05")
    for key in ("rmse", "r2_flat", "r2_mean_columns", "rmse_cumulative", f"rmse_t05_{t05.slug}", "rmse_tta"):
        assert scored.metrics[key] == pytest.approx(result.metrics[f"test_{key}"], abs=1e-5), key
    assert list(scored.per_question["question"]) == [q.id for q in schema.QUESTIONS]

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", f"runs:/{result.run_id}/model", "--data", "", "--out", str(out),
                 "--tta", "false"]) == 0  # wins over the run's config
    assert "rmse_cumulative" in capsys.readouterr().out
    assert (out / "metrics.json").is_file() and (out / "per_question_metrics.csv").is_file()
    assert "rmse_tta" not in json.loads((out / "metrics.json").read_text())

    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the store named on the command line instead
    with caplog.at_level("WARNING", logger="galaxyzoo.registry.evaluate"):
        assert main(["evaluate", "--model", result.run_id, "--tracking-uri", _uri(tmp_path),
                     "--experiment", str(tiny_experiment)]) == 0
    printed = capsys.readouterr().out
    assert "rmse_cumulative" in printed and "tta" in printed  # the run's config scores with TTA too
    assert f"--experiment {tiny_experiment} is not used: run {result.run_id}'s own config.yaml is" in caplog.text


def test_evaluate_names_a_model_it_cannot_find(tmp_path, monkeypatch):
    from galaxyzoo.registry.evaluate import evaluate

    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(tmp_path))
    # Neither a run nor a path: said so, rather than asking for the experiment file.
    for missing in (str(tmp_path / "nowhere"), "deadbeef"):
        with pytest.raises(GalaxyZooError, match=f"--model {missing}: no such run in .*local model folder"):
            evaluate(missing, progress=False)
    with pytest.raises(GalaxyZooError, match=f"no such run {'0' * 32} in"):
        evaluate("0" * 32, progress=False)
    # A folder that holds no model: with a config to go on, the model still loads first, so
    # nothing is built for a model that is not there.
    (tmp_path / "empty").mkdir()
    workdir = tmp_path / "data"
    with pytest.raises(GalaxyZooError, match="cannot load a Keras model"):
        evaluate(str(tmp_path / "empty"), experiment_file=str(REPO / "experiments" / "quickstart.yaml"),
                 overrides=[f"data.workdir={workdir}"], progress=False)
    assert not workdir.exists()
    with pytest.raises(GalaxyZooError, match="not logged by a run"):
        evaluate(str(tmp_path / "empty"), progress=False)


@pytest.mark.slow
def test_a_run_being_trained_or_resumed_elsewhere_is_not_resumed_again(tiny_experiment, tmp_path, capsys):
    """Its checkpoint folder's lock: two `--resume auto` at once would both continue one run."""
    from galaxyzoo.system.locks import lock_path, writer_lock

    overrides = [f"tracking.tracking_uri={_uri(tmp_path)}", "epochs=3"]
    _kill_training(tiny_experiment, tmp_path, "after-checkpoint:0", overrides)
    client = _client(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("galaxyzoo").experiment_id])
    checkpoint = Path(run.data.tags["checkpoint_dir"])
    argv = ["train", "--experiment", str(tiny_experiment), "--resume", "auto", "--set", " ".join(overrides)]
    with writer_lock(checkpoint):  # as another process resuming it holds it
        assert main(argv) == 2
    assert f"{checkpoint} is being written by another process" in capsys.readouterr().err
    assert _steps(client, run.info.run_id, "loss") == [1]  # nothing logged by the refused one
    assert main(argv) == 0  # once free, the resume goes on, and leaves no checkpoint nor lock behind
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert not checkpoint.exists() and not lock_path(checkpoint).exists()
