"""The synthetic population, the simulated volunteers and the gz2_class strings."""

import collections
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from galaxyzoo import schema
from galaxyzoo.data.synth.gz2class import CLASS_PATTERN, gz2_class
from galaxyzoo.data.synth.morphology import TYPICAL_FLUX_PER_AREA, sample_morphology
from galaxyzoo.data.synth.volunteers import (
    FLAG_MIN_VOTES,
    FLAG_THRESHOLD,
    answer_columns,
    debias,
    expected_targets,
    simulate_votes,
    true_probabilities,
    visibility,
)

IDX = {a.stem: a.index for a in schema.ANSWERS}
KS_MEAN_LIMIT, KS_MAX_LIMIT = 0.13, 0.3  # against 300 real rows (the next 1,700 real rows: 0.08, 0.14)
Q = schema.QUESTION_BY_ID


@pytest.fixture(scope="module")
def population():
    """2000 galaxies with their votes, columns and classes (one fixed seed)."""
    rng = np.random.default_rng(2024)
    rows = []
    for _ in range(2000):
        m = sample_morphology(rng)
        votes = simulate_votes(m, rng)
        cols = answer_columns(votes, m)
        rows.append((m, votes, cols, gz2_class(cols["debiased"], votes.count)))
    return rows


def _stack(population, key):
    if key in ("count", "weight"):
        return np.array([getattr(v, key) for _, v, _, _ in population])
    return np.array([c[key] for _, _, c, _ in population])


def _disk(**changes):
    """A clear two-armed barred spiral; `changes` override its fields."""
    base = next(m for m in (sample_morphology(np.random.default_rng(s)) for s in range(500)) if m.kind == "disk")
    fields = dict(radius=40.0, flux=TYPICAL_FLUX_PER_AREA * 40.0**2, axis_ratio=0.8, bulge_fraction=0.15,
                  bulge_shape="rounded", bar_strength=0.8, bar_length=0.8, n_arms=2, winding="medium",
                  arm_strength=0.9, ring=False, lens_or_arc=False, dust_lane=False, disturbance=0.0,
                  clumpiness=0.05, other_odd=False, merger=False, companions=())
    fields.update(changes)
    return dataclasses.replace(base, **fields)


# --- the population ---------------------------------------------------------


def test_population_mix_matches_targets(population):
    ms = [m for m, _, _, _ in population]
    kinds = collections.Counter(m.kind for m in ms)
    n = len(ms)
    # calibrated on the real catalogue rows: gz2_class E 54%, S 42%, Se 4%, A ~0%
    assert 0.50 < kinds["elliptical"] / n < 0.60
    disks = kinds["disk"] + kinds["edgeon"]
    assert 0.40 < disks / n < 0.50
    assert 0.05 < kinds["edgeon"] / disks < 0.13
    assert 0.0005 < (kinds["star"] + kinds["artifact"]) / n < 0.012
    face_on = [m for m in ms if m.kind == "disk" and m.clumpiness < 0.4]
    assert 0.34 < np.mean([m.bar_strength > 0 for m in face_on]) < 0.46
    arms = collections.Counter(min(m.n_arms, 5) for m in face_on if m.n_arms > 0)
    assert len(arms) == 5 and arms.most_common(1)[0][0] == 2
    assert np.mean([m.n_arms > 0 for m in face_on]) > 0.7
    assert {m.winding for m in face_on if m.n_arms} == {"tight", "medium", "loose"}
    galaxies = [m for m in ms if m.kind != "star"]
    odd = [m.ring or m.lens_or_arc or m.dust_lane or m.merger or m.other_odd or m.disturbance > 0.25
           or m.clumpiness > 0.4 for m in galaxies]
    assert 0.08 < np.mean(odd) < 0.32


