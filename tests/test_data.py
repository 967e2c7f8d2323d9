import os
import sqlite3
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from galaxyzoo import schema
from galaxyzoo.data.stream import Augment, GalaxySequence, Labels, RowReader, augment_batch, photometric_views
from galaxyzoo.errors import GalaxyZooError


@pytest.fixture
def tiny_db(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([11, 5, 42, 7])
    frame = pd.DataFrame(rng.random((4, 37)), columns=schema.target_columns())
    counts = pd.DataFrame(rng.integers(0, 40, (4, 37)), columns=schema.target_columns("count"))
    frame = pd.concat([pd.DataFrame({"asset_id": ids}), frame, counts], axis=1)
    path = tmp_path / "g.sqlite"
    with sqlite3.connect(path) as con:
        frame.to_sql("galaxy_data", con, index=False)
    return path, frame


def test_labels_follow_the_requested_order(tiny_db):
    path, frame = tiny_db
    targets, counts = Labels.read(path, with_counts=True).select(np.array([42, 11]))
    expected = frame.set_index("asset_id").loc[[42, 11]]
    assert np.allclose(targets, expected[schema.target_columns()].to_numpy())
    assert np.array_equal(counts, expected[schema.target_columns("count")].to_numpy())
    assert targets.dtype == np.float32
    assert Labels.read(path).select(np.array([5]))[1] is None
    with pytest.raises(GalaxyZooError, match="no galaxy_data row"):
        Labels.read(path).select(np.array([7, 999]))
    with pytest.raises(GalaxyZooError, match="database not found"):
        Labels.read(path.parent / "missing.sqlite")


def _store(n=10, size=8):
    return np.arange(n * size * size, dtype=np.uint8).reshape(n, size, size, 1)


def test_sequence_batches_cover_split_once_with_matching_labels():
    images = _store()
    rows = np.array([9, 2, 5, 0, 7])
    targets = rows[:, None].astype(np.float32).repeat(37, axis=1)  # label = store row, to check pairing
    seq = GalaxySequence(images, rows, targets, batch_size=2, shuffle=True, seed=3)
    assert len(seq) == 3
    seen = []
    for i in range(len(seq)):
        x, y = seq[i]
        assert x.dtype == np.float32 and x.max() <= 1.0
        for xi, yi in zip(x, y):
            row = int(yi[0])
            assert np.allclose(xi, images[row] / 255.0)
            seen.append(row)
    assert sorted(seen) == sorted(rows.tolist())


def test_shuffle_is_seeded_and_changes_per_epoch():
    rows = np.arange(10)
    targets = rows[:, None].astype(np.float32).repeat(37, axis=1)
    a = GalaxySequence(_store(), rows, targets, batch_size=10, shuffle=True, seed=1)
    b = GalaxySequence(_store(), rows, targets, batch_size=10, shuffle=True, seed=1)
    first = a.order.copy()
    assert np.array_equal(first, b.order)
    a.on_epoch_end()
    assert not np.array_equal(first, a.order)
    assert sorted(a.order) == list(range(10))


def test_counts_are_appended_to_targets():
    rows = np.arange(3)
    targets = np.zeros((3, 37), np.float32)
    counts = np.ones((3, 37), np.float32)
    _, y = GalaxySequence(_store(), rows, targets, counts, batch_size=3)[0]
    assert y.shape == (3, 74) and y[:, 37:].sum() == 3 * 37


def test_augmentation_preserves_content_and_varies():
    x = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 1), dtype=np.uint8)
    out = augment_batch(x, np.random.default_rng(1), Augment(rot90=True, flip=True, shift_px=0))
    assert out.shape == x.shape
    # rotations and flips only permute pixels
    assert np.array_equal(np.sort(out.reshape(16, -1), axis=1), np.sort(x.reshape(16, -1), axis=1))
    assert not np.array_equal(out, x)
    shifted = augment_batch(x, np.random.default_rng(2), Augment(rot90=False, flip=False, shift_px=2))
    assert shifted.sum() <= x.sum()


