"""Model quality on the synthetic benchmark: baseline and improved against the noise floor.

    python benchmarks/train_quality.py [--n 10000] [--epochs 40] [--workdir data/bench] [--ensemble K]
                                       [--set KEY=VALUE ...]
    KERAS_BACKEND=jax python benchmarks/train_quality.py ...   # e.g. on a GPU

Generates (once) a synthetic GZ2 sample of N galaxies with a fixed seed, then
trains `experiments/baseline.yaml` and `experiments/improved.yaml` on it with
their own callbacks (no MLflow: this runs on machines without it), and scores
both on the test split, as predicted and with test-time augmentation (the mean over the 8
rotations and flips, `model.tta`). With `--ensemble K`, the improved experiment is
also trained with seeds 1..K-1 and the mean of the K models is scored as well.

Each training keeps its checkpoint in `WORKDIR/bench-runs/<experiment>-<config hash>/`
and continues from it when run again (after a kill, or to add ensemble members to
a finished run): a finished training is only scored again.

The noise floor comes from `truth.csv`: the generator knows each galaxy's
true answer probabilities and visibility, so `volunteers.expected_targets`
can let fresh crowds vote on it again and average their debiased targets:
the expected target, which a model that knew the truth would predict. The
floor is the RMSE of the actual targets against it (the vote noise alone,
with the Monte-Carlo variance taken out), and a model's "excess" is its RMSE
against the expected targets (test RMSE^2 ~ floor^2 + excess^2). Target:
improved within 1.25x of the floor, and better than the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def noise_floor(raw_dir: Path, targets: np.ndarray, asset_ids: np.ndarray,
                replicates: int) -> tuple[float, np.ndarray]:
    """(RMSE of `targets` against their noise-free expectation, that expectation (N, 37))."""
    from galaxyzoo import schema
    from galaxyzoo.model import metrics
    from galaxyzoo.data.synth.volunteers import expected_targets

    truth = pd.read_csv(raw_dir / "truth.csv").set_index("asset_id").loc[asset_ids]
    true_probs = truth[[f"{a.stem}_true" for a in schema.ANSWERS]].to_numpy()
    expected = expected_targets(true_probs, truth["visibility"].to_numpy(), np.random.default_rng(0), replicates)
    # A mean of R replicates misses the true expectation by 1/R of the targets' own variance.
    floor = np.sqrt(metrics.mse(targets, expected) / (1.0 + 1.0 / replicates))
    return float(floor), expected


def excess_rmse(y_pred: np.ndarray, expected: np.ndarray, floor: float, replicates: int) -> float:
    """A model's RMSE against the expected targets, less the Monte-Carlo share of it."""
    from galaxyzoo.model import metrics

    return float(np.sqrt(max(0.0, metrics.mse(expected, y_pred) - floor**2 / replicates)))


def build_data(experiment: str, overrides: list[str]) -> None:
    """Generate, ingest, crop and split the experiment's data before Keras (and its
    backend's threads) is imported: the data stages fork worker processes."""
    from galaxyzoo.data import workspace
    from galaxyzoo.config.experiment import load_experiment

    workspace.build_for(load_experiment(ROOT / "experiments" / experiment, overrides).data)


def train_and_score(experiment: str, overrides: list[str], workdir: Path) -> dict:
    """Fit one experiment with its callbacks, or continue its checkpoint; test metrics."""
    from galaxyzoo.config.experiment import config_hash, load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.registry import evaluate
    from galaxyzoo.training import callbacks
    from galaxyzoo.training.fit import fit, make_loss

    cfg = load_experiment(ROOT / "experiments" / experiment, overrides)
    # Keyed by what the model depends on, so a changed --set never continues another config's training.
    run_dir = workdir / "bench-runs" / f"{experiment.removesuffix('.yaml')}-{config_hash(cfg)}"
    dataset = load_dataset(cfg.data, with_counts=make_loss(cfg.train).needs_counts)
    result = fit(cfg, dataset, run_dir, resume=(run_dir / callbacks.STATE_FILE).is_file(), verbose=2)
    test = dataset.parts["test"]
    y_pred = evaluate.predict(result.model, dataset.images, test.rows, batch_size=cfg.train.batch_size)
    y_tta = evaluate.predict(result.model, dataset.images, test.rows, batch_size=cfg.train.batch_size, tta=True)
    return {
        "experiment": experiment,
        "epochs": result.initial_epoch + result.epochs,
        # None when every epoch was trained by an earlier call (this one only scored it)
        "train_images_per_s": result.epochs * len(dataset.parts["train"]) / result.seconds if result.epochs else None,
        "runtime": result.runtime,
        "workspace": dataset.workspace,
        "test_ids": test.asset_ids,
        "test_targets": test.targets,
        **scored(test.targets, y_pred, y_tta),
    }


