import numpy as np
import pandas as pd
import pytest

from galaxyzoo import schema


def test_hart16_columns_match_real_file(real_dir):
    real = pd.read_csv(real_dir / "gz2" / "hart16_columns.csv")
    assert schema.hart16_columns() == list(zip(real["column"], real["dtype"]))
    assert len(schema.hart16_columns()) == 231


def test_tree_shape():
    assert len(schema.QUESTIONS) == 11
    assert len(schema.ANSWERS) == 37
    assert [len(q.answers) for q in schema.QUESTIONS] == [3, 2, 2, 2, 4, 2, 3, 7, 3, 3, 6]
    assert [a.index for a in schema.ANSWERS] == list(range(37))
    for q in schema.QUESTIONS:
        if q.parent:
            parent = schema.ANSWER_BY_STEM[q.parent]
            assert parent.index < q.start, "parents come before children in file order"


def test_target_and_kaggle_columns():
    cols = schema.target_columns()
    assert cols[0] == "t01_smooth_or_features_a01_smooth_debiased"
    assert cols[24] == "t08_odd_feature_a38_dust_lane_debiased"
    assert cols[-1] == "t11_arms_number_a37_cant_tell_debiased"
    kag = schema.kaggle_columns()
    assert kag[:4] == ["Class1.1", "Class1.2", "Class1.3", "Class2.1"]
    assert kag[24] == "Class8.7" and kag[-1] == "Class11.6"
    with pytest.raises(ValueError, match="unknown hart16 suffix"):
        schema.ANSWERS[0].column("votes")


def test_split_by_question():
    x = np.arange(2 * 37).reshape(2, 37)
    parts = schema.split_by_question(x)
    assert list(parts) == [q.id for q in schema.QUESTIONS]
    assert parts["t08"].shape == (2, 7)
    assert np.array_equal(np.concatenate(list(parts.values()), axis=1), x)
    with pytest.raises(ValueError, match="37"):
        schema.split_by_question(np.zeros((2, 36)))


def _fractions_for_path():
    f = np.zeros(37)
    f[schema.QUESTIONS[0].slice] = [0.2, 0.7, 0.1]  # smooth, features, star
    f[schema.QUESTIONS[1].slice] = [0.4, 0.6]  # edge-on yes/no
    f[schema.QUESTIONS[3].slice] = [0.5, 0.5]  # spiral
    f[schema.QUESTIONS[10].slice] = [0, 1, 0, 0, 0, 0]  # two arms
    f[schema.QUESTIONS[5].slice] = [0.3, 0.7]
    return f


def test_cumulative_multiplies_down_the_tree():
    f = _fractions_for_path()
    c = schema.cumulative(f[None])[0]
    assert c[0] == pytest.approx(0.2)
    assert c[3] == pytest.approx(0.7 * 0.4)  # Class2.1
    assert c[7] == pytest.approx(0.7 * 0.6 * 0.5)  # Class4.1
    assert c[32] == pytest.approx(0.7 * 0.6 * 0.5 * 1.0)  # Class11.2
    assert c[13] == pytest.approx(0.3)  # t06 is always reached (Kaggle convention)
    assert c[18] == pytest.approx(0.0)  # t08 scaled by t06 a14 = 0.3 times its own 0


def test_tree_violations():
    counts = np.zeros((2, 37), dtype=int)
    counts[:, 0:3] = [10, 30, 0]
    counts[:, 3:5] = [5, 25]
    counts[:, 7:9] = [20, 5]
    counts[1, 16] = 2  # t07 votes although nobody answered smooth ... row 1 has 10 smooth, fine
    assert not schema.tree_violations(counts).any()
    counts[1, 0] = 0  # now t07 has votes but its parent answer none
    assert schema.tree_violations(counts).tolist() == [False, True]


def test_most_likely_path():
    f = _fractions_for_path()
    path = schema.most_likely_path(f)[0]
    assert path[0] == "t01_smooth_or_features_a02_features_or_disk"
    assert "t02_edgeon_a05_no" in path
    assert "t11_arms_number_a32_2" in path
    assert not any(s.startswith("t07") or s.startswith("t09") for s in path)
    assert path[-1].startswith("t06") or path[-1].startswith("t1")
    star = np.zeros(37)
    star[2] = 1.0
    assert schema.most_likely_path(star)[0] == ["t01_smooth_or_features_a03_star_or_artifact"]