def _disk_radii(batch: np.ndarray) -> np.ndarray:
    """The equivalent radius of each image's bright region, in pixels."""
    return np.sqrt((batch[..., 0] > 127).reshape(len(batch), -1).sum(axis=1) / np.pi)


@pytest.mark.parametrize("channels", [1, 3])
def test_zoom_scales_about_the_centre_within_its_bounds(channels):
    size, radius = 48, 10.0
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disk = np.where(np.hypot(yy, xx) <= radius, 255, 0).astype(np.uint8)
    x = np.repeat(np.repeat(disk[None, :, :, None], 64, axis=0), channels, axis=3)
    out = augment_batch(x, np.random.default_rng(3), Augment(rot90=False, flip=False, zoom=0.5))
    assert out.shape == x.shape and out.dtype == np.uint8
    scales = _disk_radii(out) / _disk_radii(x)
    assert np.all((scales > 1 / 1.5 - 0.05) & (scales < 1.5 + 0.05))
    assert scales.min() < 0.8 and scales.max() > 1.25  # both ways, not just a nudge
    assert (scales < 1).mean() == pytest.approx(0.5, abs=0.2)  # log-uniform: as often smaller as larger
    # still centred: the zoomed disk's centroid stays at the image centre
    weights = out[..., 0].astype(float)
    assert np.allclose((weights * yy).sum(axis=(1, 2)) / weights.sum(axis=(1, 2)), 0, atol=0.3)
    # the same generator gives the same views; zoom 0 draws nothing, so the other augmentations are unchanged
    again = augment_batch(x, np.random.default_rng(3), Augment(rot90=False, flip=False, zoom=0.5))
    assert np.array_equal(out, again)
    rng = np.random.default_rng(1)
    assert np.array_equal(augment_batch(x, rng, Augment(rot90=False, flip=False, zoom=0.0)), x)
    assert rng.bit_generator.state == np.random.default_rng(1).bit_generator.state


def test_photometric_views_vary_seeing_stretch_colour_and_noise_each_within_its_bounds():
    size = 32
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    blob = (200 * np.exp(-(yy**2 + xx**2) / 40) + 20).astype(np.uint8)
    x = np.repeat(np.repeat(blob[None, :, :, None], 64, axis=0), 3, axis=3)
    plain = Augment(rot90=False, flip=False)

    def views(**settings):
        return augment_batch(x, np.random.default_rng(7), replace(plain, **settings)).astype(float)

    # blur: the peak falls, the total light stays
    blurred = views(blur=2.0)
    assert blurred[:, 16, 16, 0].min() < 200 and blurred[:, 16, 16, 0].max() <= x[0, 16, 16, 0]
    assert np.allclose(blurred.sum(axis=(1, 2)), x[0].astype(float).sum(axis=(0, 1)), rtol=0.02)
    # gamma: a monotonic curve through 0 and 1, brightening some views and darkening others
    stretched = views(gamma=0.5)[..., 0]
    level = stretched[:, 16, 20] / 255
    start = x[0, 16, 20, 0] / 255
    assert level.min() < start - 0.02 and level.max() > start + 0.02
    assert np.all((level >= start**1.5 - 0.01) & (level <= start ** (1 / 1.5) + 0.01))
    assert np.all(stretched[:, 16, 16] > stretched[:, 16, 20]) and np.all(stretched[:, 16, 20] > stretched[:, 16, 26])
    # colour: each channel scaled on its own, within 1 + colour either way
    gains = views(colour=0.2)[:, 16, 16, :] / x[0, 16, 16, :]
    assert np.all((gains > 1 / 1.2 - 0.01) & (gains < 1.2 + 0.01))
    assert np.ptp(gains, axis=1).max() > 0.1  # the channels move apart, not only together
    # noise: zero-mean, at most `noise` of the full scale
    noisy = views(noise=0.05) - x
    assert abs(noisy.mean()) < 0.5 and 0 < noisy.std(axis=(1, 2, 3)).max() < 0.05 * 255 * 1.1
    # a setting at 0 draws nothing: all off, the generator is untouched; noise alone draws only the noise
    rng = np.random.default_rng(1)
    assert np.array_equal(photometric_views(x, rng, Augment()), x)
    assert rng.bit_generator.state == np.random.default_rng(1).bit_generator.state
    rng, by_hand = np.random.default_rng(1), np.random.default_rng(1)
    photometric_views(x, rng, Augment(noise=0.02))
    by_hand.uniform(0.0, 0.02, (len(x), 1, 1, 1)), by_hand.standard_normal(x.shape, dtype=np.float32)
    assert rng.bit_generator.state == by_hand.bit_generator.state
    # all together: uint8 in, uint8 out, and the same generator gives the same views
    both = replace(plain, blur=1.0, gamma=0.3, colour=0.1, noise=0.02)
    out = augment_batch(x, np.random.default_rng(2), both)
    assert out.dtype == np.uint8 and np.array_equal(out, augment_batch(x, np.random.default_rng(2), both))
    assert Augment(rot90=False, flip=False, noise=0.01).enabled


