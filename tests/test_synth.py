"""The synthetic GZ2 sample: real file formats, every real quirk, determinism, bad input."""

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import spearmanr

from galaxyzoo import schema
from galaxyzoo.cli import main
from galaxyzoo.data.crop import crop_image
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.synth import catalogue, generate

N = 300  # catalogue rows in the shared sample: enough for all three crop branches


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "sample", n=N, seed=7, workers=2, progress=False)


@pytest.fixture(scope="session")
def hart16(sample_dir) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "gz2_hart16.csv", dtype=dict(schema.hart16_columns()))


@pytest.fixture(scope="session")
def mapping(sample_dir) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "gz2_filename_mapping.csv", dtype={"objid": "Int64", "asset_id": "int64"})


@pytest.fixture(scope="session")
def truth(sample_dir) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "truth.csv")


def image_ids(folder: Path) -> set[int]:
    return {int(p.stem) for p in (folder / "images").glob("*.jpg")}


# --- file formats -------------------------------------------------------------------------------


def test_hart16_has_the_real_columns_and_dtypes(sample_dir, hart16, real_dir):
    real = pd.read_csv(real_dir / "gz2" / "hart16_columns.csv")
    header = (sample_dir / "gz2_hart16.csv").read_text().split("\n", 1)[0].split(",")
    assert header == list(real["column"])
    assert len(hart16) == N
    assert hart16["dr7objid"].is_unique and hart16["dr7objid"].notna().all()
    assert set(hart16["sample"]) == set(catalogue.SAMPLES)
    assert hart16[schema.target_columns("count")].ge(0).all().all()
    assert hart16[schema.target_columns("flag")].isin([0, 1]).all().all()
    fractions = hart16[schema.target_columns("fraction")].to_numpy()
    assert np.all((fractions >= 0) & (fractions <= 1))
    assert (hart16["total_votes"] >= hart16["total_classifications"]).all()


def test_objids_are_sdss_dr7_ids(hart16):
    ids = hart16["dr7objid"].to_numpy(dtype=np.int64)
    sky_version, rerun, run = ids >> 59, (ids >> 48) & 0x7FF, (ids >> 32) & 0xFFFF
    camcol = (ids >> 29) & 0x7
    coadd = hart16["sample"].str.startswith("stripe82_coadd").to_numpy()
    assert np.all(np.where(coadd, sky_version == 15, sky_version == 1))
    assert np.all(np.where(coadd, np.isin(run, (106, 206)) & (rerun == 2), np.isin(rerun, (40, 41, 44))))
    assert np.all((camcol >= 1) & (camcol <= 6))
    assert str(ids[~coadd][0]).startswith("58")


def test_sexagesimal_strings_match_ra_dec(hart16):
    for ra, dec, ras, decs in hart16[["ra", "dec", "rastring", "decstring"]].itertuples(index=False):
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", ras) and re.fullmatch(r"[+-]\d\d:\d\d:\d\d\.\d", decs)
        h, m, s = (float(v) for v in ras.split(":"))
        assert abs((h + m / 60 + s / 3600) * 15 - ra) * 3600 < 0.2  # 0.01 s of time = 0.15 arcsec
        d, dm, ds = (float(v) for v in decs[1:].split(":"))
        assert abs((1 if decs[0] == "+" else -1) * (d + dm / 60 + ds / 3600) - dec) * 3600 < 0.06
    stripe82 = hart16["sample"].str.startswith("stripe82")
    assert hart16.loc[stripe82, "dec"].abs().le(1.25).all()


def test_sexagesimal_rounding_carries():
    assert catalogue.ra_strings(np.array([359.99999999, 15.0])) == ["00:00:00.00", "01:00:00.00"]
    assert catalogue.dec_strings(np.array([-0.5, 1.99999999])) == ["-00:30:00.0", "+02:00:00.0"]


def test_mapping_columns_and_join(mapping, hart16):
    assert list(mapping.columns) == ["objid", "sample", "asset_id"]
    clean = mapping[mapping["asset_id"] < catalogue.FIRST_DUPLICATE_ASSET_ID]
    assert clean["objid"].is_unique and clean["asset_id"].is_unique
    joined = clean.merge(hart16, left_on="objid", right_on="dr7objid", validate="one_to_one")
    assert len(joined) == N, "every hart16 row joins the clean mapping one-to-one"
    assert (joined["sample_x"] == joined["sample_y"]).all()
    assert len(clean) > len(joined), "the mapping also lists objects hart16 lacks"
    ids = clean["asset_id"].sort_values().to_numpy()
    assert np.any(np.diff(ids) > 1), "asset ids are not contiguous"


