"""Prediction throughput: raw JPEGs to 37 vote fractions, cropping overlapped with the network or not.

Renders a small synthetic GZ2 sample (`galaxyzoo synth`; `--real DIR` takes the JPEGs of a folder
instead) and copies its images in turn into N files, then measures in one run, on warm page cache:

  a) decode + crop alone: predict's chunks read and cropped in this process, no network;
  b) network alone: a)'s crops through the network, chunk by chunk (with the rows predict writes);
  c) the reference, predict as it was: each chunk read and cropped, then predicted (`--workers 1`);
  d) the overlap: chunks cropped in W worker processes while the network predicts the chunk
     before (`predict.predict_paths`, predict's default; pool start-up included).

c) should take about a) + b), and d) about the slower of a) / W and b) where the cores allow.
The network is the experiment's (default the seed's CNN, 106 px grayscale), built in the
precision this machine would serve it in and not trained: its weights do not change its speed.
`--set KEY=VALUE...` changes the experiment (a lighter network shows the case where the crop is the
slower side); `--model URI` predicts with a packaged model instead (with `--tracking-uri`).

c) and d) run in turns (`--repeats`), and each keeps its best time: on a shared machine the
neighbours' load only ever slows a run down.

Usage:  .venv/bin/python benchmarks/predict_throughput.py [--n 2048] [--workers 2] [--repeats 2] [--real DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from crop_throughput import machine  # the same machine line as the crop benchmark

ROOT = Path(__file__).resolve().parents[1]
GZ2_IMAGES = 243_434  # images in the real GZ2 release


def make_images(root: Path, n: int, unique: int, real: Path | None) -> list[Path]:
    """N JPEG files: copies in turn of `real`'s JPEGs, or of `unique` synthetic galaxies' images."""
    if real is None:
        from galaxyzoo.data.synth import generate

        real = generate(root / "synth", n=unique, seed=0, progress=False) / "images"
    sources = sorted(real.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"{real}: no .jpg images")
    folder = root / "images"
    folder.mkdir()
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}.jpg"
        path.write_bytes(sources[i % len(sources)].read_bytes())
        paths.append(path)
    return paths


def load_network(args):
    """(network, crop size, channels, label): the packaged model's, or the experiment's, built in the
    precision this machine would serve it in."""
    if args.model:
        from galaxyzoo.registry.packaged import load_packaged
        from galaxyzoo.tracking import mlflow_runs

        if args.tracking_uri:
            mlflow_runs.connect(args.tracking_uri)
        model = load_packaged(args.model).unwrap_python_model()
        return model.network, model.size, model.channels, args.model
    from galaxyzoo.config.experiment import load_experiment, model_kwargs
    from galaxyzoo.model.network import build_model
    from galaxyzoo.model.precision import machine_precision, policy_scope

    cfg = load_experiment(ROOT / "experiments" / args.experiment, args.set)
    policy = machine_precision(cfg.train.precision).policy
    with policy_scope(policy):
        network = build_model(**model_kwargs(cfg))
    changed = f" with {' '.join(args.set)}" if args.set else ""
    return network, cfg.data.image_size, cfg.data.channels, f"{args.experiment}{changed} network ({policy}, untrained)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048, help="images to predict (default 2048)")
    parser.add_argument("--unique", type=int, default=400, help="synthetic galaxies rendered (default 400)")
    parser.add_argument("--real", type=Path, help="copy the JPEGs of this folder instead of synthetic ones")
    parser.add_argument("--workers", type=int, default=2, help="crop processes in d) (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="turns of c) and d), best kept (default 2)")
    parser.add_argument("--experiment", default="baseline.yaml", help="experiments/ file whose network is timed")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="experiment overrides, e.g. a lighter network: model.conv_filters=[8]")
    parser.add_argument("--model", help="a packaged model URI to time instead of the experiment's network")
    parser.add_argument("--tracking-uri", help="MLflow store holding --model")
    args = parser.parse_args()

    from galaxyzoo.registry.crops import crop_files
    from galaxyzoo.registry.packaged import predict_crops
    from galaxyzoo.registry.predict import CHUNK, predict_paths

    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        # Rendered before TensorFlow starts its threads: synth forks worker processes.
        paths = make_images(Path(tmp), args.n, args.unique, args.real)
        network, size, channels, label = load_network(args)
        for path in paths:  # warm the page cache: every approach then reads from memory
            path.read_bytes()
        predict_paths(network, paths[:CHUNK], size, channels)  # warm-up: the network's first call traces it

        start = time.perf_counter()
        chunks = [crops for _, crops in crop_files(paths, size, channels, CHUNK, workers=1)]
        crop_s = time.perf_counter() - start
        start = time.perf_counter()
        for crops in chunks:
            predict_crops(network, crops)
        network_s = time.perf_counter() - start
        del chunks
        # c) and d) take turns, so a neighbour's load drifting during the run weighs on both alike.
        timed = {"reference": [], "overlap": []}
        for _ in range(args.repeats):
            for name, workers in (("reference", 1), ("overlap", args.workers)):
                start = time.perf_counter()
                table = predict_paths(network, paths, size, channels, workers=workers)
                timed[name].append(time.perf_counter() - start)
                assert len(table) == args.n and (table["error"] == "").all()

    source = args.real or f"{args.unique} synthetic galaxies"
    print(f"{label}; {args.n} JPEGs of 424x424 (copies of {source}), chunks of {CHUNK}")
    print("c) and d) take the best of " + ", ".join(f"{name} {' / '.join(f'{t:.1f}' for t in times)} s"
                                            for name, times in timed.items()))
    reference, overlap = min(timed["reference"]), min(timed["overlap"])
    rows = [("a) decode + crop alone, 1 process", crop_s),
            ("b) network alone (+ the output rows)", network_s),
            ("c) reference: crop, then predict, chunk by chunk", reference),
            (f"d) overlap: {args.workers} crop workers beside the network", overlap)]
    for name, seconds in rows:
        print(f"{name:<56} {args.n / seconds:>7,.0f} images/s  {seconds:6.1f} s  "
              f"243k: {GZ2_IMAGES * seconds / args.n / 60:5.1f} min")
    print(f"d) / c): {reference / overlap:.2f}x the reference's rate; "
          f"a) + b) = {crop_s + network_s:.1f} s, the slower of a) / {args.workers} and b) = "
          f"{max(crop_s / args.workers, network_s):.1f} s")


if __name__ == "__main__":
    main()
