"""Refit the head on clean features: the last layer trained again on what the network sees at inference.

A training image is augmented (rotated, shifted, and with the improved
experiment blurred, re-stretched, re-coloured and noised) and passes dropout;
a test image does neither. The Dirichlet head learns how unsure to be from the
training images, so it stays as unsure as they made it, and its intervals come
out too wide on the clean test images (docs/benchmarks.md, "Uncertainty
coverage of the Dirichlet head"). `train.refit_head` fixes the network below
the head after training and fits the head's Dense again, from its trained
weights, on the features of the training images as inference computes them
(no augmentation, no dropout, batch-norm statistics fixed), with the training
loss, stopped on the validation galaxies' loss:

```python
report = refit_head(model, dataset, loss=model.loss, seed=0)
report.val_loss_before, report.val_loss, report.epochs, report.seconds
```

It takes well under a minute for 10,000 galaxies on 2 cores (35 s, docs/benchmarks.md): the
features are computed once, and the head is a single Dense layer.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from galaxyzoo.data.dataset import Dataset
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.network import LOGITS_LAYER, OUTPUT_LAYER, embedding_model
from galaxyzoo.registry.evaluate import predict_outputs
from galaxyzoo.tracking import names

# A Dense layer on fixed features: Adam's default rate, and room for the slow, noisy fall of a
# validation likelihood (about 30 batches an epoch at 10,000 galaxies).
LEARNING_RATE, BATCH_SIZE, MAX_EPOCHS, PATIENCE = 1e-3, 256, 300, 15


@dataclass(frozen=True)
class HeadRefit:
    """What the refit did: the validation loss before and after, the epochs it ran and its wall time."""

    val_loss_before: float
    val_loss: float
    epochs: int
    seconds: float = field(compare=False)  # features and fitting

    def metrics(self) -> dict[str, float]:
        """The run's `tracking.names.HEAD_REFIT_METRICS`."""
        return dict(zip(names.HEAD_REFIT_METRICS,
                        (self.val_loss_before, self.val_loss, float(self.epochs), self.seconds)))


def refit_head(model: keras.Model, dataset: Dataset, *, loss, seed: int) -> HeadRefit:
    """Fit `model`'s head again on the clean features of `dataset`'s training part, in place.

    `loss` is the training loss (its `needs_counts` says whether the targets
    carry the vote counts); `seed` orders the batches. The best epoch on the
    validation part's loss is kept, so the head ends no worse there than it
    started. A split without validation galaxies is a `GalaxyZooError`.
    """
    require_validation(dataset)
    started = time.perf_counter()
    data = clean_features(model, dataset, ("train", "val"), with_counts=loss.needs_counts)
    with _strategy_scope(model):  # the head shares the model's variables, and with them its strategy
        head = head_model(model, data["train"][0].shape[1])
    before, after, epochs = fit_on_features(head, data, loss=loss, seed=seed)
    return HeadRefit(before, after, epochs, time.perf_counter() - started)


def clean_features(model: keras.Model, dataset: Dataset, parts, *, with_counts: bool) -> dict:
    """{part: (features, y_true)}: each part's features as inference computes them (`embedding_model`,
    no augmentation, no dropout), and its targets, followed by its vote counts `with_counts`."""
    features = embedding_model(model)
    data = {}
    for name in parts:
        part = dataset.parts[name]
        x = predict_outputs(features, dataset.images, part.rows, BATCH_SIZE)
        y = np.concatenate([part.targets, part.counts], axis=1) if with_counts else part.targets
        data[name] = (x, y.astype(np.float32))
    return data


def fit_on_features(head: keras.Model, data: dict, *, loss, seed: int) -> tuple[float, float, int]:
    """Compile `head` (features in) with `loss`, fit it on `data["train"]` and stop on `data["val"]`'s loss;
    `seed` orders the batches. Returns (validation loss before, after, epochs run).

    The best epoch is kept, and the starting weights where no epoch beat them (or the fit diverged).
    """
    keras.utils.set_random_seed(seed)
    # A new optimizer of variables under a distribution strategy (TensorFlow) must be made in it.
    with _strategy_scope(head):
        head.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss)
    start = head.get_weights()
    before = float(head.evaluate(*data["val"], batch_size=BATCH_SIZE, verbose=0))
    stop = keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)
    history = head.fit(*data["train"], validation_data=data["val"], batch_size=BATCH_SIZE, epochs=MAX_EPOCHS,
                       callbacks=[stop, keras.callbacks.TerminateOnNaN()], verbose=0).history["val_loss"]
    # Scored again rather than read off the history: a NaN first epoch would count as EarlyStopping's "best".
    after = float(head.evaluate(*data["val"], batch_size=BATCH_SIZE, verbose=0))
    if not after < before:
        head.set_weights(start)
        after = before
    return before, after, len(history)


def _strategy_scope(model: keras.Model):
    """The scope of `model`'s distribution strategy (TensorFlow's; none on other backends)."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def require_validation(dataset: Dataset, key: str = "train.refit_head") -> None:
    """Refuse, before any training, a split with no validation galaxies for the step `key` to read."""
    if len(dataset.parts["val"].rows) == 0:
        raise GalaxyZooError(f"{key}: the split has no validation galaxies to fit on; "
                             "raise data.val_size or the number of galaxies")


def head_model(model: keras.Model, n_features: int) -> keras.Model:
    """Features in, `model`'s outputs out: its head's own layers (shared, so training this trains them)."""
    layer_names = {layer.name for layer in model.layers}
    layers = [model.get_layer(LOGITS_LAYER)] if LOGITS_LAYER in layer_names else []
    x = inputs = keras.Input((n_features,), name="features")
    for layer in [*layers, model.get_layer(OUTPUT_LAYER)]:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")
