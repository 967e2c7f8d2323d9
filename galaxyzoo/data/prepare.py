"""Crop every galaxy image into the crop store: parallel, resumable, never stopped by a bad file.

`prepare` reads the asset_ids of SQLite table `galaxy_data`, crops RAW/images/{asset_id}.jpg
with `galaxyzoo.data.crop`, and writes the crops into a `galaxyzoo.data.store.CropStore`. Work
is cut into fixed blocks of rows; each worker process maps only its block of the store, writes the
crops, flushes them, and only then does the parent mark those rows done. A killed run
therefore restarts at the first pending rows, and the output does not depend on the number
of workers. A missing or corrupt JPEG is recorded in the row's status and reported at the end.

Every run first checks the store it resumes: files cut short are repaired and every written
row's crc32 is checked, so rows lost to a crash, a bad copy or a disk error are cropped again
(or, with `repair=False`, as the training build asks, refused by name). One `prepare` writes
a store at a time (`galaxyzoo.system.locks`).

Example:

```python
report = prepare("data/raw", "data/galaxy_data.sqlite", "data/crops")
print(report.summary())
```
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from galaxyzoo.data import store as cs
from galaxyzoo.data.crop import MAX_SIDE, crop_image, decode_image
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.ingest import list_images, listing_digest, read_source
from galaxyzoo.system.locks import writer_lock
from galaxyzoo.system.workers import check_workers, process_map

BLOCK_ROWS = 256


class StoreMismatch(GalaxyZooError):
    """The store was prepared from other images, another DB or with other settings."""


@dataclass
class PrepareReport:
    """What one `prepare` run did; `summary()` is what the CLI prints."""

    store: Path
    total: int
    processed: int
    already_done: int
    seconds: float
    status_counts: dict[str, int]
    branch_counts: dict[str, int]
    missing: list[int] = field(default_factory=list)
    corrupt: list[int] = field(default_factory=list)
    content_id: str = ""
    repairs: list[str] = field(default_factory=list)  # what was wrong with the files of the store
    recropped: list[int] = field(default_factory=list)  # asset_ids whose crop failed its crc32

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"crop store {self.store}: {self.total} images, {self.processed} cropped in this run "
            f"({self.images_per_second:,.0f} images/s), {self.already_done} already done",
            "branches: " + ", ".join(f"{k} {v}" for k, v in self.branch_counts.items() if k != "none"),
        ]
        for label, ids in (("missing", self.missing), ("corrupt", self.corrupt)):
            if ids:
                lines.append(f"{len(ids)} {label} image(s), stored as zeros: {cs.first_few(ids)}")
        lines.extend(f"repaired: {fix}" for fix in self.repairs)
        if self.recropped:
            lines.append(f"{len(self.recropped)} crop(s) failed their crc32 and were cropped again: "
                         f"{cs.first_few(self.recropped)}")
        lines.append(f"content_id {self.content_id}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Block:
    """One worker task: crop rows start..stop of the store."""

    store: str
    images_dir: str
    asset_ids: np.ndarray
    start: int
    stop: int
    size: int
    channels: int


def read_asset_ids(db_path: str | Path) -> np.ndarray:
    """The asset_ids of table galaxy_data, ascending; GalaxyZooError if the table is unusable."""
    db_path = Path(db_path)
    if not db_path.is_file():
        raise GalaxyZooError(f"database {db_path} not found; run `galaxyzoo ingest` first")
    try:
        with closing(sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)) as con:
            values = [row[0] for row in con.execute("SELECT asset_id FROM galaxy_data ORDER BY asset_id")]
    except sqlite3.Error as exc:
        raise GalaxyZooError(f"{db_path}: cannot read column asset_id of table galaxy_data ({exc})") from exc
    bad = [v for v in values if not isinstance(v, int)]
    if bad:
        raise GalaxyZooError(f"{db_path}: galaxy_data.asset_id holds non-integer values, e.g. {bad[0]!r}")
    if not values:
        raise GalaxyZooError(f"{db_path}: table galaxy_data has no rows")
    ids = np.asarray(values, dtype=np.int64)
    duplicated = ids[1:][ids[1:] == ids[:-1]]
    if len(duplicated):
        raise GalaxyZooError(f"{db_path}: galaxy_data.asset_id is not unique, e.g. {duplicated[0]} repeats")
    return ids


def prepare(
    raw_dir: str | Path,
    db_path: str | Path,
    out_dir: str | Path,
    size: int = 106,
    channels: int = 1,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    repair: bool = True,
    wait: bool = False,
) -> PrepareReport:
    """Crop the images of every galaxy in `db_path` from RAW/images into the store at `out_dir`.

    Resumes an interrupted store with the same size, channels and source (the raw folder,
    its image listing, the DB); a store prepared differently is a `StoreMismatch` unless
    `overwrite=True`, which starts it again from scratch. An existing store is checked first
    (see the module docstring); `repair=False` refuses a damaged one instead of mending it.
    Another `prepare` of `out_dir` makes this refuse, or with `wait` wait.
    `workers` defaults to every core this process may use; 1 runs in this process.
    """
    if channels not in (1, 3):
        raise GalaxyZooError(f"--channels must be 1 or 3, got {channels}")
    if not 1 <= size <= MAX_SIDE:
        raise GalaxyZooError(f"--size must be a number of pixels from 1 to {MAX_SIDE} (the images' side), got {size}")
    workers = check_workers(workers)
    images_dir = Path(raw_dir) / "images"
    if not images_dir.is_dir():
        raise GalaxyZooError(f"image folder {images_dir} not found; expected RAW/images/{{asset_id}}.jpg")
    asset_ids = read_asset_ids(db_path)
    source = {"raw": str(Path(raw_dir).resolve()), "db": str(Path(db_path).resolve()),
              "images": listing_digest(list_images(images_dir))}
    _check_ingested_from(db_path, raw_dir, source)
    with writer_lock(out_dir, wait):
        return _prepare(Path(out_dir), images_dir, asset_ids, size, channels, source, workers, overwrite,
                        progress, repair)


def _check_ingested_from(db_path, raw_dir, source: dict) -> None:
    """Refuse a DB that ingest built from another raw folder, or from these images before they changed.

    Rows are matched to images by asset_id alone, so another sample's images would be cropped
    under this catalogue's labels without a word. A DB that recorded no source is trusted.
    """
    recorded = read_source(db_path)
    changed = [k for k in ("raw", "images") if recorded is not None and recorded.get(k) != source[k]]
    if changed:
        what = "another raw folder" if "raw" in changed else "these images before they changed"
        raise GalaxyZooError(f"{db_path}: ingested from {what} ({recorded.get('raw')}), so its rows would be "
                             f"cropped from the wrong images; run `galaxyzoo ingest --raw {raw_dir} --db {db_path} "
                             "--overwrite` first")


def _prepare(out_dir, images_dir, asset_ids, size, channels, source, workers, overwrite, progress, repair):
    repairs = []
    if repair and not overwrite and (out_dir / "meta.json").is_file():
        repairs = cs.CropStore.repair(out_dir)
    store = _open_or_create(out_dir, asset_ids, size, channels, source, overwrite)
    failed = store.crc_failures(progress)
    if len(failed) and not repair:
        raise GalaxyZooError(f"crop store {store.path} is damaged: {len(failed)} row(s) fail their crc32 "
                             f"check: {store.describe_rows(failed)}; run `galaxyzoo prepare --raw "
                             f"{source['raw']} --db {source['db']} --out {store.path}` to crop them again")
    store.mark_pending(failed)

    pending = store.pending_rows()
    already_done = len(store) - len(pending)
    blocks = [
        _Block(str(store.path), str(images_dir), store.asset_ids[a:b], a, b, size, channels)
        for a, b in _runs(pending, BLOCK_ROWS)
    ]
    started = time.perf_counter()
    with tqdm(total=len(pending), unit="img", desc="prepare", disable=not progress) as bar:
        for start, stop, status, branch, crc in _run_blocks(blocks, workers):
            store.mark_done(slice(start, stop), status, branch, crc)
            bar.update(stop - start)
    seconds = time.perf_counter() - started

    status_counts, branch_counts = store.counts()
    content_id = store.content_id()
    store.update_meta(
        complete=True, status_counts=status_counts, branch_counts=branch_counts, content_id=content_id
    )
    labels = store.status
    return PrepareReport(
        store=store.path,
        total=len(store),
        processed=len(pending),
        already_done=already_done,
        seconds=seconds,
        status_counts=status_counts,
        branch_counts=branch_counts,
        missing=store.asset_ids[labels == "missing"].tolist(),
        corrupt=store.asset_ids[labels == "corrupt"].tolist(),
        content_id=content_id,
        repairs=repairs,
        recropped=store.asset_ids[failed].tolist(),
    )


def _open_or_create(path: Path, asset_ids, size, channels, source, overwrite) -> cs.CropStore:
    """Resume the store at `path` if it matches this run, else create it (or refuse)."""
    if (path / "meta.json").is_file():
        if overwrite:
            for name in cs.FILES:
                (path / name).unlink(missing_ok=True)
        else:
            store = cs.CropStore.open(path, writable=True)
            wanted = {"size": size, "channels": channels, "algorithm": cs.ALGORITHM,
                      **{f"source {k}": v for k, v in source.items()}}
            have = {**store.meta, **{f"source {k}": v for k, v in store.meta.get("source", {}).items()}}
            differs = [f"{k} {have.get(k)!r} (now {v!r})" for k, v in wanted.items() if have.get(k) != v]
            if not differs and not np.array_equal(store.asset_ids, asset_ids):
                differs.append(f"asset_ids ({len(store)} rows, now {len(asset_ids)})")
            if differs:
                raise StoreMismatch(
                    f"crop store {path} was prepared with different " + "; ".join(differs)
                    + "; use --overwrite to prepare it again"
                )
            return store
    elif path.exists():
        # Only our own files (left by a run killed before meta.json was written) may be
        # replaced; never delete anything else, --overwrite or not.
        ours = set(cs.FILES) | {"meta.json.tmp"}
        if not path.is_dir() or any(p.name not in ours for p in path.iterdir()):
            raise GalaxyZooError(f"{path} exists and is not a crop store; choose an empty or new folder")
    try:
        return cs.CropStore.create(path, asset_ids, size, channels, source)
    except OSError as exc:
        raise GalaxyZooError(f"{path}: cannot write the crop store ({exc})") from None


def _runs(rows: np.ndarray, block: int) -> list[tuple[int, int]]:
    """Cut sorted row indices into (start, stop) ranges of consecutive rows, at most `block` long.

    Blocks are aligned to multiples of `block` so that work units do not depend on history.
    """
    out = []
    for run in np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1):
        if len(run) == 0:
            continue
        start, stop = int(run[0]), int(run[-1]) + 1
        edges = [start, *range((start // block + 1) * block, stop, block), stop]
        out.extend(zip(edges[:-1], edges[1:]))
    return out


def _run_blocks(blocks: list[_Block], workers: int):
    """Yield each block's results as it finishes, in this process or in a pool of workers."""
    if workers <= 1 or len(blocks) <= 1:
        yield from map(_crop_block, blocks)
        return
    yield from process_map(_crop_block, blocks, min(workers, len(blocks)), preload=__name__,
                           what="prepare", hint="out of memory?; run it again: it resumes")


