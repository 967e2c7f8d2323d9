"""The Dirichlet head: its intervals, their coverage on a hand-made case, and the config that pairs it with its loss."""

import numpy as np
import pytest

from galaxyzoo import schema
from galaxyzoo.config.experiment import from_dict, knobs
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import dirichlet

T01, T02 = schema.QUESTION_BY_ID["t01"].slice, schema.QUESTION_BY_ID["t02"].slice


def test_the_packaged_prediction_has_intervals_around_the_mean(real_images_dir):
    """A tiny random Dirichlet network through predict's crop: fractions are alpha's mean, inside [p05, p95]."""
    import keras

    from galaxyzoo.model.network import build_model, outputs_concentrations
    from galaxyzoo.registry import packaged

    keras.utils.set_random_seed(0)
    network = build_model(input_size=16, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.0,), head="dirichlet")
    assert outputs_concentrations(network)
    images = [p.read_bytes() for p in sorted(real_images_dir.glob("*.jpg"))[:3]] + [b"not an image"]
    frame = packaged.predict_images(network, images, 16, 1)
    assert list(frame.columns) == [*packaged.ANSWER_COLUMNS, *packaged.INTERVAL_COLUMNS, "most_likely_path",
                                   "crop_branch", "error"]
    good = frame.iloc[:3]
    mean = good[packaged.ANSWER_COLUMNS].to_numpy()
    low, high = (good[packaged.INTERVAL_COLUMNS].to_numpy()[:, i * 37:(i + 1) * 37] for i in (0, 1))
    assert (low < mean).all() and (mean < high).all() and (low > 0).all() and (high < 1).all()
    for q in schema.QUESTIONS:
        np.testing.assert_allclose(mean[:, q.slice].sum(axis=1), 1.0, rtol=1e-5)
    assert frame.loc[3, "error"] and frame.loc[3, packaged.INTERVAL_COLUMNS].isna().all()


def test_intervals_are_the_beta_percentiles():
    alpha = np.full((1, schema.N_ANSWERS), 2.0)
    alpha[0, T01] = [1.0, 1.0, 2.0]  # t01: Beta(1, 3) for the first two answers, Beta(2, 2) for the third
    low, high = dirichlet.intervals(alpha)
    # Beta(1, 3) has CDF 1 - (1 - x)^3, so its q-th percentile is 1 - (1 - q)^(1/3).
    np.testing.assert_allclose(low[0, 0], 1 - 0.95 ** (1 / 3))
    np.testing.assert_allclose(high[0, 0], 1 - 0.05 ** (1 / 3))
    np.testing.assert_allclose(low[0, 2] + high[0, 2], 1.0)  # Beta(2, 2) is symmetric about 1/2
    np.testing.assert_allclose(dirichlet.fractions(alpha)[0, T01], [0.25, 0.25, 0.5])


