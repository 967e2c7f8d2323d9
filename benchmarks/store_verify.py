"""Store verification cost: one full crc32 pass over a crop store, against the crop time.

Builds a store of N rows of random pixels (106x106 grayscale by default, the baseline's
crops; `--channels 3` for the improved experiment's) with their crc32 recorded, then times
`CropStore.crc_failures` over it twice: cold-ish (just written, so mostly still in the page
cache on a machine with room) and warm. Prints rows/s and the projected time for the real
release's 243,434 rows, next to what cropping them costs at `--crop-rate` images/s
(docs/benchmarks.md, "Crop throughput": 3,574 images/s for `galaxyzoo prepare` on 2 workers).

Usage:  .venv/bin/python benchmarks/store_verify.py [--n 50000] [--size 106] [--channels 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from galaxyzoo.data.store import CropStore, branch_code, status_code

REAL_ROWS = 243_434


def make_store(path: Path, n: int, size: int, channels: int) -> CropStore:
    """A complete store of N random crops, every row ok with its true crc32."""
    store = CropStore.create(path, np.arange(n) + 1, size, channels)
    rng = np.random.default_rng(0)
    block = 4096
    for start in range(0, n, block):
        stop = min(start + block, n)
        pixels = rng.integers(0, 256, (stop - start, size, size, channels), dtype=np.uint8)
        store.images[start:stop] = pixels
        store.images.flush()
        crc = np.array([zlib.crc32(p) for p in pixels], np.uint32)
        store.mark_done(slice(start, stop), status_code("ok"), branch_code("center106"), crc)
    return CropStore.open(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=106)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--crop-rate", type=float, default=3_574, help="prepare's images/s to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "crops", args.n, args.size, args.channels)
        mb = store.images.nbytes / 1e6
        print(f"store: {args.n:,} rows of {args.size}x{args.size}x{args.channels} ({mb:,.0f} MB)")
        for label in ("first pass", "second pass"):
            started = time.perf_counter()
            failed = store.crc_failures()
            seconds = time.perf_counter() - started
            assert not len(failed)
            rate = args.n / seconds
            print(f"{label}: {seconds:.2f} s, {rate:,.0f} rows/s ({mb / seconds:,.0f} MB/s); "
                  f"243,434 rows: {REAL_ROWS / rate:.1f} s, cropping them: {REAL_ROWS / args.crop_rate:.0f} s")


if __name__ == "__main__":
    main()
