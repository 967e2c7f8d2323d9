"""Crop throughput: the seed's PNG-per-image loop, bare JPEG decoding, and `galaxyzoo prepare`.

Copies real GZ2 JPEGs (by default the 40 test fixtures in tests/data/real/; `--real DIR` names
another folder, e.g. ../shared/gz2/sample_images) N times in turn into a temporary RAW/images
folder, then measures in one run, on warm page cache:

  a) the seed's approach: one Python process (OpenCV threads as default), full-resolution
     colour decode, crop, one PNG per image;
  b) bare decoding only (cv2.imread of every file) on W processes, grayscale and colour;
  c) `galaxyzoo prepare` into the crop store on W workers (wall time, pool start-up included).

Usage:  .venv/bin/python benchmarks/crop_throughput.py [--n 12000] [--workers 2] [--real DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import cv2

from galaxyzoo.data.crop import crop_image
from galaxyzoo.data.prepare import prepare

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "gz2" / "sample_images"


def make_raw(root: Path, n: int, samples: Path) -> tuple[Path, Path, list[Path]]:
    """RAW/images/{asset_id}.jpg (real copies, not links) and a galaxy_data table naming them."""
    sources = sorted(samples.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"{samples}: no .jpg images to copy")
    images = root / "raw" / "images"
    images.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = images / f"{i + 1}.jpg"
        path.write_bytes(sources[i % len(sources)].read_bytes())
        paths.append(path)
    db = root / "galaxy.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE galaxy_data (asset_id INTEGER)")
        con.executemany("INSERT INTO galaxy_data VALUES (?)", [(i + 1,) for i in range(n)])
    return root / "raw", db, paths


def seed_loop(paths: list[Path], out: Path) -> None:
    """The seed's way: read colour, crop (crop_image converts to gray itself), write a PNG."""
    out.mkdir()
    for path in paths:
        crop, _ = crop_image(cv2.imread(str(path)))
        cv2.imwrite(str(out / f"{path.stem}.png"), crop)


def _decode_all(job: tuple[list[str], int]) -> int:
    paths, flag = job
    cv2.setNumThreads(1)
    return sum(cv2.imread(p, flag) is not None for p in paths)


def decode_only(paths: list[Path], workers: int, flag: int) -> None:
    chunks = [[str(p) for p in paths[i::workers]] for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        assert sum(pool.map(_decode_all, [(c, flag) for c in chunks])) == len(paths)


def _cpu_seconds() -> float:
    """Busy CPU time of the whole machine (Linux /proc/stat), in seconds.

    `prepare`'s workers are children of a fork server, not of this process, so
    getrusage(RUSAGE_CHILDREN) would miss them; the machine-wide count includes
    every worker (and any neighbour's load: measure on a quiet machine).
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, OpenCV {cv2.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12000, help="number of images (default 12000)")
    parser.add_argument("--workers", type=int, default=2, help="processes for b) and c) (default 2)")
    parser.add_argument("--real", type=Path, default=FIXTURES,
                        help="folder of real GZ2 JPEGs to copy (default: the test fixtures)")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw, db, paths = make_raw(root, args.n, args.real)
        for path in paths:  # warm the page cache: every approach then reads from memory
            path.read_bytes()
        rows = [
            ("a) seed: 1 process, colour decode, crop, PNG per image", timed(lambda: seed_loop(paths, root / "png"))),
            (f"b) decode only, gray, {args.workers} processes",
             timed(lambda: decode_only(paths, args.workers, cv2.IMREAD_GRAYSCALE))),
            (f"b) decode only, colour, {args.workers} processes",
             timed(lambda: decode_only(paths, args.workers, cv2.IMREAD_COLOR))),
            (f"c) galaxyzoo prepare, {args.workers} workers, into the store",
             timed(lambda: prepare(raw, db, root / "store", workers=args.workers, progress=False))),
        ]
    # On a shared machine the wall-clock rate depends on the neighbours; so does the machine-wide
    # CPU time per image, so compare both only from runs on a quiet machine.
    baseline = args.n / rows[0][1][0]
    print(f"{args.n} images of 424x424: wall-clock rate, ratio to a), CPU time per image")
    for name, (wall, cpu) in rows:
        rate = args.n / wall
        print(f"{name:<58} {rate:>7,.0f} images/s  x{rate / baseline:5.1f}  {cpu / args.n * 1e3:.2f} ms CPU/image")
    print(f"243,434 images at c)'s wall-clock rate: {243_434 / (args.n / rows[-1][1][0]):.0f} s")


if __name__ == "__main__":
    main()
