"""The `gz2_class` morphology string of a galaxy, in Willett+13 / Hart+16 notation.

The string follows the plurality answer down the tree:

- `A`: star or artifact.
- `E` + roundness: `Er` completely round, `Ei` in between, `Ec` cigar-shaped.
- `Se` + edge-on bulge: `Ser` rounded, `Seb` boxy, `Sen` none.
- `S` [+ `B` if barred] + bulge prominence `a` dominant, `b` obvious,
  `c` just noticeable, `d` none [+ arm count `1 2 3 4 +` (more than 4) or `?`
  (can't tell) + winding `t m l`, if spiral]: `Sb`, `SBc`, `Sc+t`, `SBb2m`.
- An odd feature adds a suffix: `(r)` ring, `(l)` lens or arc, `(d)`
  disturbed, `(i)` irregular, `(o)` other, `(m)` merger, `(u)` dust lane:
  `Sb(r)`, `Ei(m)`, `SBc4t(u)`.

>>> import numpy as np
>>> from galaxyzoo import schema
>>> f = np.zeros(37); c = np.ones(37, dtype=int)
>>> for stem in ("t01_smooth_or_features_a01_smooth", "t07_rounded_a17_in_between", "t06_odd_a15_no"):
...     f[schema.ANSWER_BY_STEM[stem].index] = 1.0
>>> gz2_class(f, c)
'Ei'

Approximations (the published rules are not spelled out in code): every step
takes the answer with the largest fraction (ties go to the earlier answer);
bar, spiral, edge-on and odd are the plurality of their yes/no pair, which for
fractions summing to 1 is a simple majority; a question that got no votes adds
no letter (it cannot happen on a path the plurality took with real votes).
Pass the `_debiased` fractions, as the synthetic catalogue does.
"""

from __future__ import annotations

import re

import numpy as np

from galaxyzoo import schema

ROUNDNESS = "ric"  # t07: completely round, in between, cigar-shaped
EDGE_ON_BULGE = "rbn"  # t09: rounded, boxy, no bulge
BULGE_PROMINENCE = "dcba"  # t05: no bulge, just noticeable, obvious, dominant
ARM_NUMBER = "1234+?"  # t11: 1, 2, 3, 4, more than 4, can't tell
WINDING = "tml"  # t10: tight, medium, loose
ODD_FEATURE = "rldiomu"  # t08: ring, lens/arc, disturbed, irregular, other, merger, dust lane

CLASS_PATTERN = re.compile(r"^(A|E[ric](\([rldiomu]\))?|S(e[rbn]|B?[abcd]([1234+?][tml])?)(\([rldiomu]\))?)$")
"""The full strings `gz2_class` produces when every question on the path got votes."""


def gz2_class(fractions: np.ndarray, counts: np.ndarray) -> str:
    """The morphology string from one galaxy's 37 fractions and vote counts."""
    fractions = np.asarray(fractions, dtype=np.float64)
    counts = np.asarray(counts)
    if fractions.shape != (schema.N_ANSWERS,) or counts.shape != (schema.N_ANSWERS,):
        raise ValueError(f"expected two ({schema.N_ANSWERS},) arrays, got {fractions.shape} and {counts.shape}")

    def answered(qid: str) -> bool:
        return bool(counts[schema.QUESTION_BY_ID[qid].slice].sum() > 0)

    def top(qid: str) -> int:
        return int(np.argmax(fractions[schema.QUESTION_BY_ID[qid].slice]))

    def letter(qid: str, letters: str) -> str:
        return letters[top(qid)] if answered(qid) else ""

    first = top("t01")
    if first == 2:
        return "A"
    if first == 0:
        return "E" + letter("t07", ROUNDNESS) + _odd_suffix(answered, top)
    if answered("t02") and top("t02") == 0:
        return "Se" + letter("t09", EDGE_ON_BULGE) + _odd_suffix(answered, top)
    label = "S"
    if answered("t03") and top("t03") == 0:
        label += "B"
    label += letter("t05", BULGE_PROMINENCE)
    if answered("t04") and top("t04") == 0:
        label += letter("t11", ARM_NUMBER) + letter("t10", WINDING)
    return label + _odd_suffix(answered, top)


def _odd_suffix(answered, top) -> str:
    if answered("t06") and top("t06") == 0 and answered("t08"):
        return f"({ODD_FEATURE[top('t08')]})"
    return ""