def scored(targets: np.ndarray, y_pred: np.ndarray, y_tta: np.ndarray) -> dict:
    """The test figures of one model's (or ensemble's) predictions, plain and with TTA, and the predictions."""
    from galaxyzoo.model import metrics

    scores = metrics.evaluate_arrays(targets, y_pred)
    return {"test_rmse": scores["rmse"], "test_rmse_tta": metrics.evaluate_arrays(targets, y_tta)["rmse"],
            "test_r2_flat": scores["r2_flat"], "test_rmse_cumulative": scores["rmse_cumulative"],
            "y_pred": y_pred, "y_tta": y_tta}


def ensemble_of(members: list[dict]) -> dict:
    """The mean of the members' predictions (and of their TTA predictions), scored like a model."""
    return {**members[0], "experiment": f"ensemble of {len(members)}", "train_images_per_s": None,
            **scored(members[0]["test_targets"], np.mean([m["y_pred"] for m in members], axis=0),
                     np.mean([m["y_tta"] for m in members], axis=0))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=40, help="upper bound; early stopping may end sooner")
    parser.add_argument("--workdir", default="data/bench")
    parser.add_argument("--replicates", type=int, default=100, help="re-votes per test galaxy for the noise floor")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--ensemble", type=int, default=1, metavar="K",
                        help="also score the mean of K improved models (seeds 0..K-1)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="more overrides for both experiments, e.g. data.image_size=48 for a quick check "
                             "(the figures are then not the benchmark's)")
    parser.add_argument("--experiments", nargs="+", default=["baseline", "improved"],
                        choices=["baseline", "improved"],
                        help="which to train and score, e.g. only improved for a --set of its own "
                             "(the floor needs neither)")
    args = parser.parse_args(argv)
    if args.ensemble < 1:
        parser.error(f"--ensemble must be at least 1 (one model: no ensemble), got {args.ensemble}")
    if args.ensemble > 1 and "improved" not in args.experiments:
        parser.error("--ensemble averages improved models: add improved to --experiments")

    common = ["data.source=synthetic", f"data.synthetic_n={args.n}", "data.synthetic_seed=2026",
              f"data.workdir={args.workdir}", f"train.epochs={args.epochs}", *args.set]
    experiments = [f"{name}.yaml" for name in dict.fromkeys(args.experiments)]
    from galaxyzoo.config.experiment import load_experiment

    for experiment in experiments:  # both refuse a bad override before any data is built
        load_experiment(ROOT / "experiments" / experiment, common)
    for experiment in experiments:
        build_data(experiment, common)
    workdir = Path(args.workdir)
    results = [train_and_score(experiment, common, workdir) for experiment in experiments]
    if args.ensemble > 1:
        seed0 = next(r for r in results if r["experiment"] == "improved.yaml")
        members = [seed0] + [train_and_score("improved.yaml", [*common, f"train.seed={seed}"], workdir)
                             for seed in range(1, args.ensemble)]
        results.append(ensemble_of(members))
    # Each experiment has its own crop store (improved is colour); raw data and split are shared.
    first = results[0]
    floor, expected = noise_floor(first["workspace"].raw, first["test_targets"], first["test_ids"], args.replicates)
    for r in results:
        r["excess_rmse"] = excess_rmse(r["y_pred"], expected, floor, args.replicates)
        r["excess_rmse_tta"] = excess_rmse(r["y_tta"], expected, floor, args.replicates)

    import keras

    print(f"\nsynthetic sample: n={args.n}, seed 2026, test split {len(first['test_ids'])} galaxies, "
          f"backend {keras.backend.backend()}, runtime {first['runtime']}")
    print(f"noise floor (vote noise alone, {args.replicates} re-votes per galaxy): RMSE {floor:.4f}")
    print(f"{'experiment':<15}{'epochs':>7}{'img/s':>9}{'test RMSE':>11}{'x floor':>9}{'excess':>9}"
          f"{'r2_flat':>9}{'RMSE cum.':>11}{'TTA RMSE':>10}{'x floor':>9}")
    for r in results:
        speed = "-" if r["train_images_per_s"] is None else f"{r['train_images_per_s']:.0f}"
        print(f"{r['experiment']:<15}{r['epochs']:>7}{speed:>9}{r['test_rmse']:>11.4f}"
              f"{r['test_rmse'] / floor:>9.3f}{r['excess_rmse']:>9.4f}{r['test_r2_flat']:>9.4f}"
              f"{r['test_rmse_cumulative']:>11.4f}{r['test_rmse_tta']:>10.4f}{r['test_rmse_tta'] / floor:>9.3f}")
    if args.json:
        keep = ("experiment", "epochs", "train_images_per_s", "test_rmse", "excess_rmse", "test_r2_flat",
                "test_rmse_cumulative", "test_rmse_tta", "excess_rmse_tta")
        out = {"n": args.n, "noise_floor_rmse": floor, "replicates": args.replicates,
               "backend": keras.backend.backend(), "runs": [{k: r[k] for k in keep} for r in results]}
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    from galaxyzoo.errors import GalaxyZooError

    try:
        main()
    except GalaxyZooError as exc:  # a bad --set: one line, as the CLI gives
        print(f"train_quality: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
