"""Calibrate the Dirichlet head on held-out votes: one factor per question on its concentrations.

The head learns how sure to be from the training galaxies, whose means it has fitted
better than it fits new ones, and a single network shares that sureness between
questions that differ: on the synthetic benchmark its intervals come out too
narrow for the votes of t08 and t11 and too wide for t02 (docs/benchmarks.md,
"Uncertainty coverage of the Dirichlet head"). `train.calibrate_head` then fits,
for each question, the factor on its concentrations that gives the validation
galaxies' votes the highest Dirichlet-multinomial likelihood
(`model.dirichlet.fit_scales`) and writes it into the head
(`model.network.with_concentration_scale`), so every later prediction (test
metrics, the logged and packaged model, predict's interval columns) carries it.
A factor keeps each question's means, so the RMSEs do not move:

```python
report = calibrate_head(model, dataset, batch_size=64)
report.model        # the calibrated copy, uncompiled
report.scale        # {question id: factor}, e.g. {"t08": 0.41, ...}
```

Only the validation votes choose the factors, so it works as well on real votes as on synthetic ones;
it takes a prediction of the validation galaxies and a few seconds of SciPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from galaxyzoo import schema
from galaxyzoo.data.dataset import Dataset
from galaxyzoo.model import dirichlet
from galaxyzoo.model.network import concentration_scale, with_concentration_scale
from galaxyzoo.registry.evaluate import predict_outputs
from galaxyzoo.tracking import names
from galaxyzoo.training.head_refit import require_validation


@dataclass(frozen=True)
class HeadCalibration:
    """The calibrated model, its factor per question, and the validation votes' mean negative
    log-likelihood per galaxy (nats, less the multinomial coefficient) before and after."""

    model: keras.Model
    scale: dict[str, float]
    val_nll_before: float
    val_nll: float

    def metrics(self) -> dict[str, float]:
        """The run's `head_calibration_val_nll_before` and `_val_nll`, and `head_calibration_scale_<question>`."""
        return {names.HEAD_CALIBRATION_NLL_BEFORE: self.val_nll_before, names.HEAD_CALIBRATION_NLL: self.val_nll,
                **{names.calibration_scale(q): v for q, v in self.scale.items()}}


def calibrate_head(model: keras.Model, dataset: Dataset, *, batch_size: int) -> HeadCalibration:
    """Fit the factors on `dataset`'s validation galaxies' votes; the model itself is left as it was."""
    require_validation(dataset, "train.calibrate_head")
    val = dataset.parts["val"]
    outputs = predict_outputs(model, dataset.images, val.rows, batch_size=batch_size)
    scale = dirichlet.fit_scales(outputs, val.counts)
    before = -dirichlet.vote_log_likelihood(outputs, val.counts).sum(axis=1).mean()
    after = -dirichlet.vote_log_likelihood(dirichlet.scaled(outputs, scale), val.counts).sum(axis=1).mean()
    # The outputs already carry any scale the head had: the new factors multiply it.
    total = scale * np.asarray(concentration_scale(model) or np.ones(schema.N_ANSWERS))
    per_question = {q.id: float(total[q.start]) for q in schema.QUESTIONS}
    return HeadCalibration(with_concentration_scale(model, total), per_question, float(before), float(after))
