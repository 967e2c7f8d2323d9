"""The Dirichlet head's concentrations as fractions, 90 % intervals and their coverage.

The `"dirichlet"` head (`model.network`) outputs, per galaxy, 37 concentrations
`alpha`: for each question a Dirichlet distribution over its answer
probabilities. Everything downstream reads them through this module:

```python
from galaxyzoo.model import dirichlet
y = dirichlet.fractions(alpha)                 # (N, 37): the mean, alpha / its question's sum
low, high = dirichlet.intervals(alpha)         # 5th and 95th percentiles of each answer's probability
table = dirichlet.coverage(alpha, true_probs, counts)   # per question: how often the truth lies inside
```

Each answer's marginal under Dirichlet(alpha) is Beta(alpha_i, alpha0 - alpha_i),
alpha0 the sum over its question, so percentiles are exact (scipy), not
sampled. An observed vote fraction `k / n` has a second source of spread, the
`n` volunteers' own draws: its predictive distribution is the beta-binomial
BetaBinomial(n, alpha_i, alpha0 - alpha_i) (`vote_intervals`).

NumPy and SciPy only: no Keras, so the benchmark and the tests read it cheaply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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


def _beta_parameters(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each answer's marginal Beta(a, b): a = alpha_i, b = alpha0 - alpha_i."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return alpha, question_totals(alpha) - alpha
