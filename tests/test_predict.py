"""`galaxyzoo predict` and the packaged model: raw images in, fractions and tree paths out."""

import base64
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

from galaxyzoo import predict, schema
from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError

MODEL = "models:/predict-test@champion"


@pytest.fixture(scope="module")
def champion(finished_sweep):
    """The finished sweep's best trial, promoted as `predict-test@champion`: (tracking URI, run id)."""
    import mlflow

    from galaxyzoo import promote

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    promoted = promote.promote(mlflow.MlflowClient(uri), sweep_run=result.parent_run_id, model_name="predict-test")
    return uri, promoted.run_id


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_preprocess_is_the_training_crop(tiny_workdir):
    """A raw image through `preprocess` equals its row in the crop store training read."""
    from galaxyzoo import workspace
    from galaxyzoo.store import CropStore

    ws = workspace.locate("synthetic", tiny_workdir, synthetic_n=120, synthetic_seed=0, image_size=32, channels=1)
    store = CropStore.open(ws.store)
    ids = store.asset_ids[:5]
    for asset_id, row in zip(ids, store.rows_for(ids)):
        crop, branch = predict.preprocess((ws.raw / "images" / f"{asset_id}.jpg").read_bytes(), 32, 1)
        assert crop.dtype == np.float32 and crop.shape == (32, 32, 1)
        np.testing.assert_array_equal(np.rint(crop * 255).astype(np.uint8), store.images[row])


def test_packaged_model_on_raw_images(champion, real_images_dir, tmp_path):
    import mlflow

    uri, run_id = champion
    files = sorted(real_images_dir.glob("*.jpg"))[:6]
    model = mlflow.pyfunc.load_model(MODEL)
    frame = pd.DataFrame({"image": [_b64(f) for f in files] + ["bm90IGFuIGltYWdl", "%%%"]})
    out = model.predict(frame)
    assert list(out.columns) == predict.OUTPUT_COLUMNS and len(out) == 8
    good = out.iloc[:6]
    fractions = good[predict.ANSWER_COLUMNS].to_numpy()
    assert np.isfinite(fractions).all() and (fractions >= 0).all() and (fractions <= 1).all()
    assert (good["error"] == "").all() and set(good["crop_branch"]) <= {"center106", "center212", "full", "fallback"}
    assert list(good["most_likely_path"]) == [" > ".join(p) for p in schema.most_likely_path(fractions)]
    # corrupt rows get a reason and NaNs; they do not disturb the others
    assert out.loc[6, "error"].startswith("not a readable image") and np.isnan(out.loc[6, "t06_odd_a14_yes"])
    assert "not base64" in out.loc[7, "error"]
    # the same numbers as the training run's Keras model on the same crops
    network = mlflow.keras.load_model(f"runs:/{run_id}/model")
    crops = np.stack([predict.preprocess(f.read_bytes(), 32, 1)[0] for f in files])
    np.testing.assert_allclose(fractions, network.predict(crops, verbose=0), atol=1e-6)


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
    assert list(table.columns) == ["file", *predict.OUTPUT_COLUMNS] and len(table) == 5
    assert table.loc[table["error"] == "", "most_likely_path"].str.startswith("t01_smooth_or_features").all()


def test_refuses_a_bare_keras_model_and_empty_input(champion, tmp_path):
    _, run_id = champion
    with pytest.raises(GalaxyZooError, match="not a galaxyzoo packaged model"):
        predict.load_packaged(f"runs:/{run_id}/model")
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
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[_b64(f)] for f in files]}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        served = pd.DataFrame(json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    np.testing.assert_allclose(served[predict.ANSWER_COLUMNS], expected[predict.ANSWER_COLUMNS], atol=1e-6)
    assert list(served["most_likely_path"]) == list(expected["most_likely_path"])
