"""The arm-legibility probe: its labels, its scores on a hand-made case, and the arm-blind targets."""

import numpy as np
import pandas as pd
import pytest

from benchmark_scripts import load
from galaxyzoo import schema
from galaxyzoo.data.synth import generate

ARMS = np.r_[schema.QUESTION_BY_ID["t10"].slice, schema.QUESTION_BY_ID["t11"].slice]


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arms") / "raw"
    generate(folder, n=60, seed=4, progress=False)
    return pd.read_csv(folder / "truth.csv")


def test_disk_labels_keep_the_disks_in_split_order_with_their_arm_classes():
    probe = load("arm_legibility")
    truth = pd.DataFrame({"asset_id": [1, 2, 3, 4], "kind": ["disk", "elliptical", "disk", "disk"],
                          "n_arms": [2, 0, 0, 7], "winding": ["loose", "medium", "medium", "tight"],
                          "arm_strength": [0.9, 0.0, 0.0, 0.7], "visibility": [0.9, 0.5, 0.9, 0.95],
                          "axis_ratio": [0.8, 0.9, 0.7, 0.9]})
    disks = probe.disk_labels(truth, np.array([4, 3, 2, 1]))
    assert disks["asset_id"].tolist() == [4, 3, 1] and disks["pos"].tolist() == [0, 1, 3]
    assert disks["spiral"].tolist() == [1.0, 0.0, 1.0]
    assert disks["count"].tolist() == [4, 0, 1]  # 7 arms is "more than 4"
    assert disks["winding_class"].tolist() == [0, 1, 2]
    assert disks["plain"].tolist() == [False, False, True]  # arm strength 0.7 is not plain; no arms never is


def test_scores_against_the_majority_guess_on_a_hand_made_case():
    probe = load("arm_legibility")
    disks = pd.DataFrame({"spiral": [1.0, 1.0, 0.0, 1.0], "n_arms": [2, 3, 0, 2], "count": [1, 2, 0, 1],
                          "winding_class": [0, 0, 1, 2], "plain": [True, False, False, False]})
    predicted = {"spiral": np.array([[0.9], [0.8], [0.1], [0.2]]),
                 "count": np.eye(5)[[1, 1, 0, 1]], "winding": np.eye(3)[[0, 0, 0, 0]]}
    result = probe.scores(disks, predicted, train=disks)
    assert result["spiral_auc"] == pytest.approx(1.0)
    assert result["count_all"] == {"galaxies": 3, "accuracy": pytest.approx(2 / 3), "balanced": pytest.approx(0.5),
                                   "majority": pytest.approx(2 / 3)}
    assert result["count_plain"]["galaxies"] == 1 and result["count_plain"]["accuracy"] == 1.0
    assert result["winding_all"]["accuracy"] == pytest.approx(2 / 3)
    assert result["winding_all"]["balanced"] == pytest.approx(0.5)


def test_arm_blind_targets_average_the_arm_answers_of_armed_disks_only(truth):
    probe = load("arm_legibility")
    ids = truth["asset_id"].to_numpy()
    expected = np.full((len(ids), schema.N_ANSWERS), 0.5)
    blind = probe.arm_blind_targets(truth, expected, ids, seed=4, replicates=20)
    armed = ((truth["kind"] == "disk") & (truth["n_arms"] > 0)).to_numpy()
    assert armed.sum() >= 3 and (~armed).sum() >= 3
    np.testing.assert_array_equal(blind[~armed], expected[~armed])  # nothing else changes
    others = np.setdiff1d(np.arange(schema.N_ANSWERS), ARMS)
    np.testing.assert_array_equal(blind[np.ix_(armed, others)], 0.5)
    # the arm answers are debiased vote fractions averaged over the counts and windings: real values, not 0.5
    arms = blind[np.ix_(armed, ARMS)]
    assert np.all((arms >= 0) & (arms <= 1.5)) and not np.allclose(arms, 0.5)
    # blind to the count: every armed disk's likeliest count is the generator's commonest (2), whatever its own
    counts = schema.QUESTION_BY_ID["t11"].slice.start + np.arange(5)  # 1, 2, 3, 4, more than 4 (not can't tell)
    assert np.all(blind[np.ix_(armed, counts)].argmax(axis=1) == 1)
    true_counts = truth.loc[armed, [f"{schema.ANSWERS[i].stem}_true" for i in counts]].to_numpy()
    assert np.any(true_counts.argmax(axis=1) != 1)  # ... where the truth's is not always 2


@pytest.mark.parametrize("args, message", [(["--epochs", "0"], "--epochs must be >= 1"),
                                           (["--replicates", "0"], "--replicates must be >= 1")])
def test_bad_options_are_refused_before_any_data_is_built(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        load("arm_legibility").main(["--workdir", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
