"""Peak memory while streaming one epoch over a large crop store.

    python benchmarks/streaming_memory.py [--n 100000] [--batch 2000]

Builds a store of N 106x106 grayscale crops (1.1 GB on disk for 100k), then
reads one shuffled, augmented epoch through `GalaxySequence` with the
`RowReader`, and prints the process's peak RSS. For comparison it prints what
the original approach needs: N x 106 x 106 float32 in RAM (the seed loaded 179k
crops into an 8 GB array). Target: peak RSS <= 2 GB for 100k images.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline_throughput import make_crops_file


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--size", type=int, default=106)
    args = parser.parse_args()

    from galaxyzoo.data.stream import Augment, GalaxySequence

    with tempfile.TemporaryDirectory(dir=".") as tmp:
        reader = make_crops_file(Path(tmp) / "images.u8", args.n, args.size, seed=0)
        before = peak_rss_mb()
        targets = np.random.default_rng(1).random((args.n, 37)).astype(np.float32)
        seq = GalaxySequence(reader, np.arange(args.n), targets, batch_size=args.batch, shuffle=True,
                             augment=Augment(rot90=True, flip=True, shift_px=4))
        t0 = time.perf_counter()
        seen = 0
        for i in range(len(seq)):
            x, _ = seq[i]
            seen += len(x)
        elapsed = time.perf_counter() - t0
    assert seen == args.n
    original_gb = args.n * args.size * args.size * 4 / 1e9
    print(f"{args.n} crops {args.size}x{args.size}x1 streamed in {elapsed:.1f} s ({args.n / elapsed:.0f} images/s, batch {args.batch})")
    print(f"peak RSS before streaming: {before:.0f} MB; after one epoch: {peak_rss_mb():.0f} MB (target <= 2048 MB)")
    print(f"original approach (one float32 array): {original_gb:.2f} GB for the array alone")


if __name__ == "__main__":
    main()