def _crop_block(block: _Block):
    """Crop one block of rows into the store; return (start, stop, status, branch, crc32)."""
    n = block.stop - block.start
    status = np.empty(n, np.uint8)
    branch = np.empty(n, np.uint8)
    crc = np.empty(n, np.uint32)
    mapped = cs.open_image_rows(block.store, (block.size, block.size, block.channels), block.start, block.stop)
    rows = mapped.view(np.ndarray)  # plain views: indexing a memmap costs a subclass object per row
    images_dir = Path(block.images_dir)
    for i, asset_id in enumerate(block.asset_ids):
        status[i], branch[i] = _crop_file(images_dir / f"{asset_id}.jpg", rows[i], block.size, block.channels)
        crc[i] = zlib.crc32(rows[i])
    mapped.flush()  # pixels reach the file before the parent marks these rows done
    del rows, mapped
    return block.start, block.stop, status, branch, crc


def _crop_file(path: Path, out: np.ndarray, size: int, channels: int) -> tuple[int, int]:
    """Crop one image into `out` (zeros if it cannot be read); return (status, branch) codes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        out[:] = 0
        return cs.status_code("missing"), cs.branch_code("none")
    except OSError:
        data = b""
    image = decode_image(data, channels)
    if image is None:
        out[:] = 0
        return cs.status_code("corrupt"), cs.branch_code("none")
    crop, branch = crop_image(image, size, channels)
    out[:] = crop
    return cs.status_code("ok" if branch != "fallback" else "fallback"), cs.branch_code(branch)
