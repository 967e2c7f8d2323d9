"""`galaxyzoo predict` and the packaged model: raw images in, fractions and tree paths out."""

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxyzoo import schema
from galaxyzoo.registry import packaged, predict
from galaxyzoo.registry.crops import preprocess
from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError

MODEL = "models:/predict-test@champion"  # the `champion` fixture (conftest.py)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_preprocess_is_the_training_crop(tiny_workdir):
    """A raw image through `preprocess` equals its row in the crop store training read."""
    from galaxyzoo.data import workspace
    from galaxyzoo.data.store import CropStore

    ws = workspace.locate("synthetic", tiny_workdir, synthetic_n=120, synthetic_seed=0, image_size=32, channels=1)
    store = CropStore.open(ws.store)
    ids = store.asset_ids[:5]
    for asset_id, row in zip(ids, store.rows_for(ids)):
        crop, branch = preprocess((ws.raw / "images" / f"{asset_id}.jpg").read_bytes(), 32, 1)
        assert crop.dtype == np.float32 and crop.shape == (32, 32, 1)
        np.testing.assert_array_equal(np.rint(crop * 255).astype(np.uint8), store.images[row])


def test_packaged_model_on_raw_images(champion, real_images_dir, tmp_path):
    import mlflow

    uri, run_id = champion
    files = sorted(real_images_dir.glob("*.jpg"))[:6]
    model = mlflow.pyfunc.load_model(MODEL)
    frame = pd.DataFrame({"image": [_b64(f) for f in files] + ["bm90IGFuIGltYWdl", "%%%"]})
    out = model.predict(frame)
    assert list(out.columns) == packaged.OUTPUT_COLUMNS and len(out) == 8
    # base64 with line breaks (`base64 FILE`, MIME) is the same image; a JSON null says so
    wrapped = base64.encodebytes(files[0].read_bytes()).decode()
    odd = model.predict(pd.DataFrame({"image": [wrapped, None]}))
    np.testing.assert_allclose(odd.loc[0, packaged.ANSWER_COLUMNS].to_numpy(float),
                               out.loc[0, packaged.ANSWER_COLUMNS].to_numpy(float), rtol=1e-5)
    assert odd.loc[1, "error"] == "no image in this row (null)" and np.isnan(odd.loc[1, "t06_odd_a14_yes"])
    # The caller's row labels are kept, so a join on a filtered frame pairs each image with its own row.
    shuffled = model.predict(frame.iloc[[5, 0, 3]])
    assert list(shuffled.index) == [5, 0, 3]
    pd.testing.assert_frame_equal(shuffled, out.loc[[5, 0, 3]], rtol=1e-5)
    good = out.iloc[:6]
    fractions = good[packaged.ANSWER_COLUMNS].to_numpy()
    assert np.isfinite(fractions).all() and (fractions >= 0).all() and (fractions <= 1).all()
    assert (good["error"] == "").all() and set(good["crop_branch"]) <= {"center106", "center212", "full", "fallback"}
    assert list(good["most_likely_path"]) == [" > ".join(p) for p in schema.most_likely_path(fractions)]
    # corrupt rows get a reason and NaNs; they do not disturb the others
    assert out.loc[6, "error"].startswith("not a readable image") and np.isnan(out.loc[6, "t06_odd_a14_yes"])
    assert "not base64" in out.loc[7, "error"]
    # the same numbers as the training run's Keras model on the same crops
    network = mlflow.keras.load_model(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    crops = np.stack([preprocess(f.read_bytes(), 32, 1)[0] for f in files])
    np.testing.assert_allclose(fractions, network.predict(crops, verbose=0), atol=1e-6)


def test_the_tta_param_reaches_the_packaged_model_and_an_older_model_still_predicts(champion, real_images_dir,
                                                                                   tmp_path):
    import mlflow
    from mlflow.models import Model, ModelSignature

    from galaxyzoo.model.tta import average_over_views

    files = sorted(real_images_dir.glob("*.jpg"))[:3]
    frame = pd.DataFrame({"image": [_b64(f) for f in files]})
    model = mlflow.pyfunc.load_model(MODEL)
    assert packaged.takes_tta(model)
    network = model.unwrap_python_model().network  # the run's Keras model (test_packaged_model_on_raw_images)
    crops = np.stack([preprocess(f.read_bytes(), 32, 1)[0] for f in files])
    tta = model.predict(frame, params={"tta": True})[packaged.ANSWER_COLUMNS].to_numpy()
    np.testing.assert_allclose(tta, average_over_views(network.predict_on_batch, crops), atol=1e-6)
    plain = model.predict(frame)[packaged.ANSWER_COLUMNS].to_numpy()  # the signature's default: no TTA
    np.testing.assert_allclose(plain, network.predict_on_batch(crops), atol=1e-6)
    assert not np.allclose(tta, plain, atol=1e-5)

    # A model packaged before the param existed: this one, its signature without params.
    old_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=MODEL, dst_path=str(tmp_path / "old")))
    meta = Model.load(old_dir)
    meta.signature = ModelSignature(inputs=meta.signature.inputs, outputs=meta.signature.outputs)
    meta.save(old_dir / "MLmodel")
    old = packaged.load_packaged(str(old_dir))
    assert not packaged.takes_tta(old)
    np.testing.assert_allclose(old.predict(frame)[packaged.ANSWER_COLUMNS].to_numpy(), plain, atol=1e-6)
    with pytest.raises(GalaxyZooError, match="--tta: .* was packaged before test-time augmentation"):
        predict.predict_files(str(old_dir), files, tmp_path / "preds.csv", progress=False, tta=True)


