"""The training callbacks: the original study's five, built from the config, plus tracking.

`build_callbacks` returns them in the order they must run (Keras calls
callbacks in list order at every hook):

| callback | from | does |
|---|---|---|
| `StopOnNonFiniteLoss` | always | Keras's `TerminateOnNaN`, raising a one-line error at the first NaN/inf loss |
| `LearningRateScheduler` | `lr_step` | multiply the rate by `factor` every `every` epochs (at epoch start) |
| `LearningRateScheduler` | `cosine_decay` | multiply the rate by the epoch's step down a half cosine over `train.epochs` |
| `ReduceLROnPlateau` | `reduce_lr_on_plateau` | divide the rate when `monitor` stalls |
| `EarlyStopping` | `early_stopping` | stop when `monitor` stalls |
| `LearningRateLogger` | always | put the epoch's rate in the logs as `lr` |
| `CSVLogger` | `csv_logger` | `training_log.csv`, one row per epoch |
| `MlflowMetricsLogger` | a tracked run | every epoch's logs as MLflow metrics, step = epoch number from 1, plus `log10_lr` |
| `EpochCheckpoint` | `checkpoint` | weights + optimizer + callback state after every epoch, for resume |

The seed's fifth callback, `ModelCheckpoint` (a model file per epoch), is
`EpochCheckpoint` here: it keeps only the latest epoch, but with everything a
resumed training needs, and the final model goes to MLflow.

This module imports Keras: import it only where a training runs.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking.mlflow_runs import STATE_FILE, log_metrics
from galaxyzoo.tracking import names

# Each epoch's files get names of their own, and state.json names the pair it belongs to (see EpochCheckpoint).
CHECKPOINT_WEIGHTS = "checkpoint-epoch{:04d}.weights.h5"
BEST_WEIGHTS = "best-epoch{:04d}.weights.npz"
# The one fixed pair of names earlier versions wrote, and a state.json that names no files means: such a
# checkpoint still resumes.
EARLIER_WEIGHTS, EARLIER_BEST_WEIGHTS = "checkpoint.weights.h5", "best.weights.npz"
# Keys Keras's own LR callbacks add to the logs; `lr` (the seed's column name) replaces them.
_KERAS_LR_KEYS = ("learning_rate",)
# What to carry across a resume for each stateful callback (their on_train_begin resets it).
_RESUMED_ATTRIBUTES = {
    "early_stopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "reduce_lr_on_plateau": ("wait", "best", "cooldown_counter"),
}


def build_callbacks(train_cfg, *, run_dir: Path, resume: bool, data: str = "the training data",
                    metrics_logger: MlflowMetricsLogger | None = None) -> tuple[list, dict[str, str]]:
    """The callbacks for one training and a description of each for MLflow params.

    Args:
        train_cfg: `config.experiment.TrainConfig`: its `callbacks`, and the
            `epochs` the cosine decay spans.
        run_dir: the run's local folder (checkpoint and CSV log live here).
        resume: continuing a run: restore the callbacks' state from the checkpoint.
        data: what a non-finite loss blames, e.g. the labels DB's path.
        metrics_logger: the tracked run's `MlflowMetricsLogger`, or None to
            train without MLflow (e.g. a benchmark on a machine without it). It
            runs before the checkpoint, so an epoch is logged before it counts
            as done, and a resume re-runs (and skips re-logging) any later one.

    Returns `(callbacks, params)`: `params` maps `callback.<name>` to the
    callback's class and settings, e.g. `EarlyStopping(monitor=loss, mode=min, patience=7, ...)`.
    """
    cfg = train_cfg.callbacks
    named: list[tuple[str, Any, dict[str, Any]]] = [("terminate_on_nan", StopOnNonFiniteLoss(data), {})]
    if cfg.lr_step.enabled:
        settings = {"factor": cfg.lr_step.factor, "every": cfg.lr_step.every}
        schedule = functools.partial(step_schedule, **settings)
        named.append(("lr_step", keras.callbacks.LearningRateScheduler(schedule), settings))
    if cfg.cosine_decay.enabled:
        settings = {"epochs": train_cfg.epochs, "min_factor": cfg.cosine_decay.min_factor}
        schedule = functools.partial(cosine_schedule, **settings)
        named.append(("cosine_decay", keras.callbacks.LearningRateScheduler(schedule), settings))
    if cfg.reduce_lr_on_plateau.enabled:
        c = cfg.reduce_lr_on_plateau
        settings = {"monitor": c.monitor, "mode": "min", "factor": c.factor, "patience": c.patience}
        named.append(("reduce_lr_on_plateau", keras.callbacks.ReduceLROnPlateau(**settings), settings))
    if cfg.early_stopping.enabled:
        c = cfg.early_stopping
        settings = {"monitor": c.monitor, "mode": "min", "patience": c.patience,
                    "restore_best_weights": c.restore_best_weights}
        named.append(("early_stopping", keras.callbacks.EarlyStopping(**settings), settings))
    named.append(("lr_logger", LearningRateLogger(), {"key": "lr"}))
    if cfg.csv_logger.enabled:
        settings = {"filename": names.CSV_LOG, "append": cfg.csv_logger.append}
        named.append(("csv_logger", keras.callbacks.CSVLogger(str(run_dir / names.CSV_LOG), append=cfg.csv_logger.append),
                      settings))
    if metrics_logger is not None:
        named.append(("mlflow_metrics", metrics_logger, {"step": "epoch from 1"}))
    if cfg.checkpoint:
        stateful = {name: cb for name, cb, _ in named if name in _RESUMED_ATTRIBUTES}
        checkpoint = EpochCheckpoint(run_dir, stateful, restore=resume)
        named.append(("checkpoint", checkpoint, {"dir": str(run_dir), "every": "epoch",
                                                 "keeps": "weights+optimizer+epoch+dropout rng+callback state"}))
    params = {names.PARAM_CALLBACK_PREFIX + name: _describe(cb, settings) for name, cb, settings in named}
    return [cb for _, cb, _ in named], params


def step_schedule(epoch: int, lr: float, *, factor: float, every: int) -> float:
    """The seed's step decay: multiply the rate by `factor` at epochs `every`, `2 * every`, ..."""
    return lr * factor if epoch > 0 and epoch % every == 0 else lr