def test_population_has_faint_galaxies_companions_and_red_bulges(population):
    ms = [m for m, _, _, _ in population if m.kind in ("elliptical", "disk", "edgeon")]
    brightness = np.array([m.flux / (TYPICAL_FLUX_PER_AREA * m.radius**2) for m in ms])
    assert 0.03 < np.mean(brightness < 0.15) < 0.25, "some galaxies are much fainter than typical"
    # the frame fixes the visible extent: fainter galaxies have larger radii, and the seeing
    # spans a wide range of pixels (small galaxies are blown up more)
    radius = np.array([m.radius for m in ms])
    assert radius.min() < 16 and radius.max() > 60
    assert np.corrcoef(np.log(brightness), np.log(radius))[0, 1] < -0.5
    seeing = np.array([m.seeing for m in ms])
    assert seeing.max() > 2.5 * seeing.min()
    assert any(c.is_star for m in ms for c in m.companions)
    assert any(not c.is_star for m in ms if not m.merger for c in m.companions)
    mergers = [m for m in ms if m.merger]
    assert mergers and all(any(not c.is_star for c in m.companions) for m in mergers)
    disks = [m for m in ms if m.kind == "disk"]
    redness = [(m.colour_bulge[2] / m.colour_bulge[0]) > (m.colour_disk[2] / m.colour_disk[0]) for m in disks]
    assert all(redness)


def test_catalogue_distributions_match_the_real_rows(population, real_dir):
    """Priors and volunteers are calibrated on the real catalogue: each debiased answer is distributed
    like the real rows (per-answer two-sample KS)."""
    real = pd.read_csv(real_dir / "gz2_catalogue" / "gz2_hart16_first300.csv")
    synth = _stack(population, "debiased")
    ks = [ks_2samp(real[c].dropna(), synth[:, i]).statistic for i, c in enumerate(schema.target_columns("debiased"))]
    assert np.mean(ks) < KS_MEAN_LIMIT and max(ks) < KS_MAX_LIMIT, np.round(ks, 2)
    total = [v.total_classifications for _, v, _, _ in population]
    assert ks_2samp(real["total_classifications"], total).statistic < 0.1


def test_worse_seeing_hides_detail():
    """Resolution is the radius in seeing discs: the same disk blown up less sharply shows less."""
    sharp, blurred = _disk(seeing=1.5), _disk(seeing=8.0)
    assert visibility(blurred) < visibility(sharp) - 0.1
    features = IDX["t01_smooth_or_features_a02_features_or_disk"]
    assert true_probabilities(blurred)[features] < true_probabilities(sharp)[features]


def test_sampling_and_votes_are_deterministic():
    def run(seed):
        rng = np.random.default_rng(seed)
        m = sample_morphology(rng)
        return m, simulate_votes(m, rng)

    (m1, v1), (m2, v2) = run(7), run(7)
    assert m1 == m2
    np.testing.assert_array_equal(v1.count, v2.count)
    np.testing.assert_array_equal(v1.weight, v2.weight)


# --- true probabilities and visibility ---------------------------------------


def test_true_probability_blocks_sum_to_one(population):
    for m, _, _, _ in population[:500]:
        p = true_probabilities(m)
        assert p.shape == (37,) and np.all(p >= 0) and np.all(p <= 1)
        for q in schema.QUESTIONS:
            assert p[q.slice].sum() == pytest.approx(1.0, abs=1e-9), q.id


def test_visibility_lowers_detail():
    bright = _disk()
    small = _disk(radius=5.0, flux=TYPICAL_FLUX_PER_AREA * 5.0**2)
    faint = _disk(flux=0.05 * TYPICAL_FLUX_PER_AREA * 40.0**2)
    assert visibility(bright) > 0.9 > 0.5 > max(visibility(small), visibility(faint))
    p_bright = true_probabilities(bright)
    for dim in (small, faint):
        p = true_probabilities(dim)
        for stem in ("t01_smooth_or_features_a02_features_or_disk", "t03_bar_a06_bar", "t04_spiral_a08_spiral",
                     "t11_arms_number_a32_2"):
            assert p[IDX[stem]] < p_bright[IDX[stem]] - 0.05, stem
        assert p[IDX["t11_arms_number_a37_cant_tell"]] > p_bright[IDX["t11_arms_number_a37_cant_tell"]]
        # ... and the votes show it: mean features fraction of identical disks drops.
        rng = np.random.default_rng(0)
        features = IDX["t01_smooth_or_features_a02_features_or_disk"]
        feat = [answer_columns(simulate_votes(g, rng), g)["fraction"][features]
                for g in (bright, dim) for _ in range(200)]
        assert np.mean(feat[200:]) < np.mean(feat[:200]) - 0.1


