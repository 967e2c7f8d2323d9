"""The Galaxy Zoo 2 decision tree as data.

Volunteers answer up to 11 questions; which questions they see depends on earlier
answers. Every answer has six columns in the Hart et al. (2016) table
(`gz2_hart16.csv`) and a `ClassN.M` name in the Kaggle 2014 challenge. This module
is the single source for those names and for the tree's arithmetic:

>>> from galaxyzoo import schema
>>> schema.QUESTIONS[0].answers[1].column("debiased")
't01_smooth_or_features_a02_features_or_disk_debiased'
>>> schema.ANSWERS[36].kaggle
'Class11.6'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUFFIXES = ("count", "weight", "fraction", "weighted_fraction", "debiased", "flag")
"""The six hart16 columns of every answer, in file order."""

IDENTITY_COLUMNS = (
    ("dr7objid", "Int64"),
    ("ra", "float64"),
    ("dec", "float64"),
    ("rastring", "string"),
    ("decstring", "string"),
    ("sample", "string"),
    ("gz2_class", "string"),
    ("total_classifications", "int64"),
    ("total_votes", "int64"),
)
"""The nine hart16 columns before the answer columns, with their pandas dtypes."""

_SUFFIX_DTYPES = {"count": "int64", "flag": "int64"}


@dataclass(frozen=True)
class Answer:
    """One answer of one question, e.g. `t03_bar_a06_bar`."""

    question_id: str  # "t03"
    question_slug: str  # "bar"
    number: int  # 6, as in "a06" (not contiguous: a35 does not exist, a38 is dust lane)
    slug: str  # "bar"
    index: int  # position among the 37 targets
    kaggle: str  # "Class3.1"

    @property
    def stem(self) -> str:
        """The column stem shared by the answer's six hart16 columns."""
        return f"{self.question_id}_{self.question_slug}_a{self.number:02d}_{self.slug}"

    def column(self, suffix: str) -> str:
        """The hart16 column name for one of `SUFFIXES`."""
        if suffix not in SUFFIXES:
            raise ValueError(f"unknown hart16 suffix {suffix!r}; expected one of {SUFFIXES}")
        return f"{self.stem}_{suffix}"


@dataclass(frozen=True)
class Question:
    """One question of the tree with its answers in file order.

    `parent` is the answer that leads to this question, or None for a question
    every volunteer reaches. t06 ("anything odd?") closes every path except
    star/artifact; like the Kaggle challenge we treat it as always reached.
    """

    id: str  # "t03"
    slug: str  # "bar"
    text: str
    answers: tuple[Answer, ...] = field(repr=False)
    parent: str | None  # stem of the parent answer

    @property
    def start(self) -> int:
        """Index of the first answer among the 37 targets."""
        return self.answers[0].index

    @property
    def stop(self) -> int:
        """One past the index of the last answer among the 37 targets."""
        return self.answers[-1].index + 1

    @property
    def slice(self) -> slice:
        """Slice of this question's answers in a (..., 37) array."""
        return slice(self.start, self.stop)


# (id, slug, text, parent answer stem or None, [(number, slug), ...]) in file order.
_TREE = (
    ("t01", "smooth_or_features", "Is the galaxy smooth, with features or a disk, or a star/artifact?", None,
     [(1, "smooth"), (2, "features_or_disk"), (3, "star_or_artifact")]),
    ("t02", "edgeon", "Could this be a disk viewed edge-on?", "t01_smooth_or_features_a02_features_or_disk",
     [(4, "yes"), (5, "no")]),
    ("t03", "bar", "Is there a bar?", "t02_edgeon_a05_no", [(6, "bar"), (7, "no_bar")]),
    ("t04", "spiral", "Is there a spiral pattern?", "t02_edgeon_a05_no", [(8, "spiral"), (9, "no_spiral")]),
    ("t05", "bulge_prominence", "How prominent is the central bulge?", "t02_edgeon_a05_no",
     [(10, "no_bulge"), (11, "just_noticeable"), (12, "obvious"), (13, "dominant")]),
    ("t06", "odd", "Is there anything odd?", None, [(14, "yes"), (15, "no")]),
    ("t07", "rounded", "How rounded is it?", "t01_smooth_or_features_a01_smooth",
     [(16, "completely_round"), (17, "in_between"), (18, "cigar_shaped")]),
    ("t08", "odd_feature", "What is the odd feature?", "t06_odd_a14_yes",
     [(19, "ring"), (20, "lens_or_arc"), (21, "disturbed"), (22, "irregular"), (23, "other"),
      (24, "merger"), (38, "dust_lane")]),
    ("t09", "bulge_shape", "Does the edge-on galaxy have a bulge, and what shape?", "t02_edgeon_a04_yes",
     [(25, "rounded"), (26, "boxy"), (27, "no_bulge")]),
    ("t10", "arms_winding", "How tightly wound are the spiral arms?", "t04_spiral_a08_spiral",
     [(28, "tight"), (29, "medium"), (30, "loose")]),
    ("t11", "arms_number", "How many spiral arms are there?", "t04_spiral_a08_spiral",
     [(31, "1"), (32, "2"), (33, "3"), (34, "4"), (36, "more_than_4"), (37, "cant_tell")]),
)