def test_cli_writes_one_row_per_file_and_reports_bad_ones(champion, real_images_dir, tmp_path, capsys):
    uri, _ = champion
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(real_images_dir.glob("*.jpg"))[:3]:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model", MODEL, str(folder), str(tmp_path / "missing.jpg"), "--out", str(out),
                 "--tracking-uri", uri])
    assert code == 0
    captured = capsys.readouterr()
    assert "3 of 5 images predicted, 2 failed" in captured.out
    assert "broken.jpg: not a readable image" in captured.err and "missing.jpg: cannot read the file" in captured.err
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["file", *packaged.OUTPUT_COLUMNS] and len(table) == 5
    assert table.loc[table["error"] == "", "most_likely_path"].str.startswith("t01_smooth_or_features").all()


def test_all_bad_inputs_exit_2_each_reported_once_with_a_row(champion, tmp_path, capsys):
    uri, _ = champion
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")  # dangling
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", MODEL, str(folder), str(folder / "broken.jpg"), "--out", str(out),
                 "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("broken.jpg: not a readable image") == 1 and err.count("gone.jpg: cannot read the file") == 1
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table["file"]) == [str(folder / "broken.jpg"), str(folder / "gone.jpg")]


def test_a_failed_write_keeps_the_old_csv(champion, real_images_dir, tmp_path, monkeypatch):
    uri, _ = champion
    out = tmp_path / "preds.csv"
    out.write_text("earlier results\n")

    def write_half_then_fail(self, path, **kwargs):
        Path(path).write_text("file,t01")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        predict.predict_files(MODEL, [real_images_dir], out, progress=False, overwrite=True, tracking_uri=uri)
    assert out.read_text() == "earlier results\n" and [p.name for p in tmp_path.iterdir()] == ["preds.csv"]