def test_expected_fraction_equals_true_probability():
    m = _disk(radius=12.0, flux=0.3 * TYPICAL_FLUX_PER_AREA * 12.0**2)  # mid visibility: every question reached
    p = true_probabilities(m)
    rng = np.random.default_rng(1)
    fractions, reached = [], []
    for _ in range(3000):
        votes = simulate_votes(m, rng, n_volunteers=40)
        fractions.append(answer_columns(votes, m)["fraction"])
        reached.append(votes.count)
    fractions, counts = np.array(fractions), np.array(reached)
    for q in schema.QUESTIONS:
        voted = counts[:, q.slice].sum(axis=1) > 0
        assert voted.mean() > 0.5, q.id
        np.testing.assert_allclose(fractions[voted][:, q.slice].mean(axis=0), p[q.slice], atol=0.012, err_msg=q.id)


@pytest.mark.parametrize("radius, brightness", [(40.0, 1.0), (6.0, 0.05)])
def test_expected_targets_are_the_mean_catalogue_targets(radius, brightness):
    """The noise floor's expectation matches what the catalogue path gives on average."""
    m = _disk(radius=radius, flux=brightness * TYPICAL_FLUX_PER_AREA * radius**2)
    rng = np.random.default_rng(3)
    catalogue = np.mean([answer_columns(simulate_votes(m, rng), m)["debiased"] for _ in range(2000)], axis=0)
    expected = expected_targets(true_probabilities(m)[None], visibility(m), np.random.default_rng(4), 2000)
    assert expected.shape == (1, schema.N_ANSWERS)
    # rarely reached answers (t08 after a 6% "odd") carry a Monte-Carlo error of ~0.01 on each side
    np.testing.assert_allclose(expected[0], catalogue, atol=0.03)


def test_expected_targets_count_unreached_questions_as_zero():
    """A question few volunteers reach has an expected target well below its true probability."""
    m = _disk(axis_ratio=0.9)
    probs = true_probabilities(m).copy()
    t01, t02 = Q["t01"].slice, Q["t02"].slice
    probs[t01] = [0.98, 0.02, 0.0]  # ~1 volunteer in 50 says "features", so t02 is often asked of nobody
    expected = expected_targets(np.stack([probs, probs]), [1.0, 1.0], np.random.default_rng(5), 1000)
    np.testing.assert_allclose(expected[0, t01], probs[t01], atol=0.01)  # t01 is always reached
    reach = expected[0, t02].sum()  # where reached, a question's fractions sum to 1
    assert 0.4 < reach < 0.75  # 1 - 0.98**42 = 0.57 with the usual ~42 volunteers
    np.testing.assert_allclose(expected[0, t02] / reach, probs[t02], atol=0.05)
    np.testing.assert_allclose(expected[0], expected[1], atol=0.05)  # rows are independent draws of one truth


# --- votes -------------------------------------------------------------------


def test_votes_follow_the_tree(population):
    counts = _stack(population[:500], "count")
    assert not schema.tree_violations(counts).any()
    star = counts[:, IDX["t01_smooth_or_features_a03_star_or_artifact"]]
    total = np.array([v.total_classifications for _, v, _, _ in population[:500]])

    def on(qid):
        return counts[:, Q[qid].slice].sum(axis=1)

    # Every volunteer answers t01, and every one who did not say star/artifact ends at t06.
    np.testing.assert_array_equal(on("t01"), total)
    np.testing.assert_array_equal(on("t06"), total - star)
    # Each question gets exactly one vote from every volunteer who chose its parent answer.
    for q in schema.QUESTIONS:
        if q.parent is not None:
            np.testing.assert_array_equal(on(q.id), counts[:, IDX[q.parent]], err_msg=q.id)
    np.testing.assert_array_equal([v.total_votes for _, v, _, _ in population[:500]], counts.sum(axis=1))


