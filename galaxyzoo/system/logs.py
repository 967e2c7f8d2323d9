"""Logging for every command: galaxyzoo's progress lines on stderr, library chatter hidden.

`galaxyzoo.cli.main` calls `setup_logging()` once; every module then only does
`logger = logging.getLogger(__name__)`. Nothing else configures handlers.
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "galaxyzoo: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Show the `galaxyzoo.*` loggers' lines and urllib3's connection retries on stderr; hide
    TensorFlow's start-up chatter.

    Safe to call again (in-process commands in tests or notebooks): it adds the
    handler once.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # set before TensorFlow is first imported
    log = logging.getLogger("galaxyzoo")
    _to_stderr(log, FORMAT)
    log.setLevel(level)
    # A lost tracking server shows as urllib3 retrying MLflow's requests, for minutes: say so
    # (urllib3 alone logs it only where some library gave the root logger a handler).
    retries = logging.getLogger("urllib3.connectionpool")
    _to_stderr(retries, "urllib3: %(message)s", logging.WARNING)
    retries.propagate = False  # said once, whatever the root logger has


def _to_stderr(log: logging.Logger, fmt: str, level: int = logging.NOTSET) -> None:
    """Give `log` one `_StderrHandler` (at `level`, formatted by `fmt`), unless it has one."""
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(fmt))
        log.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever `sys.stderr` is when it writes: a second in-process
    command (tests, notebooks) may have swapped the stream the first one saw."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass
