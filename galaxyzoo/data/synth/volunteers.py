"""Simulated Galaxy Zoo volunteers: the votes a synthetic galaxy would get.

Three steps, mirroring how the real catalogue was made:

1. `true_probabilities(m)`: for every question, the answer probabilities of an
   attentive volunteer who reaches it. They depend on the latent `Morphology`
   *and* on how much of it the image shows (`visibility`): in small or faint
   galaxies "features" drifts to "smooth", bars, spirals and odd features get
   missed and arm counts drift to "can't tell" - the classification bias that
   Hart et al. (2016) corrected.
2. `simulate_votes(m, rng)`: ~40 volunteers walk the decision tree, each with a
   GZ2-style consistency weight.
3. `answer_columns(votes, m)`: the hart16 `_fraction`, `_weighted_fraction`,
   `_debiased` and `_flag` columns, with a Hart+16-like debiasing that does not
   keep a question's fractions summing to 1.

>>> import numpy as np
>>> from galaxyzoo.data.synth.morphology import sample_morphology
>>> rng = np.random.default_rng(1)
>>> m = sample_morphology(rng)
>>> votes = simulate_votes(m, rng)
>>> cols = answer_columns(votes, m)
>>> sorted(cols)
['debiased', 'flag', 'fraction', 'weighted_fraction']

Every volunteer answers each question they reach independently with
`true_probabilities`, so the expected `fraction` of a question that got votes
is exactly its true probability. The expected *target* is lower on questions
that few volunteers reach (nobody may reach them: the target is then 0) and
is bent by the debiasing; `expected_targets` estimates it from `truth.csv`'s
probabilities, which gives the noise floor of the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from galaxyzoo import schema
from galaxyzoo.data.synth.morphology import Morphology, bulge_axis_ratio, surface_brightness

SIZE_SCALE_SEEING = 4.5  # half-light radius (in PSF sigmas) at which half the detail is resolved
BRIGHTNESS_SCALE = 0.1  # surface brightness (1 = typical) at which half the detail stands out of the noise
FLAG_THRESHOLD = 0.8  # a debiased fraction this high is a "clean" answer ...
FLAG_MIN_VOTES = 10  # ... when at least this many volunteers answered the question


@dataclass(frozen=True)
class Detail:
    """A question whose detailed answers get lost when the galaxy is hard to see.

    `detail` answers (indices within the question) lose probability to the
    `null` answer: the logit of their total drops by `loss * (1 - visibility)`.
    """

    qid: str
    detail: tuple[int, ...]
    null: int
    loss: float


DETAIL_QUESTIONS = (
    Detail("t01", (1,), 0, 3.0),  # features -> smooth
    Detail("t03", (0,), 1, 2.5),  # bar -> no bar
    Detail("t04", (0,), 1, 2.0),  # spiral -> no spiral
    Detail("t06", (0,), 1, 2.0),  # odd -> not odd
    Detail("t11", (0, 1, 2, 3, 4), 5, 3.0),  # an arm count -> can't tell
)
NULL_DEBIAS_SHARE = 0.6
"""Debiasing lowers a null answer by this share of the shift it adds to the detail.

Hart+16 corrected each answer with its own fitted function, so the corrected
answers of a question do not sum to 1; the unequal shifts reproduce that.
"""

# DETAIL_QUESTIONS as arrays, so `debias` corrects them all in a few array operations.
_DETAIL_MATRIX = np.zeros((schema.N_ANSWERS, len(DETAIL_QUESTIONS)))  # answer -> its Detail, if a detail answer
for _k, _d in enumerate(DETAIL_QUESTIONS):
    _DETAIL_MATRIX[[schema.QUESTION_BY_ID[_d.qid].start + i for i in _d.detail], _k] = 1.0
_DETAIL_LOSS = np.array([d.loss for d in DETAIL_QUESTIONS])
_NULL_ANSWERS = np.array([schema.QUESTION_BY_ID[d.qid].start + d.null for d in DETAIL_QUESTIONS])

# Per answer: the position of its question in schema.QUESTIONS.
_ANSWER_QUESTION = np.array([qi for qi, q in enumerate(schema.QUESTIONS) for _ in q.answers])
_QUESTION_STARTS = np.array([q.start for q in schema.QUESTIONS])
_MAX_ANSWERS = max(len(q.answers) for q in schema.QUESTIONS)
# Where each answer sits in a padded (question, answer-in-question) table.
_TABLE_INDEX = (_ANSWER_QUESTION, np.arange(schema.N_ANSWERS) - _QUESTION_STARTS[_ANSWER_QUESTION])
_PADDING = np.ones((len(schema.QUESTIONS), _MAX_ANSWERS), dtype=bool)
_PADDING[_TABLE_INDEX] = False
_LAST_ANSWER = (np.arange(len(schema.QUESTIONS)), np.array([len(q.answers) - 1 for q in schema.QUESTIONS]))
_STAR = schema.ANSWER_BY_STEM["t01_smooth_or_features_a03_star_or_artifact"]


def _parent_links() -> tuple[tuple[int, int, int], ...]:
    """(question, parent question, parent answer within it) for every question with a parent."""
    position = {q.id: qi for qi, q in enumerate(schema.QUESTIONS)}
    links = []
    for qi, q in enumerate(schema.QUESTIONS):
        if q.parent is not None:
            parent = schema.ANSWER_BY_STEM[q.parent]
            parent_q = schema.QUESTION_BY_ID[parent.question_id]
            links.append((qi, position[parent_q.id], parent.index - parent_q.start))
    return tuple(links)


_PARENT_LINKS = _parent_links()
_T06 = [q.id for q in schema.QUESTIONS].index("t06")


@dataclass(frozen=True)
class Votes:
    """The raw votes on one galaxy, as in hart16's `_count` and `_weight` columns."""

    count: np.ndarray  # (37,) int64: volunteers who chose each answer
    weight: np.ndarray  # (37,) float64: the sum of those volunteers' consistency weights
    total_classifications: int  # volunteers who classified the galaxy
    total_votes: int  # answers given, all questions together


# --- what volunteers see ---------------------------------------------------


def resolution(m: Morphology) -> float:
    """How well the galaxy is resolved, 0..1, from its half-light radius in seeing discs."""
    x = m.radius / m.seeing
    return x * x / (x * x + SIZE_SCALE_SEEING**2)


def visibility(m: Morphology) -> float:
    """How much of the galaxy's detail the image shows, 0 (none) .. 1 (all).

    The product of resolution (radius against `SIZE_SCALE_SEEING` seeing sigmas) and detection
    (surface brightness against `BRIGHTNESS_SCALE`); it plays the role of
    redshift in Hart+16: the same galaxy seen smaller or fainter gets less
    detailed votes.
    """
    b = surface_brightness(m)
    return resolution(m) * b**2 / (b**2 + BRIGHTNESS_SCALE**2)


def true_probabilities(m: Morphology) -> np.ndarray:
    """Per-question answer probabilities of an attentive volunteer, shape (37,).

    Each question's block sums to 1 and is defined even for questions a
    volunteer would rarely reach (a smooth galaxy's bar question), because some
    volunteers do reach them.
    """
    vis = visibility(m)
    blocks = {
        "t01": _smooth_or_features(m),
        "t02": _edge_on(m),
        "t03": _bar(m),
        "t04": _spiral(m),
        "t05": _bulge_prominence(m),
        "t06": _odd(m),
        "t07": _rounded(m),
        "t08": _odd_feature(m),
        "t09": _bulge_shape(m),
        "t10": _arms_winding(m, vis),
        "t11": _arms_number(m),
    }
    for d in DETAIL_QUESTIONS:
        blocks[d.qid] = _hide_detail(blocks[d.qid], d, d.loss * (1.0 - vis))
    # Plain float lists until here: per-galaxy numpy calls on 2-7 numbers cost more than they save.
    return np.array([p for q in schema.QUESTIONS for p in blocks[q.id]])