def cosine_schedule(epoch: int, lr: float, *, epochs: int, min_factor: float) -> float:
    """Cosine decay as a factor per epoch: `lr` times the curve's ratio between this epoch and the last.

    With no other schedule, epoch e trains at `learning_rate * curve(e)`, where
    `curve` (Keras's `CosineDecay` of 1) falls from 1 at epoch 0 to `min_factor`
    at `epochs`. A factor rather than a rate, so a `ReduceLROnPlateau` cut (or a
    step) is kept, and a resume continues from the checkpoint's rate.
    """
    if epoch == 0:
        return lr
    curve = keras.optimizers.schedules.CosineDecay(1.0, decay_steps=epochs, alpha=min_factor)
    now, before = (float(keras.ops.convert_to_numpy(curve(e))) for e in (epoch, epoch - 1))
    return lr * now / before


def _describe(callback, settings: dict[str, Any]) -> str:
    inside = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"{type(callback).__name__}({inside})"


class LearningRateLogger(keras.callbacks.Callback):
    """Logs the learning rate each epoch trained with, as `lr`.

    The rate is read at the start of the epoch (after a schedule changed it)
    and written into the epoch's logs, replacing Keras's own `learning_rate`
    key (which ReduceLROnPlateau sets to the rate *after* its own reduction).
    """

    def __init__(self):
        super().__init__()
        self._lr = None

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = current_learning_rate(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key in [k for k in logs if k.startswith(_KERAS_LR_KEYS)]:
            del logs[key]
        logs["lr"] = self._lr if self._lr is not None else current_learning_rate(self.model)


def current_learning_rate(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class StopOnNonFiniteLoss(keras.callbacks.TerminateOnNaN):
    """Keras's `TerminateOnNaN`, raising at the first NaN or infinite batch loss.

    Raising (rather than letting the epoch end) keeps the bad epoch out of the
    metric log, the CSV log and the checkpoint, so the last checkpoint stays
    a sound one. The error is a `GalaxyZooError` naming the epoch, the batch
    and `data`, so the training's run ends failed with that reason.
    """

    def __init__(self, data: str):
        super().__init__(raise_error=True)
        self.data = data
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError:
            raise GalaxyZooError(
                f"training stopped at epoch {self._epoch + 1}, batch {batch + 1}: the loss is {logs['loss']} "
                f"(not finite); check the labels in {self.data} (vote fractions must lie in [0, 1]) or "
                "lower train.learning_rate"
            ) from None


class MlflowMetricsLogger(keras.callbacks.Callback):
    """Logs every numeric value of an epoch's logs as an MLflow metric, at step = epoch number.

    The step counts from 1, as Keras's console does ("Epoch 1/5" is step 1),
    so the MLflow charts, the console and Optuna's pruning steps name an epoch
    alike. Also logs `epoch_seconds`, the wall time of the epoch (training and
    validation), and `log10_lr`, the learning rate's base-10 logarithm: MLflow
    charts a rate like 1e-3 as a line at "0" on a linear axis, while -3.0 and
    a decay of 0.8 (-0.097 per step) read plainly. Logging goes through an
    explicit client and run id, so it works for nested sweep trials and from
    any thread. Steps in `skip` (`tracking.logged_steps` of a resumed run) are
    not logged again.
    """

    def __init__(self, client, run_id: str, skip: dict[str, set[int]] | None = None):
        super().__init__()
        self.client = client
        self.run_id = run_id
        self.skip = skip
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = dict(logs or {})
        if self._started is not None:
            values[names.EPOCH_SECONDS] = time.perf_counter() - self._started
        lr = values.get("lr")
        if isinstance(lr, (int, float)) and lr > 0:
            values[names.LOG10_LR] = math.log10(lr)
        # Keras's `epoch` counts from 0; the step is the epoch's number as the console prints it.
        log_metrics(self.client, self.run_id, values, step=epoch + 1, skip=self.skip)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves what a killed training needs to continue, after every epoch.

    Files in `directory`: `checkpoint-epochNNNN.weights.h5` (model weights and
    optimizer state, learning rate included), for EarlyStopping with
    `restore_best_weights` `best-epochNNNN.weights.npz`, and `state.json` (the
    next epoch to run, the names of those two files, the dropout layers' random
    state and the state of EarlyStopping / ReduceLROnPlateau), written to a
    temporary name and renamed last. Each epoch's weights have names of their
    own, so a kill mid-save leaves the previous state.json naming the previous
    epoch's weights, both whole: one fixed weights name, replaced before the
    state, once paired the new weights with the old epoch number, and the
    resumed run trained an epoch more than it logged. Files no state names are
    removed after each save.

    With `restore=True`, `on_train_begin` (after the stateful callbacks reset
    themselves) puts their saved state back.
    """

    def __init__(self, directory: Path, stateful: dict[str, Any], restore: bool = False):
        super().__init__()
        self.directory = Path(directory)
        self.stateful = stateful
        self.restore = restore

    def on_train_begin(self, logs=None):
        if not self.restore:
            return
        state = read_state(self.directory)
        for name, callback in self.stateful.items():
            for attribute, value in state.get("callbacks", {}).get(name, {}).items():
                setattr(callback, attribute, value)
        best = checkpoint_files(self.directory, state)[1]
        early = self.stateful.get("early_stopping")
        if early is not None and getattr(early, "restore_best_weights", False) and best is not None:
            with np.load(best) as data:
                early.best_weights = [data[f"w{i}"] for i in range(len(data.files))]

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = CHECKPOINT_WEIGHTS.format(epoch + 1)
        self.model.save_weights(str(self.directory / weights), overwrite=True)
        best = read_state(self.directory).get("best_weights")
        early = self.stateful.get("early_stopping")
        held = early is not None and getattr(early, "best_weights", None) is not None
        if held and (early.best_epoch == epoch or best is None):  # None: resumed from the earlier fixed names
            best = BEST_WEIGHTS.format(early.best_epoch + 1)
            with open(self.directory / best, "wb") as fh:
                np.savez(fh, **{f"w{i}": w for i, w in enumerate(early.best_weights)})
        state = {
            "next_epoch": epoch + 1,
            "weights": weights,
            "best_weights": best,
            "seed_generators": [np.asarray(v).tolist() for v in seed_generator_variables(self.model)],
            "callbacks": {
                name: {a: _plain(getattr(cb, a, None)) for a in _RESUMED_ATTRIBUTES[name]}
                for name, cb in self.stateful.items()
            },
        }
        write_state(self.directory, state)
        for path in self.directory.glob("*.weights.*"):  # earlier epochs', a killed save's, an older layout's
            if path.name not in (weights, best):
                path.unlink(missing_ok=True)


def checkpoint_files(directory: Path, state: dict) -> tuple[Path, Path | None]:
    """The weights file and the best-weights file (None without one) that `state` belongs to."""
    directory = Path(directory)
    if "weights" not in state:  # written before each epoch's files had names of their own
        best = directory / EARLIER_BEST_WEIGHTS
        return directory / EARLIER_WEIGHTS, best if best.is_file() else None
    best = state.get("best_weights")
    return directory / state["weights"], None if best is None else directory / best


def seed_generator_variables(model) -> list:
    """The random-state variables of the model's dropout layers, in a fixed order.

    `save_weights` does not keep them, but a resumed training must continue
    their streams, or its dropout masks differ from an uninterrupted run's.
    """
    return [v for v in model.variables if "seed_generator_state" in v.path]


def restore_seed_generators(model, states: list) -> None:
    variables = seed_generator_variables(model)
    if len(variables) != len(states):
        raise ValueError(f"checkpoint holds {len(states)} seed generator states, the model has {len(variables)}")
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _plain(value):
    """A JSON-safe copy of a callback attribute (NumPy scalars, infinities)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)


def write_state(directory: Path, state: dict) -> None:
    tmp = Path(directory) / f"tmp-{STATE_FILE}"
    tmp.write_text(json.dumps(state, indent=2, allow_nan=True))
    os.replace(tmp, Path(directory) / STATE_FILE)


def read_state(directory: Path) -> dict:
    """The checkpoint's `state.json`, or `{}` when the run has none yet; a damaged one is a GalaxyZooError."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged_checkpoint(path, f"not JSON: {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("next_epoch"), int) or state["next_epoch"] < 1:
        raise damaged_checkpoint(path, "no next_epoch (a positive integer)")
    named = {"weights": (str,), "best_weights": (str, type(None))}
    if "weights" in state and any(not isinstance(state.get(k), kinds) or (state[k] and Path(state[k]).name != state[k])
                                  for k, kinds in named.items()):
        raise damaged_checkpoint(path, "its weights files are not named as plain file names")
    return state


def damaged_checkpoint(path: Path, problem: str) -> GalaxyZooError:
    """The one error for an unreadable checkpoint file, saying how to go on without it."""
    return GalaxyZooError(
        f"{path}: damaged checkpoint ({problem}); remove {Path(path).parent} to train afresh "
        "(`--resume auto` then starts a new run)"
    )


def truncate_csv_log(path: Path, next_epoch: int) -> int:
    """Keep only the rows of epochs before `next_epoch` in a CSV log; return how many remain.

    A training killed after it logged an epoch but before that epoch's
    checkpoint was saved runs the epoch again on resume; this keeps the CSV at
    one row per epoch.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and int(row[0]) < next_epoch]
    tmp = path.with_name(f"tmp-{path.name}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)
    return len(kept)
