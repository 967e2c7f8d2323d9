import subprocess
import sys

import numpy as np
import pytest

from galaxyzoo import schema
from galaxyzoo.model import metrics

QUESTION_IDS = [q.id for q in schema.QUESTIONS]


def _one_hot_row():
    """Two galaxies, all targets 0 except the first answer of the first galaxy."""
    t = np.zeros((2, 37))
    t[0, 0] = 1.0
    return t


def test_mse_rmse_and_r2_flat_by_hand():
    t, p = _one_hot_row(), np.zeros((2, 37))
    assert metrics.mse(t, p) == pytest.approx(1 / 74)
    assert metrics.rmse(t, p) == pytest.approx(np.sqrt(1 / 74))
    # Global mean 1/74; SS_tot = (1 - 1/74)^2 + 73 (1/74)^2 = 73/74; SS_res = 1.
    assert metrics.r2_flat(t, p) == pytest.approx(1 - 74 / 73)
    assert np.isnan(metrics.r2_flat(np.zeros((2, 37)), np.zeros((2, 37))))


def test_r2_flat_and_r2_mean_columns_differ_as_documented():
    # Column j holds (c_j, c_j + 0.2) and the prediction is each column's mean:
    # every column's own R^2 is 0, but the flat R^2 credits the spread of the c_j.
    c = np.linspace(0.0, 0.7, 37)
    t = np.stack([c, c + 0.2])
    p = np.tile(c + 0.1, (2, 1))
    assert metrics.r2_mean_columns(t, p) == pytest.approx(0.0, abs=1e-12)
    ss_res = 37 * 2 * 0.01
    ss_tot = ss_res + 2 * np.sum((c - c.mean()) ** 2)
    assert metrics.r2_flat(t, p) == pytest.approx(1 - ss_res / ss_tot)
    # Predicting (c_j + 0.05, c_j + 0.15): per column SS_res = 2 * 0.05^2, SS_tot = 2 * 0.1^2.
    assert metrics.r2_mean_columns(t, np.stack([c + 0.05, c + 0.15])) == pytest.approx(0.75)


def test_rmse_per_question_isolates_errors():
    t = np.zeros((3, 37))
    p = t.copy()
    p[:, schema.QUESTION_BY_ID["t03"].slice] = 0.3
    per_q = metrics.rmse_per_question(t, p)
    assert list(per_q) == QUESTION_IDS
    assert per_q["t03"] == pytest.approx(0.3)
    assert all(v == 0.0 for k, v in per_q.items() if k != "t03")


def test_rmse_cumulative_propagates_errors_down_the_tree():
    # A featured, face-on, barred galaxy; the prediction halves only "features or disk".
    t = np.zeros((1, 37))
    t[0, schema.ANSWER_BY_STEM["t01_smooth_or_features_a02_features_or_disk"].index] = 1.0
    t[0, schema.ANSWER_BY_STEM["t02_edgeon_a05_no"].index] = 1.0
    t[0, schema.ANSWER_BY_STEM["t03_bar_a06_bar"].index] = 1.0
    p = t.copy()
    p[0, 1] = 0.5
    assert metrics.rmse(t, p) == pytest.approx(np.sqrt(0.25 / 37))
    # Cumulatively a02, t02 "no" and t03 "bar" are all off by 0.5.
    assert metrics.rmse_cumulative(t, p) == pytest.approx(np.sqrt(3 * 0.25 / 37))


def test_r2_flat_batched_by_hand():
    t, p = _one_hot_row(), np.zeros((2, 37))
    # Batch 1 (galaxy 0): mean 1/37, SS_tot = 36/37, SS_res = 1. Batch 2: all zeros, SS_tot = 0.
    expected = ((1 - 1 / (36 / 37 + 1e-7)) + (1 - 0 / 1e-7)) / 2
    assert metrics.r2_flat_batched(t, p, batch_size=1) == pytest.approx(expected)
    with pytest.raises(ValueError, match="batch_size"):
        metrics.r2_flat_batched(t, p, batch_size=0)


