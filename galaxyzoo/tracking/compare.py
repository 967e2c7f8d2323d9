"""One table of an experiment's or a sweep's runs: what differed, how it scored, how long it took.

This replaces the original study's Excel tracking sheet. Rows are MLflow runs;
columns are the run's name, its trial number and state (for sweep trials), its
duration, the headline metrics (final values as MLflow keeps them), and every
parameter whose value is not the same in all listed runs:

>>> table = runs_table(client, runs, sort="val_rmse")
>>> print(render(table, "markdown"))

`runs_of` selects the runs; `galaxyzoo promote` uses it too.
"""

from __future__ import annotations

import math
import re
import sys
import time

import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking import names

FORMATS = ("text", "csv", "markdown")
# Final metrics worth a column; per-question values (test_rmse_t01_smooth_or_features, ...) stay in the MLflow UI.
HEADLINE = re.compile(rf"(val_|test_)?(loss|rmse|r2_flat|r2_mean_columns|rmse_cumulative)({names.TTA_SUFFIX})?")


def lower_is_better(metric: str) -> bool:
    """R² grows with quality; losses and errors shrink."""
    return "r2" not in metric


def runs_of(client, *, experiment_name: str | None = None, sweep_run: str | None = None):
    """`(experiment_id, runs)`: the trials of `sweep_run`, or the trainings of `experiment_name`.

    An experiment's listing keeps the trainings (their `config_hash` tag), sweep
    trials among them, and the ensembles; it leaves out the runs that train
    nothing: sweep parents, and the runs `mlflow run` opens for the other entry
    points (promote, evaluate, predict, embed, a project that never started).
    """
    from mlflow.exceptions import MlflowException

    if sweep_run:
        try:
            parent = client.get_run(sweep_run)
        except MlflowException:
            raise GalaxyZooError(f"no MLflow run {sweep_run!r} in {client.tracking_uri}") from None
        experiment_id = parent.info.experiment_id
        runs = _search(client, experiment_id, f"tags.`{names.PARENT_TAG}` = '{sweep_run}'")
        if not runs and names.TAG_SWEEP not in parent.data.tags:  # a trial's id, or a plain training's
            above = parent.data.tags.get(names.PARENT_TAG) or parent.data.tags.get(names.TAG_PARENT_OF_WORKER)
            raise GalaxyZooError(f"--sweep-run {sweep_run}: not a sweep's parent run"
                                 + (f"; its sweep's parent run is {above}" if above else ""))
        return experiment_id, runs
    if not experiment_name:
        raise GalaxyZooError("name an MLflow experiment (--experiment-name) or a sweep run (--sweep-run)")
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise GalaxyZooError(
            f"no MLflow experiment {experiment_name!r} in {client.tracking_uri} (experiments: {known})"
        )
    runs = [r for r in _search(client, experiment.experiment_id, None)
            if names.TAG_SWEEP not in r.data.tags
            and (names.TAG_CONFIG_HASH in r.data.tags or names.TAG_ENSEMBLE in r.data.tags)]
    return experiment.experiment_id, runs


def _search(client, experiment_id: str, filter_string: str | None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string or "", max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def metric_value(run, key: str) -> float:
    """`run`'s last `key`, NaN when it has none.

    MLflow's SQL stores save an infinite metric as the largest float and read it back so: that
    value is infinity again here, so a diverged run neither ranks first nor passes as finite.
    """
    value = run.data.metrics.get(key, math.nan)
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def runs_table(runs, sort: str = "val_rmse") -> pd.DataFrame:
    """A DataFrame, one row per run, sorted by `sort` (best first; runs without it last)."""
    if not runs:
        raise GalaxyZooError("no runs to compare")
    metrics = sorted({k for r in runs for k in r.data.metrics if HEADLINE.fullmatch(k)}, key=_metric_order)
    if sort not in {k for r in runs for k in r.data.metrics}:
        raise GalaxyZooError(f"no run has the metric {sort!r}; metrics here: {', '.join(metrics) or 'none'}")
    metrics = [sort] + [m for m in metrics if m != sort]
    rows = []
    for run in runs:
        tags = run.data.tags
        row = {
            "run": run.info.run_name or run.info.run_id[:8],
            "run_id": run.info.run_id,
            "trial": tags.get(names.TAG_TRIAL_NUMBER, ""),
            "state": _state(tags.get(names.TAG_TRIAL_STATE) or tags.get(names.TAG_OUTCOME) or run.info.status.lower()),
            "duration": _duration(run),
        }
        row.update({m: metric_value(run, m) for m in metrics})
        row.update({f"param:{k}": v for k, v in run.data.params.items() if _describes_training(k, v, run)})
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table["trial"].astype(bool).any():
        table = table.drop(columns="trial")
    param_columns = [c for c in table.columns if c.startswith("param:")]
    # An ensemble run (`galaxyzoo ensemble`) logs only its data's params: the trainings alone say what differed.
    trainings = [names.TAG_ENSEMBLE not in run.data.tags for run in runs]
    differing = [c for c in param_columns if _differs(table.loc[trainings, c])]
    table = table.drop(columns=[c for c in param_columns if c not in differing])
    table = table.rename(columns={c: c.removeprefix("param:") for c in differing})
    table = table.sort_values(sort, ascending=lower_is_better(sort), na_position="last", kind="stable")
    return table.reset_index(drop=True)


def _state(state: str) -> str:
    """One word per outcome: a trial's `complete` (its tag's value, which UI filters use) shows as a
    training's `completed`."""
    return "completed" if state == "complete" else state


def _metric_order(name: str) -> tuple[int, str]:
    """Validation metrics first (what sweeps optimise), then test, then training."""
    return (0 if name.startswith("val_") else 1 if name.startswith("test_") else 2, name)


def _describes_training(key: str, value: str, run) -> bool:
    """Leave out params that differ for every run by construction: where it was tracked, the
    config digest (older runs logged it as a param; its parts are listed), and values naming the
    run's own folders."""
    return not key.startswith("tracking.") and key != names.TAG_CONFIG_HASH and run.info.run_id not in value


def _differs(column: pd.Series) -> bool:
    return column.fillna("").astype(str).nunique() > 1


def _duration(run) -> float:
    """Seconds from start to end (to now for a run still going)."""
    end = run.info.end_time or int(time.time() * 1000)
    return round((end - run.info.start_time) / 1000.0, 1)


def render(table: pd.DataFrame, fmt: str = "text") -> str:
    """The table as aligned text, CSV (full precision) or a Markdown table."""
    if fmt not in FORMATS:
        raise GalaxyZooError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = table.drop(columns="run_id").copy()
    shown["duration"] = shown["duration"].map(_clock)
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    shown = shown.fillna("").astype(str)
    if fmt == "text":
        return shown.to_string(index=False) + "\n"
    lines = [_markdown_row(shown.columns), "|" + "|".join("---" for _ in shown.columns) + "|"]
    lines += [_markdown_row(row) for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _markdown_row(cells) -> str:
    # A `|` inside a cell would end the column.
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
