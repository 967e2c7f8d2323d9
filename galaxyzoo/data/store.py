"""The crop store: every galaxy's crop in one memory-mapped uint8 array on disk.

A store is a directory:

    meta.json      size, channels, count, source, branch/status counts, content_id, complete
    asset_ids.npy  int64 (N,): which galaxy each row holds
    images.u8      raw uint8 (N, size, size, channels), C order, read through np.memmap
    rows.bin       one packed record per row: status (u1), branch (u1), crc32 of the crop (u4)

A row's status starts "pending" and becomes ok / fallback / corrupt / missing only after its
pixels are written and flushed, so a killed `galaxyzoo prepare` resumes at the first pending
rows and never trusts a half-written crop. Why this layout: see docs/prepare.md.

A store checks itself: `open` refuses files whose sizes do not fit the row count and records
that cannot occur (a status without its branch); `crc_failures` reads every crop once and
names the rows whose pixels no longer match their crc32; `repair` makes a damaged store
resumable, so that `prepare` crops its lost rows again.

Example:

```python
store = CropStore.open("data/crops")
rows = store.rows_for([100008, 100023])
batch = to_unit(store.images[np.sort(rows)])  # crop.to_unit: (2, 106, 106, 1) float32 in [0, 1]
```
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from galaxyzoo.data.crop import BRANCHES
from galaxyzoo.errors import GalaxyZooError

logger = logging.getLogger(__name__)

FORMAT = "galaxyzoo-crop-store/1"
# Bump when crop.py would produce different pixels, so old stores stop matching.
ALGORITHM = "seed-crop/1"
STATUSES = ("pending", "ok", "fallback", "corrupt", "missing")
BRANCH_LABELS = ("none",) + BRANCHES
USABLE = ("ok", "fallback")
ROW_DTYPE = np.dtype([("status", "u1"), ("branch", "u1"), ("crc32", "<u4")])
FILES = ("meta.json", "asset_ids.npy", "images.u8", "rows.bin")

# Which branch each status may carry: anything else in rows.bin is damage.
_VALID = np.zeros((len(STATUSES), len(BRANCH_LABELS)), bool)
_VALID[[STATUSES.index(s) for s in ("pending", "corrupt", "missing")], 0] = True
_VALID[STATUSES.index("ok"), [BRANCH_LABELS.index(b) for b in BRANCHES if b != "fallback"]] = True
_VALID[STATUSES.index("fallback"), BRANCH_LABELS.index("fallback")] = True


def status_code(name: str) -> int:
    return STATUSES.index(name)


def branch_code(name: str) -> int:
    return BRANCH_LABELS.index(name)


def open_image_rows(store_path: str | Path, row_shape: tuple[int, ...], start: int, stop: int) -> np.memmap:
    """A writable memmap of rows start..stop of a store's images.u8 (for worker processes).

    Mapping only the rows a worker owns keeps each flush small.
    """
    row_bytes = int(np.prod(row_shape))
    return np.memmap(
        Path(store_path) / "images.u8", dtype=np.uint8, mode="r+",
        offset=start * row_bytes, shape=(stop - start, *row_shape),
    )


def _file_bytes(meta: dict, count: int) -> dict[str, int]:
    """The size each data file of a store with `count` rows must have."""
    return {"images.u8": count * meta["size"] ** 2 * meta["channels"], "rows.bin": count * ROW_DTYPE.itemsize}


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _invalid_records(rows: np.ndarray) -> np.ndarray:
    """Rows whose (status, branch) pair cannot occur."""
    status, branch = rows["status"], rows["branch"]
    known = (status < len(STATUSES)) & (branch < len(BRANCH_LABELS))
    return np.flatnonzero(~known | ~_VALID[np.where(known, status, 0), np.where(known, branch, 0)])


def _damaged(path: Path, what: str) -> GalaxyZooError:
    return GalaxyZooError(
        f"crop store {path} is damaged: {what}; run `galaxyzoo prepare` on it to crop the damaged rows again"
    )


def _write_json(path: Path, data: dict) -> None:
    # Write then rename, so a crash never leaves a half-written meta.json.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class CropStore:
    """A directory of fixed-size uint8 crops, one row per asset_id (see the module docstring)."""

    def __init__(self, path: Path, meta: dict, asset_ids: np.ndarray, images: np.memmap, rows: np.memmap,
                 images_inode: int | None = None):
        self.path = path
        self.meta = meta
        self.asset_ids = asset_ids
        self.images = images
        self.images_inode = images_inode  # of the images.u8 mapped: `prepare --overwrite` makes a new one
        self._rows = rows
        self._index = None

    @classmethod
    def create(
        cls, path, asset_ids, size: int = 106, channels: int = 1, source: dict | None = None
    ) -> "CropStore":
        """Create an empty (all rows pending) writable store at `path`, which must hold no store yet."""
        path = Path(path)
        ids = np.asarray(asset_ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0:
            raise GalaxyZooError(f"a crop store needs a non-empty list of asset_ids, got shape {ids.shape}")
        if len(np.unique(ids)) != len(ids):
            raise GalaxyZooError(f"asset_ids for crop store {path} contain duplicates")
        if (path / "meta.json").exists():
            raise GalaxyZooError(f"{path} already holds a crop store")
        path.mkdir(parents=True, exist_ok=True)
        row_shape = (size, size, channels)
        try:
            np.save(path / "asset_ids.npy", ids)
            _allocate(path / "images.u8", len(ids) * int(np.prod(row_shape)))
            _allocate(path / "rows.bin", len(ids) * ROW_DTYPE.itemsize)
        except GalaxyZooError:
            for name in ("asset_ids.npy", "images.u8", "rows.bin"):  # no half-made store to refuse later
                (path / name).unlink(missing_ok=True)
            raise
        meta = {
            "format": FORMAT,
            "algorithm": ALGORITHM,
            "size": size,
            "channels": channels,
            "channel_order": "gray" if channels == 1 else "BGR",
            "dtype": "uint8",
            "count": len(ids),
            "source": source or {},
            "complete": False,
            "branch_counts": {},
            "status_counts": {},
            "content_id": None,
        }
        _write_json(path / "meta.json", meta)
        return cls.open(path, writable=True)

    @classmethod
    def open(cls, path, writable: bool = False) -> "CropStore":
        """Open a store read-only (default) or writable.

        Raises GalaxyZooError if it is not a store, or if its files do not fit its row count or
        rows.bin holds records that cannot occur (see `repair`).
        """
        path = Path(path)
        meta, ids = _read_header(path)
        for name, want in _file_bytes(meta, len(ids)).items():
            have = _size(path / name)
            if have != want:
                held = "is missing" if have is None else f"holds {have:,} bytes"
                raise _damaged(path, f"{name} {held}, {len(ids)} rows need {want:,}")
        mode = "r+" if writable else "r"
        row_shape = (meta["size"], meta["size"], meta["channels"])
        try:
            before = _inodes(path)
            images = np.memmap(path / "images.u8", dtype=np.uint8, mode=mode, shape=(len(ids), *row_shape))
            rows = np.memmap(path / "rows.bin", dtype=ROW_DTYPE, mode=mode, shape=(len(ids),))
            if _inodes(path) != before:  # the two maps may be of different stores
                raise rebuilt_meanwhile(path)
        except (OSError, ValueError) as exc:
            raise GalaxyZooError(f"crop store {path}: cannot map its files ({exc})") from None
        bad = _invalid_records(rows)
        if len(bad):
            raise _damaged(path, f"rows.bin holds impossible records in {len(bad)} row(s): {first_few(bad)}")
        return cls(path, meta, ids, images, rows, before[0])

    @classmethod
    def repair(cls, path) -> list[str]:
        """Make a damaged store at `path` resumable; one line per repair made (none: it was sound).

        A data file of the wrong size is set to the size its row count needs: records cut off
        read as pending, pixels cut off as zeros, which then fail their crc32. Impossible
        records are reset to pending. Either way `prepare` crops those rows again.
        """
        path = Path(path)
        meta, ids = _read_header(path)
        fixes = []
        for name, want in _file_bytes(meta, len(ids)).items():
            have = _size(path / name)
            if have != want:
                _allocate(path / name, want)
                fixes.append(f"{name} {'was missing' if have is None else f'held {have:,} bytes'}, not {want:,}")
        rows = np.memmap(path / "rows.bin", dtype=ROW_DTYPE, mode="r+", shape=(len(ids),))
        bad = _invalid_records(rows)
        if len(bad):
            rows[bad] = 0
            rows.flush()
            fixes.append(f"rows.bin held impossible records in {len(bad)} row(s): {first_few(bad)}")
        return fixes

    def __len__(self) -> int:
        return len(self.asset_ids)

    @property
    def size(self) -> int:
        return self.meta["size"]

    @property
    def channels(self) -> int:
        return self.meta["channels"]

    @property
    def status(self) -> np.ndarray:
        """Status label of every row: pending, ok, fallback, corrupt or missing."""
        return np.asarray(STATUSES)[self._rows["status"]]

    @property
    def branches(self) -> np.ndarray:
        """Crop branch of every row (center106, center212, full, fallback; none if no crop)."""
        return np.asarray(BRANCH_LABELS)[self._rows["branch"]]

    @property
    def usable(self) -> np.ndarray:
        """Boolean mask of rows that hold a real crop (status ok or fallback)."""
        return np.isin(self._rows["status"], [status_code(s) for s in USABLE])

    def pending_rows(self) -> np.ndarray:
        """Indices of rows not written yet (all of them in a new store)."""
        return np.flatnonzero(self._rows["status"] == status_code("pending"))

    def crc_failures(self, progress: bool = False, chunk_rows: int = 2048) -> np.ndarray:
        """Rows written so far whose pixels no longer match their recorded crc32.

        Reads images.u8 once, a chunk at a time with positional reads (a memory map would
        keep the whole file resident). Pending rows hold nothing yet and are skipped.
        """
        from tqdm import tqdm

        row_bytes = self.size * self.size * self.channels
        done = self._rows["status"] != status_code("pending")
        crc = np.asarray(self._rows["crc32"])
        bad = []
        fd = os.open(self.path / "images.u8", os.O_RDONLY)
        try:
            for start in tqdm(range(0, len(self), chunk_rows), desc=f"verify {self.path}", unit=" chunks",
                              disable=not progress):
                stop = min(start + chunk_rows, len(self))
                todo = np.flatnonzero(done[start:stop])
                if not len(todo):
                    continue
                buf = memoryview(os.pread(fd, (stop - start) * row_bytes, start * row_bytes))
                bad.extend(start + i for i in todo
                           if zlib.crc32(buf[i * row_bytes : (i + 1) * row_bytes]) != crc[start + i])
        finally:
            os.close(fd)
        return np.asarray(bad, dtype=np.int64)

    def describe_rows(self, rows: np.ndarray) -> str:
        """`rows` for an error message: the first few as "row (asset_id ...)", and the count."""
        return first_few([f"{r} (asset_id {a})" for r, a in zip(rows, self.asset_ids[rows])])

    def mark_pending(self, rows: np.ndarray) -> None:
        """Forget the crops of `rows`, so that `prepare` crops them again."""
        self._rows[rows] = 0
        self._rows.flush()

    def rows_for(self, asset_ids) -> np.ndarray:
        """Row index of each asset_id, in the given order.

        Raises GalaxyZooError naming the ids that are not in the store or whose crop is not
        usable (corrupt, missing or still pending), so no galaxy silently trains on zeros.
        """
        wanted = np.asarray(asset_ids, dtype=np.int64)
        if self._index is None:
            order = np.argsort(self.asset_ids, kind="stable")
            self._index = (self.asset_ids[order], order)
        sorted_ids, order = self._index
        pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        found = sorted_ids[pos] == wanted
        if not found.all():
            absent = wanted[~found]
            raise GalaxyZooError(
                f"{len(absent)} asset_id(s) are not in crop store {self.path}: {first_few(absent)}"
            )
        rows = order[pos]
        bad = ~self.usable[rows]
        if bad.any():
            labels = self.status[rows[bad]]
            detail = ", ".join(f"{a} ({s})" for a, s in zip(wanted[bad][:5], labels[:5]))
            raise GalaxyZooError(f"{bad.sum()} asset_id(s) have no usable crop in {self.path}: {detail}")
        return rows

    def mark_done(self, rows: slice, status: np.ndarray, branch: np.ndarray, crc32: np.ndarray) -> None:
        """Record finished rows (their pixels must already be flushed) and flush the records."""
        self._rows["status"][rows] = status
        self._rows["branch"][rows] = branch
        self._rows["crc32"][rows] = crc32
        self._rows.flush()

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(status counts, branch counts) over all rows, zeros included."""
        status = np.bincount(self._rows["status"], minlength=len(STATUSES))
        branch = np.bincount(self._rows["branch"], minlength=len(BRANCH_LABELS))
        return (
            {name: int(n) for name, n in zip(STATUSES, status)},
            {name: int(n) for name, n in zip(BRANCH_LABELS, branch)},
        )

    def content_id(self) -> str:
        """A digest of everything that defines the store's content, pixels included.

        Each row's crc32 stands in for its pixels, so this costs a few MB of hashing, not GB.
        """
        digest = hashlib.blake2b(digest_size=16)
        params = {k: self.meta[k] for k in ("format", "algorithm", "size", "channels")}
        digest.update(json.dumps(params, sort_keys=True).encode())
        digest.update(self.asset_ids.tobytes())
        digest.update(np.ascontiguousarray(self._rows).tobytes())
        return digest.hexdigest()

    def update_meta(self, **changes) -> None:
        self.meta.update(changes)
        _write_json(self.path / "meta.json", self.meta)