def _normalised(scores) -> list[float]:
    total = sum(scores)
    return [s / total for s in scores]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def _hide_detail(block: list[float], d: Detail, shift: float) -> list[float]:
    """Move probability from the detail answers to the null answer (logit shift)."""
    mass = sum(block[i] for i in d.detail)
    if mass <= 0.0 or shift <= 0.0:
        return block
    seen = _sigmoid(_logit(mass) - shift)
    out = [p * seen / mass if i in d.detail else p for i, p in enumerate(block)]
    out[d.null] += mass - seen
    return out


def _featuredness(m: Morphology) -> float:
    """Share of volunteers who would call the galaxy featured if they saw every detail."""
    if m.kind == "edgeon":
        s = 0.80 + 0.15 * (1.0 - m.bulge_fraction)
    elif m.bulge_fraction < 1.0:  # disks (also under an artifact); big bulges without arms look smooth
        s = 0.45 + 0.45 * (1.0 - m.bulge_fraction) + 0.35 * m.arm_strength + 0.2 * m.bar_strength + 0.2 * m.clumpiness
    else:  # real ellipticals keep ~6-20% "features" votes (the 2,000 real rows: smooth rarely above 0.9)
        s = 0.06 + 0.15 * (1.0 - m.axis_ratio) + 0.5 * m.disturbance + 0.25 * m.ring + 0.2 * m.lens_or_arc
        s += 0.3 * m.dust_lane
    return min(max(s, 0.03), 0.98)


def _smooth_or_features(m: Morphology) -> list[float]:
    if m.kind == "star":
        return [0.05, 0.03, 0.92]
    # A few volunteers call any galaxy a star (real: median 0.02), more so tiny ones;
    # a trail or ghost over a galaxy draws most votes.
    star = 0.70 if m.kind == "artifact" else 0.025 + 0.05 * (1.0 - resolution(m)) ** 2
    feat = _featuredness(m)
    return [(1.0 - star) * (1.0 - feat), (1.0 - star) * feat, star]


def _edge_on(m: Morphology) -> list[float]:
    if m.kind == "edgeon":
        yes = 0.97 - 1.2 * (m.axis_ratio - 0.12)
    else:  # strongly inclined disks (and flat ellipticals) fool some volunteers
        yes = 0.03 + 0.5 * _sigmoid((0.35 - m.axis_ratio) / 0.04)
    return [yes, 1.0 - yes]


def _bar(m: Morphology) -> list[float]:
    bar = 0.12 + 0.85 * m.bar_strength
    return [bar, 1.0 - bar]


def _spiral(m: Morphology) -> list[float]:
    if m.n_arms > 0:
        spiral = 0.55 + 0.45 * m.arm_strength
    else:
        spiral = 0.08 + 0.3 * m.clumpiness + 0.2 * m.disturbance
    spiral = min(spiral, 0.98)
    return [spiral, 1.0 - spiral]


def _soft_bins(value: float, centres: tuple[float, ...], width: float, floor: float = 0.02) -> list[float]:
    """Answer probabilities for a continuous property: Gaussian closeness to each answer's centre."""
    return _normalised([math.exp(-0.5 * ((value - c) / width) ** 2) + floor for c in centres])


# Answer probabilities of t05 at these B/T (interpolated between). Real volunteers call almost
# any bulge "obvious", ellipticals' too, and rarely pick "no bulge" or "dominant".
_BULGE_KNOTS = (0.0, 0.1, 0.25, 0.5, 1.0)
_BULGE_ANSWERS = (
    (0.30, 0.03, 0.01, 0.01, 0.01),  # no bulge
    (0.40, 0.60, 0.35, 0.15, 0.14),  # just noticeable
    (0.08, 0.32, 0.58, 0.66, 0.64),  # obvious
    (0.02, 0.03, 0.06, 0.18, 0.21),  # dominant
)


