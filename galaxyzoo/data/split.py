"""The train/val/test split of `galaxy_data`, saved in the same database.

The train/test part is the seed's split exactly: scikit-learn's
`train_test_split` of the `galaxy_data` rows in table order (the order ingest
wrote them, which is the seed's DataFrame order), `test_size=0.25`,
`random_state=32`, stratified on `class_reduced`; on the real data that gives
179,450 train and 59,817 test galaxies. Validation then takes `val_size` of
train, seeded and stratified the same way. (The seed instead let Keras hold out
the last 10% of its training array, unstratified; see docs/ingest.md.)

A split is identified by a short hash of its asset_ids, so two runs that
produce the same assignment share an id. It records the `ingest_source` of the
table it was made from (`source`), and one process at a time writes it
(`galaxyzoo.system.locks`, the lock that ingest takes on the same DB):

>>> info = make_split("data/galaxy_data.sqlite")  # doctest: +SKIP
>>> load_split("data/galaxy_data.sqlite").id == info.id  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sklearn.model_selection import train_test_split

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.ingest import open_database, read_galaxy_data, read_source, table_names
from galaxyzoo.system.locks import writer_lock

logger = logging.getLogger(__name__)

SPLIT_TABLE = "split"
META_TABLE = "split_meta"
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitInfo:
    """One saved split: its id, parameters and the asset_ids of each part.

    Each part keeps the order scikit-learn returned it in (for `test`, the
    order of the seed's test arrays).
    """

    id: str
    test_size: float
    val_size: float
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified_test: bool
    stratified_val: bool
    created: str
    source: dict | None = None  # the ingest_source of the galaxy_data it split (None: unrecorded)

    @property
    def counts(self) -> dict[str, int]:
        """Number of galaxies per part."""
        return {part: len(getattr(self, part)) for part in PARTS}

    def describe(self) -> str:
        """One line for people: id, counts and parameters."""
        counts = ", ".join(f"{part} {n:,}" for part, n in self.counts.items())
        flags = "stratified" if self.stratified_test and self.stratified_val else (
            f"test {'stratified' if self.stratified_test else 'NOT stratified'}, "
            f"val {'stratified' if self.stratified_val else 'NOT stratified'}"
        )
        return (f"split {self.id}: {counts} (test_size={self.test_size}, val_size={self.val_size}, "
                f"seed={self.seed}, {flags})")


def split_id(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> str:
    """A 12-hex-digit hash of which asset_ids are in which part (order does not matter)."""
    digest = hashlib.sha256()
    for part, ids in zip(PARTS, (train, val, test)):
        digest.update(f"{part}:{','.join(map(str, np.sort(np.asarray(ids, dtype=np.int64))))}\n".encode())
    return digest.hexdigest()[:12]


def make_split(
    db_path: str | os.PathLike,
    test_size: float = 0.25,
    val_size: float = 0.1,
    random_state: int = 32,
    overwrite: bool = False,
    wait: bool = False,
) -> SplitInfo:
    """Split `galaxy_data` into train/val/test and save it in the database.

    Re-running with the same parameters on the same table finds the same id
    and leaves the saved split alone; a different split is refused unless
    `overwrite` is set. Another ingest or split writing `db_path` makes this
    refuse, or with `wait` wait.
    """
    if not 0 < test_size < 1:
        raise GalaxyZooError(f"test size must be a fraction between 0 and 1, got {test_size}")
    if not 0 <= val_size < 1:
        raise GalaxyZooError(f"val size must be a fraction in [0, 1), got {val_size}")
    if not 0 <= random_state < 2**32:  # scikit-learn's seeds
        raise GalaxyZooError(f"--seed must be a whole number from 0 to {2**32 - 1}, got {random_state}")
    open_database(db_path).close()  # a missing DB is named as such, before any lock file is made
    with writer_lock(db_path, wait):
        return _make_split(db_path, test_size, val_size, random_state, overwrite)


def _make_split(db_path, test_size, val_size, random_state, overwrite) -> SplitInfo:
    rows = read_galaxy_data(db_path, ["asset_id", "class_reduced"])
    asset_ids = rows["asset_id"].to_numpy(dtype=np.int64)
    labels = rows["class_reduced"].to_numpy(dtype=object)

    rest, test, stratified_test = _split_positions(
        np.arange(len(rows)), labels, test_size, random_state, f"{db_path}: test"
    )
    if val_size > 0:
        train_pos, val_pos, stratified_val = _split_positions(
            rest, labels[rest], val_size, random_state, f"{db_path}: val"
        )
    else:
        train_pos, val_pos, stratified_val = rest, rest[:0], True
    train, val, test = asset_ids[train_pos], asset_ids[val_pos], asset_ids[test]
    info = SplitInfo(
        id=split_id(train, val, test),
        test_size=float(test_size),
        val_size=float(val_size),
        seed=int(random_state),
        train=train,
        val=val,
        test=test,
        stratified_test=stratified_test,
        stratified_val=stratified_val,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=read_source(db_path),
    )

    existing = saved_split(db_path)
    if existing is not None and existing.id == info.id:
        logger.info("split %s already saved in %s", info.id, db_path)
        return existing
    if existing is not None and not overwrite:
        raise GalaxyZooError(
            f"{db_path}: already holds split {existing.id} (test_size={existing.test_size}, "
            f"val_size={existing.val_size}, seed={existing.seed}); these parameters give split {info.id}"
            + (" because galaxy_data changed" if _same_params(existing, info) else "")
            # A training's data build reaches here too, and `train` has no --overwrite: name the command.
            + f"; replace it with `galaxyzoo split --db {db_path} --test-size {info.test_size} --val-size "
            f"{info.val_size} --seed {info.seed} --overwrite`, or keep its parameters"
        )
    _save(db_path, info)
    logger.info("split %s saved in %s", info.id, db_path)  # the command prints describe() itself
    return info


def load_split(db_path: str | os.PathLike) -> SplitInfo:
    """The split saved in `db_path` by `make_split`."""
    info = saved_split(db_path)
    if info is None:
        raise GalaxyZooError(f"{db_path}: no split saved (make one with `galaxyzoo split --db {db_path}`)")
    return info


def _split_positions(
    positions: np.ndarray, labels: np.ndarray, size: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(kept, held out, stratified?) positions, stratified on `labels` when possible."""
    try:
        kept, held = train_test_split(positions, test_size=size, random_state=seed, stratify=labels)
        return kept, held, True
    except ValueError as exc:  # a class with one member, or fewer rows than classes
        reason = str(exc)
    try:
        kept, held = train_test_split(positions, test_size=size, random_state=seed)
    except ValueError as exc:
        raise GalaxyZooError(f"{what} split of {len(positions)} rows with size {size} is impossible: {exc}") from None
    logger.warning("%s split is not stratified (%s)", what, reason)
    return kept, held, False


def _same_params(a: SplitInfo, b: SplitInfo) -> bool:
    return (a.test_size, a.val_size, a.seed) == (b.test_size, b.val_size, b.seed)


def saved_split(db_path: str | os.PathLike) -> SplitInfo | None:
    """The split saved in `db_path`, or None if there is none yet."""
    conn = open_database(db_path)
    try:
        if not {SPLIT_TABLE, META_TABLE} <= set(table_names(conn)):
            return None
        # Splits saved before sources were recorded have no source column.
        has_source = "source" in [r[1] for r in conn.execute(f"PRAGMA table_info({META_TABLE})")]
        meta = conn.execute(
            f"SELECT id, test_size, val_size, seed, stratified_test, stratified_val, created, "
            f"{'source' if has_source else 'NULL'}, n_train, n_val, n_test FROM {META_TABLE}"
        ).fetchall()
        if len(meta) != 1:
            raise GalaxyZooError(f"{db_path}: table {META_TABLE} has {len(meta)} rows, expected 1")
        parts = {
            part: np.array(
                [r[0] for r in conn.execute(
                    f"SELECT asset_id FROM {SPLIT_TABLE} WHERE split = ? ORDER BY position", (part,)
                )],
                dtype=np.int64,
            )
            for part in PARTS
        }
    finally:
        conn.close()
    sid, test_size, val_size, seed, s_test, s_val, created, source, *counts = meta[0]
    info = SplitInfo(sid, test_size, val_size, seed, **parts, stratified_test=bool(s_test),
                     stratified_val=bool(s_val), created=created, source=json.loads(source or "null"))
    if list(info.counts.values()) != counts or split_id(info.train, info.val, info.test) != sid:
        raise GalaxyZooError(f"{db_path}: table {SPLIT_TABLE} does not match split {sid} in {META_TABLE}; "
                             "make it again with --overwrite")
    return info


def _save(db_path: str | os.PathLike, info: SplitInfo) -> None:
    """Replace both tables in one transaction, so a reader sees the old split or the new one."""
    conn = open_database(db_path, readonly=False)
    try:
        with conn:
            conn.execute(f"DROP TABLE IF EXISTS {SPLIT_TABLE}")
            conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")
            conn.execute(
                f"CREATE TABLE {SPLIT_TABLE} (asset_id INTEGER PRIMARY KEY, "
                "split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')), position INTEGER NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE {META_TABLE} (id TEXT NOT NULL, test_size REAL NOT NULL, val_size REAL NOT NULL, "
                "seed INTEGER NOT NULL, n_train INTEGER NOT NULL, n_val INTEGER NOT NULL, n_test INTEGER NOT NULL, "
                "stratified_test INTEGER NOT NULL, stratified_val INTEGER NOT NULL, created TEXT NOT NULL, "
                "source TEXT)"
            )
            for part in PARTS:
                ids = getattr(info, part)
                conn.executemany(
                    f"INSERT INTO {SPLIT_TABLE} VALUES (?, ?, ?)",
                    zip(ids.tolist(), [part] * len(ids), range(len(ids))),
                )
            conn.execute(
                f"INSERT INTO {META_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.id, info.test_size, info.val_size, info.seed, *info.counts.values(),
                 int(info.stratified_test), int(info.stratified_val), info.created, json.dumps(info.source)),
            )
    except sqlite3.DatabaseError as exc:
        raise GalaxyZooError(f"{db_path}: cannot save the split ({exc})") from None
    finally:
        conn.close()
