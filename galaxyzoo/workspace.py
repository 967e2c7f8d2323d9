"""Where a dataset's files live, and building whichever stages are missing.

A training run names its data (`synthetic` or a raw GZ2 folder); this module
maps that to the raw files, the catalogue DB, the crop store and the split,
and runs synth -> ingest -> prepare -> split for whatever is not there yet.
Each stage is resumable on its own, so an interrupted build picks up where it
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from galaxyzoo.errors import GalaxyZooError

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Workspace:
    """The files of one prepared dataset."""

    source: str  # "synthetic" or the raw folder it was built from
    raw: Path
    db: Path
    store: Path

    @property
    def is_synthetic(self) -> bool:
        return self.source == SYNTHETIC


def locate(source: str, workdir: str | Path, *, synthetic_n: int, synthetic_seed: int,
           image_size: int, channels: int) -> Workspace:
    """The paths for `source` (synthetic samples live under `workdir`); nothing is created."""
    if source == SYNTHETIC:
        raw = Path(workdir) / f"synthetic-n{synthetic_n}-seed{synthetic_seed}" / "raw"
    else:
        raw = Path(source).expanduser()
    # Derived files sit beside the raw folder, never inside it: raw stays as downloaded.
    root = raw.parent
    return Workspace(source, raw, root / "galaxy_data.sqlite", root / f"crops{image_size}x{channels}")


def build_for(data_cfg, progress: bool = True):
    """Locate and build the dataset of a `config.DataConfig`; returns (Workspace, split)."""
    d = data_cfg
    sizes = dict(synthetic_n=d.synthetic_n, synthetic_seed=d.synthetic_seed, image_size=d.image_size,
                 channels=d.channels)
    ws = locate(d.source, d.workdir, **sizes)
    split = build(ws, **sizes, test_size=d.test_size, val_size=d.val_size, split_seed=d.split_seed,
                  progress=progress)
    return ws, split


def build(ws: Workspace, *, synthetic_n: int, synthetic_seed: int, image_size: int, channels: int,
          test_size: float, val_size: float, split_seed: int, progress: bool = True):
    """Run every missing stage for `ws`; returns the saved split (`split.load_split`)."""
    from galaxyzoo import ingest, prepare, split, synth

    if not ws.raw.exists():
        if not ws.is_synthetic:
            raise GalaxyZooError(f"{ws.raw}: raw GZ2 folder not found; run `galaxyzoo download --out {ws.raw}`")
        synth.generate(ws.raw, synthetic_n, seed=synthetic_seed, progress=progress)
    if not ingest.is_ingested(ws.db):
        ingest.ingest(ws.raw, ws.db, progress=progress)
    prepare.prepare(ws.raw, ws.db, ws.store, size=image_size, channels=channels, progress=progress)
    split.make_split(ws.db, test_size=test_size, val_size=val_size, random_state=split_seed)
    return split.load_split(ws.db)
