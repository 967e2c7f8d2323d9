"""An output folder made ready before the work that fills it, so a bad path fails first, in one line."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from galaxyzoo.errors import GalaxyZooError


def storable_name(path: Path, what: str) -> Path:
    """`path` itself, refused in one line if a CSV, SQLite or MLflow could not hold its name: bytes that are
    not valid UTF-8, or a carriage return (Python's csv writer leaves it unquoted, and every reader then
    splits the row there). So the work does not fail on it at the end, or shift the rows after it."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "backslashreplace").decode()
        raise GalaxyZooError(f"{what} {shown}: the name is not valid UTF-8; rename it") from None
    if "\r" in str(path):
        raise GalaxyZooError(f"{what} {str(path)!r}: the name holds a carriage return; rename it")
    return path


def blocking_file(folder: Path) -> Path | None:
    """The file standing where `folder` or one of its parents should be, if any: mkdir (or a lock file
    inside) would only say "File exists" or "Not a directory"."""
    blocker = next((p for p in (folder.absolute(), *folder.absolute().parents) if p.exists()), None)
    return blocker if blocker is not None and not blocker.is_dir() else None


def writable_folder(folder: Path, what: str) -> Path:
    """Create `folder` (and its parents) if needed and check this process may write in it.

    A path through a file, a file in its place, a read-only folder or a file system that
    refuses (`/proc`) is a `GalaxyZooError` starting with `what` (e.g. "--out DIR").
    """
    try:
        if blocker := blocking_file(folder):
            raise GalaxyZooError(f"{what}: {blocker} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise GalaxyZooError(f"{what}: cannot write there ({exc.strerror or exc})") from None
    return folder


@contextlib.contextmanager
def folder_for(folder: Path, what: str) -> Iterator[Path]:
    """`writable_folder` for work that may still fail: a failed block leaves no empty folders behind.

    The folders it had to create are removed again, deepest first, if the block raises
    and they are still empty; a folder that existed, or holds anything, stays.
    """
    made = [p for p in (folder.absolute(), *folder.absolute().parents) if not p.exists()]
    writable_folder(folder, what)
    try:
        yield folder
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
