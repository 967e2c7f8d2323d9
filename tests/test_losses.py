import keras
import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import dirichlet_multinomial

from galaxyzoo import schema
from galaxyzoo.config.experiment import LOSSES
from galaxyzoo.model.losses import get_loss, lgamma, needs_counts, split_targets

T01, T02, T06, T11 = (schema.QUESTION_BY_ID[q].slice for q in ("t01", "t02", "t06", "t11"))


def _loss(name, y_true, y_pred, **params):
    return float(keras.ops.convert_to_numpy(get_loss(name, **params)(y_true, y_pred)))


def _with_counts(targets, counts):
    return np.concatenate([targets, counts], axis=1).astype(np.float32)


def test_split_targets_by_width():
    y37 = np.arange(2 * 37, dtype=np.float32).reshape(2, 37)
    targets, counts = split_targets(y37)
    assert targets is y37 and counts is None
    y74 = np.arange(2 * 74, dtype=np.float32).reshape(2, 74)
    targets, counts = split_targets(y74)
    np.testing.assert_array_equal(targets, y74[:, :37])
    np.testing.assert_array_equal(counts, y74[:, 37:])
    with pytest.raises(ValueError, match="37 columns .* or 74"):
        split_targets(np.zeros((2, 36)))


def test_get_loss_rejects_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown loss 'mae'.*mse, vote-weighted-mse, dirichlet-multinomial"):
        get_loss("mae")
    with pytest.raises(ValueError, match="'mse' does not take parameter.*concentration.*takes none"):
        get_loss("mse", concentration=3)
    for bad in (0, True, float("inf"), float("nan"), "20"):  # a bool would train as 1.0, inf as NaN losses
        with pytest.raises(ValueError, match="concentration must be a finite number > 0"):
            get_loss("dirichlet-multinomial", concentration=bad)
    assert [needs_counts(n) for n in LOSSES] == [False, True, True, True]


def test_mse_by_hand_and_ignores_counts():
    y_true = np.zeros((2, 37), dtype=np.float32)
    y_pred = np.zeros((2, 37), dtype=np.float32)
    y_pred[0, 0] = 0.1  # row 0: one error of 0.1
    y_pred[1, :] = 0.2  # row 1: every answer off by 0.2
    expected = (0.01 / 37 + 0.04) / 2
    assert _loss("mse", y_true, y_pred) == pytest.approx(expected, rel=1e-5)
    counts = np.full((2, 37), 7, dtype=np.float32)
    assert _loss("mse", _with_counts(y_true, counts), y_pred) == pytest.approx(expected, rel=1e-5)


def test_vote_weighted_mse_by_hand():
    # 40 volunteers answered t01, 20 of them reached t02, all 40 answered t06; nobody reached the rest.
    counts = np.zeros((1, 37), dtype=np.float32)
    counts[0, T01] = [20, 20, 0]
    counts[0, T02] = [5, 15]
    counts[0, T06] = [4, 36]
    targets = np.zeros((1, 37), dtype=np.float32)
    y_pred = np.full((1, 37), 0.1, dtype=np.float32)
    y_true = _with_counts(targets, counts)
    # weights: t01 answers 1 (3 columns), t02 0.5 (2 columns), t06 1 (2 columns), others 0.
    expected = 0.01 * (3 * 1.0 + 2 * 0.5 + 2 * 1.0) / 37
    assert _loss("vote-weighted-mse", y_true, y_pred) == pytest.approx(expected, rel=1e-5)
    # An unreached question contributes nothing, however wrong its prediction.
    y_pred[0, T11] = 0.9
    assert _loss("vote-weighted-mse", y_true, y_pred) == pytest.approx(expected, rel=1e-5)


def test_vote_weighted_mse_equals_mse_when_every_question_is_fully_reached():
    rng = np.random.default_rng(1)
    counts = np.zeros((3, 37), dtype=np.float32)
    for q in schema.QUESTIONS:
        counts[:, q.start] = 30  # every question got all 30 votes
    targets = rng.random((3, 37)).astype(np.float32)
    y_pred = rng.random((3, 37)).astype(np.float32)
    assert _loss("vote-weighted-mse", _with_counts(targets, counts), y_pred) == pytest.approx(
        _loss("mse", targets, y_pred), rel=1e-5
    )


