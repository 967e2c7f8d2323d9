"""Streaming input pipelines: batches of crops and targets, in bounded memory.

The crops live in one uint8 store on disk (`galaxyzoo.data.store`); a batch is
read from it on demand (`RowReader`), optionally augmented and scaled to
[0, 1] float32 (`crop.to_unit`). Nothing ever holds a float32 copy of the whole set (the original
study needed 8 GB of RAM for 179k images).

`GalaxySequence` is a `keras.utils.PyDataset`, so the same pipeline feeds
Keras on TensorFlow, JAX or PyTorch; background workers prefetch batches while
the model trains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from galaxyzoo import schema
from galaxyzoo.data.crop import to_unit
from galaxyzoo.data.ingest import read_galaxy_data
from galaxyzoo.data.store import rebuilt_meanwhile
from galaxyzoo.errors import GalaxyZooError


@dataclass(frozen=True)
class Augment:
    """Label-preserving augmentations: galaxies have no preferred orientation, and the
    survey's seeing, stretch, colour balance and noise are not part of the morphology."""

    rot90: bool = True
    flip: bool = True
    shift_px: int = 0  # largest shift in pixels along each axis (zero-filled)
    zoom: float = 0.0  # largest relative change of scale (see `augment_batch`)
    blur: float = 0.0  # largest extra Gaussian blur sigma, pixels
    gamma: float = 0.0  # largest relative change of the stretch's exponent
    colour: float = 0.0  # largest relative change of each channel's gain
    noise: float = 0.0  # largest added Gaussian noise sigma, in units of the full scale (255)

    @property
    def photometric(self) -> bool:
        return self.blur > 0 or self.gamma > 0 or self.colour > 0 or self.noise > 0

    @property
    def enabled(self) -> bool:
        return self.rot90 or self.flip or self.shift_px > 0 or self.zoom > 0 or self.photometric


@dataclass(frozen=True)
class Labels:
    """Every galaxy's targets and, optionally, vote counts, read once from `galaxy_data`."""

    db_path: Path
    asset_ids: np.ndarray  # (N,) in table order
    targets: np.ndarray  # (N, 37) float32 debiased fractions
    counts: np.ndarray | None  # (N, 37) float32 vote counts, or None

    @classmethod
    def read(cls, db_path: str | Path, with_counts: bool = False) -> "Labels":
        columns = schema.target_columns("debiased") + (schema.target_columns("count") if with_counts else [])
        frame = read_galaxy_data(db_path, ["asset_id", *columns])
        values = frame[columns].to_numpy(dtype=np.float32)
        counts = values[:, schema.N_ANSWERS :] if with_counts else None
        return cls(Path(db_path), frame["asset_id"].to_numpy(np.int64), values[:, : schema.N_ANSWERS], counts)

    def select(self, asset_ids) -> tuple[np.ndarray, np.ndarray | None]:
        """(targets, counts) of `asset_ids`, in that order; unknown ids are a GalaxyZooError."""
        wanted = np.asarray(asset_ids, dtype=np.int64)
        order = np.argsort(self.asset_ids, kind="stable")
        pos = np.clip(np.searchsorted(self.asset_ids, wanted, sorter=order), 0, len(order) - 1)
        rows = order[pos]
        missing = wanted[self.asset_ids[rows] != wanted]
        if len(missing):
            raise GalaxyZooError(
                f"{self.db_path}: {len(missing)} asset_ids have no galaxy_data row, e.g. {missing[:5].tolist()}"
            )
        return self.targets[rows], None if self.counts is None else self.counts[rows]


def augment_batch(x: np.ndarray, rng: np.random.Generator, augment: Augment) -> np.ndarray:
    """Randomly zoom, rotate by multiples of 90 degrees, flip and shift each image of a (B, H, W, C) batch.

    A zoom scales the image about its centre by a factor log-uniform in
    [1 / (1 + zoom), 1 + zoom], reflecting the sky in at the edges. It is a
    nuisance the crop does not remove: its three branches show galaxies of one
    extent at scales a factor 2 apart, and real samples frame galaxies less
    alike than the synthetic one. Off (0), nothing is drawn for it, so the
    random stream of the other augmentations is the one it always was.

    The photometric ones (`photometric_views`) follow, for the whole batch.
    """
    out = np.empty_like(x)
    for i, image in enumerate(x):
        if augment.zoom > 0:
            image = zoom_about_centre(image, float(np.exp(rng.uniform(-1.0, 1.0) * np.log1p(augment.zoom))))
        if augment.rot90:
            image = np.rot90(image, k=int(rng.integers(4)), axes=(0, 1))
        if augment.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        if augment.shift_px > 0:
            dy, dx = rng.integers(-augment.shift_px, augment.shift_px + 1, size=2)
            image = _shift(image, int(dy), int(dx))
        out[i] = image
    return photometric_views(out, rng, augment) if augment.photometric else out


