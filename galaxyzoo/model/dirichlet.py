"""The Dirichlet head's concentrations as fractions, 90 % intervals and their coverage.

The `"dirichlet"` head (`model.network`) outputs, per galaxy, 37 concentrations
`alpha`: for each question a Dirichlet distribution over its answer
probabilities. Everything downstream reads them through this module:

```python
from galaxyzoo.model import dirichlet
y = dirichlet.fractions(alpha)                 # (N, 37): the mean, alpha / its question's sum
low, high = dirichlet.intervals(alpha)         # 5th and 95th percentiles of each answer's probability
table = dirichlet.coverage(alpha, true_probs, counts)   # per question: how often the truth lies inside
scales = dirichlet.fit_scales(alpha_val, counts_val)   # per question: the spread the validation votes call for
```

Each answer's marginal under Dirichlet(alpha) is Beta(alpha_i, alpha0 - alpha_i),
alpha0 the sum over its question, so percentiles are exact (scipy), not
sampled. An observed vote fraction `k / n` has a second source of spread, the
`n` volunteers' own draws: its predictive distribution is the beta-binomial
BetaBinomial(n, alpha_i, alpha0 - alpha_i) (`vote_intervals`).

The learned concentrations come out too sure for some questions and too unsure
for others (a network that fits the means well learns their spread less well).
`fit_scales` is temperature scaling for a Dirichlet: one factor per question
multiplies its concentrations, which keeps every mean and widens or narrows
every interval, chosen so that held-out vote counts fall inside their intervals
as often as the intervals promise. The votes are all a real catalogue has, so
the truth stays an independent check.

NumPy and SciPy only: no Keras, so the benchmark and the tests read it cheaply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from galaxyzoo import schema

LEVEL = 0.9  # the central interval predict writes: its 5th and 95th percentiles
COVERAGE_COLUMNS = ("question", "slug", "galaxies", "true_coverage", "vote_coverage")


def question_totals(x: np.ndarray) -> np.ndarray:
    """(N, 37) -> (N, 37): each answer's question's sum (alpha0 for concentrations, n for vote counts)."""
    x = np.asarray(x, dtype=np.float64)
    sums = np.stack([x[:, q.slice].sum(axis=1) for q in schema.QUESTIONS], axis=1)
    return sums[:, schema.QUESTION_OF_ANSWER]


def fractions(alpha: np.ndarray) -> np.ndarray:
    """(N, 37) concentrations -> the Dirichlet means, alpha / its question's sum, as float32.

    Every question sums to 1, as with the softmax head.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    return (alpha / question_totals(alpha)).astype(np.float32)