def _inodes(path: Path) -> tuple[int, int]:
    """The inodes of a store's images.u8 and rows.bin: `prepare --overwrite` replaces both files."""
    return os.stat(path / "images.u8").st_ino, os.stat(path / "rows.bin").st_ino


def rebuilt_meanwhile(path: Path) -> GalaxyZooError:
    """The one error for a store another `prepare --overwrite` replaced while it was being opened."""
    return GalaxyZooError(f"crop store {path}: rebuilt while it was being opened (another `galaxyzoo prepare "
                          "--overwrite`?); wait for that to finish, then run again")


def _allocate(path: Path, size: int) -> None:
    """Make `path` `size` bytes long, its disk blocks reserved (unwritten ones read as zeros).

    The stores are written through memory maps, where a full disk is a SIGBUS that kills
    the process without a word; reserving the blocks turns it into this one clear error.
    """
    try:
        with open(path, "r+b" if path.exists() else "wb") as fh:
            if size < os.fstat(fh.fileno()).st_size:
                fh.truncate(size)
            elif not _reserve(fh.fileno(), size):
                fh.truncate(size)  # sparse, as on a file system that cannot reserve
    except OSError as exc:
        raise GalaxyZooError(f"{path}: cannot reserve {size:,} bytes on its disk ({exc.strerror or exc}); "
                             "free some space or prepare elsewhere") from None


