"""The study's figures on its parent run: optimisation history, intermediate values, parameter importances.

```python
notes = study_plots(study, folder, "val_rmse")  # folder/<name>.png for each of names.SWEEP_PLOTS
notes  # {"param_importances": "needs at least 2 complete trials"}: what could not be drawn, and why
```

Each figure is a `matplotlib.figure.Figure` (no pyplot, no global backend or
style; Optuna's own matplotlib plots set both), as `galaxyzoo.tracking.plots`
draws a training's, so a sweep leaves matplotlib's global state alone.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from galaxyzoo.tracking import names

SIZE = (8, 5)  # inches
DPI = 110  # 880 x 550 pixels: MLflow's artifact preview shows it unscaled
MAX_LEGEND = 20  # more trials than this: their lines go unlabelled rather than hide the plot


def study_plots(study, folder: Path, metric: str) -> dict[str, str]:
    """Write `<name>.png` into `folder` for each of `names.SWEEP_PLOTS` that the study can fill.

    Returns a note for each plot that could not be drawn (e.g. importances need
    at least two complete trials) instead of failing the sweep.
    """
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    reported = [t for t in trials if t.intermediate_values]
    history, intermediate, importances = names.SWEEP_PLOTS
    wanted = {  # how to draw it, whether the study can fill it, why not
        history: (_history, len(complete) >= 1, "no complete trial yet"),
        intermediate: (_intermediate, len(reported) >= 1, "no trial reported per-epoch values"),
        importances: (_importances, len(complete) >= 2, "needs at least 2 complete trials"),
    }
    notes = {}
    for name, (draw, possible, why) in wanted.items():
        if not possible:
            notes[name] = why
            continue
        fig = _figure()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. an importance evaluator marked experimental
                draw(fig.subplots(), study, metric)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes[name] = f"not drawn: {exc}"
            continue
        fig.savefig(folder / f"{name}.png", dpi=DPI)
    return notes


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=SIZE, dpi=DPI, layout="constrained")


def _whole_numbers(axis) -> None:
    """Trials and epochs are counted: no 1.25 on their axis."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _history(ax, study, metric: str) -> None:
    """Each complete trial's value, and the best so far."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    if not done:
        raise ValueError("no complete trial has a finite value")
    better = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    best = []
    for t in done:
        best.append(t.value if not best else better(best[-1], t.value))
    ax.scatter([t.number for t in done], [t.value for t in done], label=metric, zorder=2)
    ax.step([t.number for t in done], best, where="post", color="tab:red", alpha=0.6, label="best value")
    ax.set(title="Optimization History Plot", xlabel="Trial", ylabel=metric)
    _whole_numbers(ax.xaxis)
    ax.legend()
    ax.grid(alpha=0.3)


def _intermediate(ax, study, metric: str) -> None:
    """Every trial's reported value per epoch (the pruner's view of it)."""
    reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    for t in reported:
        steps = sorted(t.intermediate_values)
        ax.plot(steps, [t.intermediate_values[s] for s in steps], marker=".", alpha=0.7,
                label=f"trial {t.number} ({t.state.name.lower()})")
    ax.set(title="Intermediate Values Plot", xlabel="Epoch", ylabel=metric)
    _whole_numbers(ax.xaxis)
    if 2 <= len(reported) <= MAX_LEGEND:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    ax.grid(alpha=0.3)


def _importances(ax, study, metric: str) -> None:
    """How much each searched key explains the metric, per Optuna's default importance evaluator."""
    import optuna

    importances = optuna.importance.get_param_importances(study)
    if not importances:
        raise ValueError("no searched key varies across the complete trials")
    keys = list(reversed(importances))  # the most important on top
    values = [importances[k] for k in keys]
    bars = ax.barh(keys, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.01 else "<0.01" for v in values], padding=3)
    ax.set_xlim(0, max(values) * 1.15 or 1)
    ax.set(title=f"Hyperparameter Importances ({metric})", xlabel="Importance", ylabel="Hyperparameter")
