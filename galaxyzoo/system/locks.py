"""One writer per derived file: an OS file lock beside the DB or crop store it guards.

`ingest` and `split` lock `DB.lock`, `prepare` locks `STORE.lock` (beside the store folder,
so `--overwrite` never deletes it). The lock is an OS lock (flock, through `filelock`): a
killed writer releases it with its process, so a stale `.lock` file never blocks anyone.
Readers (training, evaluation) take no lock.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.folders import blocking_file

logger = logging.getLogger(__name__)


def lock_path(target: str | Path) -> Path:
    """The lock file guarding `target` (a DB file or a store folder): `target` + `.lock`.

    Beside the resolved path, so two writers that reach one file through a symbolic link and
    its target (or through `..`) take one lock.
    """
    target = Path(target).resolve()
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def writer_lock(target: str | Path, wait: bool = False) -> Iterator[None]:
    """Hold the write lock of `target` for the block.

    Another writer holding it makes this raise a GalaxyZooError naming the file, or, with
    `wait` (the workspace build: two trainings on one dataset), wait until it finishes.
    A folder the lock cannot be created in is a GalaxyZooError too.
    """
    from filelock import FileLock, Timeout

    path = lock_path(target)
    lock = FileLock(path)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise GalaxyZooError(
                    f"{target} is being written by another process (it holds {path}); "
                    "wait for it to finish, or stop it"
                ) from None
            logger.warning("waiting for %s: another process is writing %s", path, target)
            lock.acquire()
    except OSError as exc:
        if blocker := blocking_file(path.parent):
            raise GalaxyZooError(f"{target}: {blocker} is a file, not a folder") from None
        raise GalaxyZooError(f"{target}: cannot write there ({exc.strerror or exc}: {path})") from None
    try:
        yield
    finally:
        lock.release()


def remove_with_lock_file(folder: str | Path) -> None:
    """Remove `folder` and its lock file; call it holding the lock, when nothing may take the folder up again."""
    shutil.rmtree(folder, ignore_errors=True)
    lock_path(folder).unlink(missing_ok=True)