def photometric_views(x: np.ndarray, rng: np.random.Generator, augment: Augment) -> np.ndarray:
    """Each uint8 image of a (B, H, W, C) batch as another survey might have imaged it.

    Domain randomisation: a network trained on rendered galaxies meets real ones
    whose seeing, asinh stretch, colour balance and noise the renderer only
    approximates, so each is varied at random, in this order (that of the
    imaging chain): a Gaussian blur of sigma uniform in [0, blur] px; the
    intensity raised to a power log-uniform in [1/(1 + gamma), 1 + gamma];
    each channel's gain log-uniform in [1/(1 + colour), 1 + colour] (of a
    one-channel crop, its brightness); Gaussian noise of sigma uniform in
    [0, noise] of the full scale. The result is rounded and clipped to 0-255 as
    an 8-bit image is, so on black sky the noise lifts the mean a little, as
    the real JPEGs' clipped sky noise does. A setting at 0 draws nothing. None
    moves a galaxy's light; a blur of up to a pixel or so softens what volunteers
    would still see, so the votes stay.
    """
    batch, channels = len(x), x.shape[-1]
    out = x.astype(np.float32) * np.float32(1 / 255)
    if augment.blur > 0:
        for i, sigma in enumerate(rng.uniform(0.0, augment.blur, batch)):
            if sigma > 0.1:  # a tenth of a pixel changes nothing worth the blur's time
                out[i] = cv2.GaussianBlur(out[i], (0, 0), float(sigma)).reshape(out[i].shape)
    if augment.gamma > 0:
        out **= np.exp(rng.uniform(-1.0, 1.0, (batch, 1, 1, 1)) * np.log1p(augment.gamma)).astype(np.float32)
    if augment.colour > 0:
        out *= np.exp(rng.uniform(-1.0, 1.0, (batch, 1, 1, channels)) * np.log1p(augment.colour)).astype(np.float32)
    if augment.noise > 0:
        sigma = rng.uniform(0.0, augment.noise, (batch, 1, 1, 1)).astype(np.float32)
        out += rng.standard_normal(out.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(out * np.float32(255)), 0, 255).astype(x.dtype)


def zoom_about_centre(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` scaled by `scale` about its centre, the edges filled by reflection."""
    h, w = image.shape[:2]
    matrix = np.float32([[scale, 0, (1 - scale) * (w - 1) / 2], [0, scale, (1 - scale) * (h - 1) / 2]])
    zoomed = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return zoomed.reshape(image.shape)  # OpenCV drops a single channel's axis


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    shifted = np.zeros_like(image)
    h, w = image.shape[:2]
    shifted[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return shifted


class RowReader:
    """Rows of a store's `images.u8`, read with positional reads instead of a memory map.

    Every page a memmap touches stays mapped into the process, so streaming one
    epoch would grow the resident set to the size of the store (2.7 GB for the
    real release). `os.pread` goes through the page cache, which the kernel can
    reclaim, and keeps the process at about one batch. Reads are thread-safe.

    Args:
        path: the raw uint8 file.
        shape: (N, H, W, C) of the array it holds.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...]):
        self.path = Path(path)
        self.shape = tuple(shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self._fd = os.open(self.path, os.O_RDONLY)

    @classmethod
    def for_store(cls, store) -> "RowReader":
        """A reader over a `galaxyzoo.data.store.CropStore`'s images: the very file the store mapped, whose
        rows it checked, not one a `prepare --overwrite` put at the path since."""
        reader = cls(store.path / "images.u8", store.images.shape)
        if store.images_inode is not None and os.fstat(reader._fd).st_ino != store.images_inode:
            reader.close()
            raise rebuilt_meanwhile(store.path)
        return reader

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(rows), self.row_bytes)
        # One read per run of consecutive rows: sorted batches become a few large reads.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            nbytes = (stop - start) * self.row_bytes
            buf = os.pread(self._fd, nbytes, int(rows[start]) * self.row_bytes)
            if len(buf) != nbytes:
                raise GalaxyZooError(f"{self.path}: truncated store file (row {rows[start]} is past its end)")
            flat[start:stop] = np.frombuffer(buf, dtype=np.uint8).reshape(stop - start, self.row_bytes)
        return out

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


class GalaxySequence(keras.utils.PyDataset):
    """Batches `(x, y)` from a crop store.

    Args:
        images: the store's (N, H, W, C) uint8 rows: a `RowReader` (bounded
            memory) or any array indexable by a row array.
        rows: which rows of `images` belong to this split, in label order.
        targets: (len(rows), 37) float32 targets.
        counts: optional (len(rows), 37) vote counts; then `y` is (B, 74) =
            targets followed by counts, as the count-based losses expect.
        batch_size: images per batch; the last batch may be smaller.
        shuffle: reshuffle the order every epoch (seeded, reproducible).
        augment: `Augment` to apply, or None.
        seed: seeds shuffling and augmentation.
        workers: background threads that prefetch batches (Keras PyDataset).
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        targets: np.ndarray,
        counts: np.ndarray | None = None,
        *,
        batch_size: int = 64,
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        workers: int = 1,
        max_queue_size: int = 4,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if len(rows) == 0:
            raise GalaxyZooError("the selected split is empty: no images to train or evaluate on")
        if len(rows) != len(targets) or (counts is not None and len(counts) != len(targets)):
            raise ValueError("rows, targets and counts must have the same length")
        if batch_size < 1:
            raise GalaxyZooError(f"batch_size must be at least 1, got {batch_size}")
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.y = targets if counts is None else np.concatenate([targets, counts], axis=1)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.epoch = 0
        self.order = self._order(0)

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index: int):
        # Batches keep the order of `rows` (unshuffled predictions line up with their labels).
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.images[self.rows[picked]]
        if self.augment is not None:
            x = augment_batch(x, np.random.default_rng([self.seed, self.epoch, index]), self.augment)
        return to_unit(x), self.y[picked]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch: int) -> None:
        """Continue at `epoch`: a resumed training sees the order and augmentation it would have."""
        self.epoch = epoch
        self.order = self._order(epoch)