def test_volunteer_numbers_and_weights(population):
    total = np.array([v.total_classifications for _, v, _, _ in population])
    assert total.min() >= 16 and 40 <= np.median(total) <= 44 and 5 < total.std() < 7  # real: 42, sd 6.2
    counts, weights = _stack(population, "count"), _stack(population, "weight")
    assert np.all(weights <= counts + 1e-9) and np.all(weights[counts > 0] > 0)
    assert np.mean(weights.sum(axis=1) < counts.sum(axis=1) - 1e-9) > 0.5, "some volunteers are down-weighted"
    fixed = simulate_votes(population[0][0], np.random.default_rng(0), n_volunteers=25)
    assert fixed.total_classifications == 25


# --- catalogue columns ---------------------------------------------------------


def test_fractions_sum_to_one_where_voted_and_zero_elsewhere(population):
    counts = _stack(population, "count")
    for key in ("fraction", "weighted_fraction", "debiased"):
        values = _stack(population, key)
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all(), key
    for key in ("fraction", "weighted_fraction"):
        values = _stack(population, key)
        for q in schema.QUESTIONS:
            voted = counts[:, q.slice].sum(axis=1) > 0
            np.testing.assert_allclose(values[voted][:, q.slice].sum(axis=1), 1.0, atol=1e-9)
            assert (values[~voted][:, q.slice] == 0).all()
    assert (counts[:, Q["t09"].slice].sum(axis=1) == 0).any(), "some questions go unreached"


def test_debiased_does_not_sum_to_one(population):
    debiased = _stack(population, "debiased")
    for qid in ("t01", "t04", "t06", "t11"):
        sums = debiased[:, Q[qid].slice].sum(axis=1)
        assert np.mean(np.abs(sums[sums > 0] - 1.0) > 0.01) > 0.2, qid
    # Untouched questions keep the weighted fractions.
    weighted = _stack(population, "weighted_fraction")
    np.testing.assert_array_equal(debiased[:, Q["t07"].slice], weighted[:, Q["t07"].slice])


def test_debias_moves_toward_the_nearby_answer():
    dim = _disk(radius=7.0, flux=0.5 * TYPICAL_FLUX_PER_AREA * 7.0**2)
    near = true_probabilities(_disk())
    rng = np.random.default_rng(3)
    cols = [answer_columns(simulate_votes(dim, rng), dim) for _ in range(400)]
    for stem in ("t01_smooth_or_features_a02_features_or_disk", "t04_spiral_a08_spiral"):
        i = IDX[stem]
        weighted = np.mean([c["weighted_fraction"][i] for c in cols])
        debiased = np.mean([c["debiased"][i] for c in cols])
        assert abs(debiased - near[i]) < abs(weighted - near[i]) - 0.05, stem
    # Vectorised over rows, same answer as one at a time.
    rows = np.array([c["weighted_fraction"] for c in cols[:5]])
    np.testing.assert_allclose(debias(rows, np.full(5, visibility(dim))), [c["debiased"] for c in cols[:5]])


def test_flags_mark_clean_majorities(population):
    flag, debiased, counts = _stack(population, "flag"), _stack(population, "debiased"), _stack(population, "count")
    on_question = np.concatenate([np.repeat(counts[:, q.slice].sum(axis=1, keepdims=True), q.stop - q.start, axis=1)
                                  for q in schema.QUESTIONS], axis=1)
    expected = (debiased >= FLAG_THRESHOLD) & (on_question >= FLAG_MIN_VOTES)
    np.testing.assert_array_equal(flag, expected.astype(np.int64))
    assert flag.dtype == np.int64 and 0 < flag.mean() < 0.5


# --- gz2_class -------------------------------------------------------------------


def _class_of(*stems):
    """gz2_class of a galaxy whose chosen answers got all the votes."""
    fractions, counts = np.zeros(37), np.zeros(37, dtype=np.int64)
    for stem in stems:
        fractions[IDX[stem]], counts[IDX[stem]] = 1.0, 30
    return gz2_class(fractions, counts)


