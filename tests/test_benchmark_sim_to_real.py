"""The sim-to-real benchmark's figures on a hand-made case, and its refusal of a bad override."""

import numpy as np
import pandas as pd
import pytest

from benchmark_scripts import load
from galaxyzoo import schema
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


def test_the_edge_on_label_check_measures_shapes_and_leaves_round_edge_ons_out(tmp_path):
    import cv2

    def frame(name, axes, angle=30):
        image = np.zeros((424, 424), np.uint8)
        cv2.ellipse(image, (212, 212), axes, angle, 0, 360, 180, cv2.FILLED)
        cv2.imwrite(str(tmp_path / name), image)
        return image

    sim_to_real = load("sim_to_real")
    assert sim_to_real.axis_ratio(frame("thin.jpeg", (90, 30))) == pytest.approx(1 / 3, abs=0.02)
    assert sim_to_real.axis_ratio(frame("round.jpeg", (60, 60))) == pytest.approx(1, abs=0.02)
    assert np.isnan(sim_to_real.axis_ratio(np.zeros((424, 424), np.uint8)))  # no galaxy: no shape
    assert np.isnan(sim_to_real.axis_ratio(None))  # what cv2.imread gives for an unreadable file
    for name in ("s1.jpeg", "s2.jpeg", "e_round.jpeg"):
        frame(name, (60, 58))
    frame("e_thin.jpeg", (90, 25), angle=120)
    frame("e_mid.jpeg", (80, 44))  # b/a 0.55: not round by ROUND = 0.6, so kept
    frame("gone.jpeg", (90, 20))  # elongated, but the model could not read it
    (tmp_path / "broken.jpeg").write_bytes(b"\xff\xd8")  # no frame at all: no shape, left out
    images = ["s1.jpeg", "s2.jpeg", "e_thin.jpeg", "e_round.jpeg", "e_mid.jpeg", "gone.jpeg", "broken.jpeg", "el.jpeg"]
    classes = ["spiral_cw", "spiral_acw"] + ["edge_on"] * 5 + ["elliptical"]
    labels = pd.DataFrame({"image": images, "gz1_class": classes})
    predictions = pd.DataFrame({"file": [f"x/{name}" for name in images],
                                EDGE_ON: [0.1, 0.3, 0.9, 0.05, 0.2, 0.0, 0.0, 0.0],
                                "error": [None] * 5 + ["not a readable image"] * 2 + [None]})
    shapes = sim_to_real.disk_shapes(labels, tmp_path)
    assert shapes["image"].tolist() == images[:6]
    assert shapes["q"].iloc[4] == pytest.approx(0.55, abs=0.02)
    check = sim_to_real.edge_on_label_check(shapes.iloc[:4])
    assert check["edge_on_class_round_share"] == 0.5  # of the two edge-ons, one is round
    # b/a alone: the thin edge-on beats both spirals, the round one ties with both; without the round one, 1
    assert check["edgeon_vs_faceon_auc_axis_ratio_alone"] == pytest.approx(0.75)
    assert check["edgeon_vs_faceon_auc_axis_ratio_alone_without_round"] == 1.0
    # Left out: the round edge-on (t02 0.05, below both spirals) and the unread ones. Kept: the thin one (above
    # both spirals) and the b/a 0.55 one (0.2: above 0.1, below 0.3), so 3 of 4 pairs are ranked right.
    assert sim_to_real.edge_on_auc_without_round(predictions, shapes) == pytest.approx(0.75)


def test_several_training_seeds_are_reported_with_their_mean_and_the_verdict_on_it():
    sim_to_real = load("sim_to_real")
    figures = pd.DataFrame({"smooth_vs_features_auc": [0.94, 0.97], "merger_vs_rest_auc": [0.80, 0.86],
                            "mean_smooth_of_ellipticals": [0.5, 0.7]}, index=["seed 0", "seed 1"])
    lines = sim_to_real.report(figures).splitlines()
    assert lines[0].split() == ["seed", "0", "seed", "1", "mean", "sd"]
    auc, merger, smooth = lines[1:]
    # judged on the mean: 0.955 meets 0.95 although seed 0 alone does not; 0.83 misses 0.85
    assert auc.split()[1:4] == ["0.940", "0.970", "0.955"] and auc.endswith("(target >= 0.95: met)")
    assert merger.split()[3] == "0.830" and merger.endswith("(target >= 0.85: NOT met)")
    assert smooth.split()[4] == f"{np.std([0.5, 0.7], ddof=1):.3f}" and "target" not in smooth
    # one model: its value alone, judged as it is
    single = sim_to_real.report(figures.iloc[:1]).splitlines()
    assert single[0].split() == ["seed", "0"] and single[1].endswith("(target >= 0.95: NOT met)")
    # the ensemble's column is shown after the spread; the verdict stays on the mean
    with_ensemble = sim_to_real.report(figures, {"smooth_vs_features_auc": 0.96, "merger_vs_rest_auc": 0.9,
                                                 "mean_smooth_of_ellipticals": 0.6}).splitlines()
    assert with_ensemble[0].split()[-1] == "ensemble" and with_ensemble[2].split()[5] == "0.900"
    assert with_ensemble[2].endswith("(target >= 0.85: NOT met)")  # the ensemble's 0.90 is not what is judged
    # a figure one seed could not give has no mean, and is not met
    gap = sim_to_real.report(figures.assign(smooth_vs_features_auc=[0.97, np.nan])).splitlines()[1]
    assert gap.split()[3] == "nan" and gap.endswith("NOT met)")


