"""Build the catalogue table `galaxy_data` from the raw GZ2 downloads.

The seed project's ingest, with every quirk of the real files handled and each
step counted:

1. read `gz2_hart16.csv` (identity columns, the 37 `_debiased` targets and the
   37 `_count` vote counts) and `gz2_filename_mapping.csv` with explicit dtypes;
2. keep the mapping rows with `asset_id < 295306` (every duplicated `objid`
   lives above that id and has no image);
3. join one-to-one on `objid = dr7objid`;
4. drop rows holding a NaN;
5. drop rows whose `images/{asset_id}.jpg` is missing (and count the images
   that have no row);
6. add `class_reduced`, the stratification label of the train/test split;
7. write `galaxy_data`, `ingest_report` and `ingest_source` (which raw folder and
   which content the table was built from, see `raw_source`) to a fresh SQLite file.

Malformed CSVs are refused, not guessed at: a repeated column name, a row with more or
fewer fields than the header, an id that is not an integer literal, a negative vote count,
or a `_debiased`/`_fraction`/`_weighted_fraction` value outside [0, 1] (NaN stays allowed:
such rows are dropped in step 4).

>>> report = ingest("data/raw", "data/galaxy_data.sqlite")  # doctest: +SKIP
>>> report.final_rows  # doctest: +SKIP
239267
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from galaxyzoo import schema
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.folders import storable_name
from galaxyzoo.system.locks import writer_lock

logger = logging.getLogger(__name__)

HART16_FILE = "gz2_hart16.csv"
MAPPING_FILE = "gz2_filename_mapping.csv"
IMAGES_DIR = "images"
TABLE = "galaxy_data"
REPORT_TABLE = "ingest_report"
SOURCE_TABLE = "ingest_source"

FIRST_DUPLICATE_ASSET_ID = 295306
"""Every mapping row with a duplicated `objid` has `asset_id >= 295306`; none has an image."""

RARE_CLASS_BELOW = 12
"""A `gz2_class` with fewer members than this (counted in hart16) loses its arm count and winding."""

SUPER_RARE_AT_MOST = 3
"""A reduced class with at most this many members (in the final table) becomes `SuperRare`."""

SUPER_RARE = "SuperRare"

_ARMS_AND_WINDING = re.compile(r"[1234+?][tml]")
_IMAGE_NAME = re.compile(r"\d+\.jpg")

MAPPING_DTYPES = {"objid": "Int64", "sample": "string", "asset_id": "int64"}

FRACTION_SUFFIXES = ("debiased", "fraction", "weighted_fraction")
"""hart16 columns with these suffixes are vote fractions: each value must lie in [0, 1] (or be NaN)."""

_HART16_DTYPES = dict(schema.hart16_columns())
_FRACTION_COLUMNS = [c for s in FRACTION_SUFFIXES for c in schema.target_columns(s)]
HART16_DTYPES = {
    c: _HART16_DTYPES[c]
    for c in ["dr7objid", "ra", "dec", "gz2_class", *_FRACTION_COLUMNS, *schema.target_columns("count")]
}
"""The hart16 columns ingest reads (of 231), with their dtypes; only the `_debiased` fractions are stored."""

COLUMNS = [
    "objid", "sample", "asset_id", "dr7objid", "ra", "dec", "gz2_class",
    *schema.target_columns(), "class_reduced", *schema.target_columns("count"),
]
"""Columns of `galaxy_data` in table order: the seed's 45 columns, then the 37 vote counts."""

_KIND = {"Int64": "an integer", "int64": "an integer", "float64": "a number"}
# 19-digit ids: pandas parses a column with one "….0" in it as float64, which rounds every id in it
# to a neighbour that still joins. These are read as text and converted digit for digit.
_EXACT_INTEGERS = frozenset({"objid", "dr7objid", "asset_id"})
_INTEGER_TEXT = r"[+-]?[0-9]+"


