"""What pruning buys a sweep: the same search space and the same epoch budget, with and without a pruner.

    .venv/bin/python benchmarks/pruning.py [--budget-epochs 60] [--epochs 6] [--pruner median]

Both arms run `sweeps/quickstart.yaml` (2,000 synthetic galaxies, 48 px crops) with
trials of `--epochs` epochs and the same sampler seed, so their first trials draw the
same values. Each arm adds trials, one `run_sweep` call at a time on its own study,
until its trials have trained `--budget-epochs` epochs in total (the last trial may go
past it). A pruned trial stops early, so the pruning arm fits more trials into the
budget. Reported per arm: trials finished (complete + pruned), epochs trained, the
best final val_rmse, and the time inside trials (per-call sweep overhead excluded).
Everything goes to a temporary folder (data, MLflow store, Optuna storage).
"""

from __future__ import annotations

import argparse
import logging
import platform
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "sweeps" / "quickstart.yaml"


def run_arm(name: str, folder: Path, workdir: Path, args) -> dict:
    """Add trials to one study until its trials have trained the epoch budget."""
    import optuna

    from galaxyzoo.sweep.worker import run_sweep

    storage = f"sqlite:///{folder / 'optuna.db'}"
    overrides = [f"tracking.tracking_uri=sqlite:///{folder / 'mlflow.db'}", f"data.workdir={workdir}"]
    pruner = args.pruner if name == "pruning" else "none"
    epochs_spent, n = 0, 0
    while epochs_spent < args.budget_epochs:
        n += 1
        run_sweep(SWEEP, n_trials=n, epochs=args.epochs, storage=storage, pruner=pruner, overrides=overrides,
                  progress=False)
        trials = optuna.load_study(study_name="quickstart", storage=storage).get_trials()
        epochs_spent = sum(len(t.intermediate_values) for t in trials)
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "arm": name,
        "finished": len(trials),
        "complete": len(complete),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "epochs": epochs_spent,
        "best": min(t.value for t in complete),
        "trial_seconds": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-epochs", type=int, default=60, help="epochs each arm may train (default 60)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of an unpruned trial (default 6)")
    parser.add_argument("--pruner", choices=("median", "hyperband"), default="median")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = []
        for name in ("no pruning", "pruning"):
            folder = tmp / name.replace(" ", "-")
            folder.mkdir()
            results.append(run_arm(name, folder, tmp / "data", args))
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in model.splitlines() if l.startswith("Model name")), "?")
    print(f"machine: {model} ({platform.machine()}), budget {args.budget_epochs} epochs, "
          f"{args.epochs} epochs per trial, pruner {args.pruner}, total {time.perf_counter() - start:.0f} s")
    print(f"{'arm':<11} {'finished':>8} {'complete':>8} {'pruned':>6} {'epochs':>6} {'best val_rmse':>13} "
          f"{'trial time':>10}")
    for r in results:
        print(f"{r['arm']:<11} {r['finished']:>8} {r['complete']:>8} {r['pruned']:>6} {r['epochs']:>6} "
              f"{r['best']:>13.5f} {r['trial_seconds']:>9.0f}s")
    base, pruned = results
    print(f"pruning: {pruned['finished'] / base['finished']:.2f}x the trials in "
          f"{pruned['epochs'] / base['epochs']:.2f}x the epochs; best val_rmse {pruned['best'] - base['best']:+.5f}")


if __name__ == "__main__":
    main()
