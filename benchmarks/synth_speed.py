"""How fast `galaxyzoo synth` writes a sample: galaxies/s on every core vs one worker.

    .venv/bin/python benchmarks/synth_speed.py --n 1000

The figure counts the n catalogue galaxies requested (the sample also renders
the ~2% "images without a row"), end to end: planning, rendering, JPEG files,
votes and the three CSVs.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from galaxyzoo.data.synth import generate
from galaxyzoo.system.workers import cpu_count


def cpu_model() -> str:
    """The CPU model name, as `lscpu` prints it (Linux), else whatever platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def galaxies_per_second(n: int, workers: int, folder: Path) -> float:
    start = time.perf_counter()
    generate(folder, n=n, seed=0, workers=workers, progress=False)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="galaxies per run (default 1000)")
    args = parser.parse_args()
    cpus = cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        parallel = galaxies_per_second(args.n, cpus, Path(tmp) / "parallel")
        single = galaxies_per_second(args.n, 1, Path(tmp) / "single")
    print(f"machine: {cpu_model()}, {cpus} CPUs available")
    print(f"n = {args.n}")
    print(f"{cpus} workers: {parallel:8.1f} galaxies/s")
    print(f"1 worker : {single:8.1f} galaxies/s")
    print(f"speed-up : {parallel / single:8.2f}x")


if __name__ == "__main__":
    main()