@pytest.mark.parametrize("name", ["vote-weighted-mse", "dirichlet-multinomial"])
def test_count_losses_refuse_targets_without_counts(name):
    with pytest.raises(ValueError, match="needs vote counts.*\\(N, 74\\)"):
        get_loss(name)(np.zeros((2, 37), np.float32), np.full((2, 37), 0.5, np.float32))


def test_lgamma_matches_scipy():
    x = np.logspace(-6, 3, 200)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(lgamma(x.astype(np.float32))), gammaln(x), rtol=1e-5, atol=2e-5)


def _t01_only(p_t01, k_t01):
    """A galaxy whose volunteers all stopped after t01 (a star or artifact), and a prediction."""
    counts = np.zeros((1, 37), dtype=np.float32)
    counts[0, T01] = k_t01
    y_pred = np.full((1, 37), 0.3, dtype=np.float32)
    y_pred[0, T01] = p_t01
    return _with_counts(np.zeros((1, 37)), counts), y_pred


def test_dirichlet_multinomial_matches_direct_formula():
    p, k, c = np.array([0.6, 0.3, 0.1]), np.array([10.0, 5.0, 1.0]), 20.0
    y_true, y_pred = _t01_only(p, k)
    alpha, n = c * p, k.sum()
    log_prob = (
        gammaln(n + 1) - gammaln(k + 1).sum() + gammaln(alpha.sum()) - gammaln(n + alpha.sum())
        + (gammaln(k + alpha) - gammaln(alpha)).sum()
    )
    assert log_prob == pytest.approx(dirichlet_multinomial.logpmf(k, alpha, n))
    assert _loss("dirichlet-multinomial", y_true, y_pred, concentration=c) == pytest.approx(-log_prob, rel=1e-5)


def test_dirichlet_multinomial_unasked_questions_contribute_zero():
    y_true, y_pred = _t01_only([0.6, 0.3, 0.1], [10, 5, 1])
    base = _loss("dirichlet-multinomial", y_true, y_pred)
    other = y_pred.copy()
    other[0, T01.stop :] = np.random.default_rng(2).random(37 - T01.stop)  # every question but t01
    assert _loss("dirichlet-multinomial", y_true, other) == base
    # A galaxy with no votes at all costs exactly nothing.
    assert _loss("dirichlet-multinomial", np.zeros((1, 74), np.float32), other) == 0.0


def test_dirichlet_multinomial_sums_questions_and_renormalises_sigmoid_outputs():
    y_true, y_pred = _t01_only([0.6, 0.3, 0.1], [10, 5, 1])
    y_true[0, 37 + T06.start : 37 + T06.stop] = [3, 13]
    y_pred[0, T06] = [0.25, 0.75]
    expected = -(
        dirichlet_multinomial.logpmf([10, 5, 1], 20 * np.array([0.6, 0.3, 0.1]), 16)
        + dirichlet_multinomial.logpmf([3, 13], 20 * np.array([0.25, 0.75]), 16)
    )
    assert _loss("dirichlet-multinomial", y_true, y_pred) == pytest.approx(expected, rel=1e-5)
    # A sigmoid head's outputs need not sum to 1: only their proportions matter.
    y_pred[0, T01] = [0.9, 0.45, 0.15]
    y_pred[0, T06] = [0.1, 0.3]
    assert _loss("dirichlet-multinomial", y_true, y_pred) == pytest.approx(expected, rel=1e-5)


def test_losses_serialise_with_their_parameters():
    for name in LOSSES:
        loss = get_loss(name)
        again = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(again) is type(loss) and again.name == loss.name
    loss = get_loss("dirichlet-multinomial", concentration=7.5)
    assert keras.losses.deserialize(keras.losses.serialize(loss)).concentration == 7.5


def test_the_config_accepts_exactly_the_losses_that_exist():
    assert all(isinstance(get_loss(name), keras.losses.Loss) for name in LOSSES)
    with pytest.raises(ValueError, match=f"expected one of {', '.join(LOSSES)}$"):
        get_loss("not-in-the-config")