def test_images_are_424_rgb_jpegs(sample_dir, truth):
    paths = sorted((sample_dir / "images").glob("*.jpg"))
    assert len(paths) == int(truth["has_image"].sum())
    for path in paths[:20]:
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (424, 424))
    assert cv2.imread(str(paths[0])).shape == (424, 424, 3)


# --- the real quirks ----------------------------------------------------------------------------


def test_duplicated_objids_have_high_asset_ids_and_no_image(sample_dir, mapping):
    dup = mapping[mapping["objid"].duplicated(keep="first")]
    assert len(dup) >= catalogue.MIN_QUIRK
    assert (dup["asset_id"] >= catalogue.FIRST_DUPLICATE_ASSET_ID).all()
    high = mapping[mapping["asset_id"] >= catalogue.FIRST_DUPLICATE_ASSET_ID]
    assert high["objid"].isin(mapping.loc[mapping["asset_id"] < catalogue.FIRST_DUPLICATE_ASSET_ID, "objid"]).all()
    assert not image_ids(sample_dir) & set(high["asset_id"])


def test_some_debiased_values_are_nan(hart16):
    debiased = hart16[schema.target_columns("debiased")]
    nan_rows = debiased.isna().any(axis=1)
    assert nan_rows.sum() >= catalogue.MIN_QUIRK
    assert hart16[schema.target_columns("fraction")].notna().all().all(), "only _debiased values go missing"


def test_rows_without_image_and_images_without_row(sample_dir, mapping, hart16):
    clean = mapping[mapping["asset_id"] < catalogue.FIRST_DUPLICATE_ASSET_ID]
    row_assets = set(clean.loc[clean["objid"].isin(hart16["dr7objid"]), "asset_id"])
    images = image_ids(sample_dir)
    assert len(row_assets - images) >= catalogue.MIN_QUIRK
    assert len(images - row_assets) >= catalogue.MIN_QUIRK
    assert images <= set(clean["asset_id"]), "every image is listed in the mapping"


def test_debiased_fractions_do_not_sum_to_one(hart16):
    t01 = hart16[[a.column("debiased") for a in schema.QUESTIONS[0].answers]].dropna()
    assert (t01.sum(axis=1) - 1).abs().gt(0.02).mean() > 0.1


def test_gz2_class_strings_are_in_the_real_notation(hart16):
    classes = hart16["gz2_class"]
    notation = r"A|(?:E[ric]?|Se[rbn]?|SB?[a-d]?(?:[1234+?][tml])?)(?:\([rldiomu]\))?"
    assert classes.str.fullmatch(notation).all(), classes[~classes.str.fullmatch(notation)].tolist()
    assert classes.str.match(r"E[rci]").any() and classes.str.match(r"S").any()
    assert classes.str.endswith(")").any(), "odd-feature suffixes like (r) or (m)"
    counts = classes.value_counts()
    assert (counts == 1).sum() >= 3, "rare classes for class_reduced to fold"
    assert classes.str.contains(r"[1234+?][tml]\(.\)$").any(), "class_reduced has arm pairs to drop"


def test_votes_follow_the_tree(hart16):
    counts = hart16[schema.target_columns("count")].to_numpy()
    assert not schema.tree_violations(counts).any()


# --- truth ----------------------------------------------------------------------------------------


def test_truth_describes_every_simulated_galaxy(truth, mapping, hart16, sample_dir):
    assert truth["asset_id"].is_unique
    assert truth["asset_id"].isin(mapping["asset_id"]).all()
    assert truth["dr7objid"].isin(mapping["objid"].astype("int64")).all()
    assert truth.loc[truth["in_hart16"], "dr7objid"].sort_values().tolist() == sorted(hart16["dr7objid"].tolist())
    assert set(truth.loc[truth["has_image"], "asset_id"]) == image_ids(sample_dir)
    for column in ("kind", "radius", "flux", "axis_ratio", "n_arms", "visibility", "crop_branch"):
        assert column in truth.columns and truth[column].notna().all(), column
    found = truth["crop_branch"] != "fallback"
    assert truth.loc[found, "crop_radius"].gt(0).all() and truth.loc[~found, "crop_radius"].isna().all()
    assert truth.loc[truth["crop_branch"] == "center106", "crop_radius"].le(53).all()
    assert truth.loc[truth["crop_branch"] == "full", "crop_radius"].gt(106).all()
    true = truth[catalogue.true_columns()].to_numpy()
    assert np.all((true >= 0) & (true <= 1))
    for q in schema.QUESTIONS:
        np.testing.assert_allclose(true[:, q.slice].sum(axis=1), 1.0, atol=1e-4, err_msg=q.id)


