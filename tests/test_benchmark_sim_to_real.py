"""The sim-to-real benchmark's figures on a hand-made case, and its refusal of a bad override."""

import numpy as np
import pandas as pd
import pytest

from benchmark_scripts import load
from galaxyzoo.errors import GalaxyZooError


SMOOTH, FEATURES = "t01_smooth_or_features_a01_smooth", "t01_smooth_or_features_a02_features_or_disk"
EDGE_ON, ODD, MERGER = "t02_edgeon_a04_yes", "t06_odd_a14_yes", "t08_odd_feature_a24_merger"


def test_gz1_figures_rank_and_decide_on_the_right_answers():
    labels = pd.DataFrame({"image": [f"{i}.jpeg" for i in range(7)],
                           "gz1_class": ["elliptical", "elliptical", "spiral_cw", "edge_on", "merger", "spiral_acw",
                                         "elliptical"]})
    predictions = pd.DataFrame({
        "file": [f"/some/dir/{i}.jpeg" for i in range(7)],
        SMOOTH: [0.8, 0.4, 0.3, 0.2, 0.5, 0.45, None], FEATURES: [0.2, 0.5, 0.7, 0.8, 0.5, 0.5, None],
        EDGE_ON: [0.0, 0.0, 0.1, 0.9, 0.0, 0.2, None], ODD: [0.1, 0.1, 0.1, 0.1, 0.9, 0.1, None],
        MERGER: [0.1, 0.1, 0.1, 0.1, 0.8, 0.2, None],
        "error": [None] * 6 + ["not a readable image"]})
    figures = load("sim_to_real").gz1_figures(predictions, labels)
    # features - smooth: ellipticals -0.6, 0.1; disks 0.4, 0.6, 0.05 -> 5 of the 6 pairs ranked right
    assert figures["smooth_vs_features_auc"] == pytest.approx(5 / 6)
    # "features > smooth": one elliptical of two called featured, every disk featured
    assert figures["features_gt_smooth_balanced_accuracy"] == pytest.approx(0.75)
    assert figures["edgeon_vs_faceon_auc"] == 1.0 and figures["merger_vs_rest_auc"] == 1.0
    assert figures["mean_smooth_of_ellipticals"] == pytest.approx(0.6)
    assert figures["images"] == 6  # the unreadable elliptical is left out


def test_a_bad_override_is_refused_before_any_data_is_built(tmp_path):
    with pytest.raises(GalaxyZooError, match="train.augment.zoom"):
        load("sim_to_real").main(["--real", str(tmp_path), "--workdir", str(tmp_path / "w"), "--set", "train.augment.zoom=2"])
    assert not (tmp_path / "w" / "synthetic-n10000-seed0").exists()


def test_probe_table_shows_each_set_under_each_change():
    sim_to_real = load("sim_to_real")
    frames = sim_to_real.synthetic_frames(("elliptical", "disk"), per_kind=2, seed=3)
    assert {k: len(v) for k, v in frames.items()} == {"elliptical": 2, "disk": 2}
    assert all(f.shape == (424, 424, 3) and f.dtype == np.uint8 for f in frames["disk"])
    assert np.array_equal(frames["disk"][1], sim_to_real.synthetic_frames(("elliptical", "disk"), 2, seed=3)["disk"][1])
    with pytest.raises(ValueError, match="spiral"):  # a kind the sampler never draws would never end the loop
        sim_to_real.synthetic_frames(("spiral",), 1, seed=3)

    # A stand-in network whose "smooth" is how much redder than blue the centre is: grey zeroes it.
    def redness(batch):
        return np.array([float(f[200:224, 200:224, 2].mean() - f[200:224, 200:224, 0].mean()) for f in batch])

    red = np.zeros((424, 424, 3), np.uint8)
    red[150:274, 150:274] = (40, 90, 200)
    table = sim_to_real.probe_table(redness, {"red": [red], "synthetic": frames["elliptical"]})
    assert list(table.columns) == ["red", "synthetic"] and table.index[0] == "as is"
    assert table.loc["as is", "red"] == pytest.approx(160)
    assert table.loc["grey", "red"] == pytest.approx(0, abs=1)
    for g in (0.7, 1.4):  # the stretch changes each channel's level by the power law
        assert table.loc[f"gamma {g}", "red"] == pytest.approx(round(255 * (200 / 255) ** g) - round(255 * (40 / 255) ** g))
    assert table.loc["scaled x0.75", "red"] == pytest.approx(160)  # the centre stays red when it shrinks
    assert table.loc["as is", "synthetic"] == pytest.approx(redness(frames["elliptical"]).mean())