def _build() -> tuple[tuple[Question, ...], tuple[Answer, ...]]:
    questions, answers = [], []
    for q_number, (qid, qslug, text, parent, spec) in enumerate(_TREE, start=1):
        q_answers = tuple(
            Answer(qid, qslug, number, slug, len(answers) + i, f"Class{q_number}.{i + 1}")
            for i, (number, slug) in enumerate(spec)
        )
        answers.extend(q_answers)
        questions.append(Question(qid, qslug, text, q_answers, parent))
    return tuple(questions), tuple(answers)


QUESTIONS, ANSWERS = _build()
N_ANSWERS = len(ANSWERS)  # 37
ANSWER_BY_STEM = {a.stem: a for a in ANSWERS}
QUESTION_BY_ID = {q.id: q for q in QUESTIONS}
# Each answer's question, as an index into QUESTIONS: `v[..., QUESTION_OF_ANSWER]` spreads 11 values over 37.
QUESTION_OF_ANSWER = np.array([qi for qi, q in enumerate(QUESTIONS) for _ in q.answers])


def target_columns(suffix: str = "debiased") -> list[str]:
    """The 37 answer columns with one suffix, in target order (the model's outputs)."""
    return [a.column(suffix) for a in ANSWERS]


def hart16_columns() -> list[tuple[str, str]]:
    """All 231 hart16 columns in file order, as (name, pandas dtype)."""
    cols = list(IDENTITY_COLUMNS)
    for a in ANSWERS:
        cols.extend((a.column(s), _SUFFIX_DTYPES.get(s, "float64")) for s in SUFFIXES)
    return cols


def kaggle_columns() -> list[str]:
    """The Kaggle 2014 names `Class1.1` ... `Class11.6` in target order."""
    return [a.kaggle for a in ANSWERS]


def split_by_question(values: np.ndarray) -> dict[str, np.ndarray]:
    """Slice an (N, 37) array into {question id: (N, n_answers)} views."""
    _check_width(values)
    return {q.id: values[..., q.slice] for q in QUESTIONS}


def reach_probability(fractions: np.ndarray) -> np.ndarray:
    """Probability of reaching each question, from per-question fractions.

    Returns an (N, 11) array: the product of the fractions of the answers on the
    path from the root to each question.
    """
    _check_width(fractions)
    reach = np.ones(fractions.shape[:-1] + (len(QUESTIONS),), dtype=np.float64)
    for qi, q in enumerate(QUESTIONS):  # parents always come earlier in file order
        if q.parent is not None:
            parent = ANSWER_BY_STEM[q.parent]
            parent_q = QUESTION_BY_ID[parent.question_id]
            reach[..., qi] = reach[..., QUESTIONS.index(parent_q)] * fractions[..., parent.index]
    return reach


def cumulative(fractions: np.ndarray) -> np.ndarray:
    """Kaggle-style cumulative probabilities from per-question fractions.

    Each answer's fraction is multiplied by the probability of reaching its
    question, as in the 2014 challenge's solution file.
    """
    reach = reach_probability(fractions)
    out = np.asarray(fractions, dtype=np.float64).copy()
    for qi, q in enumerate(QUESTIONS):
        out[..., q.slice] *= reach[..., qi : qi + 1]
    return out


def tree_violations(counts: np.ndarray) -> np.ndarray:
    """Rows whose vote counts break the tree.

    A question may only get votes if its parent answer got some. Returns a
    boolean (N,) array, True where some question has votes but its parent
    answer has none.
    """
    _check_width(counts)
    bad = np.zeros(counts.shape[:-1], dtype=bool)
    for q in QUESTIONS:
        if q.parent is None:
            continue
        parent = ANSWER_BY_STEM[q.parent]
        bad |= (counts[..., q.slice].sum(axis=-1) > 0) & (counts[..., parent.index] <= 0)
    return bad


def most_likely_path(fractions: np.ndarray) -> list[list[str]]:
    """The most likely walk down the tree for each row, as answer stems.

    From the root, take the answer with the highest fraction, then follow only
    the questions that answer opens (t06 closes every path except star/artifact).
    """
    _check_width(fractions)
    rows = np.atleast_2d(fractions)
    paths = []
    for row in rows:
        chosen: set[str] = set()
        path = []
        for q in QUESTIONS:
            reached = q.parent in chosen if q.parent else (
                q.id == "t01" or (q.id == "t06" and "t01_smooth_or_features_a03_star_or_artifact" not in chosen)
            )
            if not reached:
                continue
            best = q.answers[int(np.argmax(row[q.slice]))]
            chosen.add(best.stem)
            path.append(best.stem)
        paths.append(path)
    return paths


def _check_width(values: np.ndarray) -> None:
    if np.shape(values)[-1] != N_ANSWERS:
        raise ValueError(f"expected {N_ANSWERS} answer columns, got shape {np.shape(values)}")