def test_all_three_crop_branches_occur(sample_dir, truth):
    branches = []
    for asset_id in truth.loc[truth["has_image"], "asset_id"]:
        image = cv2.imread(str(sample_dir / "images" / f"{asset_id}.jpg"))
        branches.append(crop_image(image)[1])
    assert {"center106", "center212", "full"} <= set(branches)
    # framed like the real cutouts, most galaxies take the central 212 square (real GZ2: 89%)
    assert branches.count("center212") > 0.7 * len(branches)
    assert branches == truth.loc[truth["has_image"], "crop_branch"].tolist(), "truth records the crop branch"


# --- determinism ----------------------------------------------------------------------------------


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_for_any_worker_count(tmp_path):
    one = file_hashes(generate(tmp_path / "one", n=60, seed=11, workers=1, progress=False))
    two = file_hashes(generate(tmp_path / "two", n=60, seed=11, workers=2, progress=False))
    assert one == two
    other = file_hashes(generate(tmp_path / "other", n=60, seed=12, workers=2, progress=False))
    assert other["gz2_hart16.csv"] != one["gz2_hart16.csv"]


# --- bad input and atomic output ------------------------------------------------------------------


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    code = main(["synth", *map(str, args)])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(code: int, err: list[str], words: str) -> None:
    assert code == 2
    assert len(err) == 1 and err[0].startswith("galaxyzoo: error:") and words in err[0], err


@pytest.mark.parametrize("n", [0, -3, catalogue.MIN_ROWS - 1])
def test_cli_refuses_bad_n(tmp_path, capsys, n):
    code, err = run_cli(capsys, "--out", tmp_path / "out", "--n", n)
    assert_refused(code, err, "--n")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_non_empty_folder_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = run_cli(capsys, "--out", out, "--n", 10)
    assert_refused(code, err, "--overwrite")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "keep.txt").read_text() == "mine"


def test_cli_refuses_unwritable_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = run_cli(capsys, "--out", blocker / "out", "--n", 10)
    assert_refused(code, err, str(blocker / "out"))
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_cli_refuses_a_folder_nobody_may_create(capsys):
    # /proc refuses new entries even to root, so this runs as CI's root too.
    target = Path("/proc/galaxyzoo-synth-test/out")
    code, err = run_cli(capsys, "--out", target, "--n", 10)
    assert_refused(code, err, str(target))
    assert not target.parent.exists()


