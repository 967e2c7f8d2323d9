"""`galaxyzoo ingest`: every quirk of the real files, on a tiny raw folder built here."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from galaxyzoo.data import ingest as ing
from galaxyzoo import schema
from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError

BASE_OBJID = 587722981741363294

# (gz2_class, how many hart16 rows). The seed counts members in hart16 as read:
# Sc2m(r) has exactly 12 there, so it is not "rare" even though a NaN row of it
# is dropped later; the (u) classes merge into SBc(u); the last three groups end
# up with <= 3 members and become SuperRare.
CLASSES = [
    ("Sc", 14),
    ("Sc2m(r)", 12),
    ("SBc4t(u)", 2),
    ("SBc2m(u)", 3),
    ("Ei(m)", 4),
    ("Sd?l", 4),
    ("Sa(i)", 1),
    ("Sc1t(d)", 2),
    ("Ser", 3),
]


def hart16_frame(classes: list[str], objids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """A hart16 table with all 231 columns in file order and plausible values."""
    n = len(classes)
    data = {}
    for name, dtype in schema.hart16_columns():
        if name == "dr7objid":
            data[name] = objids
        elif name == "gz2_class":
            data[name] = classes
        elif name == "sample":
            data[name] = ["original"] * n
        elif name in ("rastring", "decstring"):
            data[name] = ["12:11:42.06"] * n
        elif dtype == "int64":
            data[name] = rng.integers(0, 60, n)
        else:
            data[name] = np.round(rng.random(n) * (360 if name == "ra" else 1), 3)
    return pd.DataFrame(data)


def write_jpeg(path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", np.full((4, 4, 3), 40, np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())


def make_raw(root: Path, seed: int = 0) -> dict:
    """Write a raw folder with every quirk of the real release; return what ingest should find.

    - hart16 has one row without a mapping row (class "Sb": counted as a class, never ingested);
    - the mapping lists the galaxies in another order than hart16, has 3 duplicated
      objids at asset_id >= 295306, one more row above that id, and one row whose
      objid is not in hart16;
    - two joined rows hold a NaN, two have no image;
    - the images folder has 4 images without a row, plus files ingest must ignore.
    """
    rng = np.random.default_rng(seed)
    classes = [c for c, k in CLASSES for _ in range(k)]
    n = len(classes)  # 45 joined rows
    objids = BASE_OBJID + np.arange(n) * 7
    hart16 = hart16_frame(classes + ["Sb"], np.append(objids, BASE_OBJID - 1), rng)
    sc_rows = [i for i, c in enumerate(classes) if c == "Sc"]
    nan_rows = [sc_rows[0], classes.index("Sc2m(r)")]
    hart16.loc[nan_rows[0], "t08_odd_feature_a38_dust_lane_debiased"] = np.nan
    hart16.loc[nan_rows[1], "t02_edgeon_a05_no_debiased"] = np.nan
    hart16 = hart16.iloc[rng.permutation(len(hart16))]  # file order != mapping order

    order = rng.permutation(n)  # mapping order: the order of galaxy_data
    asset_ids = 1000 + np.arange(n) * 3
    mapping = pd.DataFrame({"objid": objids[order], "sample": "original", "asset_id": asset_ids})
    extra = pd.DataFrame({
        "objid": [objids[order[0]], objids[order[1]], objids[order[1]], BASE_OBJID + 10**6, BASE_OBJID + 10**7],
        "sample": ["extra", "extra", "extra", "extra", "original"],
        "asset_id": [295306, 295307, 300001, 295310, 999],
    })
    mapping = pd.concat([mapping, extra], ignore_index=True)

    no_image = [sc_rows[1], sc_rows[2]]  # galaxy indices (into `classes`)
    raw = root / "raw"
    (raw / "images").mkdir(parents=True)
    hart16.to_csv(raw / ing.HART16_FILE, index=False)
    mapping.to_csv(raw / ing.MAPPING_FILE, index=False)
    asset_of = dict(zip(order, asset_ids))
    for i in range(n):
        if i not in no_image:
            write_jpeg(raw / "images" / f"{asset_of[i]}.jpg")
    for orphan in (999, 5, 77):  # 999 has a mapping row whose objid is not in hart16
        write_jpeg(raw / "images" / f"{orphan}.jpg")
    (raw / "images" / "notes.txt").write_text("not an image")
    write_jpeg(raw / "images" / "12.png")
    (raw / "images" / "13.jpg").mkdir()  # a folder is not an image

    kept = [i for i in order if i not in nan_rows and i not in no_image]
    return {
        "raw": raw,
        "hart16": hart16.set_index("dr7objid"),
        "asset_ids": [asset_of[i] for i in kept],  # table order
        "objids": [objids[i] for i in kept],
        "classes": [classes[i] for i in kept],
    }


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path)


EXPECTED_REPORT = ing.IngestReport(
    hart16_rows=46,
    mapping_rows=50,
    mapping_duplicate_rows=3,
    mapping_rows_dropped=4,
    joined_rows=45,
    hart16_rows_unmatched=1,
    mapping_rows_unmatched=1,  # asset 999, whose objid is not in hart16
    nan_rows=2,
    rows_without_image=2,
    images_found=46,  # 43 joined rows with images + 999, 5, 77
    images_without_row=5,  # the two NaN rows' images + 999, 5, 77
    final_rows=41,
    gz2_classes=10,
    rare_classes=8,
    super_rare_rows=6,
    reduced_classes=6,
)

REDUCED = {
    "Sc": "Sc", "Sc2m(r)": "Sc2m(r)", "SBc4t(u)": "SBc(u)", "SBc2m(u)": "SBc(u)", "Ei(m)": "Ei(m)",
    "Sd?l": "Sd?l", "Sa(i)": "SuperRare", "Sc1t(d)": "SuperRare", "Ser": "SuperRare",
}


def test_ingest_counts_every_step(raw, tmp_path):
    db = tmp_path / "out" / "galaxy.sqlite"  # parent folder does not exist yet
    report = ing.ingest(raw["raw"], db, progress=False)
    assert report == EXPECTED_REPORT
    assert ing.load_ingest_report(db) == EXPECTED_REPORT
    # a report stored by an older version, without a count this one keeps, is refused by name
    with sqlite3.connect(db) as conn:
        conn.execute(f"DELETE FROM {ing.REPORT_TABLE} WHERE name = 'mapping_rows_unmatched'")
    conn.close()
    with pytest.raises(GalaxyZooError, match="has no count mapping_rows_unmatched .*ingest --overwrite"):
        ing.load_ingest_report(db)


def test_galaxy_data_table(raw, tmp_path):
    db = tmp_path / "galaxy.sqlite"
    assert not ing.is_ingested(db)
    ing.ingest(raw["raw"], db, progress=False)
    assert ing.is_ingested(db)
    table = ing.read_galaxy_data(db)
    assert list(table.columns) == ing.COLUMNS
    assert len(ing.COLUMNS) == 45 + 37
    assert table.columns[:45].tolist()[-1] == "class_reduced"
    # Rows in mapping order, as the seed's merge kept them.
    assert table["asset_id"].tolist() == raw["asset_ids"]
    assert table["objid"].tolist() == raw["objids"]
    assert (table["objid"] == table["dr7objid"]).all()
    assert table["gz2_class"].tolist() == raw["classes"]
    assert table["class_reduced"].tolist() == [REDUCED[c] for c in raw["classes"]]
    assert set(table["sample"]) == {"original"}
    assert not table.isna().any().any()
    hart16 = raw["hart16"].loc[table["dr7objid"]]
    for col in schema.target_columns() + schema.target_columns("count") + ["ra", "dec"]:
        np.testing.assert_array_equal(table[col].to_numpy(), hart16[col].to_numpy(), err_msg=col)

    conn = sqlite3.connect(db)
    types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(galaxy_data)")}
    indexes = conn.execute("PRAGMA index_list(galaxy_data)").fetchall()
    conn.close()
    assert types["asset_id"] == types["dr7objid"] == types["t01_smooth_or_features_a01_smooth_count"] == "INTEGER"
    assert types["t01_smooth_or_features_a01_smooth_debiased"] == "REAL"
    assert types["class_reduced"] == "TEXT"
    assert any(ix[2] == 1 for ix in indexes), "asset_id has a unique index"
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed away"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("SBc4t(u)", "SBc(u)"),  # the README's example
        ("Sc+l(m)", "Sc(m)"),
        ("SBd?m(i)", "SBd(i)"),
        ("Sc4t", "Sc4t"),  # no odd feature
        ("Sb(r)", "Sb(r)"),  # nothing to drop
        ("Ec1t(m)", "Ec1t(m)"),  # ellipticals never change
        ("Ser(d)", "Ser(d)"),
    ],
)
def test_reduce_class_name(name, expected):
    assert ing.reduce_class_name(name) == expected


def test_rare_classes_are_counted_in_hart16_not_in_the_final_rows():
    counted_in = pd.Series(["Sc1t(r)"] * 12 + ["Sc2t(r)"] * 11 + ["Sc3t(r)"] * 4)
    final = pd.Series(["Sc1t(r)"] * 5 + ["Sc2t(r)"] * 3 + ["Sc3t(r)"] * 2)
    # Sc1t(r): 12 in hart16, not rare, kept although only 5 remain;
    # Sc2t(r) + Sc3t(r) -> Sc(r) with 5 members in the final rows, not SuperRare.
    assert ing.reduce_classes(final, counted_in).tolist() == ["Sc1t(r)"] * 5 + ["Sc(r)"] * 5
    # A reduced label with <= 3 members in the final rows becomes SuperRare.
    assert ing.reduce_classes(final[:8], counted_in).tolist() == ["Sc1t(r)"] * 5 + ["SuperRare"] * 3


def test_existing_database_needs_overwrite(raw, tmp_path):
    db = tmp_path / "galaxy.sqlite"
    ing.ingest(raw["raw"], db, progress=False)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE split (asset_id INTEGER)")
    conn.commit()
    conn.close()
    pattern = r"galaxy\.sqlite: already exists and holds tables .*galaxy_data.*--overwrite"
    with pytest.raises(GalaxyZooError, match=pattern):
        ing.ingest(raw["raw"], db, progress=False)
    ing.ingest(raw["raw"], db, progress=False, overwrite=True)
    conn = sqlite3.connect(db)
    assert ing.table_names(conn) == ["galaxy_data", "ingest_report", "ingest_source"], "stale derived tables go"
    conn.close()


def test_overwrite_replaces_only_a_database_and_through_a_link_its_target(raw, tmp_path):
    mapping = raw["raw"] / ing.MAPPING_FILE
    before = mapping.read_bytes()
    with pytest.raises(GalaxyZooError, match=r"gz2_filename_mapping\.csv: already exists and is not an SQLite "
                                             r"database; ingest replaces only a database"):
        ing.ingest(raw["raw"], mapping, progress=False, overwrite=True)  # the raw CSV named as --db by mistake
    assert mapping.read_bytes() == before
    db, link = tmp_path / "real.sqlite", tmp_path / "link.sqlite"
    ing.ingest(raw["raw"], db, progress=False)
    link.symlink_to(db)
    db.write_bytes(b"")  # an empty file counts as no database: the ingest below must rebuild it
    ing.ingest(raw["raw"], link, progress=False, overwrite=True)
    assert link.is_symlink() and ing.is_ingested(db)  # the target rebuilt, the link kept
    from galaxyzoo.system.locks import lock_path

    assert lock_path(link) == lock_path(db)  # one lock for both names: two writers cannot race


def test_failed_ingest_leaves_existing_database_alone(raw, tmp_path):
    db = tmp_path / "galaxy.sqlite"
    ing.ingest(raw["raw"], db, progress=False)
    before = db.read_bytes()
    for image in (raw["raw"] / "images").glob("*.jpg"):
        if image.is_file():
            image.unlink()
    with pytest.raises(GalaxyZooError, match="has its image"):
        ing.ingest(raw["raw"], db, progress=False, overwrite=True)
    assert db.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_catalogue_replaced_while_ingest_reads_it_is_refused(raw, tmp_path, monkeypatch):
    """The DB kept the labels read but recorded the digest of the file found at the end: a swap in between
    (`synth --overwrite`, a download) gave labels that no longer match the recorded catalogue, unseen."""
    hart16 = raw["raw"] / "gz2_hart16.csv"
    read = ing.read_csv_typed

    def read_then_swap(path, *args, **kwargs):
        frame = read(path, *args, **kwargs)
        if path == hart16:  # another process replaces the file the moment it has been read
            (tmp_path / "new.csv").write_bytes(hart16.read_bytes().replace(b"0.", b"0.0", 1))
            os.replace(tmp_path / "new.csv", hart16)
        return frame

    monkeypatch.setattr(ing, "read_csv_typed", read_then_swap)
    db = tmp_path / "galaxy.sqlite"
    with pytest.raises(GalaxyZooError, match="gz2_hart16.csv: changed while ingest read it"):
        ing.ingest(raw["raw"], db, progress=False)
    assert not db.exists()
    monkeypatch.undo()
    hart16.unlink()  # removed while ingest waited for the lock: one line, not a traceback
    with pytest.raises(GalaxyZooError, match="gz2_hart16.csv: cannot read"):
        ing._ingest(raw["raw"], db, progress=False)


def _edit_csv(path: Path, edit) -> None:
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


@pytest.mark.parametrize(
    "file, edit, pattern",
    [
        (ing.HART16_FILE, lambda df: df.drop(columns=["t03_bar_a06_bar_count"]),
         r"gz2_hart16\.csv: missing column\(s\) t03_bar_a06_bar_count"),
        (ing.MAPPING_FILE, lambda df: df.drop(columns=["asset_id"]),
         r"gz2_filename_mapping\.csv: missing column\(s\) asset_id"),
        (ing.HART16_FILE, lambda df: df.assign(t05_bulge_prominence_a12_obvious_count=["7"] * 5 + ["many"] * 41),
         r"gz2_hart16\.csv: column 't05_bulge_prominence_a12_obvious_count' has value 'many' on line 7, "
         r"expected an integer"),
        (ing.HART16_FILE, lambda df: df.assign(ra=["1.5"] * 45 + ["east"]),
         r"gz2_hart16\.csv: column 'ra' has value 'east' on line 47, expected a number"),
        (ing.HART16_FILE, lambda df: df.assign(t01_smooth_or_features_a01_smooth_count=["3"] * 10 + ["2.5"] * 36),
         r"column 't01_smooth_or_features_a01_smooth_count' has value '2.5' on line 12, expected an integer"),
        (ing.MAPPING_FILE, lambda df: df.assign(asset_id=["1"] * 3 + [""] * 47),
         r"gz2_filename_mapping\.csv: column 'asset_id' has an empty value on line 5, expected an integer"),
        (ing.MAPPING_FILE, lambda df: df.assign(objid=["x"] + df["objid"].tolist()[1:]),
         r"gz2_filename_mapping\.csv: column 'objid' has value 'x' on line 2, expected an integer"),
        (ing.MAPPING_FILE, lambda df: df.assign(objid=[""] + df["objid"].tolist()[1:]),
         r"gz2_filename_mapping\.csv: column 'objid' has 1 empty value\(s\), first on line 2"),
        (ing.MAPPING_FILE, lambda df: df.assign(objid=[df["objid"][1]] + df["objid"].tolist()[1:]),
         r"gz2_filename_mapping\.csv: column 'objid' repeats 1 value\(s\) among rows with asset_id < 295306, "
         r"e\.g\. \d+ on lines 2, 3"),
        (ing.HART16_FILE, lambda df: df.assign(dr7objid=[df["dr7objid"][0]] * 2 + df["dr7objid"].tolist()[2:]),
         r"gz2_hart16\.csv: column 'dr7objid' repeats 1 value\(s\), e\.g\. \d+ on lines 2, 3"),
        # One id written as a float: read as numbers, every id of the column would round to a neighbour
        # that still joins (19 digits are more than float64 holds).
        (ing.MAPPING_FILE, lambda df: df.assign(objid=df["objid"].where(df.index != 2, df["objid"] + ".0")),
         r"gz2_filename_mapping\.csv: column 'objid' has value '\d{18,19}\.0' on line 4, expected an integer"),
        (ing.HART16_FILE, lambda df: df.assign(dr7objid=df["dr7objid"].where(df.index != 2, df["dr7objid"] + ".0")),
         r"gz2_hart16\.csv: column 'dr7objid' has value '\d{18,19}\.0' on line 4, expected an integer"),
        (ing.HART16_FILE, lambda df: df.assign(t03_bar_a06_bar_count=["4"] * 8 + ["-3"] * 38),
         r"gz2_hart16\.csv: column 't03_bar_a06_bar_count' has value -3 on line 10, expected a vote count of at "
         r"least 0 \(38 such value\(s\) in all\)"),
        (ing.HART16_FILE, lambda df: df.assign(t03_bar_a06_bar_count=["4"] * 8 + ["99999999999999999999"] * 38),
         r"column 't03_bar_a06_bar_count' has value '99999999999999999999' on line 10, expected an integer"),
        (ing.HART16_FILE, lambda df: df.assign(dec=["12.5"] * 8 + ["inf"] * 38),
         r"gz2_hart16\.csv: column 'dec' has value inf on line 10, expected degrees from -90 to 90 \(38 such"),
        (ing.HART16_FILE, lambda df: df.assign(ra=["-1.0"] + ["12.5"] * 45),
         r"gz2_hart16\.csv: column 'ra' has value -1\.0 on line 2, expected degrees from 0 to 360 \(1 such"),
        (ing.HART16_FILE, lambda df: df.iloc[:0],
         r"gz2_hart16\.csv: no data rows; no rows left to ingest"),
        (ing.HART16_FILE, lambda df: df.assign(dr7objid=[str(100 + i) for i in range(len(df))]),
         r"gz2_hart16\.csv: no dr7objid matches an objid of .*gz2_filename_mapping\.csv; no rows left"),
        (ing.HART16_FILE, lambda df: df.assign(t04_spiral_a09_no_spiral_debiased=""),
         r"gz2_hart16\.csv: every joined row has an empty value \(e\.g\. in column "
         r"'t04_spiral_a09_no_spiral_debiased'\); no rows left"),
    ],
)
def test_bad_input_names_file_and_column(raw, tmp_path, file, edit, pattern):
    _edit_csv(raw["raw"] / file, edit)
    db = tmp_path / "galaxy.sqlite"
    with pytest.raises(GalaxyZooError, match=pattern):
        ing.ingest(raw["raw"], db, progress=False)
    assert not db.exists()


@pytest.mark.parametrize(
    "file, edit, pattern",
    [
        (ing.HART16_FILE, lambda df: df.assign(ra=["1.5"] * 45 + ["east"]),  # a type, found by the re-read
         r"column 'ra' has value 'east' on line 49, expected a number"),
        (ing.HART16_FILE, lambda df: df.assign(dec=["12.5"] * 8 + ["inf"] * 38),  # a range
         r"column 'dec' has value inf on line 12, expected degrees"),
        (ing.HART16_FILE, lambda df: df.assign(dr7objid=[df["dr7objid"][0]] * 2 + df["dr7objid"].tolist()[2:]),
         r"column 'dr7objid' repeats 1 value\(s\), e\.g\. \d+ on lines 2, 5"),
        (ing.MAPPING_FILE, lambda df: df.assign(objid=df["objid"].tolist()[:3] + [""] + df["objid"].tolist()[4:]),
         r"column 'objid' has 1 empty value\(s\), first on line 7"),
    ],
)
def test_lines_are_counted_in_the_file_with_its_blank_lines(raw, tmp_path, file, edit, pattern):
    """Blank lines are skipped, but the line an error names is still the one an editor shows."""
    path = raw["raw"] / file
    _edit_csv(path, edit)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "", "", *lines[2:]]) + "\n")  # two blank lines after the first row
    with pytest.raises(GalaxyZooError, match=pattern):
        ing.ingest(raw["raw"], tmp_path / "galaxy.sqlite", progress=False)


@pytest.mark.parametrize("replace, message", [
    (lambda path: path.mkdir(), "a folder, not a CSV file"),
    (lambda path: os.mkfifo(path), r"not a regular file \(a device, pipe or socket\)"),  # read for ever
    (lambda path: path.symlink_to(path.parent / "gone.csv"), "a link to .*gone.csv, which does not exist"),
    (lambda path: None, r"file not found \(fetch it with `galaxyzoo download`\)"),
])
def test_a_catalogue_that_is_not_a_file_says_what_it_is(raw, tmp_path, capsys, replace, message):
    path = raw["raw"] / ing.HART16_FILE
    path.unlink()
    replace(path)
    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(tmp_path / "galaxy.sqlite")]) == 2
    assert re.search(f"{re.escape(str(path))}: {message}", capsys.readouterr().err)


def test_a_count_too_large_for_a_float_is_named_without_a_numpy_warning(raw, tmp_path, recwarn):
    _edit_csv(raw["raw"] / ing.HART16_FILE, lambda df: df.assign(t03_bar_a06_bar_count=["4"] * 8 + ["1e400"] * 38))
    with pytest.raises(GalaxyZooError, match="column 't03_bar_a06_bar_count' has value '1e400' on line 10"):
        ing.ingest(raw["raw"], tmp_path / "galaxy.sqlite", progress=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_short_row_is_refused_and_a_byte_order_mark_is_read(raw, tmp_path):
    """A row missing its last fields would read as empty values and vanish among the NaN rows."""
    path = raw["raw"] / ing.HART16_FILE
    text = path.read_text()
    path.write_text("\ufeff" + text)  # a spreadsheet's UTF-8 export starts with one
    (raw["raw"] / ing.MAPPING_FILE).write_text("\ufeff" + (raw["raw"] / ing.MAPPING_FILE).read_text())
    db = tmp_path / "galaxy.sqlite"
    assert ing.ingest(raw["raw"], db, progress=False) == EXPECTED_REPORT
    lines = text.splitlines()
    lines[5] = lines[5].rsplit(",", 2)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GalaxyZooError, match=r"gz2_hart16\.csv: line 6 has \d+ fields, the header \d+"):
        ing.ingest(raw["raw"], tmp_path / "other.sqlite", progress=False)


def test_a_compressed_or_semicolon_file_is_named_as_such(raw, tmp_path):
    import gzip

    path = raw["raw"] / ing.HART16_FILE
    text = path.read_text()
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(GalaxyZooError, match=r"gz2_hart16\.csv: not a readable CSV file \(it is gzip-compressed: "
                                             r"gunzip it first\)"):
        ing.ingest(raw["raw"], tmp_path / "a.sqlite", progress=False)
    path.write_text(text.replace(",", ";"))
    with pytest.raises(GalaxyZooError, match=r"gz2_hart16\.csv: one column in its header; expected "
                                             r"comma-separated values"):
        ing.ingest(raw["raw"], tmp_path / "a.sqlite", progress=False)


def test_a_killed_ingests_temporary_database_is_removed_by_the_next(raw, tmp_path):
    db = tmp_path / "galaxy.sqlite"
    stale = [tmp_path / ".galaxy.sqlite.4242.tmp", tmp_path / ".galaxy.sqlite.4242.tmp-journal"]
    for path in stale:
        path.write_bytes(b"half a database")
    others = [tmp_path / ".other.sqlite.4242.tmp", tmp_path / ".galaxy.sqlite.bak.4242.tmp"]  # other databases'
    for path in others:
        path.write_bytes(b"")
    ing.ingest(raw["raw"], db, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in others), db.name,
                                                                 "galaxy.sqlite.lock", "raw"])


def test_missing_inputs(raw, tmp_path):
    db = tmp_path / "galaxy.sqlite"
    (raw["raw"] / ing.MAPPING_FILE).rename(raw["raw"] / "elsewhere.csv")
    with pytest.raises(GalaxyZooError, match=r"gz2_filename_mapping\.csv: file not found"):
        ing.ingest(raw["raw"], db, progress=False)
    (raw["raw"] / "elsewhere.csv").rename(raw["raw"] / ing.MAPPING_FILE)
    (raw["raw"] / ing.HART16_FILE).write_text("")
    with pytest.raises(GalaxyZooError, match=r"gz2_hart16\.csv: not a readable CSV file"):
        ing.ingest(raw["raw"], db, progress=False)
    (raw["raw"] / "images").rename(raw["raw"] / "imgs")
    with pytest.raises(GalaxyZooError, match=r"images: image folder not found"):
        ing.ingest(raw["raw"], db, progress=False)


def test_cli_ingest(raw, tmp_path, capsys):
    db = tmp_path / "galaxy.sqlite"
    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "41  rows written to galaxy_data" in out
    assert "6  distinct class_reduced values" in out

    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("galaxyzoo: error: ") and "--overwrite" in err[0]
    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(db), "--overwrite"]) == 0
    capsys.readouterr()

    assert main(["ingest", "--raw", str(tmp_path / "nowhere"), "--db", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere/gz2_hart16.csv: file not found" in err[0]


def test_read_galaxy_data_errors(tmp_path):
    with pytest.raises(GalaxyZooError, match="database not found"):
        ing.read_galaxy_data(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("definitely not sqlite " * 100)
    with pytest.raises(GalaxyZooError, match="not an SQLite database"):
        ing.read_galaxy_data(junk)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(GalaxyZooError, match="no galaxy_data table"):
        ing.read_galaxy_data(empty)


def test_a_stray_quote_that_joins_two_rows_is_refused(raw, tmp_path):
    """`"original,2091` ... `stripe82",2140` would read as one row: one galaxy's labels on another's image."""
    path = raw["raw"] / ing.MAPPING_FILE
    lines = path.read_text().splitlines()
    objid, sample, asset = lines[1].split(",")
    lines[1] = f'{objid},"{sample},{asset}'
    objid2, sample2, asset2 = lines[2].split(",")
    lines[2] = f'{objid2},{sample2}",{asset2}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GalaxyZooError, match=r"gz2_filename_mapping\.csv: line 2 runs on to line 3: a field is "
                                             r"quoted across lines \(a stray double quote\?\)"):
        ing.ingest(raw["raw"], tmp_path / "galaxy.sqlite", progress=False)


def test_a_device_or_pipe_as_db_is_never_replaced(raw, tmp_path):
    fifo = tmp_path / "pipe.sqlite"
    os.mkfifo(fifo)
    for db in (fifo, Path("/dev/null")):
        with pytest.raises(GalaxyZooError, match="is not a regular file \\(a device, pipe or socket\\)"):
            ing.ingest(raw["raw"], db, progress=False, overwrite=True)
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()


def test_a_raw_folder_whose_name_is_not_utf8_is_refused_first(raw, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    raw["raw"].rename(odd)
    with pytest.raises(GalaxyZooError, match=r"raw folder .*caf\\udce9: the name is not valid UTF-8; rename it"):
        ing.ingest(odd, tmp_path / "galaxy.sqlite", progress=False)
