"""`train.calibrate_head`: one factor per question on the Dirichlet head's concentrations, fitted to the
validation votes by maximum likelihood; the means stay, the factors travel with the model."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln, logsumexp

from galaxyzoo import schema
from galaxyzoo.config.experiment import config_hash, from_dict, load_experiment
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import dirichlet

DIRICHLET = ["model.head=dirichlet", "train.loss=dirichlet-learned", "epochs=2"]
T01, T02, T11 = (schema.QUESTION_BY_ID[q] for q in ("t01", "t02", "t11"))


def _head_outputs(rng, n, concentration=10.0):
    """(n, 37) concentrations: random means per question, each question summing to `concentration`."""
    return np.concatenate([rng.dirichlet(np.full(len(q.answers), 2.0), n) * concentration
                           for q in schema.QUESTIONS], axis=1) + 1e-3


def _votes(rng, alpha, n_votes=40):
    """Vote counts drawn question by question: p ~ Dirichlet(alpha), counts ~ Multinomial(n_votes, p)."""
    counts = np.zeros(alpha.shape, dtype=np.int64)
    for q in schema.QUESTIONS:
        for i, a in enumerate(alpha[:, q.slice]):
            counts[i, q.slice] = rng.multinomial(n_votes, rng.dirichlet(a))
    return counts


def test_the_vote_likelihood_is_the_dirichlet_multinomials_less_the_multinomial_coefficient():
    rng = np.random.default_rng(0)
    alpha, counts = _head_outputs(rng, 5), None
    counts = _votes(rng, alpha, n_votes=12)
    counts[1, T02.slice] = 0  # a question nobody reached scores 0
    got = dirichlet.vote_log_likelihood(alpha, counts)
    for i in range(5):
        for qi, q in enumerate(schema.QUESTIONS):
            c, n = counts[i, q.slice], counts[i, q.slice].sum()
            coefficient = gammaln(n + 1) - gammaln(c + 1).sum()
            expected = stats.dirichlet_multinomial.logpmf(c, alpha[i, q.slice], n) - coefficient if n else 0.0
            assert got[i, qi] == pytest.approx(expected, abs=1e-9)
    # A mixture of two: the weighted sum of its components' likelihoods.
    other = _head_outputs(rng, 5, concentration=50.0)
    weights = rng.dirichlet([1.0, 1.0], (5, len(schema.QUESTIONS)))  # (5, 11, 2)
    mixture = np.concatenate([alpha, other, weights[..., 0], weights[..., 1]], axis=1)
    parts = np.stack([dirichlet.vote_log_likelihood(alpha, counts), dirichlet.vote_log_likelihood(other, counts)])
    expected = logsumexp(parts + np.log(np.moveaxis(weights, -1, 0)), axis=0)
    np.testing.assert_allclose(dirichlet.vote_log_likelihood(mixture, counts), expected, atol=1e-9)


def test_the_fitted_factors_are_the_ones_the_votes_were_drawn_with():
    rng = np.random.default_rng(1)
    predicted = _head_outputs(rng, 3000)
    truth = np.ones(schema.N_ANSWERS)
    truth[T01.slice], truth[T02.slice] = 0.4, 2.5  # t01 was too sure, t02 too unsure
    counts = _votes(rng, predicted * truth)
    counts[:, T11.slice] = 0  # no votes: nothing to fit, so no change
    scale = dirichlet.fit_scales(predicted, counts)
    assert scale[T01.start] == pytest.approx(0.4, rel=0.1) and scale[T02.start] == pytest.approx(2.5, rel=0.1)
    assert scale[T11.start] == 1.0
    counts_nan = counts.astype(float)
    counts_nan[0, T01.start] = np.nan
    with pytest.raises(ValueError, match="finite outputs and counts"):
        dirichlet.fit_scales(predicted, counts_nan)  # would silently keep t01 at 1
    for q in schema.QUESTIONS:  # one factor per question
        assert len(set(scale[q.slice])) == 1
    others = [q.start for q in schema.QUESTIONS if q.id not in ("t01", "t02", "t11")]
    np.testing.assert_allclose(scale[others], 1.0, rtol=0.15)
    # Scaling keeps each question's means and moves its intervals.
    scaled = dirichlet.scaled(predicted, scale)
    np.testing.assert_allclose(dirichlet.fractions(scaled), dirichlet.fractions(predicted), atol=1e-6)
    (low, high), (low_s, high_s) = dirichlet.intervals(predicted[:50]), dirichlet.intervals(scaled[:50])
    width, width_s = (high - low).mean(axis=0), (high_s - low_s).mean(axis=0)
    assert (width_s[T01.slice] > 1.2 * width[T01.slice]).all() and (width_s[T02.slice] < 0.8 * width[T02.slice]).all()


@pytest.mark.parametrize("components", [1, 2])
def test_a_scaled_head_keeps_its_means_and_its_factors_travel_with_the_model(components, tmp_path):
    import keras

    from galaxyzoo.model import network
    from galaxyzoo.model.precision import recast

    kwargs = dict(input_size=16, channels=1, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,),
                  head="dirichlet", dirichlet_components=components)
    model = network.build_model(**kwargs)
    x = np.random.default_rng(2).random((4, 16, 16, 1)).astype("float32")
    scale = np.repeat([0.5 + 0.2 * i for i in range(len(schema.QUESTIONS))], [len(q.answers) for q in schema.QUESTIONS])
    calibrated = network.with_concentration_scale(model, scale)
    plain, outputs = model.predict(x, verbose=0), calibrated.predict(x, verbose=0)
    np.testing.assert_allclose(outputs, dirichlet.scaled(plain, scale), rtol=1e-5)
    np.testing.assert_allclose(dirichlet.fractions(outputs), dirichlet.fractions(plain), atol=1e-5)
    assert network.concentration_scale(model) is None and network.concentration_scale(calibrated) == list(scale)
    calibrated.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), outputs, rtol=1e-5)
    assert network.concentration_scale(recast(loaded, "mixed_bfloat16", kwargs, "m")) == list(scale)
    assert network.concentration_scale(network.with_concentration_scale(calibrated, None)) is None


def test_the_config_takes_it_only_for_the_dirichlet_head_with_a_validation_set_and_keeps_old_hashes():
    assert config_hash(from_dict({"train": {"calibrate_head": False}})) == config_hash(from_dict({}))
    dirichlet_head = {"model": {"head": "dirichlet"}, "train": {"loss": "dirichlet-learned", "calibrate_head": True}}
    assert config_hash(from_dict(dirichlet_head)) != config_hash(from_dict({}))
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: train\.calibrate_head: scales the 'dirichlet' head's "
                                             r"concentrations, but model\.head is 'sigmoid'"):
        from_dict({"train": {"calibrate_head": True}}, source="x.yaml")
    with pytest.raises(GalaxyZooError, match=r"train\.calibrate_head: is fitted to the validation votes, but "
                                             r"data\.val_size is 0"):
        from_dict({**dirichlet_head, "data": {"val_size": 0}}, source="x.yaml")


@pytest.mark.slow
def test_training_calibrates_the_head_on_the_validation_votes_and_a_resume_does_it_again(tiny_experiment, tmp_path):
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.model import network
    from galaxyzoo.registry.evaluate import predict_outputs
    from galaxyzoo.training.fit import fit

    cfg = load_experiment(tiny_experiment, [*DIRICHLET, "train.calibrate_head=true"])
    dataset = load_dataset(cfg.data, with_counts=True, progress=False)
    result = fit(cfg, dataset, tmp_path / "run", verbose=0)
    calibration = result.calibration
    assert calibration.val_nll <= calibration.val_nll_before
    assert sorted(calibration.scale) == [q.id for q in schema.QUESTIONS]
    assert network.concentration_scale(result.model) == [calibration.scale[schema.QUESTIONS[qi].id]
                                                         for qi in schema.QUESTION_OF_ANSWER]
    val = dataset.parts["val"]
    outputs = predict_outputs(result.model, dataset.images, val.rows, batch_size=64)
    nll = -dirichlet.vote_log_likelihood(outputs, val.counts).sum(axis=1).mean()
    assert nll == pytest.approx(calibration.val_nll, rel=1e-4)  # the model holds the factors it reports
    metrics = result.extra_metrics()
    assert metrics["head_calibration_val_nll"] == calibration.val_nll
    assert {f"head_calibration_scale_{q.id}" for q in schema.QUESTIONS} <= set(metrics)
    resumed = fit(cfg, dataset, tmp_path / "run", resume=True, verbose=0)  # the checkpoint is uncalibrated
    assert resumed.calibration.scale == calibration.scale
    # Calibrated again, the head is at its best already: the new factors (about 1) multiply, not replace, its own.
    from galaxyzoo.training.calibration import calibrate_head

    again = calibrate_head(result.model, dataset, batch_size=64)
    inside = [q for q, v in calibration.scale.items() if 0.1 < v < 10.0]  # at the grid's edge it may go on
    assert inside and all(again.scale[q] == pytest.approx(calibration.scale[q], rel=0.11) for q in inside)
    assert network.concentration_scale(again.model) == [again.scale[schema.QUESTIONS[qi].id]
                                                        for qi in schema.QUESTION_OF_ANSWER]