@dataclass(frozen=True)
class IngestReport:
    """How many rows and images each ingest step kept or dropped."""

    hart16_rows: int = field(metadata={"help": "rows read from gz2_hart16.csv"})
    mapping_rows: int = field(metadata={"help": "rows read from gz2_filename_mapping.csv"})
    mapping_duplicate_rows: int = field(metadata={"help": "mapping rows repeating an earlier objid"})
    mapping_rows_dropped: int = field(
        metadata={"help": f"mapping rows dropped with asset_id >= {FIRST_DUPLICATE_ASSET_ID}"}
    )
    joined_rows: int = field(metadata={"help": "rows joined one-to-one on objid = dr7objid"})
    hart16_rows_unmatched: int = field(metadata={"help": "hart16 rows without a mapping row"})
    mapping_rows_unmatched: int = field(metadata={"help": "mapping rows naming no hart16 galaxy (not used)"})
    nan_rows: int = field(metadata={"help": "joined rows dropped for holding a NaN"})
    rows_without_image: int = field(metadata={"help": "rows dropped for a missing image"})
    images_found: int = field(metadata={"help": "images found ({asset_id}.jpg)"})
    images_without_row: int = field(metadata={"help": "images without a row (not used)"})
    final_rows: int = field(metadata={"help": "rows written to galaxy_data"})
    gz2_classes: int = field(metadata={"help": "distinct gz2_class values in hart16"})
    rare_classes: int = field(metadata={"help": f"gz2_class values with < {RARE_CLASS_BELOW} members"})
    super_rare_rows: int = field(metadata={"help": f"rows labelled {SUPER_RARE}"})
    reduced_classes: int = field(metadata={"help": "distinct class_reduced values in galaxy_data"})

    def rows(self) -> list[tuple[str, int, str]]:
        """(name, count, description) for every count, in pipeline order."""
        return [(f.name, getattr(self, f.name), f.metadata["help"]) for f in fields(self)]

    def lines(self) -> list[str]:
        """The report as aligned human-readable lines."""
        return [f"{count:>10,}  {help_}" for _, count, help_ in self.rows()]


def ingest(
    raw_dir: str | os.PathLike, db_path: str | os.PathLike, progress: bool = True, overwrite: bool = False,
    wait: bool = False, unless_from: dict | None = None,
) -> IngestReport | None:
    """Read the raw GZ2 files in `raw_dir` and write `galaxy_data` to `db_path`.

    `db_path` must not exist yet unless `overwrite` is set; the database is
    built in a temporary file beside it and renamed into place, so it is
    replaced as a whole (tables derived from the old `galaxy_data`, such as
    the split, go with it) or not at all. One writer at a time: another
    ingest or split of `db_path` makes this refuse, or with `wait` wait.
    With `unless_from` (a `raw_source`), a DB that records it once the lock is
    held, built by the process waited for, is kept: None is returned.
    """
    # The raw folder's path is recorded in the DB; through a link ingest replaces the DB's target, not the link.
    raw, db = storable_name(Path(raw_dir), "raw folder"), Path(db_path).resolve()
    hart16_path, mapping_path, images_dir = raw / HART16_FILE, raw / MAPPING_FILE, raw / IMAGES_DIR
    for path in (hart16_path, mapping_path):
        _require_file(path)
    if not images_dir.is_dir():
        raise GalaxyZooError(f"{images_dir}: image folder not found (unzip images_gz2.zip there)")
    with writer_lock(db, wait):
        if unless_from is not None and is_ingested(db) and read_source(db) == unless_from:
            return None
        _check_target(db, overwrite)
        return _ingest(raw, db, progress)


