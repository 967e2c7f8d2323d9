"""The Dirichlet head's concentrations as fractions, 90 % intervals and their coverage.

The `"dirichlet"` head (`model.network`) outputs, per galaxy, 37 concentrations
`alpha`: for each question a Dirichlet distribution over its answer
probabilities. With `model.dirichlet_components` K of 2 or more it outputs a
mixture of K Dirichlets per question instead: K x 37 concentrations, component
after component, then K x 11 weights (each question's K weights sum to 1), so
`K * 48` columns (`model.head_layout`; `components` splits them). Everything
downstream reads both layouts through this module:

```python
from galaxyzoo.model import dirichlet
y = dirichlet.fractions(outputs)               # (N, 37): the mean, alpha / its question's sum
low, high = dirichlet.intervals(outputs)       # 5th and 95th percentiles of each answer's probability
table = dirichlet.coverage(outputs, true_probs, counts)   # per question: how often the truth lies inside
best = dirichlet.truth_vote_coverage(true_probs, counts)  # what a head that knew the truth would score
scale = dirichlet.fit_scales(val_outputs, val_counts)     # (37,): one factor per question (`train.calibrate_head`)
```

Each answer's marginal under Dirichlet(alpha) is Beta(alpha_i, alpha0 - alpha_i),
alpha0 the sum over its question, so percentiles are exact (scipy), not
sampled. A mixture's marginal is the weighted sum of its components' Betas,
whose percentiles have no closed form: `Mixture` finds them by bisection of
the CDF, to within 2**-30. An observed vote fraction `k / n` has a second
source of spread, the `n` volunteers' own draws: its predictive distribution
is the beta-binomial BetaBinomial(n, alpha_i, alpha0 - alpha_i) (`vote_intervals`).

A vote count is discrete, so "inside the 90 % interval" needs care: the
equal-tailed interval of whole counts (its 5th to 95th percentile) holds at
least 90 % of the chances, and nearly all of them where an answer is nearly
decided (35 votes at p = 0.03 give 0 votes a third of the time, so the 5th
percentile is 0 and nothing falls below it). Votes drawn from the truth
itself land inside such intervals 94-99 % of the time on the synthetic
benchmark. `coverage` therefore scores the votes
with the randomised probability integral transform of Czado, Gneiting and
Held (2009, "Predictive model assessment for count data"): a count k stands
for a point drawn evenly from its step [F(k - 1), F(k)] of the predictive CDF,
and counts as inside by the share of that step within [0.05, 0.95]. Votes
drawn from the predicted distribution then score 0.90 on average, as a
continuous variable would.

NumPy and SciPy only: no Keras, so the benchmark and the tests read it cheaply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln, logsumexp

from galaxyzoo import schema
from galaxyzoo.model.head_layout import n_components
from galaxyzoo.model.metrics import answer_arrays

LEVEL = 0.9  # the central interval predict writes: its 5th and 95th percentiles
# Votes on a question below which GZ2 does not use its fractions (Willett et al. 2013's clean samples, hart16's
# `_flag`): with fewer the votes cannot tell a wide interval from a narrow one (docs/benchmarks.md).
WELL_VOTED = 10
SCALE_GRID = np.exp(np.linspace(-np.log(10.0), np.log(10.0), 93))  # 1/10 to 10 in 5.1 % steps; holds 1 exactly
_STARTS = np.array([q.start for q in schema.QUESTIONS])


def question_totals(x: np.ndarray) -> np.ndarray:
    """(N, 37) -> (N, 37): each answer's question's sum (alpha0 for concentrations, n for vote counts)."""
    x = np.asarray(x, dtype=np.float64)
    sums = np.stack([x[:, q.slice].sum(axis=1) for q in schema.QUESTIONS], axis=1)
    return sums[:, schema.QUESTION_OF_ANSWER]


def components(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A head's (N, 37) or (N, K * 48) outputs -> `alpha` and each answer's weight, both (K, N, 37) float64.

    An answer's weight is its question's weight of the component; one Dirichlet has weight 1.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise ValueError(f"expected a head's outputs of shape (N, columns), got {outputs.shape}")
    k, n = n_components(outputs.shape[1]), schema.N_ANSWERS
    if k == 1:
        return outputs[None], np.ones((1, *outputs.shape))
    alpha = outputs[:, : k * n].reshape(-1, k, n).transpose(1, 0, 2)
    weights = outputs[:, k * n:].reshape(-1, k, len(schema.QUESTIONS)).transpose(1, 0, 2)
    return alpha, weights[:, :, schema.QUESTION_OF_ANSWER]


def fractions(outputs: np.ndarray) -> np.ndarray:
    """A head's outputs -> the (N, 37) mean answer probabilities, as float32: alpha / its question's sum,
    for a mixture the weighted sum of its components' means.

    Every question sums to 1, as with the softmax head.
    """
    alpha, weights = components(outputs)
    return sum(w * a / question_totals(a) for a, w in zip(alpha, weights)).astype(np.float32)


def intervals(outputs: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (N, 37): the central `level` interval of each answer's true probability."""
    alpha, weights = components(outputs)
    return _central(_mixed([stats.beta(*beta_parameters(a)) for a in alpha], weights, upper=1.0), level)