def test_a_killed_predict_leaves_the_old_csv_and_its_rerun_sweeps_the_temporary_folder(champion, real_images_dir,
                                                                                       tmp_path):
    from test_kill import assert_nothing_left, kill_when, start

    uri, _ = champion
    out = tmp_path / "preds.csv"
    out.write_text("earlier results\n")
    args = ["-m", "galaxyzoo", "predict", "--model", MODEL, real_images_dir, "--out", out, "--overwrite",
            "--tracking-uri", uri]
    proc = start(*args)
    # mid-run: its output is still temporary
    kill_when(proc, lambda: any(p.is_dir() for p in tmp_path.glob("preds.csv.tmp-*")))
    assert_nothing_left(proc)
    assert out.read_text() == "earlier results\n"
    assert [p.name for p in tmp_path.glob("preds.csv.tmp-*") if p.is_dir()], "the kill left its temporary folder"

    assert main([str(a) for a in args[2:]]) == 0
    assert len(pd.read_csv(out)) == len(list(real_images_dir.glob("*.jpg")))
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # the killed run's folder and lock are gone


def test_served_json_has_null_not_nan_for_a_bad_image(champion, real_images_dir, monkeypatch):
    import mlflow
    from mlflow.pyfunc.scoring_server import predictions_to_json

    frame = pd.DataFrame({"image": [_b64(sorted(real_images_dir.glob("*.jpg"))[0]), "bm90IGFuIGltYWdl"]})
    model = mlflow.pyfunc.load_model(MODEL)
    assert (model.predict(frame)[packaged.ANSWER_COLUMNS].dtypes == "float64").all()  # Python callers: NaN
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")  # what `mlflow models serve` sets
    served = io.StringIO()
    predictions_to_json(model.predict(frame), served)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")  # as JavaScript's JSON.parse would

    good, bad = json.loads(served.getvalue(), parse_constant=refuse)["predictions"]
    assert all(isinstance(good[c], float) for c in packaged.ANSWER_COLUMNS)
    assert all(bad[c] is None for c in packaged.ANSWER_COLUMNS) and bad["error"].startswith("not a readable")


def test_refuses_a_bare_keras_model_and_empty_input(champion, tmp_path):
    _, run_id = champion
    with pytest.raises(GalaxyZooError, match="not a galaxyzoo packaged model"):
        packaged.load_packaged(f"runs:/{run_id}/model")
    with pytest.raises(GalaxyZooError, match="no .jpg/.jpeg/.png images in this folder"):
        predict.collect_images([tmp_path])


@pytest.mark.slow
def test_mlflow_models_serve_gives_the_same_results(champion, real_images_dir, tmp_path):
    import mlflow

    uri, _ = champion
    files = sorted(real_images_dir.glob("*.jpg"))[:3]
    expected = mlflow.pyfunc.load_model(MODEL).predict(pd.DataFrame({"image": [_b64(f) for f in files]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", MODEL, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the model server did not start"
                time.sleep(1)
        rows = [[_b64(f)] for f in files] + [["bm90IGFuIGltYWdl"]]  # the last one is not an image
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        answer = urllib.request.urlopen(request, timeout=60).read()
        # strict, as JavaScript's JSON.parse: NaN is no JSON
        predictions = json.loads(answer, parse_constant=lambda c: pytest.fail(f"{c} in the JSON answer"))
        served = pd.DataFrame(predictions["predictions"][:-1])
        assert all(predictions["predictions"][-1][c] is None for c in packaged.ANSWER_COLUMNS)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    np.testing.assert_allclose(served[packaged.ANSWER_COLUMNS], expected[packaged.ANSWER_COLUMNS], atol=1e-6)
    assert list(served["most_likely_path"]) == list(expected["most_likely_path"])


def test_loading_the_model_leaves_no_download_behind(champion, real_images_dir, tmp_path, own_tempdir):
    """MLflow copies a run's model into a new temporary folder to load it; none may pile up in /tmp."""
    uri, run_id = champion
    files = sorted(real_images_dir.glob("*.jpg"))[:2]
    summary = predict.predict_files(f"runs:/{run_id}/packaged_model", files, tmp_path / "p.csv", progress=False,
                                    tracking_uri=uri, workers=1)
    assert summary.total == 2 and not summary.failed and list(own_tempdir.iterdir()) == []