def test_cli_writes_and_overwrites_atomically(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["synth", "--out", str(out), "--n", "10", "--seed", "1", "--workers", "1"]
    assert main(args) == 0
    (out / "stale.txt").write_text("old")
    assert main([*args, "--overwrite"]) == 0
    files = ["gz2_filename_mapping.csv", "gz2_hart16.csv", "images", "truth.csv"]
    assert sorted(p.name for p in out.iterdir()) == files
    # no temporary or old folder left behind; the lock file stays (an OS lock blocks no one once free)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.lock"]


def test_a_sample_written_through_a_link_replaces_the_links_target(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    assert main(["synth", "--out", str(real), "--n", "10", "--seed", "1", "--workers", "1"]) == 0
    link.symlink_to(real)
    assert main(["synth", "--out", str(link), "--n", "10", "--seed", "2", "--workers", "1", "--overwrite"]) == 0
    assert link.is_symlink() and link.resolve() == real  # not a new folder in the link's place
    seed2 = tmp_path / "seed2"
    assert main(["synth", "--out", str(seed2), "--n", "10", "--seed", "2", "--workers", "1"]) == 0
    assert (real / "truth.csv").read_bytes() == (seed2 / "truth.csv").read_bytes()


def test_overwrite_replaces_only_a_sample_and_one_writer_at_a_time(tmp_path, capsys):
    """`--overwrite` of a folder that is not a sample (a typo in --out) deletes nothing; a second
    synth into a folder another one is writing is refused, not raced."""
    from galaxyzoo.system.locks import writer_lock

    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("months of work")
    assert main(["synth", "--out", str(thesis), "--n", "10", "--workers", "1", "--overwrite"]) == 2
    assert "is not a synthetic sample (it lacks gz2_hart16.csv, gz2_filename_mapping.csv, truth.csv)" in \
        capsys.readouterr().err
    assert [p.name for p in thesis.iterdir()] == ["chapter1.tex"]
    out = tmp_path / "out"
    with writer_lock(out):  # as another synth into `out` holds it
        assert main(["synth", "--out", str(out), "--n", "10", "--workers", "1"]) == 2
    assert f"{out} is being written by another process" in capsys.readouterr().err
    assert not out.exists()


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(catalogue, "write_csv", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "out", n=10, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["out.lock"]


def test_a_full_disk_is_one_line_and_the_rerun_keeps_the_finished_galaxies(tmp_path, monkeypatch, capsys, caplog):
    import errno
    import os

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    args = ["synth", "--out", str(tmp_path / "out"), "--n", "10", "--workers", "1"]
    monkeypatch.setattr(catalogue, "write_csv", full)  # every galaxy simulated, then the disk is full
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"galaxyzoo: error: cannot write the sample beside {tmp_path / 'out'}: No space left on device; its "
        "finished galaxies are kept for the next run")
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="galaxyzoo.data.synth.generate"):
        assert main(args) == 0
    finished = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming: ")]
    assert len(finished) == 1 and finished[0].split()[1] == finished[0].split()[3]  # all of them taken over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.lock"]
    assert main(["synth", "--out", str(tmp_path / "whole"), *args[3:]]) == 0
    for name in ("gz2_hart16.csv", "truth.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_python_api_refuses_bad_arguments(tmp_path):
    for kwargs in ({"n": 20.5}, {"n": 20, "seed": -1}, {"n": 20, "workers": 0}):
        with pytest.raises(GalaxyZooError):
            generate(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


# --- learnability ---------------------------------------------------------------------------------


def central_blob(gray: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The connected region above 3 sigma of the sky that covers the centre, and the sky level."""
    blur = cv2.GaussianBlur(gray, (5, 5), 0)
    sky = float(np.median(blur))
    noise = 1.4826 * float(np.median(np.abs(blur - sky)))
    _, labels = cv2.connectedComponents((blur > sky + 3 * noise + 2).astype(np.uint8))
    centre = labels[200:224, 200:224]
    if not (centre > 0).any():
        return None, sky
    return labels == np.bincount(centre[centre > 0]).argmax(), sky


def asymmetry(gray: np.ndarray) -> float:
    """Light that differs from the blob turned by 180 degrees, over its light (arms, bars and clumps are lopsided)."""
    blob, sky = central_blob(gray)
    if blob is None:
        return np.nan
    light = cv2.GaussianBlur(gray.astype(np.float64), (0, 0), 1.0) - sky
    both = blob | blob[::-1, ::-1]
    return float(np.abs(light - light[::-1, ::-1])[both].sum() / np.abs(light)[both].sum())


def elongation(gray: np.ndarray) -> float:
    """1 - b/a from the light-weighted second moments of the central blob."""
    blob, sky = central_blob(gray)
    if blob is None:
        return np.nan
    ys, xs = np.nonzero(blob)
    weights = np.clip(gray[ys, xs].astype(np.float64) - sky, 1e-3, None)
    minor, major = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]), aweights=weights))
    return float(1 - np.sqrt(max(minor, 0.0) / major))


@pytest.mark.slow
def test_image_statistics_predict_the_labels(tmp_path):
    """A model can learn from the images: simple statistics track the matching labels."""
    folder = generate(tmp_path / "s", n=500, seed=5, progress=False)
    table = pd.read_csv(folder / "gz2_hart16.csv", dtype=dict(schema.hart16_columns()))
    truth = pd.read_csv(folder / "truth.csv")
    truth = truth[truth["has_image"] & truth["in_hart16"]]
    labels = ["t01_smooth_or_features_a01_smooth_debiased", "t01_smooth_or_features_a02_features_or_disk_debiased",
              "t07_rounded_a18_cigar_shaped_debiased", "t02_edgeon_a04_yes_debiased"]
    table = table[["dr7objid", *labels]].merge(truth[["dr7objid", "asset_id"]], on="dr7objid")
    stats = []
    for asset_id in table["asset_id"]:
        gray = cv2.imread(str(folder / "images" / f"{asset_id}.jpg"), cv2.IMREAD_GRAYSCALE)
        stats.append((asymmetry(gray), elongation(gray)))
    table = table.assign(asymmetry=[a for a, _ in stats], elongation=[e for _, e in stats])

    def rho(frame, statistic, label):
        return spearmanr(frame[statistic], frame[label], nan_policy="omit").statistic

    # Not the core's concentration: on real images it barely tells ellipticals from disks (AUC 0.59),
    # and the generator's ellipticals are now the less peaked (docs/synthetic.md, "Profile wings").
    assert rho(table, "asymmetry", "t01_smooth_or_features_a01_smooth_debiased") < -0.3
    smooth = table[table["t01_smooth_or_features_a01_smooth_debiased"] > 0.5]
    # (0.39 on these 266 galaxies since the photon noise got grainier, 0.35 since the outskirts got
    # lumpy and the bands offset, as real galaxies' are; the rank correlation's standard error here
    # is ~0.06)
    assert rho(smooth, "elongation", "t07_rounded_a18_cigar_shaped_debiased") > 0.3
    disks = table[table["t01_smooth_or_features_a02_features_or_disk_debiased"] > 0.5]
    assert rho(disks, "elongation", "t02_edgeon_a04_yes_debiased") > 0.4


def test_a_rerun_takes_over_only_a_killed_run_of_the_same_request(tmp_path):
    """Checkpoints are kept per request: another seed, n or generator code starts afresh."""
    from galaxyzoo.data.synth import checkpoints

    asked = checkpoints.request(40, 1)
    assert checkpoints.request(40, 1) == asked != checkpoints.request(40, 2)
    assert checkpoints.request(41, 1) != asked and len(asked["code"]) == 64

    def killed(name, request, chunks):
        folder = tmp_path / name
        folder.mkdir()
        checkpoints.start(folder, request)
        (folder / "images").mkdir()
        (folder / "images" / "1.jpg").write_bytes(name.encode())
        results = []
        for k in range(chunks * 8):
            results.append({"galaxy": k})
            checkpoints.save_chunk(folder, results, 8, 100)
        return folder

    other = killed("other", checkpoints.request(40, 2), 2)
    same = killed("same", asked, 2)
    (same / checkpoints.PROGRESS_DIR / "chunk-00001.pkl").write_bytes(b"cut off")  # a damaged second chunk
    into = tmp_path / "new"
    into.mkdir()
    checkpoints.start(into, asked)
    checkpoints.adopt(other, into, asked)
    assert checkpoints.load_done(into, 8, 100) == [] and (other / "images" / "1.jpg").exists()
    checkpoints.adopt(same, into, asked)
    assert (into / "images" / "1.jpg").read_bytes() == b"same" and not (same / "images").exists()
    assert checkpoints.load_done(into, 8, 100) == [{"galaxy": k} for k in range(8)]  # the leading complete chunk only
    checkpoints.finish(into)
    assert sorted(p.name for p in into.iterdir()) == ["images"]


def test_a_waiting_generate_returns_the_sample_the_other_run_published(tmp_path):
    """Two trainings of one new synthetic sample: the second waits for the first's, then uses it."""
    import shutil
    import threading

    from galaxyzoo.system.locks import writer_lock

    made = generate(tmp_path / "made", n=10, workers=1, progress=False)
    out = tmp_path / "sample"
    returned = []
    with writer_lock(out):  # the other run, writing
        waiting = threading.Thread(target=lambda: returned.append(generate(out, n=10, workers=1, progress=False,
                                                                          wait=True)))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive()  # it waits for the lock rather than refusing
        shutil.copytree(made, out)  # what the other run publishes
        (out / "truth.csv").write_text("the other run's")
    waiting.join(timeout=60)
    assert returned == [out] and (out / "truth.csv").read_text() == "the other run's"  # used, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "made.lock", "sample", "sample.lock"]


def test_a_lone_lock_file_of_a_gone_folder_does_not_block_the_next_run(tmp_path):
    """A kill between a folder's removal and its lock file's leaves the lock alone: it is swept, not stat'ed."""
    (tmp_path / "sample.tmp-deadbeef.lock").write_text("")
    assert generate(tmp_path / "sample", n=10, workers=1, progress=False) == tmp_path / "sample"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample", "sample.lock"]