def test_coverage_on_a_hand_made_case():
    """Three galaxies; t01 and t02 checked by hand, every other question unvoted.

    t02 (2 answers) has alpha (1, 1): Beta(1, 1) is uniform, the true interval [0.05, 0.95], and with n = 4
    votes the beta-binomial is uniform on 0..4, so its 5th and 95th percentiles are 0 and 4 votes. Its CDF
    steps are 0.2 wide: 0 or 4 votes keep 0.15 of theirs inside [0.05, 0.95] (0.75), 1-3 votes all of it.
    t01 (3 answers) has alpha (2, 1, 1) for galaxy 0 only, Beta(2, 2) then Beta(1, 3) twice: BetaBinomial(4, 2, 2)
    gives 4 votes the step [6/7, 1] (0.65 of it inside), BetaBinomial(4, 1, 3) gives 0 votes [0, 3/7] (1 - 0.35 / 3).
    """
    alpha = np.ones((3, schema.N_ANSWERS))
    alpha[0, T01] = [2.0, 1.0, 1.0]
    true = np.full((3, schema.N_ANSWERS), 0.5)
    true[:, T02] = [[0.5, 0.5], [0.01, 0.99], [0.96, 0.04]]  # inside, both outside, both outside
    true[0, T01] = [0.5, 0.9, 0.02]  # inside [0.135, 0.865]; Beta(1, 3)'s [0.017, 0.632]: outside, inside
    counts = np.zeros((3, schema.N_ANSWERS))
    counts[:, T02] = [[1, 3], [0, 4], [2, 2]]  # every t02 count lies in 0..4: observed coverage 1
    counts[0, T01] = [4, 0, 0]  # n = 4: BetaBinomial(4, 2, 2)'s [0, 4] holds 4, (4, 1, 3)'s [0, 3] holds 0
    table = dirichlet.coverage(alpha, true, counts).set_index("question")
    assert list(table.columns) == ["slug", "galaxies", "true_coverage", "vote_coverage", "vote_interval_coverage",
                                   "true_coverage_se", "vote_coverage_se", "vote_interval_coverage_se"]
    assert table.loc["t02", "galaxies"] == 3 and table.loc["t01", "galaxies"] == 1
    assert table.loc["t02", "true_coverage"] == pytest.approx(2 / 6)
    assert table.loc["t02", "vote_interval_coverage"] == 1.0
    assert table.loc["t02", "vote_coverage"] == pytest.approx((4 + 2 * 0.75) / 6)
    assert table.loc["t01", "true_coverage"] == pytest.approx(2 / 3)
    assert table.loc["t01", "vote_interval_coverage"] == 1.0
    assert table.loc["t01", "vote_coverage"] == pytest.approx((0.65 + 2 * (1 - 0.35 / 3)) / 3)
    assert table.loc["t03", "galaxies"] == 0 and np.isnan(table.loc["t03", "true_coverage"])
    # Standard errors over galaxies: t02's per-galaxy true shares are 1, 0, 0 (sd 1/sqrt(3), over sqrt(3));
    # its vote shares 1, 0.75, 1 (0 and 4 votes keep 0.75 of their steps); t01 has one galaxy: no error.
    assert table.loc["t02", "true_coverage_se"] == pytest.approx(1 / 3)
    assert table.loc["t02", "vote_coverage_se"] == pytest.approx(np.std([1, 0.75, 1], ddof=1) / np.sqrt(3))
    assert table.loc["t02", "vote_interval_coverage_se"] == 0.0
    assert np.isnan(table.loc["t01", "true_coverage_se"]) and np.isnan(table.loc["t03", "vote_coverage_se"])
    # With at least 4 votes on the question every galaxy still counts; with 5, none does.
    at_least_4 = dirichlet.coverage(alpha, true, counts, min_votes=4).set_index("question")
    assert at_least_4.loc["t02", "galaxies"] == 3 and at_least_4.loc["t02", "true_coverage"] == pytest.approx(2 / 6)
    at_least_5 = dirichlet.coverage(alpha, true, counts, min_votes=5).set_index("question")
    assert at_least_5.loc["t02", "galaxies"] == 0 and np.isnan(at_least_5.loc["t02", "true_coverage"])
    low, high = dirichlet.vote_intervals(alpha, counts)
    np.testing.assert_allclose([low[0, 0], high[0, 0], low[0, 1], high[0, 1]], [0.0, 1.0, 0.0, 0.75])
    assert np.isnan(low[:, schema.QUESTION_BY_ID["t03"].slice]).all()


def _crowds(rng, alpha, votes_per_galaxy):
    """True probabilities drawn from each question's Dirichlet(alpha), and `votes_per_galaxy` votes from them."""
    true = np.empty_like(alpha)
    counts = np.empty_like(alpha)
    for q in schema.QUESTIONS:
        for i, a in enumerate(alpha[:, q.slice]):
            true[i, q.slice] = rng.dirichlet(a)
            counts[i, q.slice] = rng.multinomial(votes_per_galaxy, true[i, q.slice])
    return true, counts