def test_evaluate_arrays_names_and_values():
    rng = np.random.default_rng(0)
    t, p = rng.random((20, 37)), rng.random((20, 37))
    result = metrics.evaluate_arrays(t, p)
    # Per-question keys name the question, so they read in the MLflow UI without a lookup.
    assert list(result) == ["mse", "rmse", "r2_flat", "r2_mean_columns", "rmse_cumulative",
                            "rmse_t01_smooth_or_features", "rmse_t02_edgeon", "rmse_t03_bar", "rmse_t04_spiral",
                            "rmse_t05_bulge_prominence", "rmse_t06_odd", "rmse_t07_rounded", "rmse_t08_odd_feature",
                            "rmse_t09_bulge_shape", "rmse_t10_arms_winding", "rmse_t11_arms_number"]
    assert all(isinstance(v, float) for v in result.values())
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert result["rmse_t08_odd_feature"] == metrics.rmse_per_question(t, p)["t08"]


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"same shape \(N >= 1, 37\), got \(2, 37\) and \(2, 36\)"):
        metrics.rmse(np.zeros((2, 37)), np.zeros((2, 36)))
    with pytest.raises(ValueError, match="same shape"):
        metrics.evaluate_arrays(np.zeros((0, 37)), np.zeros((0, 37)))


def test_importing_metrics_does_not_import_keras():
    code = "import sys, galaxyzoo.model.metrics; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def _value(metric):
    return float(metric.result())


def test_training_metrics_use_only_the_first_37_columns():
    t, p = _one_hot_row().astype(np.float32), np.zeros((2, 37), np.float32)
    rmse, r2 = metrics.training_metrics()
    assert (rmse.name, r2.name) == ("rmse", "r2_flat")
    rmse.update_state(np.concatenate([t, np.full((2, 37), 9.0, np.float32)], axis=1), p)
    r2.update_state(np.concatenate([t, np.full((2, 37), 9.0, np.float32)], axis=1), p)
    assert _value(rmse) == pytest.approx(np.sqrt(1 / 74), rel=1e-6)
    assert _value(r2) == pytest.approx(1 - 1 / (73 / 74 + 1e-7), abs=1e-6)  # float32


def test_keras_r2_flat_averages_batches_like_the_numpy_twin():
    rng = np.random.default_rng(3)
    t, p = rng.random((10, 37)).astype(np.float32), rng.random((10, 37)).astype(np.float32)
    rmse, r2 = metrics.training_metrics()
    for start in range(0, 10, 4):  # batches of 4, 4, 2: each weighs the same
        rmse.update_state(t[start : start + 4], p[start : start + 4])
        r2.update_state(t[start : start + 4], p[start : start + 4])
    assert _value(r2) == pytest.approx(metrics.r2_flat_batched(t, p, batch_size=4), rel=1e-5)
    assert _value(r2) != pytest.approx(metrics.r2_flat(t, p), rel=1e-3)
    # RMSE accumulates over samples, so batching does not change it.
    assert _value(rmse) == pytest.approx(metrics.rmse(t, p), rel=1e-5)


def test_evaluate_writes_one_evaluations_pair_or_leaves_no_metrics_beside_another_table(tmp_path, monkeypatch):
    """A second evaluate into one --out, killed between its two files, must not pair its metrics with the
    first one's per-question table: the old metrics.json goes first, the new one comes last."""
    import json

    import pandas as pd

    from galaxyzoo.registry import evaluate

    first = evaluate.Evaluation({"rmse": 0.1}, pd.DataFrame({"question": ["t01"], "rmse": [0.1]}), "runs:/a/model",
                                "a", 10)
    second = evaluate.Evaluation({"rmse": 0.2}, pd.DataFrame({"question": ["t01"], "rmse": [0.2]}),
                                 "runs:/b/model", "b", 10)
    evaluate.write_outputs(first, tmp_path)
    real_replace = evaluate.os.replace

    def killed_after_the_table(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".csv"):
            raise KeyboardInterrupt

    monkeypatch.setattr(evaluate.os, "replace", killed_after_the_table)
    with pytest.raises(KeyboardInterrupt):
        evaluate.write_outputs(second, tmp_path)
    assert not (tmp_path / "metrics.json").exists()  # the folder says it is incomplete, not "model a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json.lock", "per_question_metrics.csv"]
    monkeypatch.setattr(evaluate.os, "replace", real_replace)
    evaluate.write_outputs(second, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["run_id"] == "b"
    assert pd.read_csv(tmp_path / "per_question_metrics.csv")["rmse"].tolist() == [0.2]
