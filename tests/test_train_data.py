"""`data.dataset.load_dataset`: what a training sees of a built dataset."""

import logging
from pathlib import Path

import numpy as np

from galaxyzoo.data import workspace
from galaxyzoo.config.experiment import load_experiment
from galaxyzoo.data.dataset import load_dataset
from galaxyzoo.data.split import PARTS

REPO = Path(__file__).resolve().parents[1]


def test_galaxies_without_a_usable_crop_are_left_out_and_reported(tmp_path, caplog):
    cfg = load_experiment(REPO / "experiments" / "quickstart.yaml",
                          [f"data.workdir={tmp_path}", "data.synthetic_n=60", "data.image_size=32"])
    ws, split = workspace.build_for(cfg.data, progress=False)
    broken = int(split.test[0])
    # A corrupt JPEG: prepare records it and goes on; the training must not stop on it either.
    (ws.raw / "images" / f"{broken}.jpg").write_bytes(b"not a jpeg")
    store_dir = ws.store
    for path in store_dir.iterdir():
        path.unlink()
    store_dir.rmdir()

    with caplog.at_level(logging.WARNING, logger="galaxyzoo.data.dataset"):
        dataset = load_dataset(cfg.data, with_counts=True)
    assert broken not in dataset.parts["test"].asset_ids
    assert sum(len(dataset.parts[p]) for p in PARTS) == sum(split.counts.values()) - 1
    assert f"1 galaxies have no usable crop and are left out: {broken}" in caplog.text
    test = dataset.parts["test"]
    assert test.counts.shape == test.targets.shape == (len(test), 37)
    assert np.array_equal(dataset.store.asset_ids[test.rows], test.asset_ids)
