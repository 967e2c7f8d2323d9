import keras
import numpy as np
import pytest

from galaxyzoo import schema
from galaxyzoo.config.experiment import CONCENTRATION_HEAD, CONCENTRATION_LOSS, HEADS, LOSSES
from galaxyzoo.model.losses import get_loss
from galaxyzoo.model.metrics import training_metrics
from galaxyzoo.model.network import PerQuestionSoftmax, build_model, load_model

SMALL = dict(input_size=24, conv_filters=(4, 8), dense_units=(8,), dense_dropout=(0.1,))


def test_baseline_matches_the_original_network():
    model = build_model()
    # Original: 106 -> conv 104 -> pool 52 -> conv 50 -> pool 25 -> conv 23 -> pool 11; 11 * 11 * 128 = 15488.
    expected = (
        (3 * 3 * 1 * 32 + 32)
        + (3 * 3 * 32 * 64 + 64)
        + (3 * 3 * 64 * 128 + 128)
        + (15488 * 128 + 128)
        + (128 * 64 + 64)
        + (64 * 37 + 37)
    )
    assert model.count_params() == expected == 2_085_925
    assert model.input_shape == (None, 106, 106, 1)
    assert model.output_shape == (None, 37)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "MaxPooling2D"] * 3 + ["Dropout", "Flatten", "Dense", "Dropout", "Dense", "Dense"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.activation.__name__) for c in convs] == [
        (32, (3, 3), "relu"), (64, (3, 3), "relu"), (128, (3, 3), "relu")
    ]
    assert [d.rate for d in model.layers if isinstance(d, keras.layers.Dropout)] == [0.2, 0.2]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.units, d.activation.__name__) for d in denses] == [(128, "relu"), (64, "relu"), (37, "sigmoid")]


@pytest.mark.parametrize("channels,size", [(1, 106), (3, 106), (3, 69), (1, 32)])
def test_output_shapes_for_channels_and_sizes(channels, size):
    model = build_model(input_size=size, channels=channels)
    out = model.predict(np.random.default_rng(0).random((2, size, size, channels)), verbose=0)
    assert out.shape == (2, 37)
    assert np.all((out > 0) & (out < 1))


def test_batch_norm_variant():
    model = build_model(batch_norm=True, **SMALL)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [b.name for b in bns] == ["conv1_bn", "conv2_bn", "dense1_bn"]
    convs_and_hidden = [model.get_layer(n) for n in ("conv1", "conv2", "dense1")]
    assert all(not layer.use_bias and layer.activation.__name__ == "linear" for layer in convs_and_hidden)
    assert model.get_layer("answers").use_bias
    # Conv blocks normalise the pooled map (a quarter of the values), then apply relu.
    assert model.get_layer("conv1_bn").input is model.get_layer("pool1").output
    assert model.get_layer("conv1_relu").input is model.get_layer("conv1_bn").output
    assert model.get_layer("pool2").input is model.get_layer("conv2").output
    assert model.predict(np.zeros((2, 24, 24, 1)), verbose=0).shape == (2, 37)


def test_blocks_of_two_convs_shrink_twice_and_freeze_as_one_block():
    from galaxyzoo.model.network import freeze_conv_blocks

    model = build_model(input_size=24, conv_filters=(4, 8), convs_per_block=2, batch_norm=True,
                        dense_units=(8,), dense_dropout=(0.0,))
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == ["conv1", "conv1_2", "conv2", "conv2_2"]
    # 24 -> conv 22 -> conv 20 -> pool 10 -> conv 8 -> conv 6 -> pool 3: 3 * 3 * 8 features.
    assert model.get_layer("flatten").output.shape[-1] == 72
    # The first conv normalises before its relu; the block's last one after the pool.
    assert model.get_layer("conv1_bn").input is model.get_layer("conv1").output
    assert model.get_layer("pool1").input is model.get_layer("conv1_2").output
    assert model.get_layer("conv1_2_bn").input is model.get_layer("pool1").output
    freeze_conv_blocks(model, 1)
    frozen = {layer.name for layer in model.layers if not layer.trainable}
    assert {"conv1", "conv1_2", "conv1_bn", "conv1_2_bn"} <= frozen
    assert not frozen & {"conv2", "conv2_2", "conv2_bn", "conv2_2_bn", "dense1", "answers"}
    # One conv per block is the original network, layer for layer.
    assert [layer.name for layer in build_model(**SMALL).layers] == [
        layer.name for layer in build_model(convs_per_block=1, **SMALL).layers]