def _bulge_prominence(m: Morphology) -> list[float]:
    bt = min(max(m.bulge_fraction, 0.0), 1.0)
    return _normalised([float(np.interp(bt, _BULGE_KNOTS, answer)) for answer in _BULGE_ANSWERS])


def _rounded(m: Morphology) -> list[float]:
    # completely round, in between, cigar-shaped; who calls a face-on disk smooth judges its
    # bright bulge, which is rounder than the disk
    q = m.axis_ratio if m.kind != "disk" else bulge_axis_ratio(m.axis_ratio)
    return _soft_bins(q, (0.95, 0.66, 0.25), 0.13)


def _irregularity(m: Morphology) -> float:
    return max(0.0, (m.clumpiness - 0.3) / 0.7)


def _close_neighbours(m: Morphology) -> int:
    """Galaxies projected within 3 half-light radii: real pairs and chance alignments alike."""
    return sum(not c.is_star and math.hypot(c.dx, c.dy) < 3.0 * m.radius for c in m.companions)


def _odd(m: Morphology) -> list[float]:
    if m.kind == "star":
        return [0.1, 0.9]
    cues = [
        0.06,  # some volunteers find something odd in any galaxy (real: median 0.16)
        0.8 * m.merger,
        0.45 * m.ring,
        0.6 * m.lens_or_arc,
        0.6 * m.dust_lane,
        0.8 * m.disturbance,
        0.8 * _irregularity(m),
        0.65 * m.other_odd,
    ]
    cues += [0.25] * _close_neighbours(m)
    cues += [0.15 for c in m.companions if c.is_star and c.flux > 0.05 and math.hypot(c.dx, c.dy) < 2.0 * m.radius]
    odd = min(1.0 - math.prod(1.0 - c for c in cues), 0.97)
    return [odd, 1.0 - odd]


# What volunteers pick as "the odd feature" when nothing is really odd: real GZ2 volunteers
# favour ring, other and lens (real means 0.28 / 0.27 / 0.15), rarely merger or dust lane.
_ODD_FEATURE_BASE = (0.10, 0.07, 0.06, 0.04, 0.17, 0.04, 0.015)


def _odd_feature(m: Morphology) -> list[float]:
    # ring, lens or arc, disturbed, irregular, other, merger, dust lane
    cues = (
        1.5 * m.ring,
        0.9 * m.lens_or_arc,
        1.2 * max(0.0, m.disturbance - 0.15) + 0.3 * m.merger,
        1.3 * _irregularity(m),
        0.9 * m.other_odd,
        1.0 * m.merger + 0.2 * _close_neighbours(m),
        1.0 * m.dust_lane,
    )
    return _normalised([b + c for b, c in zip(_ODD_FEATURE_BASE, cues)])


_BULGE_SHAPE_ANSWERS = {"rounded": (0.75, 0.08, 0.17), "boxy": (0.30, 0.55, 0.15), "none": (0.15, 0.05, 0.80)}


def _bulge_shape(m: Morphology) -> list[float]:
    return list(_BULGE_SHAPE_ANSWERS[m.bulge_shape])


_WINDING_ANSWERS = {"tight": (0.72, 0.23, 0.05), "medium": (0.18, 0.62, 0.20), "loose": (0.05, 0.30, 0.65)}
_WINDING_UNSURE = (0.30, 0.45, 0.25)  # asked about arms that are not there
_WINDING_BLURRED = (0.70, 0.25, 0.05)  # unresolved arms look tightly wound


def _arms_winding(m: Morphology, vis: float) -> list[float]:
    # Left uncorrected by `debias`, like any residual bias of the real debiasing.
    intrinsic = _WINDING_ANSWERS[m.winding] if m.n_arms > 0 else _WINDING_UNSURE
    blur = 0.4 * (1.0 - vis)
    return [(1.0 - blur) * p + blur * b for p, b in zip(intrinsic, _WINDING_BLURRED)]


