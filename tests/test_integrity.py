"""Derived files never silently wrong: provenance, self-checking stores, one writer, sane labels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_ingest import _edit_csv, make_raw

from galaxyzoo import schema
from galaxyzoo.data import ingest
from galaxyzoo.data import workspace
from galaxyzoo.cli import main
from galaxyzoo.data.stream import Labels
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.prepare import prepare
from galaxyzoo.data.store import CropStore

SIZES = dict(synthetic_n=60, synthetic_seed=0, image_size=16, channels=1)
SPLIT = dict(test_size=0.25, val_size=0.1, split_seed=32)
SMOOTH = schema.target_columns()[0]


@pytest.fixture(scope="module")
def synthetic_raw(tmp_path_factory) -> Path:
    """A synthetic raw folder of 60 galaxies (built with its workspace once per module)."""
    ws = workspace.locate("synthetic", tmp_path_factory.mktemp("integrity"), **SIZES)
    workspace.build(ws, **SIZES, **SPLIT, progress=False)
    return ws.raw


@pytest.fixture
def ws(synthetic_raw, tmp_path) -> workspace.Workspace:
    """A built workspace of this test's own copy of `synthetic_raw`, to damage at will."""
    shutil.copytree(synthetic_raw, tmp_path / "w" / "raw")
    ws = workspace.locate(str(tmp_path / "w" / "raw"), tmp_path, **SIZES)
    _build(ws)
    return ws


def _build(ws):
    return workspace.build(ws, **SIZES, **SPLIT, progress=False)


def _last_line_error(capsys) -> str:
    """The CLI's one-line error (after any progress bars), checked to be one line and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n"), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("galaxyzoo: error: ") and err.count("galaxyzoo: error: ") == 1, err
    return last


# ---------------------------------------------------------------- provenance


def test_each_raw_folder_gets_its_own_labels(ws, tmp_path):
    """The issue's reproduction: a copy of rawA with every smooth fraction at 0.999 trains on those."""
    raw_b = tmp_path / "w" / "rawB"
    shutil.copytree(ws.raw, raw_b)
    _edit_csv(raw_b / ingest.HART16_FILE, lambda df: df.assign(**{SMOOTH: "0.999"}))
    b = workspace.locate(str(raw_b), tmp_path, **SIZES)
    _build(b)
    assert b.db != ws.db and b.store != ws.store and b.db.parent == tmp_path / "w" / "rawB.derived"
    assert np.allclose(Labels.read(b.db).targets[:, 0], 0.999)
    assert not np.allclose(Labels.read(ws.db).targets[:, 0], 0.999)


def test_a_changed_catalogue_is_ingested_again(ws):
    _edit_csv(ws.raw / ingest.HART16_FILE, lambda df: df.assign(**{SMOOTH: "0.25"}))
    _build(ws)
    assert np.allclose(Labels.read(ws.db).targets[:, 0], 0.25)
    assert ingest.read_source(ws.db) == ingest.raw_source(ws.raw)


def test_changed_images_are_cropped_again(ws):
    before = CropStore.open(ws.store).meta["content_id"]
    first, second = sorted((ws.raw / "images").glob("*.jpg"))[:2]
    shutil.copy(second, first)
    _build(ws)
    store = CropStore.open(ws.store)
    assert store.meta["source"]["images"] == ingest.listing_digest(ingest.list_images(ws.raw / "images"))
    assert store.meta["content_id"] != before


def test_verify_names_a_db_built_from_other_raw_files(ws, capsys):
    assert main(["verify", "--raw", str(ws.raw)]) == 0
    assert "every crc32 matches" in capsys.readouterr().out
    _edit_csv(ws.raw / ingest.MAPPING_FILE, lambda df: df.iloc[:-1])
    assert main(["verify", "--raw", str(ws.raw)]) == 2
    assert "was not ingested from" in _last_line_error(capsys)


def test_verify_names_a_store_of_other_galaxies_than_its_db_holds_now(ws, capsys):
    """The catalogue cut and ingested again into the same DB path: prepare refuses the store, so verify must."""
    _edit_csv(ws.raw / ingest.HART16_FILE, lambda df: df.iloc[:-5])
    ingest.ingest(ws.raw, ws.db, progress=False, overwrite=True)
    assert main(["verify", "--raw", str(ws.raw)]) == 2
    assert f"crop store {ws.store} holds other galaxies than {ws.db} now" in _last_line_error(capsys)


