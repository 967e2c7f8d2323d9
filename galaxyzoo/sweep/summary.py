"""The study's summary on its parent run, written by each worker as it leaves.

```python
result = summarise(client, parent_id, spec, study, "quickstart", storage, ran=3, running=0, stale=0)
result.best_value, result.best_params, result.best_run_id
```

The parent gets the trials table (`trials.csv`), the study's plots
(`sweep.plots`), the trial counts (`trials_complete`, ...), the best value
(under the study metric, so the parent's row fills the trials' column, and as
`best_<metric>`), and the best trial's number, run and values as tags. It
covers the whole study, whichever worker writes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galaxyzoo.config.sweep_spec import SweepSpec
from galaxyzoo.sweep.plots import study_plots
from galaxyzoo.sweep.storage import hide_password
from galaxyzoo.sweep.trial import spelled
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import mlflow_runs, names

logger = logging.getLogger(__name__)

BEST_PARAGRAPH = "\n\nBest trial so far: "


@dataclass(frozen=True)
class SweepResult:
    """What one worker's sweep produced (the best values cover the whole study)."""

    study_name: str
    storage: str  # with any password hidden
    parent_run_id: str
    trials_run: int  # trials this worker ran
    finished: int  # complete + pruned trials in the study
    running: int  # trials other workers were still running when this one left
    stale: int  # trials of dead workers that this worker failed (each retried up to MAX_RETRY times)
    best_value: float | None
    best_params: dict[str, Any]
    best_run_id: str | None


def summarise(client, parent_id: str, spec: SweepSpec, study, study_name: str, storage: str, ran: int,
              running: int, stale: int) -> SweepResult:
    """Trials table, plots, best value and params on the parent run (the whole study's, whichever
    worker writes them)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    count = {name: sum(t.state == state for t in trials)
             for name, state in (("complete", states.COMPLETE), ("pruned", states.PRUNED), ("failed", states.FAIL))}
    metric = spec.study.metric
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_trial
    with scratch() as tmp:
        folder = Path(tmp)
        trials_table(trials).to_csv(folder / names.TRIALS_TABLE, index=False)
        notes = study_plots(study, folder, metric)
        client.log_artifacts(parent_id, tmp)
    summary = {names.TRIALS_METRIC_PREFIX + k: v for k, v in count.items()}
    if best is not None:  # under the trials' own key too, so the parent's row fills the same column
        summary.update({metric: best.value, names.best_of(metric): best.value})
    # At the step of the trials that ended, so the parent's history follows the study and two workers
    # summarising the same study log it once.
    mlflow_runs.log_metrics(client, parent_id, summary, step=sum(count.values()),
                            skip=mlflow_runs.logged_steps(client, parent_id))
    tags = {names.TAG_PLOT_NOTE_PREFIX + k: v for k, v in notes.items()}
    if best is not None:
        tags.update({names.TAG_BEST_TRIAL: str(best.number),
                     names.TAG_BEST_RUN: best.user_attrs.get("mlflow_run_id", "")})
        if tags[names.TAG_BEST_RUN]:  # the UI shows the tag as cut, unlinked text: the description links it
            tags[names.TAG_NOTE] = _with_best(client, parent_id, client.get_run(tags[names.TAG_BEST_RUN]), metric,
                                              best.value)
        # full precision, so a value copied into --set reproduces the trial; booleans as the params spell them
        tags.update({names.TAG_BEST_PARAM_PREFIX + k: spelled(v) for k, v in best.params.items()})
    mlflow_runs.set_tags(client, parent_id, tags)
    finished = count["complete"] + count["pruned"]
    if best is None:
        logger.warning("study %s has no complete trial yet", study_name)
    return SweepResult(
        study_name=study_name,
        storage=hide_password(storage),
        parent_run_id=parent_id,
        trials_run=ran,
        finished=finished,
        running=running,
        stale=stale,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        best_run_id=None if best is None else best.user_attrs.get("mlflow_run_id"),
    )


def _with_best(client, parent_id: str, best_run, metric: str, value: float) -> str:
    """The parent's description, its last paragraph naming the best trial so far as a link to its run."""
    note = client.get_run(parent_id).data.tags.get(names.TAG_NOTE, "").split(BEST_PARAGRAPH)[0]
    return f"{note}{BEST_PARAGRAPH}{mlflow_runs.run_link(best_run)} ({metric} {value:.5g})."


def trials_table(trials) -> "Any":
    """One row per trial: number, state, value, duration, MLflow run, params, error."""
    import pandas as pd

    rows = []
    for t in trials:
        attrs = dict(t.user_attrs)
        duration = attrs.pop("duration_s", None)
        if duration is None and t.datetime_complete and t.datetime_start:
            duration = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "epochs_reported": len(t.intermediate_values),
            "duration_s": duration,
            "mlflow_run_id": attrs.pop("mlflow_run_id", ""),
            # booleans as the params spell them, so a value copied into a filter or --set matches the run
            **{f"param:{k}": spelled(v) if isinstance(v, bool) else v for k, v in t.params.items()},
            # e.g. keras-tuner's bracket and epochs, a retry's origin; the worker's record as JSON, not a repr
            **{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in attrs.items()},
            "error": attrs.pop("error", ""),
        })
    return pd.DataFrame(rows)
