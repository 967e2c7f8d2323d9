"""`data.dataset.load_dataset`: what a training sees of a built dataset."""

import logging
from pathlib import Path

import numpy as np

from galaxyzoo.data import workspace
from galaxyzoo.config.experiment import load_experiment
from galaxyzoo.data.crop import to_unit
from galaxyzoo.data.dataset import load_dataset
from galaxyzoo.data.split import PARTS
from galaxyzoo.data.stream import Augment

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


def test_a_store_rebuilt_after_the_build_checked_it_is_refused_not_half_trained_on(tmp_path, monkeypatch):
    """`prepare --overwrite` started between the workspace build and the training's opening of the store: its
    unwritten rows would read as galaxies without a usable crop, and the training would run on a part."""
    import pytest

    from galaxyzoo.data import dataset as dataset_mod
    from galaxyzoo.data.store import CropStore, branch_code, status_code
    from galaxyzoo.errors import GalaxyZooError

    cfg = load_experiment(REPO / "experiments" / "quickstart.yaml",
                          [f"data.workdir={tmp_path}", "data.synthetic_n=60", "data.image_size=32"])
    built = workspace.build_for(cfg.data, progress=False)
    store = CropStore.open(built[0].store, writable=True)
    store._rows["status"][:20] = status_code("pending")  # what a rebuild has not reached yet
    store._rows["branch"][:20] = branch_code("none")
    store._rows.flush()
    rows = len(store.asset_ids)
    del store
    monkeypatch.setattr(dataset_mod.workspace, "build_for", lambda data_cfg, progress: built)
    with pytest.raises(GalaxyZooError) as err:
        load_dataset(cfg.data, with_counts=False)
    assert str(err.value).startswith(f"{built[0].store}: 20 of its {rows} crops are not written yet")


def test_fit_sequences_augment_the_training_batches_as_the_config_says(tmp_path):
    cfg = load_experiment(REPO / "experiments" / "quickstart.yaml",
                          [f"data.workdir={tmp_path}", "data.synthetic_n=60", "data.image_size=32", "augment=true",
                           "train.augment.rot90=false", "train.augment.flip=false", "train.augment.shift_px=0",
                           "train.augment.blur=1.0", "train.augment.gamma=0.4", "train.augment.colour=0.15",
                           "train.augment.noise=0.03"])
    workspace.build_for(cfg.data, progress=False)
    train_seq, val_seq = load_dataset(cfg.data, with_counts=False).fit_sequences(cfg.train, workers=1)
    assert train_seq.augment == Augment(rot90=False, flip=False, blur=1.0, gamma=0.4, colour=0.15, noise=0.03)
    assert val_seq.augment is None  # validation sees the crops as they are
    # Only the imaging is randomised here: each crop keeps its place, its light is changed.
    x, _ = train_seq[0]
    plain = to_unit(train_seq.images[train_seq.rows[train_seq.order[: len(x)]]])
    assert x.shape == plain.shape and not np.array_equal(x, plain)
    assert np.corrcoef(x.ravel(), plain.ravel())[0, 1] > 0.8
