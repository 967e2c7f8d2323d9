"""Test-time augmentation: a model's predictions averaged over the 8 symmetries of the square.

A galaxy has no up or left, so each rotation by a quarter turn, with or
without a mirror flip (the dihedral group of the square: 8 views), is as valid
a picture of it as the crop itself. Averaging the network over the 8 views
evens out what it learned of orientation by chance.

```python
from galaxyzoo.model.tta import average_over_views
y = average_over_views(model.predict_on_batch, crops)   # crops (N, H, W, C) -> (N, 37)
```

The views are predicted one after the other, so the memory is one batch's, not
eight. Every head keeps its meaning: a mean of per-question softmaxes still
sums to 1 per question, and a mean of sigmoids stays in [0, 1].
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

N_VIEWS = 8


def dihedral_views(batch: np.ndarray) -> Iterator[np.ndarray]:
    """The 8 views of a (N, H, W, C) batch: 0-3 quarter turns, unflipped then flipped; the batch itself first."""
    for image in (batch, batch[:, :, ::-1]):
        for k in range(4):
            # Contiguous: a strided view would make the backend copy it anyway, less predictably.
            yield np.ascontiguousarray(np.rot90(image, k, axes=(1, 2)))


def average_over_views(predict: Callable[[np.ndarray], object], batch: np.ndarray) -> np.ndarray:
    """The mean of `predict(view)` over the 8 `dihedral_views` of `batch`, as float32."""
    total = None
    for view in dihedral_views(batch):
        out = np.asarray(predict(view), dtype=np.float64)  # float64 sum: the mean is exact to float32
        total = out if total is None else total + out
    return (total / N_VIEWS).astype(np.float32)