# ---------------------------------------------------------------- damaged stores


def test_truncated_store_is_refused_then_repaired(ws, capsys):
    clean = (ws.store / "images.u8").read_bytes()
    with open(ws.store / "images.u8", "r+b") as fh:
        fh.truncate(len(clean) // 2)
    with pytest.raises(GalaxyZooError, match=r"images\.u8 holds .* bytes, \d+ rows need"):
        CropStore.open(ws.store)
    with pytest.raises(GalaxyZooError, match="images.u8 holds"):
        _build(ws)  # training refuses it
    report = prepare(ws.raw, ws.db, ws.store, size=16, workers=1, progress=False)
    assert report.repairs and report.recropped and report.processed == len(report.recropped)
    assert (ws.store / "images.u8").read_bytes() == clean


def test_a_flipped_byte_is_found_named_and_recropped(ws, capsys):
    clean = (ws.store / "images.u8").read_bytes()
    store = CropStore.open(ws.store)
    row = int(np.flatnonzero(store.usable)[3])
    damaged = bytearray(clean)
    damaged[row * 16 * 16 + 7] ^= 0xFF
    (ws.store / "images.u8").write_bytes(bytes(damaged))
    asset_id = int(store.asset_ids[row])

    with pytest.raises(GalaxyZooError, match=rf"1 row\(s\) fail their crc32 check: {row} \(asset_id {asset_id}\)"):
        _build(ws)
    assert main(["verify", "--store", str(ws.store)]) == 2
    assert f"{row} (asset_id {asset_id})" in _last_line_error(capsys)
    report = prepare(ws.raw, ws.db, ws.store, size=16, workers=1, progress=False)
    assert report.recropped == [asset_id] and report.processed == 1
    assert (ws.store / "images.u8").read_bytes() == clean
    assert main(["verify", "--raw", str(ws.raw)]) == 0


def test_damaged_rows_bin_is_one_line_and_repaired(ws, capsys):
    clean = (ws.store / "images.u8").read_bytes()
    rows = bytearray((ws.store / "rows.bin").read_bytes())
    rows[0:12] = b"\xff" * 12  # two records that cannot exist
    (ws.store / "rows.bin").write_bytes(bytes(rows))
    assert main(["verify", "--store", str(ws.store)]) == 2
    assert "rows.bin holds impossible records in 2 row(s): 0, 1" in _last_line_error(capsys)
    report = prepare(ws.raw, ws.db, ws.store, size=16, workers=1, progress=False)
    assert report.processed == 2 and any("rows.bin" in fix for fix in report.repairs)
    assert (ws.store / "images.u8").read_bytes() == clean


# ---------------------------------------------------------------- one writer


HOLD = """
import sys
from galaxyzoo.system.locks import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holding(target: Path) -> subprocess.Popen:
    """A real process holding the write lock of `target` until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_refuses_with_one_line(ws, capsys):
    before = (ws.store / "rows.bin").read_bytes(), ws.db.read_bytes()
    for target, args in [
        (ws.store, ["prepare", "--raw", str(ws.raw), "--db", str(ws.db), "--out", str(ws.store), "--overwrite"]),
        (ws.db, ["ingest", "--raw", str(ws.raw), "--db", str(ws.db), "--overwrite"]),
        (ws.db, ["split", "--db", str(ws.db), "--seed", "5", "--overwrite"]),
    ]:
        holder = _holding(target)
        try:
            assert main(args) == 2
            assert f"{target} is being written by another process" in _last_line_error(capsys)
        finally:
            holder.communicate("")
    assert ((ws.store / "rows.bin").read_bytes(), ws.db.read_bytes()) == before


BUILD = """
import logging, sys
from galaxyzoo.data import workspace
logging.basicConfig(level=logging.INFO, format="%(message)s")
ws = workspace.locate(sys.argv[1], sys.argv[2], synthetic_n=60, synthetic_seed=0, image_size=16, channels=1)
workspace.build(ws, synthetic_n=60, synthetic_seed=0, image_size=16, channels=1, test_size=0.25, val_size=0.1,
                split_seed=32, progress=False)
"""


def test_trainings_started_together_on_a_stale_db_ingest_it_once(ws, tmp_path):
    """Each decided to ingest before taking the DB's lock, then replaced the DB in its turn, and with it the
    split another had made and a finished run recorded."""
    _edit_csv(ws.raw / ingest.HART16_FILE, lambda df: df.assign(**{SMOOTH: "0.25"}))  # the DB is stale now
    holder = _holding(ws.db)  # both builders decide, then wait for the lock
    builders = [subprocess.Popen([sys.executable, "-c", BUILD, str(ws.raw), str(tmp_path)], stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    try:
        for builder in builders:  # each has found the DB stale and is waiting
            assert "was built from other raw data" in builder.stderr.readline()
    finally:
        holder.communicate("")
    logs = [builder.communicate()[1] for builder in builders]
    assert [b.returncode for b in builders] == [0, 0], logs
    assert sum("hart16 rows" in log for log in logs) == 1, logs  # one ingest; the other kept its DB
    assert np.allclose(Labels.read(ws.db).targets[:, 0], 0.25)


@pytest.mark.slow
def test_two_concurrent_prepares_never_both_write(ws):
    """`prepare --size 64` racing `prepare --overwrite` on one store: one writes, the store stays sound."""
    out = ws.store.parent / "race"
    base = [sys.executable, "-m", "galaxyzoo.cli", "prepare", "--raw", str(ws.raw), "--db", str(ws.db),
            "--out", str(out), "--workers", "1"]
    prepare(ws.raw, ws.db, out, size=16, workers=1, progress=False)
    procs = [subprocess.Popen(base + extra, stderr=subprocess.PIPE, text=True)
             for extra in (["--size", "64", "--overwrite"], ["--size", "16", "--overwrite"])]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results)
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "is being written by another process" in err), err
    store = CropStore.open(out)
    assert not len(store.crc_failures()) and store.meta["complete"]


# ---------------------------------------------------------------- bad input


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path)