def test_invalid_knobs_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"dense_dropout needs one rate per dense layer: dense_units has 2"):
        build_model(dense_dropout=(0.2,))
    with pytest.raises(ValueError, match="unknown head 'softmax'; expected one of sigmoid, softmax-per-question"):
        build_model(head="softmax")
    with pytest.raises(ValueError, match="input_size 16 is too small for 3 conv blocks"):
        build_model(input_size=16)
    with pytest.raises(ValueError, match="input_size 24 is too small for 2 conv blocks of 4 conv"):
        build_model(input_size=24, conv_filters=(4, 8), convs_per_block=4)
    with pytest.raises(ValueError, match="convs_per_block must be a positive integer"):
        build_model(convs_per_block=0)
    with pytest.raises(ValueError, match="conv_dropout rates must be in"):
        build_model(conv_dropout=1.0)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        build_model(channels=0)


def test_softmax_head_sums_to_one_per_question():
    sigmoid = build_model(**SMALL)
    model = build_model(head="softmax-per-question", **SMALL)
    assert model.count_params() == sigmoid.count_params()  # the softmax layer has no weights
    out = model.predict(np.random.default_rng(1).random((4, 24, 24, 1)), verbose=0)
    for q in schema.QUESTIONS:
        np.testing.assert_allclose(out[:, q.slice].sum(axis=1), 1.0, rtol=1e-5)


def test_per_question_softmax_by_hand():
    logits = np.zeros((1, 37), np.float32)
    logits[0, 0] = np.log(2.0)  # t01: weights 2, 1, 1 -> 0.5, 0.25, 0.25
    out = keras.ops.convert_to_numpy(PerQuestionSoftmax()(logits))
    np.testing.assert_allclose(out[0, :3], [0.5, 0.25, 0.25], rtol=1e-6)
    for q in schema.QUESTIONS[1:]:  # zero logits: uniform within each question
        np.testing.assert_allclose(out[0, q.slice], 1.0 / len(q.answers), rtol=1e-6)


def test_save_and_reload_with_custom_layer_and_loss(tmp_path):
    model = build_model(head="softmax-per-question", **SMALL)
    model.compile(optimizer="adam", loss=get_loss("dirichlet-multinomial", concentration=5), metrics=training_metrics())
    x = np.random.default_rng(2).random((3, 24, 24, 1)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    again = load_model(path)
    assert isinstance(again.get_layer("answers"), PerQuestionSoftmax)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def _fixed_batch(channels=1):
    """Eight random crops with (N, 74) targets-plus-counts, the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 24, 24, channels), dtype=np.float32)
    y = np.concatenate([rng.random((8, 37)), rng.integers(0, 20, (8, 37))], axis=1).astype(np.float32)
    return x, y


def _loss_and_metric_values(x, y):
    """Every loss and training metric on fixed predictions (eager, any backend)."""
    p = 0.05 + 0.9 * np.random.default_rng(1).random((8, 37)).astype(np.float32)
    values = {name: float(keras.ops.convert_to_numpy(get_loss(name)(y, p))) for name in LOSSES}
    for metric in training_metrics():
        metric.update_state(y, p)
        values[metric.name] = float(keras.ops.convert_to_numpy(metric.result()))
    return values


def test_every_loss_trains_on_targets_with_counts():
    """Each loss and head compiles into a training step on (N, 74) targets-plus-counts."""
    x, y = _fixed_batch()
    for i, name in enumerate(LOSSES):
        learned = name == CONCENTRATION_LOSS  # the Dirichlet head and its loss only go together
        model = build_model(head=CONCENTRATION_HEAD if learned else HEADS[i % 2], **SMALL)
        model.compile(optimizer="adam", loss=get_loss(name), metrics=training_metrics(concentrations=learned))
        logs = model.fit(x, y, epochs=1, batch_size=4, verbose=0).history
        assert set(logs) == {"loss", "rmse", "r2_flat"}, name
        assert np.isfinite(logs["loss"][-1]) and 0 < logs["rmse"][-1] < 1, (name, logs)
