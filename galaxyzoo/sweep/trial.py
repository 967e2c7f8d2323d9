"""One trial, either backend: a nested tracked training under the study's parent run.

```python
runner = TrialRunner(client, spec, extra, parent_run_id, "quickstart", key)
run_id, value = runner(3, {"train.learning_rate": 3e-3}, callbacks=[trial_callback(trial, "val_rmse")],
                       pruned=(optuna.TrialPruned,))
```

The run is `training.run.train` on the trial's config, named `<study> trial <n>`, with
the tags `trial_number`, `trial_state` (running, then complete / pruned /
failed) and `trial_values`. `trial_callback` ties an Optuna trial to its
training: it reports the metric after every epoch, so a pruner can stop it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from galaxyzoo.config.sweep_spec import SweepSpec
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking import mlflow_runs, names


class TrialRunner:
    """Trains one trial as a nested run and records its state; shared by both backends."""

    def __init__(self, client, spec: SweepSpec, extra: list[str], parent_run_id: str, study_name: str, key: str):
        self.client, self.spec, self.extra = client, spec, extra
        self.parent_run_id, self.study_name, self.key = parent_run_id, study_name, key
        self.experiment_id = client.get_run(parent_run_id).info.experiment_id

    def __call__(self, number: int, values: dict[str, Any], *, extra=(), callbacks=(), pruned=(),
                 tags=None, note: str = "") -> tuple[str, float]:
        """Train trial `number`; return `(run_id, final value of the study metric)`.

        The run is named `<study> trial <number>` (`run_name`); its description names the sweep, the
        trial and its values (and `note`, e.g. what it retries). Raises what
        `train` raises (a `pruned` exception after the run ended as pruned); a
        config the trial's values make invalid is a GalaxyZooError.
        """
        from galaxyzoo.training.run import train  # imports Keras and MLflow: paid when a trial runs, not on import

        drawn = ", ".join(f"{k}={shown(v)}" for k, v in values.items())
        description = f"Sweep {self.study_name}, trial {number}: {drawn}.{' ' + note if note else ''}"
        cfg = self.spec.trial_config(values, [*self.extra, *extra, f"description={json.dumps(description)}"])
        trial_tags = {
            names.TAG_TRIAL_NUMBER: str(number),
            names.TAG_TRIAL_STATE: "running",
            names.TAG_TRIAL_VALUES: drawn,
            names.TAG_SWEEP_KEY: self.key,
            names.TAG_STUDY_NAME: self.study_name,
            **(tags or {}),
        }
        try:
            result = train(
                cfg,
                experiment_file=str(self.spec.base),
                parent_run_id=self.parent_run_id,
                run_name=run_name(self.study_name, number),
                extra_tags=trial_tags,
                extra_callbacks=list(callbacks),
                pruned_exceptions=tuple(pruned),
                verbose=2,
                progress=False,
            )
        except BaseException as exc:
            if run_id := self.run_of(number):
                if isinstance(exc, tuple(pruned)):
                    self._mark_pruned(run_id, number, description, exc)
                else:
                    self.client.set_tag(run_id, names.TAG_TRIAL_STATE, "failed")
            raise
        self.client.set_tag(result.run_id, names.TAG_TRIAL_STATE, "complete")
        series = result.history.get(self.spec.study.metric, [])
        if not series:
            raise GalaxyZooError(f"trial {number} logged no {self.spec.study.metric}")
        return result.run_id, series[-1][1]

    def _mark_pruned(self, run_id: str, number: int, description: str, exc: BaseException) -> None:
        """A pruned trial did what the study asked: FINISHED (not KILLED, which the MLflow UI shows as
        a failure), named `<study> trial <n> (pruned)`, its description saying after which epoch."""
        mlflow_runs.set_tags(self.client, run_id, {names.TAG_TRIAL_STATE: "pruned",
                                                   names.TAG_NOTE: f"{description} {_sentence(str(exc))}."})
        self.client.update_run(run_id, status="FINISHED", name=run_name(self.study_name, number, pruned=True))

    def run_of(self, number: int) -> str | None:
        """The MLflow run of trial `number` under this parent, if training got as far as creating it."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{names.PARENT_TAG}` = '{self.parent_run_id}' "
            f"and tags.{names.TAG_TRIAL_NUMBER} = '{number}'",
        )
        return runs[0].info.run_id if runs else None


def run_name(study_name: str, number: int, pruned: bool = False) -> str:
    """A trial's run name, `<study> trial <n>` (`... (pruned)`): unique in its experiment, so a table
    of several sweeps' trials, flattened by a filter or a sort, still tells them apart."""
    return f"{study_name} trial {number}{' (pruned)' if pruned else ''}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def shown(value: Any) -> str:
    """A searched value as the runs table shows it: floats to 4 significant digits, else `spelled`."""
    return f"{value:.4g}" if isinstance(value, float) else spelled(value)


def spelled(value: Any) -> str:
    """A value in full, booleans as the params spell them (`true`, `false`), so a filter copied from a
    tag or a log line matches the param."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def trial_callback(trial, metric: str):
    """A Keras callback tying a training to its Optuna `trial`.

    It records the trial's MLflow run id on the trial as soon as training
    starts (so a worker that later finds the trial stale can close the run),
    reports `metric` after every epoch, and raises `optuna.TrialPruned` when
    the pruner says so (train() then ends the run as pruned).
    """
    import keras
    import mlflow
    import optuna

    class OptunaTrial(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            active = mlflow.active_run()
            if active is not None:
                trial.set_user_attr("mlflow_run_id", active.info.run_id)

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None or not math.isfinite(float(value)):
                return  # a NaN epoch is judged by the final value; the pruner cannot rank it
            trial.report(float(value), step=epoch + 1)  # step = epochs trained so far
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {metric}={float(value):.5f}")

    return OptunaTrial()
