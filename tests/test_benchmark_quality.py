"""The quality benchmark script runs end to end on a tiny sample and reports consistent figures."""

import json

import pytest

from benchmark_scripts import load


@pytest.mark.slow
def test_train_quality_reports_both_experiments_against_the_floor(tmp_path, capsys):
    train_quality = load("train_quality")
    out = tmp_path / "quality.json"
    train_quality.main(["--n", "200", "--epochs", "1", "--workdir", str(tmp_path / "bench"), "--replicates", "20",
                        "--json", str(out), "--ensemble", "2", "--set", "data.image_size=48"])
    result = json.loads(out.read_text())
    assert 0.10 < result["noise_floor_rmse"] < 0.25  # ~40 votes per galaxy: binomial noise of this size
    assert [r["experiment"] for r in result["runs"]] == ["baseline.yaml", "improved.yaml", "ensemble of 2"]
    *models, ensemble = result["runs"]
    # the mean of two improved models (seeds 0 and 1), not the first alone
    assert ensemble["test_rmse"] != models[1]["test_rmse"] and 0 < ensemble["excess_rmse"] < ensemble["test_rmse"]
    for run in models:
        assert run["epochs"] == 1 and run["train_images_per_s"] > 0
        assert run["test_rmse"] > result["noise_floor_rmse"]  # one epoch: far from the floor
        assert 0 < run["excess_rmse"] < run["test_rmse"]
        # Vote noise and model error are independent given the truth: their squares add up.
        floor2, excess2, test2 = result["noise_floor_rmse"] ** 2, run["excess_rmse"] ** 2, run["test_rmse"] ** 2
        assert abs(test2 - floor2 - excess2) < 0.1 * test2
        assert run["test_rmse_tta"] > result["noise_floor_rmse"] and run["test_rmse_tta"] != run["test_rmse"]
        assert 0 < run["excess_rmse_tta"] < run["test_rmse_tta"]
    assert "x floor" in capsys.readouterr().out

    # Run again: every training continues its finished checkpoint, so nothing trains and the figures stay.
    train_quality.main(["--n", "200", "--epochs", "1", "--workdir", str(tmp_path / "bench"), "--replicates", "20",
                        "--json", str(out), "--ensemble", "2", "--set", "data.image_size=48"])
    again = json.loads(out.read_text())
    assert [r["train_images_per_s"] for r in again["runs"]] == [None, None, None]
    assert [r["epochs"] for r in again["runs"]] == [1, 1, 1]
    assert [r["test_rmse"] for r in again["runs"]] == pytest.approx([r["test_rmse"] for r in result["runs"]], rel=1e-6)


def test_an_ensemble_of_no_models_is_refused_before_any_work(tmp_path, capsys):
    train_quality = load("train_quality")
    with pytest.raises(SystemExit) as stop:
        train_quality.main(["--ensemble", "0", "--workdir", str(tmp_path / "bench")])
    assert stop.value.code == 2 and "--ensemble must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()