def _ingest(raw: Path, db: Path, progress: bool) -> IngestReport:
    hart16_path, mapping_path, images_dir = raw / HART16_FILE, raw / MAPPING_FILE, raw / IMAGES_DIR
    read_as = {path: _file_state(path) for path in (hart16_path, mapping_path)}
    mapping = read_csv_typed(mapping_path, MAPPING_DTYPES, progress)
    hart16 = read_csv_typed(hart16_path, HART16_DTYPES, progress)
    _check_fractions(hart16, hart16_path)
    _check_counts(hart16, hart16_path)
    _check_positions(hart16, hart16_path)
    logger.info("read %d hart16 rows and %d mapping rows", len(hart16), len(mapping))
    _check_ids(hart16, "dr7objid", hart16_path)
    _require_unique(hart16, "dr7objid", hart16_path, "")
    clean = clean_mapping(mapping, mapping_path)
    logger.info("dropped %d mapping rows with asset_id >= %d", len(mapping) - len(clean), FIRST_DUPLICATE_ASSET_ID)

    # Mapping order first: the seed merged with the mapping on the left, and the
    # split's exact assignment depends on the row order.
    joined = clean.merge(
        hart16, left_on="objid", right_on="dr7objid", how="inner", validate="one_to_one", sort=False
    )
    _require_rows(joined, f"{hart16_path}: no dr7objid matches an objid of {mapping_path}")
    nan = joined.isna().any(axis=1)
    complete = joined[~nan]
    if complete.empty:
        column = joined.isna().sum().idxmax()  # the emptiest column is the likeliest culprit
        source = mapping_path if column in MAPPING_DTYPES else hart16_path
        _require_rows(complete, f"{source}: every joined row has an empty value (e.g. in column {column!r})")

    listing = list_images(images_dir, progress)
    image_names = set(listing)
    row_names = complete["asset_id"].astype(str) + ".jpg"
    has_image = row_names.isin(image_names).to_numpy()
    final = complete[has_image].copy()
    _require_rows(final, f"{images_dir}: none of the {len(complete)} rows has its image ({{asset_id}}.jpg)")
    images_without_row = len(image_names - set(row_names[has_image]))
    logger.info("dropped %d NaN rows and %d rows without image; %d images have no row",
                int(nan.sum()), int((~has_image).sum()), images_without_row)

    final["class_reduced"] = reduce_classes(final["gz2_class"], hart16["gz2_class"])
    final = final[COLUMNS]
    source = raw_source(raw, listing)
    for path, state in read_as.items():  # the digest just taken must be of the bytes read above
        if _file_state(path) != state:
            raise GalaxyZooError(f"{path}: changed while ingest read it (written or replaced meanwhile); run ingest "
                                 "again once it is complete")
    report = IngestReport(
        hart16_rows=len(hart16),
        mapping_rows=len(mapping),
        mapping_duplicate_rows=int(mapping["objid"].duplicated().sum()),
        mapping_rows_dropped=len(mapping) - len(clean),
        joined_rows=len(joined),
        hart16_rows_unmatched=len(hart16) - len(joined),
        mapping_rows_unmatched=len(clean) - len(joined),
        nan_rows=int(nan.sum()),
        rows_without_image=int((~has_image).sum()),
        images_found=len(image_names),
        images_without_row=images_without_row,
        final_rows=len(final),
        gz2_classes=int(hart16["gz2_class"].nunique()),
        rare_classes=int((hart16["gz2_class"].value_counts() < RARE_CLASS_BELOW).sum()),
        super_rare_rows=int((final["class_reduced"] == SUPER_RARE).sum()),
        reduced_classes=int(final["class_reduced"].nunique()),
    )
    _write_database(final, report, source, db, progress)
    logger.info("wrote %d rows to %s", len(final), db)
    return report


