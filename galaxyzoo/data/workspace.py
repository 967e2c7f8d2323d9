"""Where a dataset's files live, and building whichever stages are missing.

A training run names its data (`synthetic` or a raw GZ2 folder); this module
maps that to the raw files, the catalogue DB, the crop store and the split,
and runs synth -> ingest -> prepare -> split for whatever is not there yet.
Each stage is resumable on its own, so an interrupted build picks up where it
stopped.

Each raw folder has a derived folder of its own, `<raw>.derived/` beside it, and
every derived file records what it was built from (`ingest.raw_source`): a DB or
a store built from other raw content is rebuilt, never reused, and a damaged
store is refused by name (`galaxyzoo prepare` repairs it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from galaxyzoo.data import ingest, prepare, split, synth
from galaxyzoo.data.store import CropStore
from galaxyzoo.errors import GalaxyZooError

logger = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
DB_NAME = "galaxy_data.sqlite"


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
    root = derived_dir(raw)
    return Workspace(source, raw, root / DB_NAME, root / f"crops{image_size}x{channels}")


def derived_dir(raw: str | Path) -> Path:
    """The folder of everything derived from the raw folder `raw`: `<raw>.derived` beside it."""
    # Beside the raw folder, never inside it (raw stays as downloaded), and one derived folder
    # per raw folder, so that two releases or an edited copy never share a derived file.
    resolved = Path(raw).expanduser().resolve()
    return resolved.parent / f"{resolved.name}.derived"


def build_for(data_cfg, progress: bool = True):
    """Locate and build the dataset of a `config.experiment.DataConfig`; returns (Workspace, split)."""
    d = data_cfg
    sizes = dict(synthetic_n=d.synthetic_n, synthetic_seed=d.synthetic_seed, image_size=d.image_size,
                 channels=d.channels)
    ws = locate(d.source, d.workdir, **sizes)
    split = build(ws, **sizes, test_size=d.test_size, val_size=d.val_size, split_seed=d.split_seed,
                  progress=progress)
    return ws, split


def build(ws: Workspace, *, synthetic_n: int, synthetic_seed: int, image_size: int, channels: int,
          test_size: float, val_size: float, split_seed: int, progress: bool = True):
    """Run every missing or stale stage for `ws`; returns the saved split (`split.load_split`).

    A DB or store recorded as built from other raw content (or other settings) is built
    again; a store whose files or crops are damaged is a GalaxyZooError naming the rows.
    Another process building the same files is waited for.
    """
    if not ws.raw.exists():
        if not ws.is_synthetic:
            raise GalaxyZooError(f"{ws.raw}: raw GZ2 folder not found; run `galaxyzoo download --out {ws.raw}`")
        synth.generate(ws.raw, synthetic_n, seed=synthetic_seed, progress=progress, wait=True)
    source = ingest.raw_source(ws.raw)
    recorded = ingest.read_source(ws.db) if ingest.is_ingested(ws.db) else None
    if recorded != source:
        if recorded is not None:
            changed = ", ".join(k for k in source if recorded.get(k) != source[k])
            logger.warning("%s was built from other raw data (%s differ); ingesting %s again", ws.db, changed,
                           ws.raw)
        # Decided before the lock: trainings started together would each replace the DB (and the split
        # another had made and recorded) once their turn came, unless it holds this raw content by then.
        ingest.ingest(ws.raw, ws.db, progress=progress, overwrite=True, wait=True, unless_from=source)
    crops = dict(size=image_size, channels=channels, progress=progress, repair=False, wait=True)
    try:
        prepare.prepare(ws.raw, ws.db, ws.store, **crops)
    except prepare.StoreMismatch as exc:
        logger.warning("%s; preparing it again from scratch", exc)
        prepare.prepare(ws.raw, ws.db, ws.store, overwrite=True, **crops)
    split.make_split(ws.db, test_size=test_size, val_size=val_size, random_state=split_seed, wait=True)
    return split.load_split(ws.db)


def verify(raw: str | Path | None = None, db: str | Path | None = None, stores=(), progress: bool = True) -> list[str]:
    """Check derived files; one line per file found sound, a GalaxyZooError naming every problem.

    Each store: file sizes, records, every row's crc32, and, with `raw`/`db`, that it was
    prepared from them. The DB (and its split): that `raw` as it is now is what it was
    ingested from. With only `raw`, checks the DB and every store in `derived_dir(raw)`.
    """
    if raw is not None and db is None and not stores:
        root = derived_dir(raw)
        db = root / DB_NAME if (root / DB_NAME).exists() else None
        stores = sorted(p for p in root.glob("crops*") if (p / "meta.json").is_file())
        if db is None and not stores:
            raise GalaxyZooError(f"{root}: no derived files to verify (no {DB_NAME}, no crop store)")
    source = ingest.raw_source(raw) if raw is not None else None
    ok, problems = [], []
    if db is not None:
        recorded = ingest.read_source(db)
        saved = split.saved_split(db)
        if source is not None and recorded != source:
            changed = ", ".join(k for k in source if (recorded or {}).get(k) != source[k])
            problems.append(f"{db} was not ingested from {raw} as it is now ({changed} differ); "
                            "ingest it again with --overwrite")
        elif saved is not None and saved.source != recorded:
            problems.append(f"{db}: split {saved.id} was made from another galaxy_data; "
                            "make it again with `galaxyzoo split --overwrite`")
        else:
            ok.append(f"{db}: {'built from ' + str(raw) if source else 'readable'}"
                      + (f", split {saved.id} made from it" if saved else ""))
    for path in stores:
        try:
            found = _store_problems(CropStore.open(path), source, db, progress)
        except GalaxyZooError as exc:
            found = [str(exc)]
        problems.extend(found)
        if not found:
            ok.append(f"crop store {path}: sound, every crc32 matches")
    if problems:
        raise GalaxyZooError("; ".join(problems))
    return ok


def _store_problems(store, source: dict | None, db, progress: bool) -> list[str]:
    """What is wrong with an opened store: its source (when known), then its crc32s."""
    problems = []
    recorded = store.meta.get("source", {})
    if source is not None and (recorded.get("raw"), recorded.get("images")) != (source["raw"], source["images"]):
        problems.append(f"crop store {store.path} was not prepared from the images of {source['raw']} as they "
                        "are now; prepare it again with --overwrite")
    if db is not None and recorded.get("db") != str(Path(db).resolve()):
        problems.append(f"crop store {store.path} was prepared from {recorded.get('db')}, not {db}")
    elif db is not None and not np.array_equal(store.asset_ids, wanted := prepare.read_asset_ids(db)):
        # the same DB path, ingested again since (`ingest --overwrite` of another catalogue): prepare refuses it
        problems.append(f"crop store {store.path} holds other galaxies than {db} now ({len(store)} rows, the "
                        f"DB {len(wanted)}); prepare it again with --overwrite")
    failed = store.crc_failures(progress)
    if len(failed):
        problems.append(f"crop store {store.path}: {len(failed)} row(s) fail their crc32 check: "
                        f"{store.describe_rows(failed)}; run `galaxyzoo prepare` on it to crop them again")
    pending = len(store.pending_rows())
    if pending:
        problems.append(f"crop store {store.path}: {pending} row(s) not prepared yet; run `galaxyzoo prepare` "
                        "to finish it")
    return problems
