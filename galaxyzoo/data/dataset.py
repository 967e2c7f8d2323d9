"""The split's three parts, ready to stream: store rows, targets and (when a loss needs them) vote counts.

```python
from galaxyzoo.config.experiment import load_experiment
from galaxyzoo.data.dataset import load_dataset

cfg = load_experiment("experiments/quickstart.yaml")
dataset = load_dataset(cfg.data, with_counts=False)   # builds whatever stage is missing
train_seq, val_seq = dataset.fit_sequences(cfg.train, workers=2)  # keras.utils.PyDataset batches
```

This module imports Keras (through `data.stream`): import it only where a
training or an evaluation runs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from galaxyzoo.data import workspace
from galaxyzoo.data.split import PARTS
from galaxyzoo.data.store import CropStore, first_few
from galaxyzoo.data.stream import Augment, GalaxySequence, Labels, RowReader
from galaxyzoo.errors import GalaxyZooError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One part of the split, ready to stream: store rows and the head's targets."""

    name: str
    asset_ids: np.ndarray
    rows: np.ndarray  # rows of the crop store, in asset_ids order
    targets: np.ndarray  # (N, 37) float32, after the head's target policy
    counts: np.ndarray | None  # (N, 37) vote counts when the loss needs them

    def __len__(self) -> int:
        return len(self.asset_ids)


@dataclass(frozen=True)
class Dataset:
    """A built workspace, its split and the three parts (`train`, `val`, `test`)."""

    workspace: workspace.Workspace
    split: Any  # split.SplitInfo
    store: Any  # store.CropStore
    images: Any  # stream.RowReader over the store
    parts: dict[str, Part]

    def sequence(self, part: str, *, batch_size: int, shuffle: bool = False, augment=None, seed: int = 0,
                 workers: int = 1):
        """A `stream.GalaxySequence` over one part (None for an empty validation part)."""
        p = self.parts[part]
        if len(p) == 0:
            return None
        return GalaxySequence(self.images, p.rows, p.targets, p.counts, batch_size=batch_size, shuffle=shuffle,
                              augment=augment, seed=seed, workers=workers)

    def fit_sequences(self, train_cfg, initial_epoch: int = 0, *, workers: int):
        """(train, val) sequences as `train_cfg` asks: shuffled and augmented training batches
        from `initial_epoch`'s order on, plain validation batches (None without a val part).

        `workers` background threads prefetch each sequence's batches while the model trains.
        """
        aug = train_cfg.augment
        # `Augment` takes the config's augment keys by name, all but the switch (tests/test_train_data.py).
        augment = Augment(**{k: v for k, v in asdict(aug).items() if k != "enabled"}) if aug.enabled else None
        train_seq = self.sequence("train", batch_size=train_cfg.batch_size, shuffle=True, augment=augment,
                                  seed=train_cfg.seed, workers=workers)
        train_seq.set_epoch(initial_epoch)
        return train_seq, self.sequence("val", batch_size=train_cfg.batch_size, workers=workers)


def load_dataset(data_cfg, *, with_counts: bool, progress: bool = True) -> Dataset:
    """Locate (and build what is missing of) the data of `data_cfg`; load each part's targets.

    A part of the split none of whose galaxies has a usable crop is a
    GalaxyZooError naming the store and the raw folder. Every head trains and is
    scored on the stored debiased fractions (see docs/model.md, "target policy");
    vote counts are loaded only when `with_counts` (a count-based loss).
    """
    ws, split = workspace.build_for(data_cfg, progress=progress)
    store = CropStore.open(ws.store)
    if pending := len(store.pending_rows()):  # rebuilt since the build checked it (`prepare --overwrite`)
        raise GalaxyZooError(
            f"{ws.store}: {pending} of its {len(store.asset_ids)} crops are not written yet (another `galaxyzoo "
            "prepare` is rebuilding it, or was stopped); wait for it, or run `galaxyzoo prepare` to finish it"
        )
    labels = Labels.read(ws.db, with_counts=with_counts)
    usable = store.asset_ids[store.usable]
    parts = {}
    for name in PARTS:
        ids = np.asarray(getattr(split, name), dtype=np.int64)
        kept = np.isin(ids, usable)
        if len(ids) and not kept.any():
            # Nothing to train on or score: refused here, before a run is opened for it.
            raise GalaxyZooError(
                f"{ws.store}: none of the {len(ids)} galaxies of the {name} part has a usable crop (prepare "
                f"recorded their images in {ws.raw} as corrupt or missing, e.g. {first_few(ids)}); fix or "
                "re-download the images, then run `galaxyzoo prepare` again"
            )
        if not kept.all():
            # `prepare` recorded these as corrupt or missing; train on the rest, and say so.
            logger.warning("%s: %d galaxies have no usable crop and are left out: %s", name, (~kept).sum(),
                           first_few(ids[~kept]))
            ids = ids[kept]
        targets, counts = labels.select(ids)
        parts[name] = Part(name, ids, store.rows_for(ids), targets, counts)
    return Dataset(ws, split, store, RowReader.for_store(store), parts)
