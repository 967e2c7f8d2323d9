"""How close predicted answer fractions are to the volunteers' fractions.

Two kinds of metric live here:

- `training_metrics()`: Keras metrics logged every epoch, `rmse` and `r2_flat`,
  computed exactly as the original study logged them (so its
  `training_log.csv` and its test R^2 of 0.6049 compare directly).
- NumPy functions on whole prediction arrays for the final evaluation:
  `evaluate_arrays(y_true, y_pred)` returns all of them under stable names.

Two R^2 values exist and must not be confused. `r2_flat` is the original's:
`1 - SS_res / SS_tot` over all 37 outputs flattened together, with one global
mean. `r2_mean_columns` is scikit-learn's default: an R^2 per answer column,
averaged. They differ because the flat version credits the model for the gap
between common and rare answers' means, which the per-column version does not.

This module imports Keras only inside `training_metrics()`, so evaluation code
that has predictions in hand does not pay the TensorFlow import.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.metrics import r2_score

from galaxyzoo import schema


def training_metrics(concentrations: bool = False) -> list:
    """Fresh Keras metrics for `model.compile`: RMSE ("rmse") and flat R^2 ("r2_flat").

    Both accept `y_true` of width 37 or 74 (only the first 37 columns, the
    targets, count). `r2_flat` is computed per batch and averaged over batches
    with equal weight, like the original's custom metric wrapped by Keras.
    With `concentrations` (the Dirichlet head) the model's outputs are turned
    into fractions first (`losses.concentration_fractions`), so the metrics
    mean the same for every head.
    """
    rmse_class, r2_class = _keras_metric_classes()
    return [rmse_class(concentrations, name="rmse"), r2_class(concentrations, name="r2_flat")]


@functools.cache
def _keras_metric_classes():
    """Define the Keras metric classes once, on first use (keeps Keras out of imports)."""
    import keras
    from keras import ops

    from galaxyzoo.model.losses import concentration_fractions, split_targets

    class _OnFractions:
        """Mixin: read `y_pred` as fractions, from Dirichlet concentrations when `concentrations`."""

        def __init__(self, concentrations=False, **kwargs):
            super().__init__(**kwargs)
            self.concentrations = concentrations

        def fractions(self, y_pred):
            return concentration_fractions(y_pred) if self.concentrations else y_pred

        def get_config(self):
            return {**super().get_config(), "concentrations": self.concentrations}

    class TargetRMSE(_OnFractions, keras.metrics.RootMeanSquaredError):
        """Root mean squared error over the 37 targets, accumulated over all samples."""

        def update_state(self, y_true, y_pred, sample_weight=None):
            targets, _ = split_targets(y_true)
            return super().update_state(targets, self.fractions(y_pred), sample_weight=sample_weight)

    class FlatR2(_OnFractions, keras.metrics.Mean):
        """The original's R^2: per batch, one global mean over all outputs, then a batch mean.

        Sample weights are ignored, as in the original.
        """

        def update_state(self, y_true, y_pred, sample_weight=None):
            targets, _ = split_targets(y_true)
            y_pred = self.fractions(y_pred)
            targets = ops.convert_to_tensor(targets, self.dtype)
            y_pred = ops.convert_to_tensor(y_pred, self.dtype)
            ss_res = ops.sum(ops.square(targets - y_pred))
            ss_tot = ops.sum(ops.square(targets - ops.mean(targets)))
            # A scalar counts as one sample: each batch weighs the same.
            return super().update_state(1.0 - ss_res / (ss_tot + keras.config.epsilon()))

    return TargetRMSE, FlatR2


def answer_arrays(**named) -> list[np.ndarray]:
    """The named arrays as float64 (N, 37), N >= 1, all of one shape, or a ValueError saying what is off."""
    arrays = [np.asarray(a, dtype=np.float64) for a in named.values()]
    first = arrays[0]
    if first.ndim != 2 or first.shape[1] != schema.N_ANSWERS or len(first) == 0 or \
            any(a.shape != first.shape for a in arrays):
        names = ", ".join(named)
        raise ValueError(f"expected {names} of the same shape (N >= 1, {schema.N_ANSWERS}), "
                         f"got {' and '.join(str(a.shape) for a in arrays)}")
    return arrays


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 (N, 37), N >= 1 (`answer_arrays`)."""
    t, p = answer_arrays(y_true=y_true, y_pred=y_pred)
    return t, p


