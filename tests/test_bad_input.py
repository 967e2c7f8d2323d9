"""Bad input ends in one line on stderr and exit 2: never a traceback, never a run left behind for it."""

import json
import shutil
from pathlib import Path

import pytest

from galaxyzoo.cli import main
from galaxyzoo.config.experiment import config_hash, load_experiment
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking import names
from stores import seeded_uri

REPO = Path(__file__).resolve().parents[1]


def _uri(folder: Path) -> str:
    return seeded_uri(folder)  # a copy of an empty store: MLflow's migrations cost seconds (stores.py)


def _client(folder: Path):
    import mlflow

    return mlflow.MlflowClient(_uri(folder))


def _error_line(capsys) -> str:
    """The one error line the CLI printed (MLflow may log lines of its own before it)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines), lines
    assert lines[-1].startswith("galaxyzoo: error: "), lines
    return lines[-1]


def _runs(folder: Path) -> list:
    client = _client(folder)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


# ---------------------------------------------------------------- experiment and sweep files


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text file (byte 0 is not UTF-8)"),
    (b"", "the experiment file is empty"),
    (b"# only a comment\n", "the experiment file is empty"),
])
def test_unreadable_or_empty_experiment_file_is_refused(content, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    assert main(["train", "--experiment", str(path)]) == 2
    line = _error_line(capsys)
    assert f"{path}: " in line and message in line
    assert not (tmp_path / "mlflow.db").exists()  # refused before any store was touched


@pytest.mark.parametrize("content, message", [(b"\xff\x00", "not a text file"), (b"", "the sweep file is empty")])
def test_sweep_files_share_the_reader(content, message, tmp_path):
    from galaxyzoo.config.sweep_spec import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_bytes(content)
    with pytest.raises(GalaxyZooError, match=message):
        load_sweep(path)


def test_unterminated_quote_in_set_is_one_line(tiny_experiment, capsys):
    assert main(["train", "--experiment", str(tiny_experiment), "--set", "tracking.tags.x='unterminated"]) == 2
    line = _error_line(capsys)
    assert "--set \"tracking.tags.x='unterminated\": no closing quotation (')" in line


def test_unknown_tracking_scheme_is_one_line(tiny_experiment, capsys):
    argv = ["train", "--experiment", str(tiny_experiment), "--set", "tracking.tracking_uri=notascheme://foo"]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "tracking URI 'notascheme://foo': MLflow has no store for the scheme 'notascheme'" in line


def test_a_file_that_is_not_a_database_is_one_line(tiny_experiment, tmp_path, capsys):
    (tmp_path / "mlflow.db").write_text("not sqlite")
    argv = ["train", "--experiment", str(tiny_experiment), "--set", f"tracking.tracking_uri={_uri(tmp_path)}"]
    assert main(argv) == 2
    assert f"cannot use {tmp_path / 'mlflow.db'} as an MLflow store" in _error_line(capsys)
    assert (tmp_path / "mlflow.db").read_text() == "not sqlite"


@pytest.mark.parametrize("tag", ["config_hash", "data.kind", "galaxyzoo.held_by"])
def test_a_tag_galaxyzoo_sets_itself_is_refused_before_a_run_exists(tiny_experiment, tmp_path, capsys, tag):
    """`tracking.tags.config_hash=mine` would overwrite the run's own tag and hide it from --resume."""
    argv = ["train", "--experiment", str(tiny_experiment), "--set",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'} tracking.tags={{'{tag}':mine}}"]
    assert main(argv) == 2
    assert f"tracking.tags.{tag}: is a tag galaxyzoo sets itself" in _error_line(capsys)
    assert not (tmp_path / "mlflow.db").exists()


# ---------------------------------------------------------------- small command-line values


def test_evaluate_batch_size_zero_is_refused(tmp_path, capsys):
    assert main(["evaluate", "--model", "0" * 32, "--batch-size", "0", "--tracking-uri", _uri(tmp_path)]) == 2
    assert "--batch-size: must be at least 1, got 0" in _error_line(capsys)


def test_evaluate_out_that_cannot_be_a_folder_is_refused_before_the_model_is_looked_up(tmp_path, capsys):
    taken = tmp_path / "results.txt"
    taken.write_text("")
    assert main(["evaluate", "--model", "0" * 32, "--out", str(taken), "--tracking-uri", _uri(tmp_path)]) == 2
    assert _error_line(capsys) == f"galaxyzoo: error: --out {taken}: {taken} is a file, not a folder"


def test_evaluate_leaves_no_empty_out_folder_when_it_fails(tmp_path, capsys):
    out = tmp_path / "results" / "run-1"
    assert main(["evaluate", "--model", "0" * 32, "--out", str(out), "--tracking-uri", _uri(tmp_path)]) == 2
    assert "--model " + "0" * 32 + ": no such run" in _error_line(capsys)
    assert not (tmp_path / "results").exists()


def test_a_data_folder_without_images_is_one_line(tiny_experiment, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()  # the CSVs could be there; the images are not
    argv = ["train", "--experiment", str(tiny_experiment), "--data", str(raw),
            "--set", f"tracking.tracking_uri={_uri(tmp_path)}"]
    assert main(argv) == 2
    assert _error_line(capsys).startswith(f"galaxyzoo: error: {raw / 'images'}: cannot list the image folder (")
    assert _runs(tmp_path) == []


def test_evaluate_unknown_model_says_no_such_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--model", "deadbeef", "--tracking-uri", _uri(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "--model deadbeef: no such run in" in line and "--experiment" not in line


def test_download_negative_retries_is_refused(tmp_path, capsys):
    # The URL is never contacted: the value is refused first.
    argv = ["download", "--out", str(tmp_path / "raw"), "--only", "mapping", "--mirror", "http://127.0.0.1:9",
            "--retries", "-1"]
    assert main(argv) == 2
    assert "--retries: must be 0 or more, got -1" in _error_line(capsys)
    argv[-2:] = ["--timeout", "inf"]  # the socket layer would overflow on it, after the download started
    assert main(argv) == 2
    assert "--timeout: must be greater than 0 and at most 86400 seconds, got inf" in _error_line(capsys)


# ---------------------------------------------------------------- data


def test_no_usable_crop_is_refused_before_a_run_exists(tmp_path, capsys):
    from galaxyzoo.data import workspace

    overrides = [f"data.workdir={tmp_path / 'data'}", "data.synthetic_n=40", "data.image_size=32",
                 f"tracking.tracking_uri={_uri(tmp_path)}"]
    cfg = load_experiment(REPO / "experiments" / "quickstart.yaml", overrides)
    ws, _ = workspace.build_for(cfg.data, progress=False)
    for image in (ws.raw / "images").iterdir():
        image.write_bytes(b"not a jpeg")  # every image corrupt: prepare keeps none
    for path in ws.store.iterdir():
        path.unlink()
    ws.store.rmdir()

    argv = ["train", "--experiment", str(REPO / "experiments" / "quickstart.yaml"), "--set", " ".join(overrides)]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert str(ws.raw) in line and "has a usable crop" in line
    assert _runs(tmp_path) == []  # no FAILED run left behind


def test_non_finite_loss_stops_and_fails_the_run_with_its_reason(tiny_experiment, tmp_path, capsys, monkeypatch):
    from keras import ops

    from galaxyzoo.model import losses

    # A NaN loss whatever the data and the weights (a huge learning rate gives one only when the
    # weights happen to overflow rather than saturate the sigmoids, which the data decides).
    monkeypatch.setattr(losses.TargetMSE, "call", lambda self, y_true, y_pred: ops.mean(
        ops.square(y_pred - self._split(y_true)[0]), axis=-1) * float("nan"))
    argv = ["train", "--experiment", str(tiny_experiment), "--set",
            f"tracking.tracking_uri={_uri(tmp_path)} epochs=2"]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "training stopped at epoch 1, batch" in line and "the loss is nan" in line
    assert "galaxy_data.sqlite" in line  # the labels it trained on
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["outcome"] == "failed"
    assert run.data.tags["failure_reason"] == line.removeprefix("galaxyzoo: error: ")
    assert not (Path(run.data.tags["checkpoint_dir"]) / "state.json").exists()  # the bad epoch is not saved
    assert run.data.metrics == {}  # nor logged


# ---------------------------------------------------------------- damaged checkpoints


@pytest.fixture
def killed_run(tiny_experiment, tmp_path):
    """A run as a killed training leaves it (RUNNING, a checkpoint folder), to damage: (client, run id, folder)."""
    from galaxyzoo.tracking import mlflow_runs

    cfg = load_experiment(tiny_experiment, [f"tracking.tracking_uri={_uri(tmp_path)}"])
    client = mlflow_runs.connect(_uri(tmp_path))
    tags = {names.TAG_CONFIG_HASH: config_hash(cfg), names.TAG_EXPERIMENT_FILE: str(tiny_experiment)}
    run_id = client.create_run(mlflow_runs.experiment_id(client, cfg.tracking.experiment_name), tags=tags).info.run_id
    folder = Path(cfg.data.workdir) / "runs" / run_id  # where train keeps a run's checkpoint
    folder.mkdir(parents=True)
    client.set_tag(run_id, names.TAG_CHECKPOINT_DIR, str(folder))
    yield client, run_id, folder
    shutil.rmtree(folder)


@pytest.mark.parametrize("resume", ["id", "auto"])
def test_damaged_checkpoint_state_is_one_line_and_leaves_the_run_as_it_was(resume, killed_run, tiny_experiment,
                                                                           tmp_path, capsys):
    client, run_id, folder = killed_run
    (folder / "state.json").write_text('{"next_epoch": 2, "seed_gen')  # cut off mid-write
    argv = ["train", "--experiment", str(tiny_experiment), "--set", f"tracking.tracking_uri={_uri(tmp_path)}",
            "--resume", run_id if resume == "id" else "auto"]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert f"{folder / 'state.json'}: damaged checkpoint (not JSON" in line and f"remove {folder}" in line
    assert client.get_run(run_id).info.status == "RUNNING"
    assert len(_runs(tmp_path)) == 1


def test_damaged_checkpoint_weights_fail_the_run_with_the_reason(killed_run, tiny_experiment, tmp_path, capsys):
    client, run_id, folder = killed_run
    weights = "checkpoint-epoch0001.weights.h5"
    (folder / "state.json").write_text(json.dumps({"next_epoch": 1, "weights": weights, "best_weights": None,
                                                   "seed_generators": [], "callbacks": {}}))
    (folder / weights).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    argv = ["train", "--experiment", str(tiny_experiment), "--set", f"tracking.tracking_uri={_uri(tmp_path)}",
            "--resume", run_id]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert f"{folder / weights}: damaged checkpoint (" in line
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"] in line
    assert (folder / weights).is_file()  # kept: the user decides what to do with it
