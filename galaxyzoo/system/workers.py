"""Worker processes for the CPU-bound image stages (synth, prepare, the crops of predict and embed)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import multiprocessing.util
import numbers
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import psutil
from filelock import FileLock, Timeout

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.locks import lock_path
from galaxyzoo.system.tempdirs import remove_unheld


def cpu_count() -> int:
    """Cores this process may use (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_workers(workers: int | None) -> int:
    """`--workers`, checked: a whole number of at least 1, or None for every core (`cpu_count`)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise GalaxyZooError(f"--workers must be at least 1, got {workers!r}")
    return workers or cpu_count()


def init_image_worker(parent_pid: int, parent_started: float, niceness: int = 0) -> None:
    """Pool initializer: die with the parent, one OpenCV thread, quiet Ctrl-C, reused image buffers.

    The pool already uses every core, so OpenCV's own threads only contend.
    Ctrl-C reaches the whole process group; the parent alone handles it and
    tears the pool down. `niceness` lowers the worker's CPU priority.
    """
    die_with(parent_pid, parent_started)
    if niceness:
        os.nice(niceness)
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_image_buffers()


def die_with(pid: int, started: float) -> None:
    """End this process as soon as process `pid` (created at `started`) has ended.

    A killed parent cannot shut its pool down, and its workers would wait
    forever for tasks: each holds both ends of the task queue, a copy of the
    fork server's liveness pipe and of the resource tracker's pipe, so
    neither they, nor the fork server, nor the tracker would ever see an end.
    Once the workers go, the other two exit on their own. PR_SET_PDEATHSIG
    cannot do this: a worker's parent is the fork server, not `pid`. The wait
    is event-driven (pidfd on Linux, kqueue on macOS); `started` guards
    against a recycled pid.
    """
    try:
        parent = psutil.Process(pid)
        alive = parent.create_time() == started
    except psutil.NoSuchProcess:
        alive = False
    if not alive:  # gone before this worker started
        os._exit(1)

    def watch():
        parent.wait()
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def keep_image_buffers() -> None:
    """Let glibc reuse image-sized buffers instead of mapping them anew.

    By default every decoded image, rendered frame and filter output above
    128 KB is mmap'ed and unmapped again: about 150 page faults and a fifth of
    the CPU time per image. Only worker processes do this.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc <malloc.h>
    libc.mallopt(m_mmap_threshold, 8 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


_HELD_TEMPDIR: list = []  # the lock on this process's multiprocessing folder, once taken


def hold_multiprocessing_tempdir() -> Path:
    """Hold multiprocessing's temporary folder (the fork server's socket) under a lock beside it.

    Python makes it `TMP/pymp-XXXXXXXX` and removes it only at a normal exit, so every SIGKILL left
    one for good. Its `pymp-XXXXXXXX.lock` is held while this process lives; the next process here
    removes the folders whose lock is free, and no folder without one (another program's). The
    folder keeps Python's short name: the socket's path must fit AF_UNIX's 108 bytes.
    """
    folder = Path(multiprocessing.util.get_temp_dir())
    if not _HELD_TEMPDIR:
        for stale in folder.parent.glob("pymp-*.lock"):
            if stale.with_suffix("") != folder:
                with contextlib.suppress(OSError):
                    remove_unheld(stale.with_suffix(""))
        lock = FileLock(lock_path(folder))
        with contextlib.suppress(Timeout, OSError):  # a folder that takes no lock file: Python's behaviour
            lock.acquire(timeout=0)
            atexit.register(_release, lock)
            _HELD_TEMPDIR.append(lock)
    return folder


def _release(lock) -> None:
    """At exit, after multiprocessing removed its folder: the lock file goes too."""
    Path(lock.lock_file).unlink(missing_ok=True)
    lock.release()


def worker_context(preload: str):
    """Workers forked from a clean server process that has imported `preload`.

    Forking the caller directly copies its thread pools (OpenCV's after any cv2
    call, TensorFlow's) mid-state, and the workers can hang; spawning
    re-imports everything for every worker. The fork server starts once per
    session with the module preloaded. Scripts that start workers need an
    `if __name__ == "__main__":` guard.
    """
    hold_multiprocessing_tempdir()
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload])
    return context


def process_map(work: Callable, tasks: Iterable, workers: int, *, preload: str, what: str,
                ordered: bool = False, chunksize: int = 1, ahead: int | None = None, niceness: int = 0,
                hint: str = "out of memory?; run the command again") -> Iterator:
    """Yield `work(task)` for every task, computed in `workers` processes.

    Results come in task order when `ordered` (tasks sent in chunks of
    `chunksize`; or, with `ahead`, one at a time and at most `ahead` beyond
    the one the caller waits for, so a slow caller holds at most `ahead`
    results), else as each finishes. Unlike `multiprocessing.Pool`, which
    respawns a killed worker and waits forever for its lost task, a dead worker
    (the out-of-memory killer, say) ends the run with one error naming `what`
    and `hint`. The workers end with the calling process, even a killed one.
    A positive `niceness` runs them at a lower CPU priority than the caller, so
    they take the cores the caller leaves idle rather than slow it down.
    """
    parent = (os.getpid(), psutil.Process().create_time())
    with ProcessPoolExecutor(workers, mp_context=worker_context(preload), initializer=init_image_worker,
                             initargs=(*parent, niceness)) as pool:
        try:
            if ordered and ahead:
                pending = deque()
                for task in tasks:
                    pending.append(pool.submit(work, task))
                    if len(pending) > ahead:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            elif ordered:
                yield from pool.map(work, tasks, chunksize=chunksize)
            else:
                for future in as_completed([pool.submit(work, task) for task in tasks]):
                    yield future.result()
        except BrokenProcessPool:
            raise GalaxyZooError(f"a {what} worker process died; {hint}") from None
        except BaseException:
            # Ctrl-C, an error or an abandoned generator: drop queued tasks, let running ones finish.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