_ARMS_UNSURE = (0.08, 0.40, 0.12, 0.05, 0.05)  # asked about arms that are not there


def _arms_number(m: Morphology) -> list[float]:
    # 1, 2, 3, 4, more than 4, can't tell
    if m.n_arms > 0:
        k = min(m.n_arms, 5) - 1
        known = _normalised([0.62 if i == k else 0.10 if abs(i - k) == 1 else 0.02 for i in range(5)])
        cant_tell = 0.12 + 0.3 * (1.0 - m.arm_strength)
    else:
        known, cant_tell = _normalised(_ARMS_UNSURE), 0.35
    return [(1.0 - cant_tell) * p for p in known] + [cant_tell]


# --- the volunteers --------------------------------------------------------


def sample_n_volunteers(rng: np.random.Generator) -> int:
    """How many people classify a galaxy: 42 +- 6, at least 16 (real: median 42, sd 6.2, max 66)."""
    return max(16, int(round(rng.normal(42.0, 6.0))))


def volunteer_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """GZ2-style consistency weights: min(1, (5 kappa)^8.5) (Willett+13).

    kappa, a volunteer's mean agreement with the others, is drawn around 0.27, so
    ~90% of volunteers keep weight 1 and the rest are down-weighted. Weights are
    independent of the answers, so weighting changes the noise, not the mean.
    """
    kappa = np.clip(rng.normal(0.27, 0.05, n), 0.05, None)
    return np.minimum(1.0, (5.0 * kappa) ** 8.5)


def simulate_votes(m: Morphology, rng: np.random.Generator, n_volunteers: int | None = None) -> Votes:
    """Let volunteers classify the galaxy, walking the tree from t01.

    Vectorised over volunteers: everybody draws an answer to all 11 questions
    from `true_probabilities(m)`, then the tree decides which of those answers
    were actually asked (t06 closes every path but star/artifact, t08 needs
    t06 "yes"). Answers to questions one reaches are thus drawn exactly with
    the true probabilities.
    """
    return _vote(true_probabilities(m), rng, n_volunteers)


def _vote(probs: np.ndarray, rng: np.random.Generator, n_volunteers: int | None) -> Votes:
    """`simulate_votes` for answer probabilities `probs` (37,); None draws the crowd's size."""
    n = sample_n_volunteers(rng) if n_volunteers is None else int(n_volunteers)
    table = np.zeros((len(schema.QUESTIONS), _MAX_ANSWERS))
    table[_TABLE_INDEX] = probs
    thresholds = np.cumsum(table, axis=1)
    thresholds[_PADDING] = np.inf
    thresholds[_LAST_ANSWER] = np.inf  # rounding can leave the last sum just below a draw
    draws = rng.random((n, len(schema.QUESTIONS)))
    choice = (draws[:, :, None] >= thresholds[None]).sum(axis=2)  # (n, 11) answer within question
    reached = _reached(choice)
    weights = volunteer_weights(rng, n)
    answers = (choice + _QUESTION_STARTS).ravel()  # unasked answers are tallied with weight 0
    count = np.bincount(answers, weights=reached.ravel(), minlength=schema.N_ANSWERS).astype(np.int64)
    weight = np.bincount(answers, weights=(reached * weights[:, None]).ravel(), minlength=schema.N_ANSWERS)
    return Votes(count=count, weight=weight, total_classifications=n, total_votes=int(count.sum()))


def _reached(choice: np.ndarray) -> np.ndarray:
    """Which questions each volunteer was asked, given their answers (n, 11) -> bool (n, 11)."""
    reached = np.ones(choice.shape, dtype=bool)
    star = _STAR.index - schema.QUESTIONS[0].start
    reached[:, _T06] = choice[:, 0] != star
    for qi, parent_qi, parent_answer in _PARENT_LINKS:  # parents come first in file order
        reached[:, qi] = reached[:, parent_qi] & (choice[:, parent_qi] == parent_answer)
    return reached


