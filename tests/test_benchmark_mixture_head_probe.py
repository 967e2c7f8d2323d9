"""The mixture-head probe's coverage and likelihood against the single Dirichlet's, which they must reduce to."""

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


def test_a_mixture_of_a_sharp_and_a_broad_component_narrows_the_interval_of_a_sure_answer():
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
    # the 10 % broad component moves the 95th percentile to about its median, far below its own 95th
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


@pytest.mark.parametrize("args", [["--components", "0"], ["--high", "1"]])
def test_a_bad_component_count_or_bound_is_refused_before_any_data_is_built(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        load("mixture_head_probe").main(["--workdir", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2 and "--components must be" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
