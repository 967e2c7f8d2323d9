"""The mixture-head probe: its coverage and likelihood reduce to the single Dirichlet's, its weights act per
question, and its head lays out its outputs as the code that reads them expects."""

import numpy as np
import pandas as pd
import pytest

from benchmark_scripts import load
from galaxyzoo import schema
from galaxyzoo.model import dirichlet

COLUMNS = ["true_coverage", "vote_coverage", "vote_interval_coverage"]


def _galaxies(n=300, seed=0):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(1.0, 30.0, (n, schema.N_ANSWERS))
    true_probs = np.concatenate([rng.dirichlet(np.full(q.stop - q.start, 2.0), n) for q in schema.QUESTIONS], axis=1)
    counts = np.concatenate([rng.multinomial(40, [1 / (q.stop - q.start)] * (q.stop - q.start), n)
                             for q in schema.QUESTIONS], axis=1).astype(float)
    counts[: n // 3, schema.QUESTIONS[3].slice] = 0  # a question some galaxies never reached
    return alpha, true_probs, counts


def test_a_mixture_of_one_or_of_two_equal_halves_covers_as_the_single_dirichlet():
    probe = load("mixture_head_probe")
    alpha, true_probs, counts = _galaxies()
    single = dirichlet.coverage(alpha, true_probs, counts)
    one = probe.mixture_coverage(alpha[None], np.ones((1, *alpha.shape)), true_probs, counts)
    halves = probe.mixture_coverage(np.stack([alpha, alpha]), np.full((2, *alpha.shape), 0.5), true_probs, counts)
    shown = ["question", "galaxies", *COLUMNS]
    for table in (one, halves):
        pd.testing.assert_frame_equal(table[shown], single[shown], atol=1e-9)
    low, high = probe.mixture_intervals(alpha[None], np.ones((1, *alpha.shape)))
    exact_low, exact_high = dirichlet.intervals(alpha)
    np.testing.assert_allclose(low, exact_low, atol=1e-12)
    np.testing.assert_allclose(high, exact_high, atol=1e-12)


def test_each_question_follows_its_own_weights():
    probe = load("mixture_head_probe")
    alpha, true_probs, counts = _galaxies(seed=1)
    other = alpha[::-1].copy()  # another galaxy's concentrations: a different coverage
    first = np.isin(schema.QUESTION_OF_ANSWER, [0, 2, 4, 6, 8, 10])  # t01, t03, ... all on the first component
    weights = np.stack([np.broadcast_to(first, alpha.shape), np.broadcast_to(~first, alpha.shape)]).astype(float)
    mixed = probe.mixture_coverage(np.stack([alpha, other]), weights, true_probs, counts)
    from_first, from_other = (dirichlet.coverage(a, true_probs, counts) for a in (alpha, other))
    for i, q in enumerate(schema.QUESTIONS):
        expected = from_first if i % 2 == 0 else from_other
        np.testing.assert_allclose(mixed.loc[i, COLUMNS].to_numpy(float), expected.loc[i, COLUMNS].to_numpy(float),
                                   atol=1e-9, err_msg=q.id)


def test_a_mixture_of_a_sharp_and_a_broad_component_has_an_interval_between_theirs():
    probe = load("mixture_head_probe")
    sharp = np.full((1, schema.N_ANSWERS), 1.0)
    sharp[0, schema.QUESTIONS[1].slice] = (30.0, 970.0)  # t02 yes at 0.03, sure
    broad = sharp.copy()
    broad[0, schema.QUESTIONS[1].slice] = (1.0, 10.0)
    low, high = probe.mixture_intervals(np.stack([sharp, broad]), np.stack([np.full_like(sharp, 0.9),
                                                                            np.full_like(sharp, 0.1)]))
    yes = schema.QUESTIONS[1].start
    broad_low, broad_high = dirichlet.intervals(broad)
    sharp_low, sharp_high = dirichlet.intervals(sharp)
    # the 10 % broad component lifts the 95th percentile above the sharp one's, but far below its own
    assert sharp_high[0, yes] < high[0, yes] < broad_high[0, yes]
    assert low[0, yes] == pytest.approx(sharp_low[0, yes], abs=0.003)


def test_the_mixture_likelihood_of_one_component_is_the_learned_dirichlet_loss():
    from galaxyzoo.model.losses import get_loss

    probe = load("mixture_head_probe")
    alpha, _, counts = _galaxies(8)
    q = len(schema.QUESTIONS)
    one = np.concatenate([alpha, np.zeros((8, q))], axis=1).astype("float32")
    halves = np.concatenate([alpha, alpha, np.full((8, 2 * q), np.log(0.5))], axis=1).astype("float32")
    loss = get_loss("dirichlet-learned")
    y_true = np.concatenate([counts, counts], axis=1).astype("float32")  # the loss reads the counts' half
    expected = np.asarray(loss.call(y_true, alpha.astype("float32")))
    np.testing.assert_allclose(np.asarray(probe.mixture_nll(counts.astype("float32"), one, 1)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(probe.mixture_nll(counts.astype("float32"), halves, 2)), expected, rtol=1e-5)


def test_the_mixture_likelihood_weighs_each_question_by_its_own_weights():
    from scipy.special import logsumexp

    from galaxyzoo.model.losses import dirichlet_multinomial_log_prob

    probe = load("mixture_head_probe")
    alpha, _, counts = _galaxies(5, seed=2)
    other = alpha[::-1].copy()
    q = len(schema.QUESTIONS)
    w = np.linspace(0.1, 0.9, q)  # a different weight of the first component for each question
    outputs = np.concatenate([alpha, other, np.tile(np.log(w), (5, 1)), np.tile(np.log(1 - w), (5, 1))], axis=1)
    per_component = np.stack([np.asarray(dirichlet_multinomial_log_prob(counts.astype("float32"), a.astype("float32")))
                              for a in (alpha, other)])  # (2, 5, 11)
    voted = np.stack([counts[:, qq.slice].sum(axis=1) > 0 for qq in schema.QUESTIONS], axis=1)
    expected = -np.where(voted, logsumexp(per_component + np.log(np.stack([w, 1 - w]))[:, None, :], axis=0), 0).sum(1)
    np.testing.assert_allclose(np.asarray(probe.mixture_nll(counts.astype("float32"), outputs.astype("float32"), 2)),
                               expected, rtol=1e-5)


def test_the_built_head_lays_out_its_outputs_as_split_outputs_reads_them():
    probe = load("mixture_head_probe")
    n = schema.N_ANSWERS
    bias = np.linspace(-2.0, 2.0, n)
    head = probe.mixture_head(4, 2, 100.0, (np.zeros((4, n)), bias), seed=1)
    alpha, weights = probe.split_outputs(np.asarray(head.predict(np.zeros((3, 4), "float32"), verbose=0)), 2)
    assert alpha.shape == weights.shape == (2, 3, n)
    for k, shift in enumerate((-0.25, 0.25)):  # a zero input leaves the biases: the network's, half a logit apart
        np.testing.assert_allclose(alpha[k], np.tile(1 + 99 / (1 + np.exp(-(bias + shift))), (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(weights, 0.5, rtol=1e-6)  # the weights start equal


def test_split_outputs_gives_each_component_its_concentrations_and_its_questions_weights():
    probe = load("mixture_head_probe")
    n, q = schema.N_ANSWERS, len(schema.QUESTIONS)
    outputs = np.concatenate([np.full((3, n), 2.0), np.full((3, n), 5.0), np.full((3, q), np.log(0.25)),
                              np.full((3, q), np.log(0.75))], axis=1)
    alpha, weights = probe.split_outputs(outputs, 2)
    assert alpha.shape == weights.shape == (2, 3, n)
    assert (alpha[0] == 2).all() and (alpha[1] == 5).all()
    np.testing.assert_allclose(weights[0], 0.25)
    np.testing.assert_allclose(weights[1], 0.75)


@pytest.mark.parametrize("args, message", [(["--components", "0"], "--components must be >= 1"),
                                           (["--high", "1"], "--high must be finite and > 1"),
                                           (["--high", "nan"], "--high must be finite and > 1"),
                                           (["--seeds", "-1"], "--seeds must be >= 0")])
def test_bad_options_are_refused_before_any_data_is_built(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        load("mixture_head_probe").main(["--workdir", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
