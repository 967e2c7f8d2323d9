"""`galaxyzoo predict`'s inputs and --out, checked before any model is loaded: no user file is lost."""

import os

import pytest

from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.registry import predict

# No such model: a refusal of --out must come before the model is even looked up.
NO_MODEL = "models:/no-such-model@champion"


@pytest.fixture
def images(real_images_dir, tmp_path):
    """A folder with two real JPEGs: (folder, [their paths])."""
    folder = tmp_path / "in"
    folder.mkdir()
    files = []
    for f in sorted(real_images_dir.glob("*.jpg"))[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
        files.append(folder / f.name)
    return folder, files


def _predict(folder, out, *extra):
    return main(["predict", "--model", NO_MODEL, str(folder), "--out", str(out),
                 "--tracking-uri", f"sqlite:///{folder.parent / 'mlflow.db'}", *extra])


def _left_over(folder):
    """atomic_output's temporary folders and their locks (`<out>.tmp-XXXXXXXX[.lock]`)."""
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_refuses_an_existing_out_unless_overwrite(images, capsys):
    folder, _ = images
    out = folder.parent / "preds.csv"
    out.write_text("earlier results\n")
    assert _predict(folder, out) == 2
    err = capsys.readouterr().err
    assert f"galaxyzoo: error: --out {out}: the file exists; pass --overwrite" in err and len(err.splitlines()) == 1
    assert out.read_text() == "earlier results\n"
    # with --overwrite the check passes and the next step (opening the model's store) is what fails
    assert _predict(folder, out, "--overwrite") == 2
    assert "no such database" in capsys.readouterr().err
    assert out.read_text() == "earlier results\n" and _left_over(folder.parent) == []


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_never_overwrites_an_input_image(images, capsys, overwrite):
    folder, files = images
    before = files[0].read_bytes()
    assert _predict(folder, files[0], *overwrite) == 2
    assert "is one of the input images" in capsys.readouterr().err
    link = folder.parent / "link.csv"  # another name for the same input
    link.symlink_to(files[1])
    assert _predict(folder, link, *overwrite) == 2
    assert "is one of the input images" in capsys.readouterr().err
    assert files[0].read_bytes() == before and files[1].is_file()


def test_refuses_a_folder_or_unwritable_out_before_any_work(images, capsys):
    folder, _ = images
    assert _predict(folder, folder) == 2
    assert f"--out {folder}: is a folder" in capsys.readouterr().err
    not_a_folder = folder.parent / "plain-file"
    not_a_folder.write_text("x")
    assert _predict(folder, not_a_folder / "preds.csv") == 2
    err = capsys.readouterr().err
    assert f"--out {not_a_folder / 'preds.csv'}: {not_a_folder} is a file, not a folder" in err
    assert "cannot load model" not in err  # refused before the model was looked up


def test_refuses_an_out_that_is_not_a_csv_and_an_empty_image_argument(images, capsys):
    folder, _ = images
    assert _predict(folder, folder.parent / "preds.parquet") == 2  # pandas wrote CSV text into it
    assert "preds.parquet: predict writes CSV; name a .csv, .csv.gz, .csv.bz2, .csv.xz file" in capsys.readouterr().err
    assert _predict(folder, folder.parent / "preds.CSV.GZ", "--overwrite") == 2  # accepted: the model is what fails
    assert "no such database" in capsys.readouterr().err
    with pytest.raises(GalaxyZooError, match="an image argument is empty"):  # "$DIR" unset: not the current folder
        predict.collect_images(["", folder])
    assert not list(folder.parent.glob("preds*"))


def test_atomic_output_without_overwrite_keeps_a_file_another_process_wrote_meanwhile(tmp_path):
    """`check_out` looks before the work; two predicts into one new --out both passed it, and the second
    replaced the first's predictions without a word."""
    out = tmp_path / "preds.csv"
    with pytest.raises(GalaxyZooError, match="another process wrote this file while this one worked; pass --overwrite"):
        with predict.atomic_output(out, overwrite=False) as tmp:
            tmp.write_text("second\n")
            out.write_text("first\n")  # the other predict finished first
    assert out.read_text() == "first\n" and sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]
    with predict.atomic_output(tmp_path / "new.csv", overwrite=False) as tmp:
        tmp.write_text("mine\n")
    assert (tmp_path / "new.csv").read_text() == "mine\n"
    with predict.atomic_output(out) as tmp:  # --overwrite
        tmp.write_text("second\n")
    assert out.read_text() == "second\n"


def test_atomic_output_keeps_the_old_file_when_the_block_fails(tmp_path):
    out = tmp_path / "preds.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with predict.atomic_output(out) as tmp:
            tmp.write_text("half a ta")
            raise RuntimeError("killed halfway")
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]
    with predict.atomic_output(out) as tmp:
        tmp.write_text("new\n")
    assert out.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the usual mode, not mkstemp's 0600