def vote_intervals(outputs: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) vote fractions, each (N, 37): the central `level` interval of `k / n` for the
    `n` votes each question got (`counts` summed over it); NaN where the question got none.

    The beta-binomial is discrete: its interval holds at least `level` of the votes' chances.
    """
    n = question_totals(counts)
    low, high = _central(vote_predictive(outputs, n), level)
    unvoted = n == 0
    return np.where(unvoted, np.nan, low / np.maximum(n, 1)), np.where(unvoted, np.nan, high / np.maximum(n, 1))


def coverage(outputs: np.ndarray, true_probs: np.ndarray, counts: np.ndarray, level: float = LEVEL,
             min_votes: int = 1) -> pd.DataFrame:
    """Per question, the share of (galaxy, answer) pairs whose truth lies inside the predicted interval.

    `true_probs` (N, 37) are the probabilities the volunteers voted from (the
    synthetic sample's `truth.csv`), `counts` (N, 37) their votes. Only the
    galaxies whose question got at least `min_votes` votes count (`galaxies`): a
    question nobody reached has no observed fraction, and the head learnt nothing
    from it there. (`WELL_VOTED`, GZ2's own bar for using a question's fractions,
    leaves out the galaxies whose votes are too few to tell how wide the truth's
    interval should be.)

    - `true_coverage` tests `true_probs` against `intervals` (bounds inclusive);
    - `vote_coverage` scores the observed count against the beta-binomial by
      the randomised PIT (module docstring): a calibrated head gives `level`;
    - `vote_interval_coverage` tests the observed fraction `k / n` against
      `vote_intervals`, bounds inclusive: at least `level` for a calibrated
      head, and more where answers are nearly decided;
    - each `*_se` is that share's standard error over the galaxies (`per_question`).
    """
    true_probs, counts = answer_arrays(true_probs=true_probs, counts=counts)
    if len(outputs) != len(true_probs):
        raise ValueError(f"expected outputs for the {len(true_probs)} galaxies of true_probs and counts, "
                         f"got {len(outputs)}")
    low, high = intervals(outputs, level)
    n = question_totals(counts)
    return per_question(n, true_coverage=(low <= true_probs) & (true_probs <= high), min_votes=min_votes,
                        **vote_measures(vote_predictive(outputs, n), counts, level))


def truth_vote_coverage(true_probs: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> pd.DataFrame:
    """`coverage`'s vote columns for a head that knew each galaxy's truth exactly.

    Its predictive distribution of the votes is Binomial(n, p): the best any
    head can do, so this is what calibration looks like on the same galaxies
    (`vote_coverage` near `level`, `vote_interval_coverage` above it).
    `true_coverage` is left out: an exact truth is always inside its own point.
    Raises ValueError for a truth that is not a probability table.
    """
    probs, counts = answer_arrays(true_probs=true_probs, counts=counts)
    totals = question_totals(probs)
    if not (np.isfinite(probs).all() and (probs >= 0).all() and (totals > 0).all()):
        raise ValueError("true_probs must be finite and >= 0, with every question's answers summing to more than 0")
    n = question_totals(counts)
    # truth.csv rounds each probability to 6 decimals, so a question's sum can miss 1 by a few 1e-6.
    votes = stats.binom(np.maximum(n, 1), np.clip(probs / totals, 0.0, 1.0))
    return per_question(n, **vote_measures(votes, counts, level))


def vote_predictive(outputs: np.ndarray, n: np.ndarray):
    """Each answer's votes' predictive distribution: the frozen BetaBinomial(n, a, b), or for a mixture
    head the weighted sum of its components' (a `Mixture`).

    n = 0 stands in as 1, so every entry is defined; callers drop those entries or set them to NaN.
    """
    alpha, weights = components(outputs)
    n = np.maximum(n, 1)
    return _mixed([stats.betabinom(n, *beta_parameters(a)) for a in alpha], weights, upper=n)


class Mixture:
    """A weighted sum of frozen SciPy distributions of one shape, each on [0, `upper`]: `cdf` and `ppf`.

    Integer-valued parts (the beta-binomials) get integer quantiles, the smallest k with cdf(k) >= q,
    as SciPy's own `ppf`; continuous ones are bisected to within `upper` * 2**-30.
    """

    def __init__(self, parts: list, weights: np.ndarray, upper):
        self.parts, self.weights, self.upper = parts, weights, upper
        self.discrete = isinstance(parts[0].dist, stats.rv_discrete)

    def cdf(self, x):
        return sum(w * part.cdf(x) for w, part in zip(self.weights, self.parts))

    def ppf(self, q: float) -> np.ndarray:
        # Invariant: cdf(low) < q <= cdf(high); the discrete search starts below 0, where the cdf is 0.
        shape = self.weights.shape[1:]
        low = np.full(shape, -1.0 if self.discrete else 0.0)
        high = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), shape).copy()
        for _ in range(64 if self.discrete else 30):
            mid = np.floor((low + high) / 2) if self.discrete else (low + high) / 2
            below = self.cdf(mid) < q
            low, high = np.where(below, mid, low), np.where(below, high, mid)
            if self.discrete and (high - low <= 1).all():
                break
        found = high if self.discrete else (low + high) / 2
        # A NaN parameter (an image that could not be cropped) makes every comparison false: NaN, not a number.
        return np.where(np.isnan(self.cdf(found)), np.nan, found)


def _mixed(parts: list, weights: np.ndarray, upper):
    """One part as itself (SciPy's exact quantiles), several as their `Mixture`."""
    return parts[0] if len(parts) == 1 else Mixture(parts, weights, upper)


def vote_measures(votes, counts: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Per (galaxy, answer): the randomised PIT's share inside the central band, and whether the count
    lies inside the inclusive interval of whole counts, under the predictive `votes` (anything with a
    vectorised `cdf`: a frozen SciPy distribution, or a mixture of them)."""
    tail = (1.0 - level) / 2
    below, at = votes.cdf(counts - 1), votes.cdf(counts)
    step = at - below
    overlap = np.clip(np.minimum(at, 1.0 - tail) - np.maximum(below, tail), 0.0, None)
    # A count the prediction gave no chance at all (step 0) is outside.
    share = np.divide(overlap, step, out=np.zeros_like(step), where=step > 0)
    # k lies in [ppf(tail), ppf(1 - tail)] exactly when F(k) >= tail and F(k - 1) < 1 - tail: the same
    # interval test as `vote_intervals`, read off the CDF already in hand (a discrete ppf is a search).
    inside = (at >= tail) & (below < 1.0 - tail)
    return {"vote_coverage": share, "vote_interval_coverage": inside}


def per_question(n: np.ndarray, min_votes: int = 1, **measures: np.ndarray) -> pd.DataFrame:
    """The coverage table: each (N, 37) measure averaged per question over the galaxies whose question got
    at least `min_votes` votes (`n`: each answer's question's vote total, `question_totals(counts)`), and its
    standard error (`<measure>_se`).

    A galaxy's answers share its image and its crowd, so they are not independent draws; galaxies are.
    Each galaxy's mean over the question's answers is one draw, and the share is the mean of those
    (every galaxy has the same answers), so its standard error is their sd / sqrt(galaxies).
    """
    rows = []
    for q in schema.QUESTIONS:
        voted = n[:, q.start] >= max(min_votes, 1)
        row = {"question": q.id, "slug": q.slug, "galaxies": int(voted.sum())}
        for name, m in measures.items():
            per_galaxy = m[voted, q.slice].mean(axis=1)
            row[name] = float(per_galaxy.mean()) if per_galaxy.size else float("nan")
            se = per_galaxy.std(ddof=1) / np.sqrt(per_galaxy.size) if per_galaxy.size > 1 else np.nan
            row[f"{name}_se"] = float(se)
        rows.append(row)
    return pd.DataFrame(rows, columns=["question", "slug", "galaxies", *measures, *(f"{m}_se" for m in measures)])


def scaled(outputs: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A head's outputs with each answer's concentrations (every component's) multiplied by `scale` (37,).

    One factor per question keeps its means and widens (< 1) or narrows (> 1) its intervals.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    k = n_components(outputs.shape[1])
    factors = np.ones(outputs.shape[1])
    factors[: k * schema.N_ANSWERS] = np.tile(np.asarray(scale, dtype=np.float64), k)
    return outputs * factors


def vote_log_likelihood(outputs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(N, 11): the log-likelihood of each question's votes under the head, less the multinomial
    coefficient (no head changes it): Dirichlet-multinomial, for a mixture its weighted sum.

    A question that got no votes scores 0.
    """
    alpha, weights = components(outputs)
    counts = np.asarray(counts, dtype=np.float64)
    per_answer = gammaln(alpha + counts) - gammaln(alpha)
    by_question = np.add.reduceat(per_answer, _STARTS, axis=-1)
    total, n = np.add.reduceat(alpha, _STARTS, axis=-1), np.add.reduceat(counts, _STARTS, axis=-1)
    log_dm = gammaln(total) - gammaln(total + n) + by_question
    with np.errstate(divide="ignore"):  # a component of weight 0 adds nothing
        return logsumexp(log_dm + np.log(weights[..., _STARTS]), axis=0)


def fit_scales(outputs: np.ndarray, counts: np.ndarray, grid: np.ndarray = SCALE_GRID) -> np.ndarray:
    """(37,): per question, the factor on `grid` whose scaled concentrations give held-out votes
    `counts` the highest likelihood (`vote_log_likelihood`); 1 where no factor does better.

    The factors are what `train.calibrate_head` writes into the head (`network.with_concentration_scale`).
    Raises ValueError for non-finite outputs or counts, which would make a question's every total NaN.
    """
    outputs, counts = np.asarray(outputs, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    if not (np.isfinite(outputs).all() and np.isfinite(counts).all()):
        raise ValueError("fit_scales needs finite outputs and counts")
    totals = np.stack([vote_log_likelihood(scaled(outputs, np.full(schema.N_ANSWERS, s)), counts).sum(axis=0)
                       for s in grid])
    one = int(np.argmin(np.abs(np.log(grid))))
    best = np.argmax(totals, axis=0)
    # No votes on a question (or no change worth a float's rounding) keeps its intervals as trained.
    best = np.where(totals[best, np.arange(totals.shape[1])] > totals[one] + 1e-9, best, one)
    return grid[best][schema.QUESTION_OF_ANSWER]


def _central(distribution, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central `level` interval of a frozen SciPy distribution, from its (1 - level) / 2 quantile up."""
    tail = (1.0 - level) / 2
    return distribution.ppf(tail), distribution.ppf(1.0 - tail)


def beta_parameters(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each answer's marginal Beta(a, b): a = alpha_i, b = alpha0 - alpha_i."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return alpha, question_totals(alpha) - alpha
