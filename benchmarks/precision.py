"""float32 against bfloat16 on this machine: training and prediction throughput, test RMSE.

    python benchmarks/precision.py [--n 1000] [--epochs 3] [--experiment baseline.yaml]

Trains the same experiment twice, on the same synthetic data and seed, once
with `train.precision=float32` and once with `train.precision=bfloat16`, with
`training.fit` (no MLflow), then times the prediction of the test split and
scores it. The issue's target on a CPU with AMX: at least 2x the float32
training throughput, with a test RMSE within 1 % of float32's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bfloat16")


def train_and_time(experiment: str, overrides: list[str], run_dir: Path) -> dict:
    """Fit one precision of the experiment; its training and prediction images/s and test RMSE."""
    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.registry import evaluate
    from galaxyzoo.training.fit import fit, make_loss

    cfg = load_experiment(ROOT / "experiments" / experiment, overrides)
    dataset = load_dataset(cfg.data, with_counts=make_loss(cfg.train).needs_counts)
    result = fit(cfg, dataset, run_dir, verbose=2)
    test = dataset.parts["test"]
    evaluate.predict(result.model, dataset.images, test.rows[:cfg.train.batch_size], cfg.train.batch_size)  # warm-up
    start = time.perf_counter()
    y_pred = evaluate.predict(result.model, dataset.images, test.rows, batch_size=cfg.train.batch_size)
    predict_s = time.perf_counter() - start
    scores = evaluate.evaluate_predictions(test.targets, y_pred, batch_size=cfg.train.batch_size).metrics
    return {"policy": result.runtime["runtime.precision"],
            "train_images_per_s": result.epochs * len(dataset.parts["train"]) / result.seconds,
            "predict_images_per_s": len(test.rows) / predict_s,
            "test_rmse": scores["rmse"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="synthetic galaxies (default 1000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--experiment", default="baseline.yaml")
    parser.add_argument("--workdir", default="data/bench-precision")
    args = parser.parse_args()

    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.data import workspace

    # Early stopping off: both precisions train the same number of epochs.
    common = ["data.source=synthetic", f"data.synthetic_n={args.n}", "data.synthetic_seed=2026",
              f"data.workdir={args.workdir}", f"train.epochs={args.epochs}",
              "train.callbacks.early_stopping.enabled=false"]
    # The data stages fork worker processes: build them before Keras starts its threads.
    workspace.build_for(load_experiment(ROOT / "experiments" / args.experiment, common).data)
    results = {}
    for precision in PRECISIONS:
        run_dir = Path(args.workdir) / "bench-runs" / precision
        run_dir.mkdir(parents=True, exist_ok=True)
        results[precision] = train_and_time(args.experiment, [*common, f"train.precision={precision}"], run_dir)

    print(f"\n{args.experiment}, synthetic n={args.n}, {args.epochs} epochs")
    print(f"{'precision':<10} {'policy':<46} {'train img/s':>12} {'predict img/s':>14} {'test RMSE':>10}")
    for precision, r in results.items():
        print(f"{precision:<10} {r['policy']:<46} {r['train_images_per_s']:>12.1f} "
              f"{r['predict_images_per_s']:>14.1f} {r['test_rmse']:>10.5f}")
    base, bf16 = results["float32"], results["bfloat16"]
    print(f"bfloat16 / float32: training {bf16['train_images_per_s'] / base['train_images_per_s']:.2f}x, "
          f"prediction {bf16['predict_images_per_s'] / base['predict_images_per_s']:.2f}x, "
          f"test RMSE {100 * (bf16['test_rmse'] / base['test_rmse'] - 1):+.2f} %")


if __name__ == "__main__":
    main()
