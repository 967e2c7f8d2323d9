"""Calibration of the Dirichlet head: how often the truth lies inside its 90 % intervals, per question.

    python benchmarks/uncertainty_coverage.py [--n 10000] [--epochs 40] [--workdir data/bench] [--bf16]
        [--set model.dirichlet_components=2 model.concentration_ceiling=1000 train.seed=1]
    python benchmarks/uncertainty_coverage.py --quick      # ~1-2 min on 2 cores: a smoke test, not a result

Trains `experiments/improved.yaml` with the Dirichlet head and its loss
(`model.head=dirichlet train.loss=dirichlet-learned`, then any `--set`: a
mixture head, its ceiling, another seed) on the synthetic sample
of `benchmarks/train_quality.py` (the same N, seed 2026 and epochs by default,
so the two share their data), without MLflow, and predicts each test galaxy's
concentrations. The synthetic sample knows the answer probabilities every
volunteer voted from (`truth.csv`), so coverage is checked against the truth
itself, which no real catalogue allows (`model.dirichlet.coverage`):

- `true`: the share of (galaxy, answer) pairs whose true probability lies in
  the 5th-95th percentile interval of its Beta marginal (a mixture's: its
  components' Betas, weighted);
- `votes`: the observed vote count against the beta-binomial (weighted likewise) for the n votes
  the question got, by the randomised probability integral transform (a count
  is inside by the share of its CDF step within [0.05, 0.95]; calibrated: 0.90);
- `votes, interval`: the share whose vote fraction k/n lies inside the
  whole-count interval, bounds inclusive. Discrete, so it holds at least 90 %
  of the chances, and nearly all where an answer is nearly decided.

Beside them, `best votes` and `best interval` score the same votes against a
head that knew each truth (Binomial(n, p)): what calibration looks like on
these galaxies. Only galaxies whose question got votes count. Target: each
within 0.85-0.95. Each share comes with its standard error over the test
galaxies (`*_se`); a question whose share lies outside the target band by more
than two of them is unlikely to be outside by the draw of test galaxies alone.

Each table comes twice, from one trained network: as trained, and calibrated
on the validation votes (`train.calibrate_head`: one factor per question on
the concentrations, by maximum likelihood; `training.calibration`), which the
training would have done with that option on. Under each, the questions within
the band are also counted over the galaxies whose question got at least 10
votes (`model.dirichlet.WELL_VOTED`, GZ2's own bar): with fewer, the votes
cannot tell how wide the truth's interval should be, so there its width is
whatever the network carried over from other galaxies.

The training keeps its checkpoint in `WORKDIR/bench-runs/dirichlet-<experiment>-<config
hash>/` and continues from it when run again, so a killed run resumes and a
finished one is only scored again.
`--quick` trains `experiments/quickstart.yaml` (grey 106 px, the baseline
network) on 600 galaxies for 3 epochs instead. `--bf16` trains under
`train.precision=bfloat16` (docs/benchmarks.md, "bfloat16 on the CPU").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_quality import build_data  # noqa: E402  (the data stages fork: build them before Keras loads)

DIRICHLET = ["model.head=dirichlet", "train.loss=dirichlet-learned"]


def dirichlet_overrides(n: int, epochs: int, workdir: str, bf16: bool) -> list[str]:
    """The experiment's overrides: the Dirichlet head on `train_quality.py`'s synthetic sample of `n` (seed 2026)."""
    return ["data.source=synthetic", f"data.synthetic_n={n}", "data.synthetic_seed=2026", f"data.workdir={workdir}",
            f"train.epochs={epochs}", *DIRICHLET, *(["train.precision=bfloat16"] if bf16 else [])]


def trained(experiment: str, overrides: list[str], workdir: Path):
    """Fit `experiment` with `overrides`, or continue its checkpoint: (its config, the training's result, its data)."""
    from galaxyzoo.config.experiment import config_hash, load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.training import callbacks
    from galaxyzoo.training.fit import fit

    cfg = load_experiment(ROOT / "experiments" / experiment, overrides)
    # Keyed by the config, so a changed option never continues another training.
    run_dir = workdir / "bench-runs" / f"dirichlet-{experiment.removesuffix('.yaml')}-{config_hash(cfg)}"
    dataset = load_dataset(cfg.data, with_counts=True)
    result = fit(cfg, dataset, run_dir, resume=(run_dir / callbacks.STATE_FILE).is_file(), verbose=2)
    return cfg, result, dataset


def true_probabilities(dataset, part) -> np.ndarray:
    """(N, 37): the probabilities the volunteers voted from (`truth.csv`), for `part`'s galaxies in its order."""
    from galaxyzoo import schema

    truth = pd.read_csv(dataset.workspace.raw / "truth.csv").set_index("asset_id").loc[part.asset_ids]
    return truth[[f"{a.stem}_true" for a in schema.ANSWERS]].to_numpy()


def train_and_cover(experiment: str, overrides: list[str], workdir: Path) -> dict:
    """Fit `experiment` with `overrides`, or continue its checkpoint; the test split's coverage tables and RMSE,
    as trained and calibrated on the validation votes."""
    from galaxyzoo.model import dirichlet, metrics
    from galaxyzoo.registry import evaluate
    from galaxyzoo.training.calibration import calibrate_head

    cfg, result, dataset = trained(experiment, overrides, workdir)
    test = dataset.parts["test"]
    true_probs = true_probabilities(dataset, test)
    best = dirichlet.truth_vote_coverage(true_probs, test.counts)
    calibration = calibrate_head(result.model, dataset, batch_size=cfg.train.batch_size)
    heads = {}
    for name, model in (("as trained", result.model), ("calibrated", calibration.model)):
        outputs = evaluate.predict_outputs(model, dataset.images, test.rows, batch_size=cfg.train.batch_size)
        tables = {}
        for min_votes in (1, dirichlet.WELL_VOTED):
            table = dirichlet.coverage(outputs, true_probs, test.counts, min_votes=min_votes)
            if min_votes == 1:
                table["best_vote_coverage"] = best["vote_coverage"]
                table["best_vote_interval_coverage"] = best["vote_interval_coverage"]
            tables[min_votes] = table
        heads[name] = {"tables": tables, "test_rmse": metrics.rmse(test.targets, dirichlet.fractions(outputs)),
                       "median_concentration": float(np.median(mean_concentration(outputs)))}
    return {"epochs": result.initial_epoch + result.epochs, "n_test": len(test), "heads": heads,
            "head_refit": result.head_refit.metrics() if result.head_refit else None,
            "calibration": calibration.metrics()}


def mean_concentration(outputs: np.ndarray) -> np.ndarray:
    """(N, 37): each answer's question's concentration alpha0, for a mixture its components' weighted mean."""
    from galaxyzoo.model import dirichlet

    alpha, weights = dirichlet.components(outputs)
    return sum(w * dirichlet.question_totals(a) for a, w in zip(alpha, weights))


def within_band(shares: pd.DataFrame, margin=0.0, band=(0.85, 0.95)) -> pd.Series:
    """Per column, how many questions' shares lie within `band`, widened on both sides by `margin`
    (a number, or an array of the table's shape: e.g. two standard errors per share). A NaN margin
    (no standard error: one galaxy) widens nothing."""
    low, high = band
    margin = np.nan_to_num(margin)
    return ((shares >= low - margin) & (shares <= high + margin)).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=40, help="upper bound; early stopping may end sooner")
    parser.add_argument("--workdir", default="data/bench")
    parser.add_argument("--quick", action="store_true", help="quickstart network, 600 galaxies, 3 epochs")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--bf16", action="store_true", help="train under mixed_bfloat16 (faster on a CPU that has it)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="more config overrides, e.g. model.dirichlet_components=2 train.seed=1")
    args = parser.parse_args()

    experiment, n, epochs = ("quickstart.yaml", 600, 3) if args.quick else ("improved.yaml", args.n, args.epochs)
    overrides = dirichlet_overrides(n, epochs, args.workdir, args.bf16) + args.set
    build_data(experiment, overrides)
    r = train_and_cover(experiment, overrides, Path(args.workdir))

    print(f"\n{experiment} + Dirichlet head: synthetic n={n}, seed 2026, {r['epochs']} epochs, "
          f"{r['n_test']} test galaxies")
    if r["head_refit"]:
        print("head refitted on clean features: " + ", ".join(f"{k} {v:.4f}" for k, v in r["head_refit"].items()))
    print("calibration on the validation votes: " + ", ".join(f"{k} {v:.3f}" for k, v in r["calibration"].items()))
    for name, head in r["heads"].items():
        report(name, head)
    if args.json:
        out = {"experiment": experiment, "n": n, **{k: r[k] for k in ("epochs", "n_test", "head_refit", "calibration")},
               **{name: {"test_rmse": head["test_rmse"], "median_concentration": head["median_concentration"],
                         **{f"coverage_min_votes_{k}": t.to_dict(orient="records") for k, t in head["tables"].items()}}
                  for name, head in r["heads"].items()}}
        Path(args.json).write_text(json.dumps(out, indent=2))


