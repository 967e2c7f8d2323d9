"""Several trained networks that predict as one: the mean of their outputs.

An ensemble of GZ2 networks predicts each galaxy's 37 fractions as the mean of
its members' fractions (`galaxyzoo ensemble`), whatever their heads: so it
outputs fractions, never Dirichlet concentrations, and carries no intervals. `MeanOfModels` offers the two
prediction calls the rest of the package makes on a Keras model, `predict`
(the packaged model) and `predict_on_batch` (the test split's scoring), so
test-time augmentation and the crop code run on it unchanged.

>>> ensemble = MeanOfModels([network_a, network_b])
>>> ensemble.predict(crops, batch_size=64, verbose=0)   # (n, 37): the two networks' mean
"""

from __future__ import annotations

import numpy as np

from galaxyzoo.model.network import answer_fractions


class MeanOfModels:
    """The mean prediction of Keras models that take the same input (see the module docstring).

    Not a Keras functional model: members often share a name (every training
    builds `galaxyzoo_cnn`), which one functional graph refuses, and each member
    keeps the dtype policy it was recast to.
    """

    def __init__(self, members: list):
        shapes = {tuple(m.input_shape[1:]) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members take different inputs: {sorted(shapes)}")
        self.members = list(members)
        self.input_shape = members[0].input_shape

    def predict(self, x, batch_size=None, verbose=0) -> np.ndarray:
        return self._mean([m.predict(x, batch_size=batch_size, verbose=verbose) for m in self.members])

    def predict_on_batch(self, x) -> np.ndarray:
        return self._mean([m.predict_on_batch(x) for m in self.members])

    def _mean(self, outputs: list) -> np.ndarray:
        """The members' answer fractions averaged (a Dirichlet head's concentrations become fractions first)."""
        # float32 like each member's output (the head computes in float32 under every policy)
        fractions = [answer_fractions(m, np.asarray(o, dtype=np.float32)) for m, o in zip(self.members, outputs)]
        return np.mean(fractions, axis=0, dtype=np.float32)
