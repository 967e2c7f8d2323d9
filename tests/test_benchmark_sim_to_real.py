"""The sim-to-real benchmark's figures on a hand-made case, and its refusal of a bad override."""

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