def report(name: str, head: dict) -> None:
    """Print one head's coverage table, its means and how many questions lie within the band."""
    from galaxyzoo.model.dirichlet import WELL_VOTED

    table = head["tables"][1]
    print(f"\n== {name}: test RMSE {head['test_rmse']:.4f}, median concentration per question "
          f"{head['median_concentration']:.1f}")
    print("coverage of the 90 % intervals (target 0.85-0.95); best_*: a head that knew the truth; "
          "*_se: standard errors over the galaxies")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    shares = table[["true_coverage", "vote_coverage", "vote_interval_coverage", "best_vote_coverage",
                    "best_vote_interval_coverage"]]
    print("mean over questions: " + ", ".join(f"{k} {v:.3f}" for k, v in shares.mean().items()))
    print("questions within 0.85-0.95: " + ", ".join(f"{k} {v}" for k, v in within_band(shares).items()))
    measured = shares.iloc[:, :3]
    errors = table[[f"{c}_se" for c in measured.columns]].to_numpy()
    print("questions within 0.85-0.95 or less than 2 standard errors from it: "
          + ", ".join(f"{k} {v}" for k, v in within_band(measured, 2 * errors).items()))
    well = head["tables"][WELL_VOTED]
    columns = ["galaxies", "true_coverage", "vote_coverage"]
    print(f"over the galaxies whose question got at least {WELL_VOTED} votes:")
    print(well[["question", *columns]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("questions within 0.85-0.95: " + ", ".join(f"{k} {v}" for k, v in within_band(well[columns[1:]]).items()))


if __name__ == "__main__":
    main()
