"""Test-time augmentation: the mean over the 8 rotations and flips, for every head, and its switches."""

import numpy as np
import pytest

from galaxyzoo import schema
from galaxyzoo.cli import build_parser
from galaxyzoo.config.experiment import HEADS, config_hash, from_dict, knobs
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.tta import average_over_views

SMALL = dict(input_size=16, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,))


def _hand_made_views(x: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of the square, written independently of `model.tta` (a flip of the rows, not columns)."""
    return [np.rot90(image, k, axes=(1, 2)) for image in (x, x[:, ::-1]) for k in range(4)]


@pytest.mark.parametrize("head", HEADS)
def test_tta_is_the_mean_of_the_eight_views_and_keeps_the_head_valid(head):
    import keras

    from galaxyzoo.model.network import answer_fractions, build_model
    from galaxyzoo.registry.evaluate import predict

    keras.utils.set_random_seed(0)
    model = build_model(head=head, **SMALL)
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    x = images.astype(np.float32) / 255  # as `evaluate.predict` scales the store's crops
    views = _hand_made_views(x)
    assert len({v.tobytes() for v in views}) == 8  # eight different pictures, not one counted twice
    expected = np.mean([model.predict_on_batch(v) for v in views], axis=0)

    mean = average_over_views(model.predict_on_batch, x)
    assert mean.dtype == np.float32 and mean.shape == (5, schema.N_ANSWERS)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-6)  # rtol: concentrations reach 100
    assert not np.allclose(mean, model.predict_on_batch(x), atol=1e-4)  # the random net is not symmetric
    # The test split's path: the store streamed in batches (the last one short), each averaged.
    rows = np.array([4, 0, 2, 1, 3])
    fractions = answer_fractions(model, mean)  # the Dirichlet head's mean concentrations, as fractions
    np.testing.assert_allclose(predict(model, images, rows, batch_size=2, tta=True), fractions[rows], atol=1e-6)
    if head != "sigmoid":
        for q in schema.QUESTIONS:
            np.testing.assert_allclose(fractions[:, q.slice].sum(axis=1), 1.0, rtol=1e-5)
    assert ((fractions >= 0) & (fractions <= 1)).all()


def test_the_evaluate_section_parses_and_stays_out_of_the_hash_and_the_params():
    plain, on = from_dict({}), from_dict({"evaluate": {"tta": True}})
    assert (plain.evaluate.tta, on.evaluate.tta) == (False, True)
    assert config_hash(on) == config_hash(plain)  # the same trained model
    assert knobs(on) == knobs(plain) and not any(k.startswith("evaluate.") for k in knobs(on))
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: evaluate\.tta: expected true or false, got 'yes'$"):
        from_dict({"evaluate": {"tta": "yes"}}, source="x.yaml")
    with pytest.raises(GalaxyZooError, match=r"unknown key 'evaluate\.ttta' \(did you mean 'evaluate\.tta'\?\)"):
        from_dict({"evaluate": {"ttta": True}})


def test_tta_on_the_command_line():
    parse = build_parser().parse_args
    assert parse(["evaluate", "--model", "m"]).tta is None  # the model's config decides
    assert parse(["evaluate", "--model", "m", "--tta"]).tta is True
    assert parse(["evaluate", "--model", "m", "--tta", "False"]).tta is False  # as the MLproject passes it
    assert parse(["predict", "a.jpg", "--tta"]).tta is True
    assert parse(["predict", "a.jpg"]).tta is None
    with pytest.raises(SystemExit) as exit_:
        parse(["predict", "--tta", "a.jpg"])  # the value slot took the image
    assert exit_.value.code == 2
    # --overwrite is the same kind of switch, so the MLproject's predict and embed can pass it (a rerun)
    for command in ("predict", "embed"):
        assert parse([command, "a.jpg"]).overwrite is False
        assert parse([command, "a.jpg", "--overwrite"]).overwrite is True
        assert parse([command, "a.jpg", "--overwrite", "false"]).overwrite is False
