"""Predict's crops made in worker processes while the network runs: the same rows as cropping first."""

import numpy as np
import pandas as pd

from galaxyzoo.model.network import build_model
from galaxyzoo.registry import packaged, predict
from galaxyzoo.registry.crops import preprocess


def test_overlapped_crops_give_the_sequential_rows_in_order(real_images_dir, tmp_path):
    network = build_model(input_size=16, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,))
    good = sorted(real_images_dir.glob("*.jpg"))[:6]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    files = [*good[:3], broken, tmp_path / "missing.jpg", *good[3:]]
    # chunks of 2: several chunks, one of them all failures, cropped in 2 processes
    sequential = predict.predict_paths(network, files, 16, 1, chunk=2, workers=1)
    overlapped = predict.predict_paths(network, files, 16, 1, chunk=2, workers=2)
    pd.testing.assert_frame_equal(overlapped, sequential)
    assert list(overlapped["file"]) == [str(f) for f in files]
    assert overlapped.loc[3, "error"].startswith("not a readable image")
    assert overlapped.loc[4, "error"].startswith("cannot read the file")
    assert (overlapped.drop(index=[3, 4])["error"] == "").all()
    crops = np.stack([preprocess(f.read_bytes(), 16, 1)[0] for f in good])
    fractions = overlapped.drop(index=[3, 4])[packaged.ANSWER_COLUMNS].to_numpy()
    np.testing.assert_allclose(fractions, network.predict(crops, verbose=0), atol=1e-6)
