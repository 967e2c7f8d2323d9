"""Training throughput: the baseline CNN fed by the streaming pipeline vs an in-memory array.

Both sides train the same model (same weights at the start) on the same crops
for the same number of steps, in this one process. The reference is the
original approach: every crop loaded into one float32 numpy array first.

    python benchmarks/pipeline_throughput.py [--n 4096] [--batch 256] [--epochs 3]

Prints images/s for both and their ratio (target: >= 0.95).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def make_crops_file(path: Path, n: int, size: int, seed: int):
    """A store's `images.u8` of N grayscale crops (smooth random blobs), as a `RowReader`.

    Written with plain file writes, not a memmap, so building it leaves no pages
    mapped into this process (the memory benchmark measures reading alone).
    """
    from galaxyzoo.data.stream import RowReader

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    with open(path, "wb") as fh:
        for start in range(0, n, 1024):
            widths = rng.uniform(3, size / 3, (min(n, start + 1024) - start, 1, 1))
            fh.write((255 * np.exp(-(xx**2 + yy**2) / (2 * widths**2))).astype(np.uint8).tobytes())
    return RowReader(path, (n, size, size, 1))


def timed_fit(model, data, epochs: int, **fit_kwargs) -> float:
    """Seconds per epoch, excluding the first (compilation) epoch."""
    times = []

    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(data, epochs=epochs + 1, verbose=0, callbacks=[Timer()], **fit_kwargs)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=106)
    args = parser.parse_args()

    import keras

    from galaxyzoo.data.crop import to_unit
    from galaxyzoo.data.stream import GalaxySequence
    from galaxyzoo.model.network import build_model
    from galaxyzoo.training.fit import PREFETCH_WORKERS

    keras.utils.set_random_seed(0)
    targets = np.random.default_rng(1).random((args.n, 37)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        reader = make_crops_file(Path(tmp) / "images.u8", args.n, args.size, seed=2)
        rows = np.arange(args.n)

        model = build_model(input_size=args.size)
        model.compile(optimizer="adam", loss="mse")
        start_weights = model.get_weights()

        # Reference: the original's approach, everything in RAM as float32 first.
        t0 = time.perf_counter()
        x = to_unit(reader[rows])
        load_s = time.perf_counter() - t0
        in_memory = timed_fit(model, x, args.epochs, y=targets, batch_size=args.batch, shuffle=True)
        del x

        model.set_weights(start_weights)
        seq = GalaxySequence(reader, rows, targets, batch_size=args.batch, shuffle=True,
                             workers=PREFETCH_WORKERS)  # as training prefetches
        streamed = timed_fit(model, seq, args.epochs)

    backend = keras.backend.backend()
    print(f"baseline CNN, {args.n} crops {args.size}x{args.size}x1, batch {args.batch}, backend {backend}")
    print(f"in-memory numpy array : {args.n / in_memory:8.1f} images/s  (+{load_s:.2f} s to load the array first)")
    print(f"streaming pipeline    : {args.n / streamed:8.1f} images/s")
    print(f"ratio streaming / in-memory: {in_memory / streamed:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