@pytest.mark.parametrize("suffix", ["debiased", "fraction", "weighted_fraction"])
@pytest.mark.parametrize("value", ["inf", "7.5", "-3"])
def test_fractions_outside_0_1_are_refused(raw, tmp_path, suffix, value):
    column = schema.target_columns(suffix)[5]
    _edit_csv(raw["raw"] / ingest.HART16_FILE, lambda df: df.assign(**{column: ["0.5"] * 3 + [value] * 43}))
    with pytest.raises(GalaxyZooError, match=rf"gz2_hart16\.csv: column '{column}' has value .* on line 5, "
                                             r"expected a fraction in \[0, 1\]"):
        ingest.ingest(raw["raw"], tmp_path / "g.sqlite", progress=False)


def test_nan_fractions_stay_allowed(raw, tmp_path):
    _edit_csv(raw["raw"] / ingest.HART16_FILE, lambda df: df.assign(**{SMOOTH: [""] + ["0.5"] * 45}))
    assert ingest.ingest(raw["raw"], tmp_path / "g.sqlite", progress=False).nan_rows >= 1


def test_repeated_column_names_are_refused(raw, tmp_path):
    path = raw["raw"] / ingest.MAPPING_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",sample"] + [line + ",x" for line in lines[1:]]) + "\n")
    with pytest.raises(GalaxyZooError, match=r"gz2_filename_mapping\.csv: column name\(s\) 'sample' repeated"):
        ingest.ingest(raw["raw"], tmp_path / "g.sqlite", progress=False)


@pytest.mark.parametrize("line", [2, 9])
def test_rows_longer_than_the_header_are_refused(raw, tmp_path, line):
    path = raw["raw"] / ingest.MAPPING_FILE
    lines = path.read_text().splitlines()
    lines[line - 1] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GalaxyZooError, match=rf"gz2_filename_mapping\.csv: line {line} has 4 fields, the header 3"):
        ingest.ingest(raw["raw"], tmp_path / "g.sqlite", progress=False)


def test_unwritable_destinations_are_one_line(raw, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(blocker / "g.sqlite")]) == 2
    assert f"{blocker} is a file, not a folder" in _last_line_error(capsys)  # not the lock file's "File exists"
    db = tmp_path / "g.sqlite"
    assert main(["ingest", "--raw", str(raw["raw"]), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["prepare", "--raw", str(raw["raw"]), "--db", str(db), "--out", str(blocker / "crops")]) == 2
    assert f"{blocker} is a file, not a folder" in _last_line_error(capsys)
