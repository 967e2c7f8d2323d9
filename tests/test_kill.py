"""Runs killed for real (SIGKILL mid-run): no process outlives them, and the rerun is byte for byte an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from galaxyzoo.cli import main
from galaxyzoo.data.store import ROW_DTYPE

DEADLINE_S = 120  # bounds on waits for a state (never assertions on time)


def start(tmp: Path, *args) -> subprocess.Popen:
    """Run a command in a session of its own, so its process group is everything it started.

    Its TMPDIR is `tmp`: killed, it cannot remove its own temporary files (multiprocessing's
    fork-server socket folder), and those must not pile up in /tmp.
    """
    return subprocess.Popen([sys.executable, *map(str, args)], start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(proc: subprocess.Popen, condition) -> None:
    """SIGKILL `proc` as soon as `condition()` holds; fail if it finished first."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    caught = condition() and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert caught, "the run was not caught mid-way"


def group(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of process group `pgid`."""
    members = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return members


def assert_nothing_left(proc: subprocess.Popen) -> None:
    """Every process the killed `proc` started ends (waited for, within a bound)."""
    deadline = time.monotonic() + DEADLINE_S
    while (left := group(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], "processes outlived the killed run"


def workers_started(proc: subprocess.Popen, n: int) -> bool:
    """The fork server has forked `n` workers (its children), beside the resource tracker."""
    try:
        return sum(len(c.children()) for c in psutil.Process(proc.pid).children()) >= n
    except psutil.NoSuchProcess:
        return False


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_killed_caller_takes_its_workers_fork_server_and_resource_tracker_with_it(tmp_path):
    code = ("import time; from galaxyzoo.system.workers import process_map\n"
            "list(process_map(time.sleep, [3600, 3600], 2, preload='galaxyzoo.system.workers', what='test'))")
    proc = start(tmp_path, "-c", code)
    kill_when(proc, lambda: workers_started(proc, 2))
    assert_nothing_left(proc)


@pytest.mark.slow
def test_killed_synth_leaves_no_process_and_its_rerun_resumes_to_an_uninterrupted_run(tmp_path, caplog):
    out = tmp_path / "killed" / "sample"
    args = ["--n", 120, "--seed", 3, "--workers", 2]
    proc = start(tmp_path, "-m", "galaxyzoo.cli", "synth", "--out", out, *args)
    # two checkpoints of 8 galaxies written (synth.checkpoints): the rerun starts after them
    kill_when(proc, lambda: len(list(out.parent.glob("sample.tmp-*/progress/chunk-*.pkl"))) >= 2)
    assert_nothing_left(proc)
    assert [p.name for p in out.parent.glob("sample.tmp-*") if p.is_dir()], "the kill left its temporary folder"

    with caplog.at_level("INFO", logger="galaxyzoo.data.synth.generate"):
        assert main(["synth", "--out", str(out), *map(str, args)]) == 0
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming: ")]
    assert len(resumed) == 1 and int(resumed[0].split()[1]) >= 16, resumed
    assert main(["synth", "--out", str(tmp_path / "whole"), *map(str, args)]) == 0
    # The rerun removed the killed run's leftovers; the lock file stays (an OS lock: it blocks no one once free).
    assert sorted(p.name for p in out.parent.iterdir()) == ["sample", "sample.lock"]
    assert file_bytes(out) == file_bytes(tmp_path / "whole")


@pytest.mark.slow
def test_killed_prepare_leaves_no_process_and_its_rerun_is_an_uninterrupted_run(tmp_path, linked_raw):
    raw, db = linked_raw(3000)
    args = ["--raw", raw, "--db", db, "--workers", 2]
    out = tmp_path / "killed"

    def some_rows_done() -> bool:
        rows = out / "rows.bin"
        return rows.exists() and (np.fromfile(rows, dtype=ROW_DTYPE)["status"] != 0).any()

    proc = start(tmp_path, "-m", "galaxyzoo.cli", "prepare", "--out", out, *args)
    kill_when(proc, lambda: workers_started(proc, 2) and some_rows_done())
    assert_nothing_left(proc)

    assert main(["prepare", "--out", str(out), *map(str, args)]) == 0
    assert main(["prepare", "--out", str(tmp_path / "whole"), *map(str, args)]) == 0
    assert file_bytes(out) == file_bytes(tmp_path / "whole")