def test_atomic_output_removes_the_folders_it_made_when_the_block_fails(tmp_path):
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "new" / "deeper" / "preds.csv"
    with pytest.raises(RuntimeError):
        with predict.atomic_output(out):
            assert out.parent.is_dir()  # made before the work, so a bad path fails first
            raise RuntimeError("the model would not load")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and not any((tmp_path / "kept").iterdir())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_each_file_once_and_a_dangling_symlink_gets_a_row(images):
    folder, files = images
    (folder / "gone.jpg").symlink_to(folder / "deleted-long-ago.jpg")
    collected = predict.collect_images([folder, files[0], str(files[0])])
    assert collected == sorted([*files, folder / "gone.jpg"])


def test_links_of_other_names_to_one_file_each_get_their_row(images, tmp_path):
    """A symlink farm (a DVC or git-annex cache) names one file many times: each name is a galaxy of its own."""
    _, files = images
    farm = tmp_path / "farm"
    farm.mkdir()
    for i in range(3):
        (farm / f"galaxy{i}.jpg").symlink_to(files[0])
    assert predict.collect_images([farm, farm / "galaxy1.jpg"]) == [farm / f"galaxy{i}.jpg" for i in range(3)]


def test_a_model_packaged_by_an_earlier_layout_is_one_clear_line(tmp_path, monkeypatch):
    # Its pickle names a class at a module path this galaxyzoo has not (galaxyzoo.predict, before the layout).
    import importlib
    import sys

    import mlflow

    from galaxyzoo.registry.packaged import load_packaged

    (tmp_path / "gz_old_layout.py").write_text(
        "import mlflow.pyfunc\n\n\nclass PackagedModel(mlflow.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input):\n        return model_input\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    old = importlib.import_module("gz_old_layout")
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=old.PackagedModel(), pip_requirements=[])
    (tmp_path / "gz_old_layout.py").unlink()
    monkeypatch.delitem(sys.modules, "gz_old_layout")
    earlier = r"it was packaged by an earlier galaxyzoo \(No module named 'gz_old_layout'\)"
    with pytest.raises(GalaxyZooError, match=earlier):
        load_packaged(str(tmp_path / "model"))


def test_refuses_workers_below_one_before_any_work(images, capsys):
    folder, _ = images
    assert _predict(folder, folder.parent / "preds.csv", "--workers", "0") == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_a_device_or_pipe_is_never_replaced_and_a_link_keeps_pointing_at_what_it_wrote(images, tmp_path, capsys):
    folder, _ = images
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    stdout = tmp_path / "stdout.csv"
    stdout.symlink_to("/dev/null")
    for out in (fifo, stdout):
        assert _predict(folder, out, "--overwrite") == 2
        assert f"--out {out}: is not a regular file (a device, pipe or socket)" in capsys.readouterr().err
    assert fifo.is_fifo() and stdout.is_symlink() and os.readlink(stdout) == "/dev/null"
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    with predict.atomic_output(link) as tmp:
        tmp.write_text("new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_a_pipe_or_a_name_a_csv_cannot_hold_among_the_inputs_is_refused_before_any_work(images, tmp_path):
    folder, files = images
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(GalaxyZooError, match="pipe.jpg: is not a regular file or folder"):
        predict.collect_images([fifo, *files])  # it would be read for ever
    odd = folder / os.fsdecode(b"caf\xe9.jpg")
    odd.write_bytes(files[0].read_bytes())
    with pytest.raises(GalaxyZooError, match=r"image .*caf\\udce9\.jpg: the name is not valid UTF-8; rename it"):
        predict.collect_images([folder])
    odd.unlink()
    (folder / "cr\rx.jpg").write_bytes(files[0].read_bytes())  # csv leaves a bare CR unquoted: a row split in two
    with pytest.raises(GalaxyZooError, match=r"image '.*cr\\rx\.jpg': the name holds a carriage return; rename it"):
        predict.collect_images([folder])


def test_a_damaged_packaged_model_is_one_line(tmp_path):
    import mlflow

    from galaxyzoo.registry.packaged import load_packaged

    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "link").symlink_to("/nonexistent")  # MLflow's copy of the folder fails on it
    with pytest.raises(GalaxyZooError, match=r"cannot load model '.*folder': its files are damaged or incomplete"):
        load_packaged(str(tmp_path / "folder"))
    mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=mlflow.pyfunc.PythonModel(), pip_requirements=[])
    pickled = next((tmp_path / "m").rglob("python_model.pkl"))
    pickled.write_bytes(pickled.read_bytes()[:20])
    with pytest.raises(GalaxyZooError, match=r"its files are damaged or incomplete \(UnpicklingError"):
        load_packaged(str(tmp_path / "m"))


@pytest.mark.parametrize("command", ["predict", "embed", "evaluate"])
def test_a_registered_model_outside_its_store_names_the_store_and_creates_none(images, tmp_path, monkeypatch, capsys,
                                                                               command):
    """Run away from the project folder, MLflow would make an empty ./mlflow.db and say the model is not
    registered, as if promote had failed."""
    folder, _ = images
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    images = [] if command == "evaluate" else [str(folder)]
    out = tmp_path / ("out.csv" if command == "predict" else "out.parquet")
    assert main([command, *images, "--model", NO_MODEL, "--out", str(out)]) == 2
    assert f"no such database {elsewhere / 'mlflow.db'}; name the store" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == [] and not out.exists()