def test_a_calibrated_head_scores_the_level_and_the_inclusive_intervals_more():
    """Truths drawn from the predicted Dirichlets and votes from the truths: what a calibrated head sees.

    Whole-count intervals hold at least 90 % of the chances, so they overshoot, the more where an answer
    is nearly decided (here one per question, alpha 0.2 against 2: 30 votes mostly give it none, and
    nothing falls below a 5th percentile of 0). The randomised PIT (`vote_coverage`) stays at the level.
    """
    rng = np.random.default_rng(0)
    alpha = np.full((150, schema.N_ANSWERS), 2.0)
    alpha[:, [q.start for q in schema.QUESTIONS]] = 0.2
    true, counts = _crowds(rng, alpha, 30)
    table = dirichlet.coverage(alpha, true, counts)
    assert table["true_coverage"].mean() == pytest.approx(0.90, abs=0.015)
    assert table["vote_coverage"].mean() == pytest.approx(0.90, abs=0.015)
    assert table["vote_interval_coverage"].mean() > 0.93
    # Five times surer than it should be: too narrow on both measures, for every question.
    overconfident = dirichlet.coverage(alpha * 5, true, counts)
    assert (overconfident["vote_coverage"] < table["vote_coverage"] - 0.05).all()
    assert (overconfident["true_coverage"] < table["true_coverage"] - 0.2).all()


def test_votes_from_the_truth_itself_score_the_level():
    rng = np.random.default_rng(1)
    alpha = np.full((300, schema.N_ANSWERS), 2.0)
    true, counts = _crowds(rng, alpha, 30)
    best = dirichlet.truth_vote_coverage(true, counts)
    assert list(best.columns) == ["question", "slug", "galaxies", "vote_coverage", "vote_interval_coverage",
                                  "vote_coverage_se", "vote_interval_coverage_se"]
    assert (best["galaxies"] == 300).all()
    assert best["vote_coverage"].mean() == pytest.approx(0.90, abs=0.015)
    assert best["vote_interval_coverage"].mean() > 0.93
    # Another truth than the one the crowds voted from (each probability moved by 0.2, then renormalised).
    shifted = np.abs(true - 0.2)
    assert dirichlet.truth_vote_coverage(shifted, counts)["vote_coverage"].mean() < 0.7


def test_coverage_refuses_tables_that_do_not_fit():
    alpha = np.ones((2, schema.N_ANSWERS))
    with pytest.raises(ValueError, match=r"true_probs, counts of the same shape \(N >= 1, 37\), "
                                         r"got \(2, 37\) and \(2, 36\)"):
        dirichlet.coverage(alpha, alpha, alpha[:, :36])
    with pytest.raises(ValueError, match=r"expected outputs for the 2 galaxies of true_probs and counts, got 3"):
        dirichlet.coverage(np.ones((3, schema.N_ANSWERS)), alpha, alpha)
    with pytest.raises(ValueError, match=r"got 36 columns"):
        dirichlet.coverage(alpha[:, :36], alpha, alpha)
    bad = np.full((2, schema.N_ANSWERS), 0.5)
    bad[0, T02] = 0.0  # a question whose answers sum to 0: no probabilities to vote from
    with pytest.raises(ValueError, match="true_probs must be finite and >= 0"):
        dirichlet.truth_vote_coverage(bad, alpha)


def test_the_head_and_its_loss_go_together_and_add_no_param():
    cfg = from_dict({"model": {"head": "dirichlet"}, "train": {"loss": "dirichlet-learned"}})
    assert len(knobs(cfg)) == len(knobs(from_dict({})))
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: model\.head: 'dirichlet' needs train\.loss 'dirichlet-learned'"):
        from_dict({"model": {"head": "dirichlet"}}, source="x.yaml")
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: train\.loss: 'dirichlet-learned' needs model\.head 'dirichlet'"):
        from_dict({"train": {"loss": "dirichlet-learned"}}, source="x.yaml")