def mse(y_true, y_pred) -> float:
    """Mean squared error over every (galaxy, answer) entry (the original's loss)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.square(t - p)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over every (galaxy, answer) entry."""
    return _rmse(*_pair(y_true, y_pred))


def _rmse(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(t - p))))


def r2_flat(y_true, y_pred) -> float:
    """`1 - SS_res / SS_tot` over all entries flattened, with one global mean.

    Computed over the whole set; the Keras metric of the same name averages
    per-batch values instead, which usually comes out a little lower because
    each batch's own mean sits closer to its values (see `r2_flat_batched`).
    NaN when every target is equal.
    """
    t, p = _pair(y_true, y_pred)
    ss_tot = float(np.sum(np.square(t - t.mean())))
    return 1.0 - float(np.sum(np.square(t - p))) / ss_tot if ss_tot > 0 else float("nan")


def r2_flat_batched(y_true, y_pred, batch_size: int) -> float:
    """`r2_flat` as Keras logs it: per consecutive batch (with Keras's epsilon), averaged.

    Reproduces what `model.evaluate(..., batch_size=batch_size)` reports for the
    `r2_flat` training metric, e.g. to set a result beside the original's 0.6049.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    t, p = _pair(y_true, y_pred)
    values = []
    for start in range(0, len(t), batch_size):
        tb, pb = t[start : start + batch_size], p[start : start + batch_size]
        ss_tot = np.sum(np.square(tb - tb.mean()))
        values.append(1.0 - np.sum(np.square(tb - pb)) / (ss_tot + 1e-7))
    return float(np.mean(values))


def r2_mean_columns(y_true, y_pred) -> float:
    """scikit-learn's R^2 per answer column, averaged (`multioutput="uniform_average"`)."""
    t, p = _pair(y_true, y_pred)
    return float(r2_score(t, p, multioutput="uniform_average"))


# The key names the question, not just its number: "test_rmse_t08" alone says nothing in the MLflow UI.
PER_QUESTION_KEYS = {q.id: f"rmse_{q.id}_{q.slug}" for q in schema.QUESTIONS}


def rmse_per_question(y_true, y_pred) -> dict[str, float]:
    """RMSE over each question's answer columns: {"t01": ..., ..., "t11": ...}."""
    t, p = _pair(y_true, y_pred)
    return {q.id: _rmse(t[:, q.slice], p[:, q.slice]) for q in schema.QUESTIONS}


def rmse_cumulative(y_true, y_pred) -> float:
    """Kaggle 2014's score: RMSE over the 37 cumulative probabilities.

    Both arrays go through `schema.cumulative` (each answer times the
    probability of reaching its question) before the RMSE, as in the
    challenge's solution files.
    """
    t, p = _pair(y_true, y_pred)
    return _rmse(schema.cumulative(t), schema.cumulative(p))


def evaluate_arrays(y_true, y_pred) -> dict[str, float]:
    """Every evaluation metric under a stable flat name.

    Keys: "mse", "rmse", "r2_flat", "r2_mean_columns", "rmse_cumulative", and
    one per question, `PER_QUESTION_KEYS` ("rmse_t01_smooth_or_features" ...
    "rmse_t11_arms_number").
    """
    t, p = _pair(y_true, y_pred)
    result = {
        "mse": mse(t, p),
        "rmse": rmse(t, p),
        "r2_flat": r2_flat(t, p),
        "r2_mean_columns": r2_mean_columns(t, p),
        "rmse_cumulative": rmse_cumulative(t, p),
    }
    result.update({PER_QUESTION_KEYS[qid]: value for qid, value in rmse_per_question(t, p).items()})
    return result