def test_the_mean_of_the_models_predictions_averages_every_answer_of_the_same_files():
    sim_to_real = load("sim_to_real")
    answers = [a.stem for a in schema.ANSWERS]
    one = pd.DataFrame({"file": ["a.jpeg", "b.jpeg"], **{a: [0.2, 0.4] for a in answers}, "error": [None, None]})
    two = one.assign(**{a: [0.4, 0.0] for a in answers})
    mean = sim_to_real.mean_predictions([one, two.assign(error=[None, "not a readable image"])])
    assert list(mean.columns) == ["file", *answers, "error"] and mean["file"].tolist() == ["a.jpeg", "b.jpeg"]
    np.testing.assert_allclose(mean[answers].to_numpy(), np.tile([[0.3], [0.2]], len(answers)))
    assert mean["error"].isna().tolist() == [True, False]  # a file one model failed on stays failed
    with pytest.raises(ValueError, match="same files"):
        sim_to_real.mean_predictions([one, two.iloc[::-1]])


@pytest.mark.parametrize("args, message", [(["--set", "train.seed=3"], "not --set train.seed"),
                                           (["--model-uri", "runs:/x/m", "--train-seeds", "1"], "no --train-seeds")])
def test_training_seeds_come_only_from_train_seeds(tmp_path, capsys, args, message):
    # refused before --real is looked at (an empty folder here) and before the workdir is made
    with pytest.raises(SystemExit) as exit_info:
        load("sim_to_real").main(["--real", str(tmp_path), "--workdir", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_a_real_folder_without_labels_and_images_is_refused_before_any_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load("sim_to_real").main(["--real", str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert exit_info.value.code == 2 and "expected labels.csv and images/" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_several_packaged_models_are_scored_with_tta_into_their_own_files(tmp_path, monkeypatch, capsys):
    import cv2

    from galaxyzoo.registry import predict

    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    classes = ["elliptical", "spiral_cw", "spiral_acw", "edge_on", "merger"]
    for i in range(len(classes)):
        image = np.zeros((424, 424), np.uint8)
        cv2.ellipse(image, (212, 212), (80, 30 + 10 * i), 0, 0, 360, 180, cv2.FILLED)
        cv2.imwrite(str(real / "images" / f"{i}.jpeg"), image)
    pd.DataFrame({"image": [f"{i}.jpeg" for i in range(len(classes))], "gz1_class": classes}).to_csv(
        real / "labels.csv", index=False)
    calls = []

    def fake_predict_files(model_uri, folders, out, overwrite, tracking_uri, tta):
        calls.append((model_uri, out.name, tta))
        files = sorted((folders[0]).glob("*.jpeg"))
        smooth = [0.9, 0.2, 0.3, 0.1, 0.4] if model_uri == "runs:/a/m" else [0.6, 0.4, 0.3, 0.2, 0.5]
        table = {a.stem: [0.1] * len(files) for a in schema.ANSWERS}
        table.update({SMOOTH: smooth, FEATURES: [1 - s for s in smooth]})
        pd.DataFrame({"file": [str(f) for f in files], "crop_branch": "center212", **table,
                      "error": [None] * len(files)}).to_csv(out, index=False)

    monkeypatch.setattr(predict, "predict_files", fake_predict_files)
    load("sim_to_real").main(["--real", str(real), "--workdir", str(tmp_path / "w"),
                              "--model-uri", "runs:/a/m", "runs:/b/m", "--tta"])
    # named after the model, so another model's run keeps its own file
    assert calls == [("runs:/a/m", "gz1_predictions-runs-a-m-tta.csv", True),
                     ("runs:/b/m", "gz1_predictions-runs-b-m-tta.csv", True)]
    assert load("sim_to_real").uri_file_stem("models:/m-c4156/../x y") == "models-m-c4156-..-x-y"
    report = capsys.readouterr().out
    header = next(line for line in report.splitlines() if line.split()[:2] == ["model", "1"])
    assert header.split()[-3:] == ["mean", "sd", "ensemble"]
    smooth_row = next(line for line in report.splitlines() if line.startswith("mean_smooth_of_ellipticals"))
    assert smooth_row.split()[1:4] == ["0.900", "0.600", "0.750"]