def _reserve(fd: int, size: int) -> bool:
    """Reserve (and extend the file to) `size` bytes; False where the file system or OS cannot.

    A full disk is an OSError; the file is then left shorter than `size`, so no later run meets a
    file of the right size whose blocks were never reserved (`open` refuses it, `repair` redoes it).
    """
    if not size or not hasattr(os, "posix_fallocate"):  # macOS has none: its disks fill up there as before
        return False
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        logger.warning("cannot reserve disk blocks here (%s): the store stays sparse, and a full disk while "
                       "cropping would end the run without a message", exc.strerror)
        return False
    return True


def _read_header(path: Path) -> tuple[dict, np.ndarray]:
    """meta.json and asset_ids.npy of the store at `path`, checked to be a store of this format."""
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise GalaxyZooError(f"{path} is not a crop store (no meta.json); run `galaxyzoo prepare` first")
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"meta.json holds a {type(meta).__name__}, not an object")
        if meta.get("format") != FORMAT:
            raise GalaxyZooError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}")
        ids = np.load(path / "asset_ids.npy")
        _file_bytes(meta, len(ids))  # size and channels are there
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GalaxyZooError(f"crop store {path} is damaged ({exc}); prepare it again with --overwrite") from None
    return meta, ids


def first_few(ids, n: int = 5) -> str:
    """The first n ids as text, with a count of the rest: for error messages and reports."""
    shown = ", ".join(str(i) for i in ids[:n])
    return shown + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")