def intervals(alpha: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (N, 37): the central `level` interval of each answer's true probability."""
    a, b = _beta_parameters(alpha)
    tail = (1.0 - level) / 2
    return stats.beta.ppf(tail, a, b), stats.beta.ppf(1.0 - tail, a, b)


def vote_intervals(alpha: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) vote fractions, each (N, 37): the central `level` interval of `k / n` for the
    `n` votes each question got (`counts` summed over it); NaN where the question got none.

    The beta-binomial is discrete: its interval holds at least `level` of the votes' chances.
    """
    a, b = _beta_parameters(alpha)
    n = question_totals(counts)
    voted = n > 0
    tail = (1.0 - level) / 2
    low, high = np.full(a.shape, np.nan), np.full(a.shape, np.nan)
    low[voted] = stats.betabinom.ppf(tail, n[voted], a[voted], b[voted]) / n[voted]
    high[voted] = stats.betabinom.ppf(1.0 - tail, n[voted], a[voted], b[voted]) / n[voted]
    return low, high


def coverage(alpha: np.ndarray, true_probs: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> pd.DataFrame:
    """Per question, the share of (galaxy, answer) pairs whose truth lies inside the predicted interval.

    `true_probs` (N, 37) are the probabilities the volunteers voted from (the
    synthetic sample's `truth.csv`), `counts` (N, 37) their votes. Only the
    galaxies whose question got votes count (`galaxies`): a question nobody
    reached has no observed fraction, and the head learnt nothing from it there.
    `true_coverage` tests `true_probs` against `intervals`, `vote_coverage` the
    observed fraction `k / n` against `vote_intervals`; a calibrated head gives
    `level` for both. Bounds are inclusive.
    """
    counts = np.asarray(counts, dtype=np.float64)
    true_probs = np.asarray(true_probs, dtype=np.float64)
    if not (np.shape(alpha) == true_probs.shape == counts.shape and counts.ndim == 2
            and counts.shape[1] == schema.N_ANSWERS):
        raise ValueError(f"expected alpha, true_probs and counts of one shape (N, {schema.N_ANSWERS}), got "
                         f"{np.shape(alpha)}, {true_probs.shape} and {counts.shape}")
    low, high = intervals(alpha, level)
    vote_low, vote_high = vote_intervals(alpha, counts, level)
    n = question_totals(counts)
    true_inside = (low <= true_probs) & (true_probs <= high)
    # A fraction k/n against bounds that are multiples of 1/n: compare the counts, free of rounding.
    vote_inside = (np.round(vote_low * n) <= counts) & (counts <= np.round(vote_high * n))
    rows = []
    for q in schema.QUESTIONS:
        voted = n[:, q.start] > 0
        rows.append({
            "question": q.id,
            "slug": q.slug,
            "galaxies": int(voted.sum()),
            "true_coverage": float(true_inside[voted, q.slice].mean()) if voted.any() else float("nan"),
            "vote_coverage": float(vote_inside[voted, q.slice].mean()) if voted.any() else float("nan"),
        })
    return pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))


def fit_scales(alpha: np.ndarray, counts: np.ndarray, level: float = LEVEL,
               bounds: tuple[float, float] = (0.05, 20.0)) -> np.ndarray:
    """(11,) per-question factors `s` under which `s * alpha`'s vote intervals cover `counts` as often as they should.

    `alpha` and `counts` are (N, 37) for the same galaxies (a validation
    split). For each question, `s` makes the share of observed votes inside
    their `level` beta-binomial interval (`vote_intervals`) equal the chance
    the interval itself gives them (a little over `level`: it is discrete).
    Matching coverage, not the likelihood, keeps a few badly predicted
    galaxies from widening every interval. Galaxies without votes on a
    question do not count for it; a question nobody answered keeps 1; `s`
    stays within `bounds` (searched from the narrow end on a coarse log grid,
    then refined).
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    scales = np.ones(len(schema.QUESTIONS))
    for i, q in enumerate(schema.QUESTIONS):
        a, k = alpha[:, q.slice], counts[:, q.slice]
        voted = k.sum(axis=1) > 0
        if not voted.any():
            continue
        a, k = a[voted], k[voted]

        def excess(log_s: float) -> float:  # observed minus promised coverage
            inside, chance = _vote_coverage(np.exp(log_s) * a, k, level)
            return inside - chance

        # Too narrow (large s) the votes fall outside more often than promised, too wide inside more
        # often; but far too wide, every interval holds every count and both shares tend to 1. So
        # search down from the narrow end for the first crossing, not over the whole range.
        grid = np.linspace(*np.log(bounds)[::-1], 13)
        values = [excess(x) for x in grid]
        crossing = next((j for j in range(1, len(grid)) if values[j - 1] < 0 <= values[j]), None)
        if values[0] >= 0:
            scales[i] = bounds[1]
        elif crossing is None:  # under-covered even when widest: the closest it comes
            scales[i] = float(np.exp(grid[int(np.argmax(values))]))
        else:
            scales[i] = float(np.exp(optimize.brentq(excess, grid[crossing], grid[crossing - 1], xtol=1e-3)))
    return scales


def answer_scales(question_scales: np.ndarray) -> np.ndarray:
    """(11,) per-question factors -> (37,), each answer its question's factor."""
    return np.asarray(question_scales, dtype=np.float32)[schema.QUESTION_OF_ANSWER]


def _vote_coverage(alpha: np.ndarray, counts: np.ndarray, level: float) -> tuple[float, float]:
    """One question's (N, k) concentrations and votes: the share of counts inside their central `level`
    beta-binomial interval, and the mean chance of that interval.

    The same interval as `vote_intervals` (the smallest j with cdf(j) >= tail), from a table of the
    pmf over 0..max n: votes number a few dozen, and scipy's generic discrete ppf is slow in a search.
    """
    n = counts.sum(axis=1, keepdims=True)
    b = alpha.sum(axis=1, keepdims=True) - alpha
    j = np.arange(int(n.max()) + 1)[None, None, :]
    nn, aa, bb = n[..., None], alpha[..., None], b[..., None]
    log_pmf = (special.gammaln(nn + 1) - special.gammaln(j + 1) - special.gammaln(np.maximum(nn - j, 0) + 1)
               + special.betaln(j + aa, np.maximum(nn - j, 0) + bb) - special.betaln(aa, bb))
    cdf = np.cumsum(np.where(j <= nn, np.exp(log_pmf), 0.0), axis=-1)
    tail = (1.0 - level) / 2
    # Relative slack: the cdf is a float sum that may end a hair below the probability it names.
    low = (cdf < tail * (1 - 1e-9)).sum(axis=-1)
    high = (cdf < (1.0 - tail) * (1 - 1e-9)).sum(axis=-1)
    inside = (low <= counts) & (counts <= high)
    below = np.take_along_axis(cdf, np.maximum(low - 1, 0)[..., None], axis=-1)[..., 0] * (low > 0)
    chance = np.take_along_axis(cdf, high[..., None], axis=-1)[..., 0] - below
    return float(inside.mean()), float(chance.mean())


def _beta_parameters(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each answer's marginal Beta(a, b): a = alpha_i, b = alpha0 - alpha_i."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return alpha, question_totals(alpha) - alpha