def test_empty_split_is_a_clear_error():
    with pytest.raises(GalaxyZooError, match="empty"):
        GalaxySequence(_store(), np.array([], dtype=int), np.zeros((0, 37), np.float32))


def test_row_reader_matches_the_array_and_reads_any_order(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (20, 6, 6, 3), dtype=np.uint8)
    path = tmp_path / "images.u8"
    images.tofile(path)
    reader = RowReader(path, images.shape)
    assert len(reader) == 20
    for rows in ([3, 4, 5, 9], [19, 0, 7, 8], [2]):
        assert np.array_equal(reader[np.array(rows)], images[rows])
    with pytest.raises(GalaxyZooError, match="truncated"):
        RowReader(path, (21, 6, 6, 3))[np.array([20])]


def test_a_reader_reads_the_store_that_was_opened_not_one_rebuilt_since(tmp_path):
    """A training checked the opened store's rows (none pending), then read images.u8 by its path, which a
    `prepare --overwrite` meanwhile had replaced with a new, mostly unwritten file: zeros trained as galaxies."""
    from galaxyzoo.data.store import CropStore

    store = CropStore.create(tmp_path / "crops", [1, 2, 3], size=4, channels=1)
    assert np.array_equal(RowReader.for_store(store)[np.array([0, 2])], store.images[[0, 2]])
    for name in ("images.u8", "rows.bin", "asset_ids.npy", "meta.json"):  # what prepare --overwrite does
        (tmp_path / "crops" / name).unlink()
    CropStore.create(tmp_path / "crops", [1, 2, 3], size=4, channels=1)
    with pytest.raises(GalaxyZooError, match="crops: rebuilt while it was being opened"):
        RowReader.for_store(store)


def test_a_store_replaced_while_it_is_being_mapped_is_refused(tmp_path, monkeypatch):
    """Its two files are mapped one after the other: a `prepare --overwrite` in between would pair one
    store's rows with another's images."""
    from galaxyzoo.data import store as cs

    cs.CropStore.create(tmp_path / "crops", [1, 2], size=4, channels=1)
    found = iter([(1, 2), (3, 4)])  # the inodes before and after mapping: new files in between
    monkeypatch.setattr(cs, "_inodes", lambda path: next(found))
    with pytest.raises(GalaxyZooError, match="crops: rebuilt while it was being opened"):
        cs.CropStore.open(tmp_path / "crops")


def test_unshuffled_batches_follow_the_rows_order():
    images = _store()
    rows = np.array([9, 2, 5, 0, 7])  # not sorted: predictions must still line up with rows
    seq = GalaxySequence(images, rows, np.zeros((5, 37), np.float32), batch_size=4)
    x = np.concatenate([seq[i][0] for i in range(len(seq))])
    assert np.allclose(x, images[rows] / 255.0)


def test_row_reader_closes_its_file(tmp_path):
    path = tmp_path / "images.u8"
    np.zeros((2, 4, 4, 1), np.uint8).tofile(path)
    reader = RowReader(path, (2, 4, 4, 1))
    fd = reader._fd
    reader.close()
    reader.close()  # twice is harmless
    with pytest.raises(OSError):
        os.fstat(fd)
