"""What a killed `synth` leaves for its rerun: the galaxies it finished, in checkpoints.

Workers send each galaxy's row data back in galaxy order (its JPEG is already
written), and the parent saves them in chunks of consecutive galaxies,
`progress/chunk-00000.pkl`, ..., each written whole (a temporary file renamed
into place). A killed run's temporary folder therefore holds a prefix of
finished galaxies: their images, complete, and their rows. The next run with the
same request (`request`: n, seed and the generator's code) takes them over
(`adopt`) and simulates only the rest; the result is byte for byte an
uninterrupted run's, because every galaxy draws from its own random stream.

A different request, or a generator whose code changed since, starts afresh:
its galaxies would not be those the killed run drew. Nothing is fsynced: after a
power cut, remove the `DIR.tmp-*` folder rather than resume from it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import scipy

from galaxyzoo import schema
from galaxyzoo.data import crop

REQUEST_FILE = "request.json"
PROGRESS_DIR = "progress"


def request(n: int, seed: int) -> dict:
    """What a run was asked for, with a fingerprint of the code that draws and encodes its galaxies."""
    digest = hashlib.sha256(f"opencv {cv2.__version__} numpy {np.__version__} scipy {scipy.__version__}".encode())
    sources = sorted(Path(__file__).parent.glob("*.py")) + [Path(inspect.getsourcefile(m)) for m in (crop, schema)]
    for path in sources:
        digest.update(path.read_bytes())
    return {"n": int(n), "seed": int(seed), "code": digest.hexdigest()}


def chunk_size(n_galaxies: int) -> int:
    """Galaxies per checkpoint: about 50 checkpoints a run, from 8 to 1,000 galaxies each."""
    return int(np.clip(n_galaxies // 50, 8, 1000))


def start(folder: Path, asked: dict) -> None:
    """Mark `folder` as a run's workspace for `asked` (what `adopt` compares)."""
    (folder / PROGRESS_DIR).mkdir(exist_ok=True)
    (folder / REQUEST_FILE).write_text(json.dumps(asked))


def adopt(stale: Path, into: Path, asked: dict) -> None:
    """Move a killed run's images and checkpoints from `stale` into `into` when it was asked the same.

    Called on each stale folder before it is removed; the first that matches is taken.
    """
    if any((into / PROGRESS_DIR).glob("chunk-*.pkl")):
        return
    try:
        if hasattr(os, "getuid") and stale.stat().st_uid != os.getuid():  # checkpoints are pickles: only our own
            return
    except OSError:  # a lone lock file: its folder is already gone
        return
    try:
        same = json.loads((stale / REQUEST_FILE).read_text()) == asked
    except (OSError, ValueError):  # killed before it wrote its request, or not one of ours
        return
    if not (same and (stale / "images").is_dir() and any((stale / PROGRESS_DIR).glob("chunk-*.pkl"))):
        return
    try:
        (into / PROGRESS_DIR).rmdir()  # `start` made it, empty
        os.rename(stale / "images", into / "images")
        os.rename(stale / PROGRESS_DIR, into / PROGRESS_DIR)
    except OSError:  # whatever did not move is simulated again: the same galaxies, the same files
        (into / PROGRESS_DIR).mkdir(exist_ok=True)


def load_done(folder: Path, chunk: int, total: int) -> list:
    """The finished galaxies' results in `folder`'s checkpoints: those of the leading whole chunks
    (the last of `total` galaxies may be shorter)."""
    done = []
    while (path := folder / PROGRESS_DIR / f"chunk-{len(done) // chunk:05d}.pkl").is_file():
        try:
            results = pickle.loads(path.read_bytes())
            whole = len(results) == min(chunk, total - len(done))
        except Exception:  # damaged in any way: simulated again, as if never saved
            break
        if not whole:
            break
        done += results
    return done


def save_chunk(folder: Path, results: list, chunk: int, total: int) -> None:
    """Checkpoint the latest results when `results` (every galaxy so far, in order) ends a chunk, or all `total`."""
    if not results or (len(results) % chunk and len(results) != total):
        return
    k = (len(results) - 1) // chunk
    path = folder / PROGRESS_DIR / f"chunk-{k:05d}.pkl"
    part = path.with_suffix(".part")
    part.write_bytes(pickle.dumps(results[k * chunk:], protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(part, path)


def finish(folder: Path) -> None:
    """Remove the checkpoints once the sample's files are written: they are not part of it."""
    for path in (folder / PROGRESS_DIR).iterdir():
        path.unlink()
    (folder / PROGRESS_DIR).rmdir()
    (folder / REQUEST_FILE).unlink()