def clean_mapping(mapping: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The mapping rows with `asset_id < 295306`, checked to map each objid to one image."""
    _check_ids(mapping, "objid", path)
    clean = mapping[mapping["asset_id"] < FIRST_DUPLICATE_ASSET_ID]
    where = f"among rows with asset_id < {FIRST_DUPLICATE_ASSET_ID}"
    _require_unique(clean, "objid", path, where)
    _require_unique(clean, "asset_id", path, where)
    return clean


def reduce_class_name(name: str) -> str:
    """Drop the arm count and winding of an odd-feature spiral class.

    Only classes that end in an odd feature `(x)` and are not ellipticals
    change: `SBc4t(u)` -> `SBc(u)`, `Sc?l(m)` -> `Sc(m)`; `Sc4t`, `Er(m)` and
    `Sb(r)` stay as they are.
    """
    if not name.endswith(")") or name.startswith("E"):
        return name
    return _ARMS_AND_WINDING.sub("", name, count=1)


def reduce_classes(gz2_class: pd.Series, counted_in: pd.Series) -> pd.Series:
    """The seed's `class_reduced` labels for `gz2_class`.

    A class with fewer than 12 members in `counted_in` (the seed counted over
    all of hart16, before any row was dropped) goes through
    `reduce_class_name`; then every label with at most 3 members in
    `gz2_class` itself becomes `SuperRare`, so that each label can be
    stratified.
    """
    counts = counted_in.value_counts()
    rare = counts.index[counts < RARE_CLASS_BELOW]
    reduced = gz2_class.replace({name: reduce_class_name(name) for name in rare})
    after = reduced.value_counts()
    super_rare = after.index[after <= SUPER_RARE_AT_MOST]
    return reduced.mask(reduced.isin(super_rare), SUPER_RARE)


def _require_file(path: Path) -> None:
    """Refuse, saying why, a raw CSV that is missing or is not a regular file (a folder, a link to
    nothing, or a pipe, which would be read for ever)."""
    if path.is_file():
        return
    if path.is_symlink() and not path.exists():
        raise GalaxyZooError(f"{path}: a link to {os.readlink(path)}, which does not exist")
    if path.is_dir():
        raise GalaxyZooError(f"{path}: a folder, not a CSV file")
    if path.exists():
        raise GalaxyZooError(f"{path}: not a regular file (a device, pipe or socket)")
    raise GalaxyZooError(f"{path}: file not found (fetch it with `galaxyzoo download`)")


def read_csv_typed(path: Path, dtypes: dict[str, str], progress: bool = False) -> pd.DataFrame:
    """Read the `dtypes` columns of a CSV with those dtypes.

    A missing or repeated column, a row with more fields than the header, or a
    value that does not fit its dtype raises a `GalaxyZooError` naming the
    file, the column and the line. The frame's index is each row's line in the
    file (blank lines, which pandas skips, would shift a count of rows), so later
    checks name lines too.
    """
    header, lines = _check_shape(path)
    missing = [c for c in dtypes if c not in header]
    if len(header) == 1 and missing and any(sep in header[0] for sep in ";\t"):
        raise GalaxyZooError(f"{path}: one column in its header; expected comma-separated values, not ';' or tabs")
    if missing:
        raise GalaxyZooError(f"{path}: missing column(s) {', '.join(missing)}")
    exact = [c for c in dtypes if c in _EXACT_INTEGERS]
    try:
        # np.errstate: "1e400" in an integer column is refused below; NumPy's cast warning would come first
        with np.errstate(invalid="ignore"), open(path, "rb") as fh, tqdm.wrapattr(
            fh, "read", total=path.stat().st_size, desc=f"read {path.name}", unit="B", unit_scale=True,
            disable=not progress,
        ) as tracked:
            df = pd.read_csv(tracked, usecols=list(dtypes), dtype={**dtypes, **dict.fromkeys(exact, "string")},
                             engine="c", encoding="utf-8-sig")
        for column in exact:
            df[column] = _exact_integers(df[column], dtypes[column])
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas does not say which column failed; a slower untyped re-read finds it.
        raise GalaxyZooError(_describe_bad_value(path, dtypes, lines) or f"{path}: cannot read ({exc})") from None
    df.index = pd.Index(_row_lines(lines, len(df)), name="line")
    return df


def _row_lines(lines: np.ndarray, rows: int) -> np.ndarray:
    """`lines` (each row's line, from `_check_shape`) when pandas read as many rows; else the lines of a
    file without blank lines (the csv module and pandas split it differently), as pandas counted them."""
    return lines if len(lines) == rows else np.arange(rows) + 2


def _exact_integers(text: pd.Series, dtype: str) -> pd.Series:
    """A column of integer literals as `dtype`, each digit kept; anything else is a ValueError."""
    text = text.str.strip()
    if not (text.str.fullmatch(_INTEGER_TEXT) | text.isna()).all():
        raise ValueError("not an integer")
    return text.str.removeprefix("+").astype(dtype)


def _check_shape(path: Path) -> tuple[list[str], np.ndarray]:
    """The header of a CSV and the line of each of its rows, refusing repeated column names and rows
    longer than the header.

    pandas would rename a repeated column (`a.1`) and, reading only some columns, drop or
    shift the extra fields of a long row without a word; one pass of the csv module finds both.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            rows = csv.reader(fh)
            header = next(rows, None)
            if not header:
                raise GalaxyZooError(f"{path}: not a readable CSV file (no header line)")
            seen = set()
            repeated = [c for c in header if c in seen or seen.add(c)]
            if repeated:
                raise GalaxyZooError(f"{path}: column name(s) {', '.join(repr(c) for c in repeated)} repeated "
                                     "in the header")
            previous = rows.line_num
            lines = []
            for fields_ in rows:
                # No GZ2 value holds a line break: a row spanning lines has a stray double quote, which would
                # join the next row into one field and pair one galaxy's labels with another's image.
                if rows.line_num - previous > 1:
                    raise GalaxyZooError(f"{path}: line {previous + 1} runs on to line {rows.line_num}: a field "
                                         "is quoted across lines (a stray double quote?)")
                previous = rows.line_num
                # A short row would read as empty values and be dropped as a NaN row; a blank line is skipped.
                if fields_ and len(fields_) != len(header):
                    raise GalaxyZooError(f"{path}: line {rows.line_num} has {len(fields_)} fields, "
                                         f"the header {len(header)}")
                if fields_:
                    lines.append(rows.line_num)
    except UnicodeDecodeError as exc:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        hint = "it is gzip-compressed: gunzip it first" if compressed else exc
        raise GalaxyZooError(f"{path}: not a readable CSV file ({hint})") from None
    except (OSError, csv.Error) as exc:
        raise GalaxyZooError(f"{path}: not a readable CSV file ({exc})") from None
    return header, np.asarray(lines, dtype=np.int64)


def _check_fractions(df: pd.DataFrame, path: Path) -> None:
    """Every vote fraction lies in [0, 1]: one `inf` would make every training loss NaN."""
    columns = [c for c in _FRACTION_COLUMNS if c in df.columns]
    values = df[columns].to_numpy(dtype=np.float64)
    _refuse_values(path, columns, df.index, values, ~np.isnan(values) & ((values < 0) | (values > 1)),
                   "a fraction in [0, 1]")


def _check_counts(df: pd.DataFrame, path: Path) -> None:
    """Every vote count is at least 0: a negative one would make the vote likelihoods meaningless."""
    columns = schema.target_columns("count")
    values = df[columns].to_numpy(dtype=np.int64)
    _refuse_values(path, columns, df.index, values, values < 0, "a vote count of at least 0")


def _check_positions(df: pd.DataFrame, path: Path) -> None:
    """ra in [0, 360] and dec in [-90, 90] degrees: `inf` or a shifted column would pass as a position."""
    for column, low, high in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        values = df[[column]].to_numpy(dtype=np.float64)
        _refuse_values(path, [column], df.index, values, ~np.isnan(values) & ~((values >= low) & (values <= high)),
                       f"degrees from {low:g} to {high:g}")


def _refuse_values(path: Path, columns: list[str], lines, values: np.ndarray, bad: np.ndarray, expected: str) -> None:
    """Name the first `bad` value of `values` (rows x `columns`, the rows on `lines` of the file), its line
    and how many there are."""
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise GalaxyZooError(f"{path}: column {columns[col]!r} has value {values[row, col].item()!r} on line "
                             f"{lines[row]}, expected {expected} ({int(bad.sum())} such value(s) in all)")


def list_images(images_dir: Path, progress: bool = False) -> dict[str, tuple[int, int]]:
    """The `{asset_id}.jpg` files in `images_dir`, name -> (size, mtime_ns), from one listing."""
    found = {}
    try:
        with os.scandir(images_dir) as entries:
            for e in tqdm(entries, desc=f"list {images_dir}", unit=" files", disable=not progress):
                if _IMAGE_NAME.fullmatch(e.name) and e.is_file():
                    st = e.stat()
                    found[e.name] = (st.st_size, st.st_mtime_ns)
    except OSError as exc:  # the training build lists a raw folder before ingest would name it
        raise GalaxyZooError(f"{images_dir}: cannot list the image folder ({exc.strerror or exc}); expected "
                             "RAW/images/{asset_id}.jpg") from None
    return found


def _file_state(path: Path) -> tuple[int, int, int]:
    """Which file is at `path`, and whether it was written: inode, size, modification time."""
    try:
        found = path.stat()
    except OSError as exc:  # removed while ingest waited for the lock, or read it
        raise GalaxyZooError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return found.st_ino, found.st_size, found.st_mtime_ns


def raw_source(raw_dir: str | os.PathLike, listing: dict[str, tuple[int, int]] | None = None) -> dict:
    """What a derived file records it was built from: the raw folder and digests of its content.

    `catalogue` hashes the bytes of both CSVs (where every label comes from); `images` hashes
    the image listing (name, size, mtime of each `{asset_id}.jpg`), not 243k files' bytes: a
    re-downloaded, added or removed image changes it for the price of one directory listing.
    """
    raw = Path(raw_dir)
    if listing is None:
        listing = list_images(raw / IMAGES_DIR)
    catalogue = hashlib.blake2b(digest_size=16)
    for name in (HART16_FILE, MAPPING_FILE):
        try:
            with open(raw / name, "rb") as fh:
                catalogue.update(hashlib.file_digest(fh, "blake2b").digest())
        except OSError as exc:
            raise GalaxyZooError(f"{raw / name}: cannot read ({exc.strerror or exc})") from None
    return {"raw": str(raw.resolve()), "catalogue": catalogue.hexdigest(), "images": listing_digest(listing)}


def listing_digest(listing: dict[str, tuple[int, int]]) -> str:
    """A digest of an image listing (`list_images`), independent of the listing's order."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(listing):
        size, mtime = listing[name]
        digest.update(f"{name} {size} {mtime}\n".encode())
    return digest.hexdigest()


def read_source(db_path: str | os.PathLike) -> dict | None:
    """The `raw_source` an ingest recorded in `db_path`, or None if it recorded none."""
    conn = open_database(db_path)
    try:
        if SOURCE_TABLE not in table_names(conn):
            return None
        return dict(conn.execute(f"SELECT key, value FROM {SOURCE_TABLE}"))
    finally:
        conn.close()


def open_database(db_path: str | os.PathLike, readonly: bool = True) -> sqlite3.Connection:
    """Open an existing SQLite database (never creating one by accident)."""
    path = Path(db_path)
    if not path.is_file():
        raise GalaxyZooError(f"{path}: database not found (build it with `galaxyzoo ingest`)")
    mode = "ro" if readonly else "rw"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    try:
        conn.execute("SELECT name FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise GalaxyZooError(f"{path}: not an SQLite database ({exc})") from None
    return conn


def is_ingested(db_path: str | os.PathLike) -> bool:
    """Whether `db_path` holds a finished ingest (ingest writes both its tables in one rename)."""
    if not Path(db_path).is_file():
        return False
    conn = open_database(db_path)
    try:
        return {TABLE, REPORT_TABLE} <= set(table_names(conn))
    finally:
        conn.close()


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The tables of an open database."""
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def read_galaxy_data(db_path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """`galaxy_data` (or some of its columns) in table order, the order ingest wrote."""
    conn = open_database(db_path)
    try:
        if TABLE not in table_names(conn):
            raise GalaxyZooError(f"{db_path}: no {TABLE} table (build it with `galaxyzoo ingest`)")
        have = [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")]
        wanted = have if columns is None else list(columns)
        missing = [c for c in wanted if c not in have]
        if missing:
            raise GalaxyZooError(f"{db_path}: {TABLE} has no column(s) {', '.join(missing)}")
        select = ", ".join(f'"{c}"' for c in wanted)
        return pd.read_sql_query(f"SELECT {select} FROM {TABLE} ORDER BY rowid", conn)
    finally:
        conn.close()


def load_ingest_report(db_path: str | os.PathLike) -> IngestReport:
    """The counts an ingest stored beside its `galaxy_data`."""
    conn = open_database(db_path)
    try:
        if REPORT_TABLE not in table_names(conn):
            raise GalaxyZooError(f"{db_path}: no {REPORT_TABLE} table (build it with `galaxyzoo ingest`)")
        rows = dict(conn.execute(f"SELECT name, count FROM {REPORT_TABLE}"))
    finally:
        conn.close()
    missing = [f.name for f in fields(IngestReport) if f.name not in rows]
    if missing:
        raise GalaxyZooError(f"{db_path}: {REPORT_TABLE} has no count {', '.join(missing)} "
                             "(written by an older galaxyzoo); run `galaxyzoo ingest --overwrite` again")
    return IngestReport(**{f.name: int(rows[f.name]) for f in fields(IngestReport)})


def _check_target(db: Path, overwrite: bool) -> None:
    """Refuse a folder; replace an existing database only with `overwrite`, and any other file never
    (a raw CSV or image named as `--db` by mistake)."""
    if db.is_dir():
        raise GalaxyZooError(f"{db}: is a folder, expected a database file path")
    if db.exists() and not db.is_file():  # /dev/null, a pipe: renaming over it would replace the node itself
        raise GalaxyZooError(f"{db}: is not a regular file (a device, pipe or socket); choose another --db")
    if not db.exists() or db.stat().st_size == 0:
        return
    try:
        conn = open_database(db)
        try:
            what = f"holds tables {', '.join(table_names(conn)) or '(none)'}"
        finally:
            conn.close()
    except GalaxyZooError:
        raise GalaxyZooError(f"{db}: already exists and is not an SQLite database; ingest replaces only a "
                             "database: remove it or choose another --db") from None
    if not overwrite:
        raise GalaxyZooError(f"{db}: already exists and {what}; pass --overwrite to replace it")


def _describe_bad_value(path: Path, dtypes: dict[str, str], lines: np.ndarray) -> str | None:
    """Name the first column, line (`lines`: each row's) and value that do not fit `dtypes`."""
    try:
        text = pd.read_csv(path, usecols=list(dtypes), dtype="string", encoding="utf-8-sig")
    except ValueError:
        return None
    lines = _row_lines(lines, len(text))
    for column, dtype in dtypes.items():
        if dtype not in _KIND:
            continue
        values = text[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (values.notna() & numbers.isna()).to_numpy(dtype=bool)
        if dtype.lower() == "int64":  # a whole number within int64's range, not "2.5" nor "1e20"
            if column in _EXACT_INTEGERS:  # read as text (`_exact_integers`): a literal, not "5.0"
                whole = values.str.strip().str.fullmatch(_INTEGER_TEXT).fillna(False)
            else:  # read by pandas, which takes "5.0" as 5
                whole = numbers.notna() & (numbers % 1 == 0)
            fits = numbers.abs() < 2.0**63
            bad = bad | (values.notna() & ~(whole & fits)).to_numpy(dtype=bool, na_value=True)
        if dtype == "int64":  # plain int64 cannot hold a missing value; Int64 can
            bad = bad | values.isna().to_numpy(dtype=bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = values.iloc[row]
            shown = "an empty value" if pd.isna(value) else f"value {value!r}"
            return f"{path}: column {column!r} has {shown} on line {lines[row]}, expected {_KIND[dtype]}"
    return None


def _check_ids(df: pd.DataFrame, column: str, path: Path) -> None:
    """Rows exist and every one has its id (the join key)."""
    _require_rows(df, f"{path}: no data rows")
    empty = df.index[df[column].isna().to_numpy()]
    if len(empty):
        raise GalaxyZooError(
            f"{path}: column {column!r} has {len(empty)} empty value(s), first on line {empty[0]}"
        )


def _require_unique(df: pd.DataFrame, column: str, path: Path, where: str) -> None:
    repeated = df[column][df[column].duplicated(keep=False)]
    if len(repeated):
        value = repeated.iloc[0]
        lines = ", ".join(str(line) for line in df.index[(df[column] == value).to_numpy()])  # `read_csv_typed`
        raise GalaxyZooError(
            f"{path}: column {column!r} repeats {repeated.nunique()} value(s) {where}".rstrip()
            + f", e.g. {value} on lines {lines}"
        )


def _require_rows(df: pd.DataFrame, message: str) -> None:
    if df.empty:
        raise GalaxyZooError(f"{message}; no rows left to ingest")


def _write_database(final: pd.DataFrame, report: IngestReport, source: dict, db: Path, progress: bool) -> None:
    """Write the tables to a temporary file beside `db`, then rename it onto `db`."""
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    # Under the writer lock no other ingest is writing beside `db`: any such file (and its journal)
    # is a killed run's, which nothing else would ever remove.
    ours = re.compile(rf"\.{re.escape(db.name)}\.[0-9]+\.tmp(-journal|-wal|-shm)?")
    for stale in db.parent.iterdir():
        if ours.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(tmp)
        try:
            chunk = 20_000
            with tqdm(total=len(final), desc=f"write {TABLE}", unit=" rows", disable=not progress) as bar:
                for start in range(0, len(final), chunk):
                    part = final.iloc[start : start + chunk]
                    part.to_sql(TABLE, conn, if_exists="append", index=False)
                    bar.update(len(part))
            conn.execute(f"CREATE UNIQUE INDEX {TABLE}_asset_id ON {TABLE} (asset_id)")
            conn.execute(
                f"CREATE TABLE {REPORT_TABLE} (step INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
                " count INTEGER NOT NULL, description TEXT NOT NULL)"
            )
            conn.executemany(
                f"INSERT INTO {REPORT_TABLE} VALUES (?, ?, ?, ?)",
                [(i, *row) for i, row in enumerate(report.rows())],
            )
            conn.execute(f"CREATE TABLE {SOURCE_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.executemany(f"INSERT INTO {SOURCE_TABLE} VALUES (?, ?)", source.items())
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, db)
    except (OSError, sqlite3.Error) as exc:  # a full disk, a read-only folder
        tmp.unlink(missing_ok=True)
        raise GalaxyZooError(f"{db}: cannot write the database ({exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