@pytest.mark.parametrize(("stems", "expected"), [
    (("t01_smooth_or_features_a01_smooth", "t07_rounded_a17_in_between", "t06_odd_a15_no"), "Ei"),
    (("t01_smooth_or_features_a03_star_or_artifact",), "A"),
    (("t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a04_yes", "t09_bulge_shape_a25_rounded",
      "t06_odd_a15_no"), "Ser"),
    (("t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no", "t03_bar_a06_bar", "t04_spiral_a08_spiral",
      "t05_bulge_prominence_a12_obvious", "t11_arms_number_a32_2", "t10_arms_winding_a29_medium", "t06_odd_a15_no"),
     "SBb2m"),
    (("t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no", "t03_bar_a07_no_bar",
      "t04_spiral_a08_spiral", "t05_bulge_prominence_a11_just_noticeable", "t11_arms_number_a36_more_than_4",
      "t10_arms_winding_a28_tight", "t06_odd_a15_no"), "Sc+t"),
    (("t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no", "t03_bar_a07_no_bar",
      "t04_spiral_a09_no_spiral", "t05_bulge_prominence_a12_obvious", "t06_odd_a14_yes", "t08_odd_feature_a19_ring"),
     "Sb(r)"),
    (("t01_smooth_or_features_a02_features_or_disk", "t02_edgeon_a05_no", "t03_bar_a06_bar", "t04_spiral_a08_spiral",
      "t05_bulge_prominence_a11_just_noticeable", "t11_arms_number_a34_4", "t10_arms_winding_a28_tight",
      "t06_odd_a14_yes", "t08_odd_feature_a38_dust_lane"), "SBc4t(u)"),
    (("t01_smooth_or_features_a01_smooth", "t07_rounded_a16_completely_round", "t06_odd_a14_yes",
      "t08_odd_feature_a24_merger"), "Er(m)"),
])
def test_gz2_class_examples(stems, expected):
    assert _class_of(*stems) == expected
    assert CLASS_PATTERN.match(expected)


def test_gz2_class_uses_plurality_and_skips_unvoted_questions():
    fractions, counts = np.zeros(37), np.ones(37, dtype=np.int64)
    fractions[Q["t01"].slice] = [0.459, 0.681, 0.0]  # debiased fractions need not sum to 1
    fractions[Q["t02"].slice] = [0.1, 0.9]
    fractions[Q["t03"].slice] = [0.4, 0.6]
    fractions[Q["t04"].slice] = [0.7, 0.3]
    fractions[Q["t05"].slice] = [0.1, 0.2, 0.3, 0.4]
    fractions[Q["t11"].slice] = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]
    fractions[Q["t10"].slice] = [0.2, 0.3, 0.5]
    fractions[Q["t06"].slice] = [0.3, 0.7]
    assert gz2_class(fractions, counts) == "Sa?l"
    counts[Q["t10"].slice] = 0
    counts[Q["t11"].slice] = 0
    assert gz2_class(fractions, counts) == "Sa"
    with pytest.raises(ValueError, match="37"):
        gz2_class(np.zeros(36), np.zeros(37))


def test_gz2_classes_have_a_long_tail(population):
    classes = collections.Counter(c for _, _, _, c in population)
    assert all(CLASS_PATTERN.match(c) for c in classes), [c for c in classes if not CLASS_PATTERN.match(c)]
    assert len(classes) >= 150
    assert sum(n <= 3 for n in classes.values()) >= 80, "many rare classes"
    assert classes.most_common(1)[0][0] in ("Ei", "Er")
    suffixes = {c[-2] for c in classes if c.endswith(")")}
    assert len(suffixes) >= 6, suffixes
    # The seed's class_reduced rule has something to reduce: a rare non-E odd class with an arm pair.
    reducible = [c for c, n in classes.items()
                 if n < 12 and c.endswith(")") and not c.startswith("E") and re.search(r"[1234+?][tml]", c)]
    assert reducible
    shares = collections.Counter(c[0] if not c.startswith("Se") else "Se" for c in classes.elements())
    assert 0.45 < shares["E"] / len(population) < 0.62  # real rows: 54%
