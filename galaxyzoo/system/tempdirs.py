"""Temporary folders beside an output, held by their creator and swept once it is gone.

`OwnedFolder(out, tag)` creates `out.<tag>-XXXXXXXX` beside `out` and holds an
OS lock (filelock) on `out.<tag>-XXXXXXXX.lock` while it lives. The kernel
drops the lock however the process ends, SIGKILL included, so
`remove_stale(out, tag)` tells a killed run's folder (lock free) from a live
run's (lock held, whatever its pid or host) and removes only the former.
`scratch(prefix)` is `tempfile.TemporaryDirectory` made the same way, in the
system's temporary folder: what a SIGKILL leaves there, the next one sweeps.
`tempfiles_in_scratch(prefix)` sends a library's own temporary folders into one.
"""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from galaxyzoo.system.locks import lock_path


_ATTEMPTS = 100


class OwnedFolder:
    """A new empty folder `out.<tag>-XXXXXXXX` beside `out`, held by this process until closed.

    As a context manager it gives the folder's path and on exit removes what
    is still there (nothing once the folder has been renamed into place). The
    folder has the usual permissions (tempfile.mkdtemp would make it private,
    mode 0700, and a published folder keeps its mode).
    """

    def __init__(self, out: Path, tag: str):
        self._abandoned = False
        for _ in range(_ATTEMPTS):
            self.path = out.with_name(f"{out.name}.{tag}-{secrets.token_hex(4)}")
            self._lock = FileLock(lock_path(self.path))
            try:
                self._lock.acquire(timeout=0)
            except Timeout:  # a sweeper is removing a stale folder of this name
                continue
            try:
                self.path.mkdir()
                return
            except FileExistsError:  # a stale folder of this name: leave it to the sweep
                self._lock.release()
            except BaseException:
                self.close()
                raise
        # Random names collide only with a sweep in progress; every try refused means the
        # folder takes no lock files at all (filelock reports /proc's refusal as a timeout).
        raise OSError(errno.EACCES, f"cannot create a locked folder beside {out} ({_ATTEMPTS} tries)")

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.close()

    def abandon(self) -> None:
        """Let go of the folder without removing it: it is then stale, for the next run's
        `remove_stale` to salvage from and remove."""
        self._lock.release()
        self._abandoned = True

    def close(self) -> None:
        """Remove the folder if it is still there, then its lock file, then let go of the lock."""
        if self._abandoned:
            return
        try:
            shutil.rmtree(self.path, ignore_errors=True)
            lock_path(self.path).unlink(missing_ok=True)
        finally:
            self._lock.release()


def remove_stale(out: Path, *tags: str, salvage=None) -> None:
    """Remove the folders `out.<tag>-XXXXXXXX` beside `out`, and their lock files, that no live process holds.

    `salvage(folder)`, when given, is called on each such folder first, under its lock: it may move
    out what a rerun can use.
    """
    pattern = re.compile(rf"{re.escape(out.name)}\.(?:{'|'.join(map(re.escape, tags))})-[0-9a-f]{{8}}")
    names = {p.name.removesuffix(".lock") for p in out.parent.iterdir()} if out.parent.is_dir() else set()
    for name in sorted(n for n in names if pattern.fullmatch(n)):
        remove_unheld(out.with_name(name), salvage)


def remove_unheld(folder: Path, salvage=None) -> None:
    """Remove `folder` and its lock file if no live process holds the lock (`salvage(folder)` first,
    under it); leave both where the owner is alive, or the lock is another user's."""
    lock = FileLock(lock_path(folder))
    try:
        lock.acquire(timeout=0)
    except (Timeout, PermissionError):
        return
    try:
        if salvage is not None:
            salvage(folder)
        shutil.rmtree(folder, ignore_errors=True)
        lock_path(folder).unlink(missing_ok=True)
    finally:
        lock.release()


@contextlib.contextmanager
def scratch(prefix: str = "galaxyzoo") -> Iterator[str]:
    """A private temporary folder, `TMP/<prefix>.tmp-XXXXXXXX`, removed on exit (its path, as a string).

    Unlike `tempfile.TemporaryDirectory` it does not outlive a SIGKILL for good: it is held like an
    `OwnedFolder`, and each new scratch of the same prefix first removes those no live process holds.
    """
    base = sweep_scratch(prefix)
    with OwnedFolder(base, "tmp") as folder:
        folder.chmod(0o700)  # private, as mkdtemp's: it may hold a model or a config
        yield str(folder)


def sweep_scratch(prefix: str) -> Path:
    """Remove the `scratch(prefix)` folders no live process holds (killed commands'); returns their base path."""
    base = Path(tempfile.gettempdir()) / prefix
    remove_stale(base, "tmp")
    return base


@contextlib.contextmanager
def tempfiles_in_scratch(prefix: str) -> Iterator[None]:
    """Make a held `scratch` folder Python's default temporary folder for the block.

    A library's own `tempfile` folders (MLflow's copy of a model it logs, hundreds of MB for a large
    network) then live inside it, so what a SIGKILL leaves of them is swept by the next command
    instead of staying in /tmp for good. `tempfile.tempdir` is process-wide: keep the block short.
    """
    with scratch(prefix) as folder:
        previous, tempfile.tempdir = tempfile.tempdir, folder
        try:
            yield
        finally:
            tempfile.tempdir = previous
