"""`galaxyzoo prepare` and the crop store: contents, bad files, resume, parameters, CLI."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from galaxyzoo.cli import main
from galaxyzoo.data.crop import crop_image, decode_image
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.prepare import prepare, read_asset_ids
from galaxyzoo.data.store import ROW_DTYPE, CropStore

MISSING_ID = 1  # in the table, no file
CORRUPT_ID = 2  # a JPEG damaged mid-file (OpenCV decoded it, grey where the damage began)
TRUNCATED_ID = 3  # half a JPEG


def _write_db(path: Path, asset_ids) -> Path:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE galaxy_data (asset_id INTEGER)")
        con.executemany("INSERT INTO galaxy_data VALUES (?)", [(int(a),) for a in asset_ids])
    return path


@pytest.fixture
def raw(tmp_path, real_images_dir):
    """RAW/images with 12 real JPEGs, one damaged mid-file and one truncated, plus a db naming one more."""
    images = tmp_path / "raw" / "images"
    images.mkdir(parents=True)
    sources = sorted(real_images_dir.glob("*.jpg"))[:12]
    for src in sources:
        (images / src.name).write_bytes(src.read_bytes())
    damaged = bytearray(sources[2].read_bytes())  # libjpeg notices this damage; not every damage shows
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = bytes(b ^ 0xFF for b in damaged[middle:middle + 64])
    (images / f"{CORRUPT_ID}.jpg").write_bytes(bytes(damaged))
    (images / f"{TRUNCATED_ID}.jpg").write_bytes(sources[0].read_bytes()[:4000])
    ids = [int(p.stem) for p in sources] + [MISSING_ID, CORRUPT_ID, TRUNCATED_ID]
    db = _write_db(tmp_path / "galaxy.sqlite", ids)
    return tmp_path / "raw", db


def _expected(raw_dir: Path, asset_id: int, size=106, channels=1) -> np.ndarray:
    data = (raw_dir / "images" / f"{asset_id}.jpg").read_bytes()
    return crop_image(decode_image(data, channels), size, channels)[0]


def test_prepare_crops_every_image_into_the_store(raw, tmp_path):
    raw_dir, db = raw
    report = prepare(raw_dir, db, tmp_path / "crops", workers=1, progress=False)
    store = CropStore.open(tmp_path / "crops")
    assert len(store) == report.total == 15 and report.processed == 15 and report.already_done == 0
    np.testing.assert_array_equal(store.asset_ids, np.sort(store.asset_ids))
    assert store.images.shape == (15, 106, 106, 1) and store.images.dtype == np.uint8
    for row, asset_id in enumerate(store.asset_ids):
        if asset_id > 3:
            np.testing.assert_array_equal(store.images[row], _expected(raw_dir, asset_id))
    status = dict(zip(store.asset_ids.tolist(), store.status))
    assert status[MISSING_ID] == "missing"
    assert status[CORRUPT_ID] == status[TRUNCATED_ID] == "corrupt"
    assert report.missing == [MISSING_ID] and report.corrupt == [CORRUPT_ID, TRUNCATED_ID]
    assert not store.images[:3].any()  # unreadable images are zeros, and flagged
    assert set(store.branches[store.usable]) <= {"center106", "center212", "full", "fallback"}
    assert report.status_counts["ok"] == 12 and sum(report.branch_counts.values()) == 15
    meta = json.loads((tmp_path / "crops" / "meta.json").read_text())
    assert meta["complete"] and meta["count"] == 15 and meta["size"] == 106 and meta["channels"] == 1
    assert meta["content_id"] == report.content_id and meta["branch_counts"] == report.branch_counts
    assert "1 missing image(s)" in report.summary() and "2 corrupt image(s)" in report.summary()


def test_output_does_not_depend_on_worker_count(raw, tmp_path, monkeypatch):
    raw_dir, db = raw
    monkeypatch.setattr("galaxyzoo.data.prepare.BLOCK_ROWS", 4)  # several blocks, so the pool really runs
    one = prepare(raw_dir, db, tmp_path / "one", workers=1, progress=False)
    two = prepare(raw_dir, db, tmp_path / "two", workers=2, progress=False)
    assert one.content_id == two.content_id
    assert (tmp_path / "one" / "images.u8").read_bytes() == (tmp_path / "two" / "images.u8").read_bytes()


def test_colour_store(raw, tmp_path):
    raw_dir, db = raw
    prepare(raw_dir, db, tmp_path / "rgb", size=64, channels=3, workers=1, progress=False)
    store = CropStore.open(tmp_path / "rgb")
    assert store.images.shape == (15, 64, 64, 3) and store.meta["channel_order"] == "BGR"
    np.testing.assert_array_equal(store.images[-1], _expected(raw_dir, store.asset_ids[-1], 64, 3))


def test_resume_skips_done_rows_and_redoes_pending_ones(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "crops"
    first = prepare(raw_dir, db, out, workers=1, progress=False)
    # Simulate a run killed mid-way: rows 5..9 half-written and not marked done (their records
    # still all zero); row 12 done, but its pixels changed since (they no longer match its crc32).
    store = CropStore.open(out, writable=True)
    expected = np.array(store.images)
    store.images[5:10] = 7
    store.images[12] = 9
    store.images.flush()
    rows = np.memmap(out / "rows.bin", dtype=ROW_DTYPE, mode="r+")
    rows[5:10] = 0
    rows.flush()
    del store, rows

    report = prepare(raw_dir, db, out, workers=2, progress=False)
    assert report.processed == 6 and report.already_done == 9
    assert report.recropped == [int(CropStore.open(out).asset_ids[12])] and not report.repairs
    resumed = CropStore.open(out)
    np.testing.assert_array_equal(resumed.images[5:13], expected[5:13])
    assert (resumed.status != "pending").all()
    assert report.branch_counts == first.branch_counts
    assert report.content_id == first.content_id


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_store(tmp_path, linked_raw, real_images_dir):
    """Kill a real `galaxyzoo prepare` process mid-run, run it again, check every row."""
    n = 6000
    _, db = linked_raw(n)
    sources = sorted(real_images_dir.glob("*.jpg"))
    out = tmp_path / "crops"
    cmd = [sys.executable, "-m", "galaxyzoo.cli", "prepare", "--raw", str(tmp_path / "raw"),
           "--db", str(db), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    deadline = time.monotonic() + 60
    while done == 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if (out / "rows.bin").exists():
            done = int((np.fromfile(out / "rows.bin", dtype=ROW_DTYPE)["status"] != 0).sum())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done < n, "the run was not caught mid-way"

    assert main(["prepare", "--raw", str(tmp_path / "raw"), "--db", str(db), "--out", str(out)]) == 0
    store = CropStore.open(out)
    assert (store.status == "ok").all() and store.meta["complete"]
    expected = {s.stem: crop_image(decode_image(s.read_bytes()))[0] for s in sources}
    for row, asset_id in enumerate(store.asset_ids):
        want = expected[sources[(asset_id - 10) % len(sources)].stem]
        np.testing.assert_array_equal(store.images[row], want)


def test_different_parameters_need_overwrite(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "crops"
    prepare(raw_dir, db, out, workers=1, progress=False)
    with pytest.raises(GalaxyZooError, match="size 106 \\(now 64\\)"):
        prepare(raw_dir, db, out, size=64, workers=1, progress=False)
    other_db = _write_db(tmp_path / "other.sqlite", [MISSING_ID, CORRUPT_ID])
    with pytest.raises(GalaxyZooError, match="source"):
        prepare(raw_dir, other_db, out, workers=1, progress=False)
    report = prepare(raw_dir, db, out, size=64, workers=1, overwrite=True, progress=False)
    assert report.processed == 15 and CropStore.open(out).size == 64


def test_same_db_with_other_rows_needs_overwrite(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "crops"
    prepare(raw_dir, db, out, workers=1, progress=False)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM galaxy_data WHERE asset_id = ?", (MISSING_ID,))
    with pytest.raises(GalaxyZooError, match="asset_ids \\(15 rows, now 14\\)"):
        prepare(raw_dir, db, out, workers=1, progress=False)


def test_refuses_to_write_into_a_folder_that_is_not_a_store(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(GalaxyZooError, match="not a crop store"):
            prepare(raw_dir, db, out, workers=1, overwrite=overwrite, progress=False)
    assert (out / "mine.txt").read_text() == "keep me"


def test_store_creation_killed_before_meta_json_starts_again(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "crops"
    out.mkdir()
    (out / "asset_ids.npy").write_bytes(b"half written")
    (out / "images.u8").write_bytes(b"")
    report = prepare(raw_dir, db, out, workers=1, progress=False)
    assert report.processed == 15 and len(CropStore.open(out)) == 15


def test_rows_for_maps_ids_and_names_bad_ones(raw, tmp_path):
    raw_dir, db = raw
    prepare(raw_dir, db, tmp_path / "crops", workers=1, progress=False)
    store = CropStore.open(tmp_path / "crops")
    ids = store.asset_ids[[7, 4, 11]]
    np.testing.assert_array_equal(store.rows_for(ids), [7, 4, 11])
    with pytest.raises(GalaxyZooError, match="not in crop store .*: 999999"):
        store.rows_for([ids[0], 999999])
    with pytest.raises(GalaxyZooError, match=f"{MISSING_ID} \\(missing\\)"):
        store.rows_for([MISSING_ID])
    with pytest.raises(ValueError):
        store.images[0, 0, 0, 0] = 1  # opened read-only


def test_read_asset_ids_reports_bad_tables(tmp_path):
    with pytest.raises(GalaxyZooError, match="not found"):
        read_asset_ids(tmp_path / "nope.sqlite")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(GalaxyZooError, match="galaxy_data"):
        read_asset_ids(empty)
    dup = _write_db(tmp_path / "dup.sqlite", [5, 5, 6])
    with pytest.raises(GalaxyZooError, match="not unique, e.g. 5"):
        read_asset_ids(dup)
    nulls = _write_db(tmp_path / "nulls.sqlite", [])
    with sqlite3.connect(nulls) as con:
        con.execute("INSERT INTO galaxy_data VALUES (NULL)")
    with pytest.raises(GalaxyZooError, match="non-integer"):
        read_asset_ids(nulls)
    np.testing.assert_array_equal(read_asset_ids(_write_db(tmp_path / "ok.sqlite", [9, 3])), [3, 9])


def test_cli_prepare(raw, tmp_path, capsys):
    raw_dir, db = raw
    out = tmp_path / "crops"
    args = ["prepare", "--raw", str(raw_dir), "--db", str(db), "--out", str(out), "--workers", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "15 images" in printed and "1 missing image(s), stored as zeros: 1" in printed
    assert main(args) == 0  # complete store: nothing left to do
    assert "0 cropped in this run" in capsys.readouterr().out
    assert main(["prepare", "--raw", str(raw_dir), "--db", str(tmp_path / "x.sqlite"), "--out", str(out)]) == 2
    assert "galaxyzoo: error: database" in capsys.readouterr().err
    assert main(["prepare", "--raw", str(tmp_path), "--db", str(db), "--out", str(out)]) == 2
    assert "images not found" in capsys.readouterr().err


def test_a_full_disk_or_an_oversized_crop_is_one_line_not_a_crash(raw, tmp_path, capsys, monkeypatch):
    """The store is written through memory maps, where a full disk would be a SIGBUS: its blocks are reserved first."""
    import errno
    import os

    raw_dir, db = raw
    out = tmp_path / "crops"
    args = ["prepare", "--raw", str(raw_dir), "--db", str(db), "--out", str(out), "--workers", "1"]

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"galaxyzoo: error: {out / 'images.u8'}: cannot reserve ") and \
        "No space left on device" in err[-1]
    assert [p.name for p in out.iterdir()] == []  # no half-made store left to refuse later
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)  # some network file systems: sparse, as before
    assert main(args) == 0 and len(CropStore.open(out)) == 15
    assert "cannot reserve disk blocks here" in capsys.readouterr().err
    monkeypatch.undo()
    assert main([*args[:-2], "--size", "100000", "--overwrite"]) == 2  # 360 GB of store, refused first
    assert "--size must be a number of pixels from 1 to 424" in capsys.readouterr().err


def test_a_meta_json_that_is_not_an_object_is_a_damaged_store(raw, tmp_path):
    raw_dir, db = raw
    out = tmp_path / "crops"
    prepare(raw_dir, db, out, workers=1, progress=False)
    (out / "meta.json").write_text("[1, 2]")
    with pytest.raises(GalaxyZooError, match=r"crop store .* is damaged \(meta.json holds a list, not an object\)"):
        CropStore.open(out)


def test_a_db_ingested_from_other_images_is_refused_before_any_crop(tiny_workdir, tmp_path, capsys):
    """Rows meet images by asset_id alone: another sample's images must not be cropped under these labels."""
    import shutil

    from galaxyzoo.data import ingest

    raw = next(tiny_workdir.glob("synthetic-*/raw"))
    db = raw.parent / "raw.derived" / "galaxy_data.sqlite"
    other = shutil.copytree(raw, tmp_path / "other" / "raw")  # the same names, another folder
    out = tmp_path / "crops"
    argv = ["prepare", "--raw", str(other), "--db", str(db), "--out", str(out), "--size", "16", "--workers", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"galaxyzoo: error: {db}: ingested from another raw folder ({raw.resolve()})")
    assert err.endswith(f"run `galaxyzoo ingest --raw {other} --db {db} --overwrite` first")
    assert len(err.splitlines()) == 1 and not out.exists()

    own = tmp_path / "own.sqlite"
    ingest.ingest(other, own, progress=False)
    first, second = sorted((other / "images").iterdir())[:2]
    first.write_bytes(second.read_bytes())  # an image replaced after the ingest
    argv[4] = str(own)
    assert main(argv) == 2
    assert "ingested from these images before they changed" in capsys.readouterr().err
    ingest.ingest(other, own, progress=False, overwrite=True)
    assert main(argv) == 0 and len(CropStore.open(out)) == len(read_asset_ids(own))
