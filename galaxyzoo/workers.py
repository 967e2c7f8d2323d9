"""Worker processes for the CPU-bound image stages (synth, prepare)."""

from __future__ import annotations

import ctypes
import os
import signal

import cv2


def cpu_count() -> int:
    """Cores this process may use (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def init_image_worker() -> None:
    """Pool initializer: one OpenCV thread, quiet Ctrl-C, reused image buffers.

    The pool already uses every core, so OpenCV's own threads only contend.
    Ctrl-C reaches the whole process group; the parent alone handles it and
    tears the pool down.
    """
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_image_buffers()


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
