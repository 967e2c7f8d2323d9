"""The CNN that maps a galaxy crop to its 37 answer fractions.

`build_model()` with no arguments is the original study's network; every
keyword is a knob of `config.experiment.ModelConfig`:

```python
model = build_model()  # (None, 106, 106, 1) -> (None, 37), 2,085,925 parameters
colour = build_model(channels=3, batch_norm=True, head="softmax-per-question")
```

Three heads end the network: `"sigmoid"` (37 independent fractions, the
original), `"softmax-per-question"` (a softmax within each question's
answers, so every question sums to 1) and `"dirichlet"` (37 Dirichlet
concentrations `alpha`, one posterior over each question's answer
probabilities per galaxy, trained with the `"dirichlet-learned"` loss; with
`dirichlet_components` K >= 2, a mixture of K Dirichlets per question).
Whatever the head, `answer_fractions(model, outputs)` gives the 37 fractions:
the outputs themselves, or for the Dirichlet head their mean, alpha divided by
its question's sum (`model.dirichlet` also turns them into intervals).
Written with Keras 3 APIs only, so it builds under the TensorFlow, JAX and
PyTorch backends.

`embedding_model(model)` cuts a built or loaded network before its head: crops
in, the features the head reads out (`galaxyzoo embed`). `freeze_conv_blocks(model, n)`
keeps the first n conv blocks fixed (a warm start, `training.warm_start`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from galaxyzoo import schema
# One list of heads and one shrinkage rule for the config's validation and the builder.
from galaxyzoo.config.experiment import CONCENTRATION_HEAD, HEADS, feature_side
from galaxyzoo.model import dirichlet
from galaxyzoo.model.head_layout import mixture_width

# The head's layer names, which saved models carry: `embedding_model` cuts the network before them.
OUTPUT_LAYER = "answers"
LOGITS_LAYER = "logits"  # the softmax and Dirichlet heads' Dense, before their activation


@keras.saving.register_keras_serializable(package="galaxyzoo")
class PerQuestionSoftmax(layers.Layer):
    """Softmax over each question's answers, concatenated back in target order.

    `group_sizes` are the numbers of answers per question, in order (GZ2's tree
    by default); they are part of the layer's config, so a saved model carries
    its own grouping.
    """

    def __init__(self, group_sizes: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        if group_sizes is None:
            group_sizes = [q.stop - q.start for q in schema.QUESTIONS]
        self.group_sizes = [int(n) for n in group_sizes]

    def call(self, logits):
        parts, start = [], 0
        for n in self.group_sizes:
            parts.append(ops.softmax(logits[..., start : start + n], axis=-1))
            start += n
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "group_sizes": self.group_sizes}


@keras.saving.register_keras_serializable(package="galaxyzoo")
class Concentrations(layers.Layer):
    """Logits -> Dirichlet concentrations in (`low`, `high`): `low + (high - low) * sigmoid(logits)`.

    Zoobot's bounds (1 to 101 there, 1 to 100 here by default): alpha >= 1 keeps every
    marginal Beta unimodal and the log-gamma terms of the loss smooth, and the
    ceiling keeps one overconfident galaxy from making the loss explode. A
    question of `k` answers can then be as sure as a concentration of `high` k.
    A zero logit would start every answer at alpha (low + high) / 2, far surer than a
    crowd of 40 volunteers: `initial_bias` starts the head's Dense at alpha
    `INITIAL` instead, so training need not first unlearn that confidence.

    With `components` K >= 2 the layer reads K * 48 logits and outputs a mixture
    of K Dirichlets per question (the layout of `model.dirichlet`): the first
    K * 37 become concentrations as above, the last K * 11 each question's
    weights of its K components (a softmax over the K).

    `scale` (37 floats, one factor per question repeated over its answers; none by
    default) multiplies every component's concentrations afterwards: the
    calibration `train.calibrate_head` fits on the validation votes
    (`with_concentration_scale`). It keeps the means and sets the intervals' width.
    """

    LOW, HIGH, INITIAL = 1.0, 100.0, 3.0

    @classmethod
    def initial_bias(cls, high: float = HIGH, components: int = 1):
        """The logits' bias initializer that makes a zero input give alpha `INITIAL` and equal weights."""
        share = (cls.INITIAL - cls.LOW) / (high - cls.LOW)
        bias = np.zeros(mixture_width(components))
        bias[: components * schema.N_ANSWERS] = np.log(share / (1.0 - share))
        return keras.initializers.Constant(bias)

    def __init__(self, low: float = LOW, high: float = HIGH, components: int = 1, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.components = float(low), float(high), int(components)
        self.scale = None if scale is None else [float(s) for s in scale]
        if self.scale is not None and len(self.scale) != schema.N_ANSWERS:
            raise ValueError(f"scale needs one factor per answer ({schema.N_ANSWERS}), got {len(self.scale)}")

    def call(self, logits):
        if self.components == 1:
            return self._scaled(self.low + (self.high - self.low) * ops.sigmoid(logits))
        split = self.components * schema.N_ANSWERS
        alpha = self._scaled(self.low + (self.high - self.low) * ops.sigmoid(logits[:, :split]))
        weights = ops.softmax(ops.reshape(logits[:, split:], (-1, self.components, len(schema.QUESTIONS))), axis=1)
        return ops.concatenate([alpha, ops.reshape(weights, (-1, self.components * len(schema.QUESTIONS)))], axis=-1)

    def _scaled(self, alpha):
        if self.scale is None:
            return alpha
        return alpha * ops.convert_to_tensor(np.tile(self.scale, self.components), dtype=alpha.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "components": self.components,
                "scale": self.scale}


def build_model(
    *,
    input_size: int = 106,
    channels: int = 1,
    conv_filters: Sequence[int] = (32, 64, 128),
    kernel_size: int = 3,
    convs_per_block: int = 1,
    conv_dropout: float = 0.2,
    dense_units: Sequence[int] = (128, 64),
    dense_dropout: Sequence[float] = (0.2, 0.0),
    batch_norm: bool = False,
    head: str = "sigmoid",
    dirichlet_components: int = 1,
    concentration_ceiling: float = Concentrations.HIGH,
    name: str = "galaxyzoo_cnn",
) -> keras.Model:
    """Build (uncompiled) the CNN for `(input_size, input_size, channels)` crops in [0, 1].

    Each conv block is `convs_per_block` Conv2D (`kernel_size`, valid padding,
    relu; one in the original) then a 2x2 max-pool; `conv_dropout` follows the last block, then Flatten, the hidden
    Dense relu layers (`dense_units`, each followed by its `dense_dropout`;
    a rate of 0 adds no layer) and the 37-unit head. With `batch_norm`, convs
    and hidden dense layers lose their bias and get BatchNormalization before
    the relu (in conv blocks after the pool, see `_conv_block`). The Dirichlet
    head has `dirichlet_components` Dirichlets per question, with concentrations
    up to `concentration_ceiling` (`Concentrations`).
    """
    _check_args(input_size, channels, conv_filters, kernel_size, convs_per_block, conv_dropout, dense_units,
                dense_dropout, head, dirichlet_components, concentration_ceiling)
    inputs = keras.Input(shape=(input_size, input_size, channels), name="image")
    x = inputs
    for i, filters in enumerate(conv_filters, start=1):
        x = _conv_block(x, filters, kernel_size, convs_per_block, batch_norm, i)
    if conv_dropout > 0:
        x = layers.Dropout(conv_dropout, name="conv_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, (units, rate) in enumerate(zip(dense_units, dense_dropout), start=1):
        x = _relu_layer(x, layers.Dense, units, batch_norm, f"dense{i}")
        if rate > 0:
            x = layers.Dropout(rate, name=f"dense{i}_dropout")(x)
    # The head computes in float32 even under a mixed-precision policy, so the
    # losses (log-gamma of vote counts) and metrics see full-precision outputs.
    if head == "sigmoid":
        outputs = layers.Dense(schema.N_ANSWERS, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
    elif head == CONCENTRATION_HEAD:
        # The Dirichlet head starts unsure (alpha 3 for every answer, see `Concentrations`), not half-way up.
        bias = Concentrations.initial_bias(concentration_ceiling, dirichlet_components)
        logits = layers.Dense(mixture_width(dirichlet_components), name=LOGITS_LAYER, dtype="float32",
                              bias_initializer=bias)(x)
        outputs = Concentrations(high=concentration_ceiling, components=dirichlet_components, name=OUTPUT_LAYER,
                                 dtype="float32")(logits)
    else:
        logits = layers.Dense(schema.N_ANSWERS, name=LOGITS_LAYER, dtype="float32")(x)
        outputs = PerQuestionSoftmax(name=OUTPUT_LAYER, dtype="float32")(logits)
    return keras.Model(inputs, outputs, name=name)


def with_concentration_scale(model: keras.Model, scale) -> keras.Model:
    """An uncompiled copy of a Dirichlet-head `model` whose concentrations are multiplied by `scale`
    (37 per-answer factors, `model.dirichlet.fit_scales`); `None` removes a scale."""
    config = model.get_config()
    (head,) = [layer for layer in config["layers"] if layer["config"]["name"] == OUTPUT_LAYER]
    head["config"]["scale"] = None if scale is None else [float(s) for s in scale]
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def concentration_scale(model) -> list[float] | None:
    """The calibration factors in a Dirichlet-head `model` (`with_concentration_scale`), or None."""
    return model.get_layer(OUTPUT_LAYER).scale if outputs_concentrations(model) else None


def outputs_concentrations(model) -> bool:
    """Whether a built or loaded `model` ends in the Dirichlet head (its outputs are `alpha`, not fractions).

    Anything that is not one Keras network (an ensemble's `model.ensemble.MeanOfModels`) outputs fractions.
    """
    return isinstance(model, keras.Model) and isinstance(model.get_layer(OUTPUT_LAYER), Concentrations)


def answer_fractions(model: keras.Model, outputs: np.ndarray) -> np.ndarray:
    """`model`'s (N, 37) outputs as answer fractions: themselves, or the Dirichlet head's mean.

    The one place that tells the heads apart after a prediction: evaluate,
    train's test metrics and the packaged model all go through it.
    """
    return dirichlet.fractions(outputs) if outputs_concentrations(model) else outputs


def embedding_model(model: keras.Model) -> keras.Model:
    """The network from its input to the features its head reads: (None, n_features) per crop.

    The head's first layer is found by name (`OUTPUT_LAYER` for the sigmoid
    head, `LOGITS_LAYER` before the softmax and Dirichlet ones), so every saved model cuts the
    same way whatever its hidden layers are; dropout is inactive at inference.
    """
    names = {layer.name for layer in model.layers}
    head = model.get_layer(LOGITS_LAYER if LOGITS_LAYER in names else OUTPUT_LAYER)
    return keras.Model(model.inputs, head.input, name=f"{model.name}_embedding")


def freeze_conv_blocks(model: keras.Model, n: int) -> None:
    """Make the first `n` conv blocks untrainable (a warm start keeps their copied weights).

    Block i's layers are named `conv{i}` and `conv{i}_...` (its later convs
    `conv{i}_2`, ..., and with batch norm their `_bn`); a frozen
    BatchNormalization also keeps its moving statistics (Keras runs it in
    inference mode). Call it before `compile`, which fixes what trains.
    """
    blocks = {f"conv{i}" for i in range(1, n + 1)}
    for layer in model.layers:
        if layer.name.split("_")[0] in blocks:
            layer.trainable = False


def _conv_block(x, filters: int, kernel_size: int, convs: int, batch_norm: bool, i: int):
    """`convs` Conv2D + relu, then a 2x2 max-pool; with batch norm the last conv is conv, pool,
    BatchNormalization, relu (the others conv, BatchNormalization, relu).

    Max-pooling commutes with relu and with BatchNormalization's per-channel
    increasing affine map, so normalising after the pool is the usual
    conv-BN-relu-pool block with its statistics taken over the pooled map. It
    normalises a quarter of the values: before the pool, BatchNormalization
    made the improved model 4x slower on a 2-core CPU (docs/model.md).
    The first conv keeps the name `conv{i}`, so one-conv blocks are named as before.
    """
    names = [f"conv{i}"] + [f"conv{i}_{j}" for j in range(2, convs + 1)]
    for name in names[:-1]:
        x = _relu_layer(x, layers.Conv2D, filters, batch_norm, name, kernel_size=kernel_size)
    if not batch_norm:
        x = _relu_layer(x, layers.Conv2D, filters, False, names[-1], kernel_size=kernel_size)
        return layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Conv2D(filters, kernel_size, use_bias=False, name=names[-1])(x)
    x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return _normalised_relu(x, names[-1])


def _relu_layer(x, layer_class, units: int, batch_norm: bool, name: str, **kwargs):
    """Apply a Conv2D or Dense with relu; with batch norm: no bias, BatchNormalization, relu.

    Without batch norm it is the single layer the original used, so the
    baseline's layer list matches the original model's summary.
    """
    if not batch_norm:
        return layer_class(units, activation="relu", name=name, **kwargs)(x)
    return _normalised_relu(layer_class(units, use_bias=False, name=name, **kwargs)(x), name)


def _normalised_relu(x, name: str):
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _check_args(input_size, channels, conv_filters, kernel_size, convs_per_block, conv_dropout, dense_units,
                dense_dropout, head, dirichlet_components, concentration_ceiling):
    """Reject knob values Keras would fail on later with a less readable error."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    if not _is_positive_int(dirichlet_components):
        raise ValueError(f"dirichlet_components must be a positive integer, got {dirichlet_components!r}")
    if not Concentrations.INITIAL < concentration_ceiling < np.inf:
        raise ValueError(f"concentration_ceiling must be finite and above {Concentrations.INITIAL:g} (the head's "
                         f"starting concentration), got {concentration_ceiling!r}")
    for label, value in (("input_size", input_size), ("channels", channels), ("kernel_size", kernel_size),
                         ("convs_per_block", convs_per_block)):
        if not _is_positive_int(value):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not conv_filters or not all(_is_positive_int(f) for f in conv_filters):
        raise ValueError(f"conv_filters must be a non-empty list of positive integers, got {list(conv_filters)!r}")
    if not all(_is_positive_int(u) for u in dense_units):
        raise ValueError(f"dense_units must be positive integers, got {list(dense_units)!r}")
    if len(dense_dropout) != len(dense_units):
        raise ValueError(
            f"dense_dropout needs one rate per dense layer: dense_units has {len(dense_units)} "
            f"entries {list(dense_units)!r}, dense_dropout has {len(dense_dropout)} {list(dense_dropout)!r}"
        )
    for label, rate in [("conv_dropout", conv_dropout), *(("dense_dropout", r) for r in dense_dropout)]:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{label} rates must be in [0, 1), got {rate!r}")
    if feature_side(input_size, len(conv_filters), kernel_size, convs_per_block) < 1:
        raise ValueError(
            f"input_size {input_size} is too small for {len(conv_filters)} conv blocks of {convs_per_block} "
            f"conv(s) with kernel_size {kernel_size}: the feature map shrinks to nothing"
        )


def _is_positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def load_model(path) -> keras.Model:
    """Load a saved `.keras` model for inference, without its training setup.

    Models are always reloaded with `compile=False`: losses and metrics are
    rebuilt from the run's config when training continues. Importing this
    module registers `PerQuestionSoftmax` and `Concentrations`, which the
    softmax and Dirichlet heads need.
    """
    return keras.saving.load_model(path, compile=False)
