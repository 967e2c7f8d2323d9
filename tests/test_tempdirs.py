"""Owned temporary folders: a live owner's folder is kept, a killed owner's is swept."""

import signal
import subprocess
import sys
from pathlib import Path

from galaxyzoo.system.tempdirs import OwnedFolder, remove_stale


def test_a_live_owners_folder_is_kept_and_a_killed_owners_is_removed(tmp_path):
    out = tmp_path / "sample"
    code = ("import sys; from pathlib import Path; from galaxyzoo.system.tempdirs import OwnedFolder\n"
            "folder = OwnedFolder(Path(sys.argv[1]), 'tmp'); (folder.path / 'half.jpg').write_bytes(b'x')\n"
            "print(folder.path, flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        folder = tmp_path / owner.stdout.readline().strip()
        remove_stale(out, "tmp")
        assert (folder / "half.jpg").exists(), "another process's live folder was removed"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert folder.exists()
    remove_stale(out, "tmp")
    assert list(tmp_path.iterdir()) == [], "the killed owner's folder and lock file are gone"


def test_this_process_keeps_its_own_folder_and_removes_it_when_done(tmp_path):
    out = tmp_path / "sample"
    with OwnedFolder(out, "tmp") as folder:
        (folder / "half.jpg").write_bytes(b"x")
        remove_stale(out, "tmp")
        assert (folder / "half.jpg").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_takes_no_lock_file_is_an_error_not_an_endless_loop(tmp_path, monkeypatch):
    """filelock reports a file system that refuses the lock file (/proc) as a timeout, every time."""
    import pytest
    from filelock import FileLock, Timeout

    def refuse(self, timeout=None, **kwargs):
        raise Timeout(self.lock_file)

    monkeypatch.setattr(FileLock, "acquire", refuse)
    with pytest.raises(OSError, match=r"cannot create a locked folder beside .*sample \(100 tries\)"):
        OwnedFolder(tmp_path / "sample", "tmp")
    assert list(tmp_path.iterdir()) == []


def test_only_this_outputs_tagged_leftovers_are_swept(tmp_path):
    out = tmp_path / "sample"
    old_style = tmp_path / "sample.tmp-0123abcd"  # left by a killed run of the old code: no lock file
    (old_style / "images").mkdir(parents=True)
    orphan_lock = tmp_path / "sample.old-89abcdef.lock"  # killed after the rename, before the unlink
    orphan_lock.write_text("")
    keep = ["sample", "sample.tmp-backup", "sample.new-0123abcd", "other.tmp-0123abcd", "sample.tmp-0123abcd.txt"]
    for name in keep:
        (tmp_path / name).mkdir()
    remove_stale(out, "tmp", "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_a_scratch_folder_a_sigkill_left_is_swept_by_the_next_one(tmp_path, monkeypatch):
    """tempfile.TemporaryDirectory outlives a SIGKILL for good; `scratch` leaves it to the next scratch."""
    import os
    import tempfile

    from galaxyzoo.system.tempdirs import scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this process's scratch folders go there too
    code = ("from galaxyzoo.system.tempdirs import scratch\nimport sys\n"
            "with scratch('galaxyzoo-model') as tmp:\n"
            "    open(tmp + '/model.keras', 'wb').write(b'x'); print(tmp, flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        killed = owner.stdout.readline().strip()
        assert killed.startswith(str(tmp_path / "galaxyzoo-model.tmp-"))
        assert oct(os.stat(killed).st_mode & 0o777) == oct(0o700)  # private, as mkdtemp's
        with scratch("galaxyzoo-model") as live:
            assert os.path.exists(killed + "/model.keras"), "a live owner's scratch folder was removed"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert not os.path.exists(live) and os.path.exists(killed)
    with scratch("galaxyzoo-model") as again:  # the killed owner's folder and lock file are swept first
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([os.path.basename(again),
                                                                     os.path.basename(again) + ".lock"])
    assert list(tmp_path.iterdir()) == []


def test_a_librarys_temporary_folders_go_inside_a_held_scratch_and_go_with_it(tmp_path, monkeypatch):
    """MLflow copies a model it logs into a `tempfile` folder that a SIGKILL would leave in /tmp for good."""
    import tempfile

    from galaxyzoo.system.tempdirs import tempfiles_in_scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with tempfiles_in_scratch("galaxyzoo-log-model"):
        inner = tempfile.mkdtemp()  # as the library makes its own
        (held,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        assert held.name.startswith("galaxyzoo-log-model.tmp-") and Path(inner).parent == held
        assert (tmp_path / (held.name + ".lock")).exists()  # held: the next scratch of its prefix keeps it
    assert tempfile.tempdir == str(tmp_path) and list(tmp_path.iterdir()) == []


def test_multiprocessings_folder_a_sigkill_leaves_is_swept_by_the_next_process(tmp_path):
    """Python's `pymp-*` folder outlives a SIGKILL for good; held under a lock beside it, the next process
    sweeps it, and leaves another program's (no lock file) alone."""
    import os

    code = ("import sys; from galaxyzoo.system.workers import hold_multiprocessing_tempdir\n"
            "print(hold_multiprocessing_tempdir(), flush=True); sys.stdin.read()")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    (tmp_path / "pymp-0therpr0").mkdir()  # another program's, alive or not: not ours to judge
    first = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env)
    killed = first.stdout.readline().strip()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert os.path.basename(killed).startswith("pymp-") and os.path.isdir(killed) and os.path.isfile(killed + ".lock")
    second = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        live = second.stdout.readline().strip()
        assert not os.path.exists(killed) and not os.path.exists(killed + ".lock") and os.path.isdir(live)
    finally:
        second.communicate("")  # a normal exit removes its own, and its lock file
    assert [p.name for p in tmp_path.iterdir()] == ["pymp-0therpr0"]