# --- the catalogue columns -------------------------------------------------


def answer_columns(votes: Votes, m: Morphology) -> dict[str, np.ndarray]:
    """hart16's per-answer columns from the votes: fraction, weighted_fraction, debiased, flag.

    A question nobody reached gets 0 in every column.
    """
    on_question = _per_question_total(votes.count)
    fraction = _safe_ratio(votes.count, on_question)
    weighted = _weighted_fraction(votes)
    debiased = debias(weighted, visibility(m))
    flag = ((debiased >= FLAG_THRESHOLD) & (on_question >= FLAG_MIN_VOTES)).astype(np.int64)
    return {"fraction": fraction, "weighted_fraction": weighted, "debiased": debiased, "flag": flag}


def expected_targets(
    probs: np.ndarray, vis: np.ndarray, rng: np.random.Generator, replicates: int = 100
) -> np.ndarray:
    """Monte-Carlo mean of the debiased targets of galaxies with these truths, (N, 37).

    For each galaxy (its `true_probabilities` row and `visibility`), new
    volunteer crowds (their number drawn too) vote `replicates` times, and the
    debiased weighted fractions are averaged: the best any model can predict
    from the truth, since which questions get reached, and by how many, is
    part of the vote noise. Each row carries a Monte-Carlo variance of
    1/`replicates` of the targets' own variance.
    """
    probs = np.asarray(probs, dtype=np.float64)
    vis = np.broadcast_to(np.asarray(vis, dtype=np.float64), probs.shape[:1])
    out = np.empty_like(probs)
    for i, (p, v) in enumerate(zip(probs, vis)):
        weighted = np.stack([_weighted_fraction(_vote(p, rng, None)) for _ in range(replicates)])
        out[i] = debias(weighted, v).mean(axis=0)
    return out


def _weighted_fraction(votes: Votes) -> np.ndarray:
    return _safe_ratio(votes.weight, _per_question_total(votes.weight))


def _per_question_total(values: np.ndarray) -> np.ndarray:
    """Each answer's question total, broadcast back to (..., 37)."""
    return np.add.reduceat(values, _QUESTION_STARTS, axis=-1)[..., _ANSWER_QUESTION]


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.shape(num), dtype=np.float64), where=den > 0)


def debias(weighted_fraction: np.ndarray, vis) -> np.ndarray:
    """Correct weighted fractions for visibility, as Hart+16 corrected for redshift.

    For each question of `DETAIL_QUESTIONS` the detail answers' total gets back
    the logit shift `loss * (1 - vis)` that `true_probabilities` took from it
    (so on average it recovers what the galaxy would get if near and bright),
    and the null answer drops by `NULL_DEBIAS_SHARE` of that shift. The other
    questions keep their weighted fractions. Works on (37,) or (N, 37) with vis
    a scalar or (N,); 0 and 1 stay 0 and 1.
    """
    out = np.array(weighted_fraction, dtype=np.float64)
    shift = (1.0 - np.asarray(vis, dtype=np.float64))[..., None] * _DETAIL_LOSS  # (..., questions)
    mass = out @ _DETAIL_MATRIX
    gain = _safe_ratio(_shift_logit(mass, shift), mass)
    out *= 1.0 + (gain - 1.0) @ _DETAIL_MATRIX.T  # each detail answer scaled by its question's gain
    out[..., _NULL_ANSWERS] = _shift_logit(out[..., _NULL_ANSWERS], -NULL_DEBIAS_SHARE * shift)
    return out


def _shift_logit(p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """sigmoid(logit(p) + shift), keeping exact 0 and 1."""
    p = np.asarray(p, dtype=np.float64)
    clipped = np.clip(p, 1e-12, 1.0 - 1e-12)
    moved = 1.0 / (1.0 + np.exp(-(np.log(clipped / (1.0 - clipped)) + shift)))
    return np.where(p <= 0.0, 0.0, np.where(p >= 1.0, 1.0, moved))
