"""How close the synthetic sample is to the real sky: catalogue and image statistics side by side.

    .venv/bin/python benchmarks/synth_realism.py --real ../shared/real [--n 2000] [--seed 0]
        [--gz2-images ../shared/gz2/sample_images] [--synth DIR] [--plot docs/synth_realism.png]

One run generates (or reads, `--synth`) a synthetic sample and measures it against
the real references under `--real`:

- the catalogue (`gz2_catalogue/gz2_hart16_first2000.csv`): two-sample KS of every
  `_debiased` answer, of `total_classifications`, the share with features > 0.5
  and the mix of `gz2_class` first letters (A / E / S);
- the images (the real GZ2 JPEGs of `--gz2-images`, default `../gz2/sample_images`
  beside `--real`, and `gz1_sdss/images`): crop-branch mix, sky level and noise,
  the galaxy's size in the frame, its concentration and colour, the wings of its radial
  gray profile (`wing2`, `wing3`: the level at 2 and 3 half-peak radii over the peak),
  the number of other sources (compact ones, mostly stars, and extended ones) in the frame,
  the fine texture of faint light (`grain`, `chroma_grain`: see `texture`), how lopsided
  the faint light is (`faint_asymmetry`), and how the colour varies across the galaxy
  (`fringe`, `colour_gradient`: see `colour_structure`).

The real catalogue rows are the head of the file, not a random sample: a KS of a few
hundredths between it and any other GZ2 subset is expected. Targets: mean KS <= 0.08,
no answer above 0.25, every crop branch within 10 points of the real GZ2 images' mix.
Real images are only measured; nothing here is trained on them.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from galaxyzoo import schema
from galaxyzoo.data.crop import BRANCHES, THRESHOLD, choose_branch, galaxy_box

REAL_CATALOGUE = Path("gz2_catalogue") / "gz2_hart16_first2000.csv"
GZ1_IMAGES = Path("gz1_sdss") / "images"
KS_MEAN_TARGET, KS_MAX_TARGET, BRANCH_TOLERANCE = 0.08, 0.25, 0.10
FEATURES = "t01_smooth_or_features_a02_features_or_disk_debiased"
MIN_SOURCE_AREA = 12  # px above the crop's threshold: a faint star's core at the real images' seeing
COMPACT_RADIUS = 4.0  # px, equivalent radius at the threshold below which a source counts as compact
SKY_BAND = 40  # px along each border measured for the sky
PEAK_SEARCH = 40  # px, side of the central square where the galaxy's peak is looked for
FAINT_LIGHT = (15, 60)  # gray levels of a galaxy's outskirts: above the sky, below the stretch's knee


# ---------------------------------------------------------------- catalogue


def catalogue_report(real: pd.DataFrame, synth: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per-answer KS table (answer, real mean, synthetic mean, KS) and the summary figures."""
    rows = []
    for column in schema.target_columns("debiased"):
        a, b = real[column].dropna(), synth[column].dropna()
        rows.append((column.removesuffix("_debiased"), a.mean(), b.mean(), ks_2samp(a, b).statistic))
    table = pd.DataFrame(rows, columns=["answer", "real_mean", "synth_mean", "ks"])
    summary = {
        "ks_mean": float(table["ks"].mean()),
        "ks_max": float(table["ks"].max()),
        "ks_total_classifications": float(ks_2samp(real["total_classifications"],
                                                   synth["total_classifications"]).statistic),
        "total_classifications_median": (float(real["total_classifications"].median()),
                                         float(synth["total_classifications"].median())),
        "featured_share": (float((real[FEATURES] > 0.5).mean()), float((synth[FEATURES] > 0.5).mean())),
        "class_letters": (letter_mix(real["gz2_class"]), letter_mix(synth["gz2_class"])),
    }
    return table, summary


def letter_mix(classes: pd.Series) -> dict[str, float]:
    """Shares of `gz2_class` first letters; `Se` (edge-on) apart from the other `S`."""
    kind = classes.astype(str).str[:2].where(classes.astype(str).str[:2] == "Se", classes.astype(str).str[0])
    return {k: float(v) for k, v in kind.value_counts(normalize=True).sort_index().items()}


# ---------------------------------------------------------------- images


def image_statistics(path: Path) -> dict | None:
    """The statistics of one JPEG, or None when it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    box = galaxy_box(gray)
    border = np.concatenate([bgr[:SKY_BAND].reshape(-1, 3), bgr[-SKY_BAND:].reshape(-1, 3)]).astype(np.float64)
    border_gray = np.concatenate([gray[:SKY_BAND].ravel(), gray[-SKY_BAND:].ravel()]).astype(np.float64)
    # pixels under the crop's threshold only: stars in the border must not count as sky or noise
    empty = border_gray < THRESHOLD / 2
    sky = border[empty].mean(axis=0) if empty.any() else np.full(3, np.nan)
    noise = float(border_gray[empty].std()) if empty.any() else np.nan
    stats = {"branch": choose_branch(box, height, width), "sky_b": sky[0], "sky_g": sky[1], "sky_r": sky[2],
             "sky_noise": noise}
    sky_level = float(np.median(border_gray))
    stats.update(_central_and_others(bgr, gray, sky_level, sky if empty.any() else sky_level))
    stats.update(profile_wings(gray, sky_level))
    stats.update(faint_asymmetry(gray, sky_level))
    stats.update(texture(bgr, gray))
    return stats


def texture(bgr: np.ndarray, gray: np.ndarray) -> dict:
    """The grain of faint light: photon noise and the finest structure, in gray and in colour.

    The standard deviation, over the pixels of gray level `FAINT_LIGHT`, of a
    band-pass (Gaussian sigma 0.75 px less sigma 1.5 px) of the gray image
    (`grain`) and of red less green (`chroma_grain`). The sky's own noise is
    measured by `sky_noise`; this is what the galaxy adds to it.
    """
    faint = (gray > FAINT_LIGHT[0]) & (gray < FAINT_LIGHT[1])
    if faint.sum() < 100:
        return {"grain": np.nan, "chroma_grain": np.nan}
    planes = {"grain": gray.astype(np.float32), "chroma_grain": bgr[..., 2].astype(np.float32) - bgr[..., 1]}
    return {name: float(band_pass(p)[faint].std()) for name, p in planes.items()}


def band_pass(plane: np.ndarray) -> np.ndarray:
    """`texture`'s band-pass of a float32 plane: Gaussian sigma 0.75 px less sigma 1.5 px."""
    return cv2.GaussianBlur(plane, (0, 0), 0.75) - cv2.GaussianBlur(plane, (0, 0), 1.5)


def profile_wings(gray: np.ndarray, sky: float) -> dict:
    """How far the central galaxy's light reaches, in the stretched image a network sees.

    The mean gray level in rings about the brightest (smoothed) pixel near the
    frame's centre, less the sky, is read at 2 and 3 times the radius where it
    falls to half the peak. A Sersic index that is too high shows here as
    glowing wings, although the concentration of the light may agree.
    """
    _, (y, x) = _central_peak(gray)
    rows, cols = np.indices(gray.shape)
    ring = np.hypot(rows - y, cols - x).astype(np.int64).ravel()
    profile = np.bincount(ring, gray.ravel().astype(np.float64)) / np.maximum(np.bincount(ring), 1) - sky
    if profile[0] <= 0:
        return {"wing2": np.nan, "wing3": np.nan}
    r50 = max(int(np.argmax(profile < profile[0] / 2)), 1)
    wings = np.interp([2 * r50, 3 * r50], np.arange(profile.size), profile) / profile[0]
    return {"wing2": float(wings[0]), "wing3": float(wings[1])}


def faint_asymmetry(gray: np.ndarray, sky: float) -> dict:
    """How lopsided the central galaxy's faint light is (`faint_asymmetry`).

    The gray image (Gaussian sigma 1.5 px) is turned by 180 degrees about the
    galaxy's peak; over the pixels of the galaxy (its connected light above
    gray 15) at gray levels `FAINT_LIGHT` whose mirror image is in the frame,
    the absolute difference is summed over the light above the sky. 0 for a
    perfectly point-symmetric galaxy.
    """
    smoothed, (y, x) = _central_peak(gray)
    half_turn = np.float32([[-1, 0, 2 * x], [0, -1, 2 * y]])
    turned = cv2.warpAffine(smoothed, half_turn, smoothed.shape[::-1], flags=cv2.INTER_NEAREST)
    # pixels whose mirror image falls outside the frame have nothing to be compared with
    mirrored = cv2.warpAffine(np.ones(smoothed.shape, np.uint8), half_turn, smoothed.shape[::-1],
                              flags=cv2.INTER_NEAREST) > 0
    _, labels = cv2.connectedComponents((smoothed > FAINT_LIGHT[0]).astype(np.uint8))
    faint = (labels == labels[y, x]) & (smoothed < FAINT_LIGHT[1]) & (labels > 0) & mirrored
    light = (smoothed - np.float32(sky))[faint].sum()
    if faint.sum() < 30 or light <= 0:
        return {"faint_asymmetry": np.nan}
    return {"faint_asymmetry": float(np.abs(smoothed - turned)[faint].sum() / light)}


def _central_peak(gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(gray smoothed by a sigma 1.5 px Gaussian, (row, column) of its maximum near the frame's centre)."""
    height, width = gray.shape
    smoothed = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.5)
    half = PEAK_SEARCH // 2
    window = smoothed[height // 2 - half:height // 2 + half, width // 2 - half:width // 2 + half]
    y, x = np.unravel_index(int(np.argmax(window)), window.shape)
    return smoothed, (int(y + height // 2 - half), int(x + width // 2 - half))


def _central_and_others(bgr: np.ndarray, gray: np.ndarray, sky: float, channel_sky) -> dict:
    """Size, concentration and colour of the central source, and counts of the others.

    `sky` is the gray sky level, `channel_sky` the sky of each of B, G and R (or one level for all).
    """
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    mask = (blurred > THRESHOLD).astype(np.uint8)
    count, labels, table, centroids = cv2.connectedComponentsWithStats(mask)
    centre = np.array([gray.shape[1] / 2, gray.shape[0] / 2])
    areas = table[1:, cv2.CC_STAT_AREA]
    big = np.flatnonzero(areas >= MIN_SOURCE_AREA) + 1
    out = {"size": np.nan, "concentration": np.nan, "colour_gr": np.nan, "n_compact": 0, "n_extended": 0,
           "fringe": np.nan, "colour_gradient": np.nan}
    if big.size == 0:
        return out
    main = big[np.argmin(np.hypot(*(centroids[big] - centre).T))]
    for label in big[big != main]:
        radius = np.sqrt(table[label, cv2.CC_STAT_AREA] / np.pi)
        out["n_compact" if radius < COMPACT_RADIUS else "n_extended"] += 1
    inside = labels == main
    out["size"] = float(np.sqrt(inside.sum() / np.pi))
    ys, xs = np.nonzero(inside)
    light = np.clip(gray[ys, xs].astype(np.float64) - sky, 0, None)
    if light.sum() > 0:
        cx, cy = np.average(xs, weights=light), np.average(ys, weights=light)
        order = np.argsort(np.hypot(xs - cx, ys - cy))
        r = np.hypot(xs - cx, ys - cy)[order]
        cumulative = np.cumsum(light[order]) / light.sum()
        r50, r90 = np.interp([0.5, 0.9], cumulative, r)
        out["concentration"] = float(r90 / max(r50, 0.5))
    pixels = bgr[inside].astype(np.float64)
    g, red = pixels[:, 1].mean(), pixels[:, 2].mean()
    out["colour_gr"] = float(-2.5 * np.log10(max(g, 1.0) / max(red, 1.0)))  # stretched "g - r"
    out.update(colour_structure(bgr, inside, channel_sky))
    return out


def colour_structure(bgr: np.ndarray, inside: np.ndarray, sky) -> dict:
    """How the colour of a source varies across it: `fringe` and `colour_gradient`.

    `fringe` is the distance in pixels between the light centroids of the blue
    and the red plane over the source (`inside`); registration errors between
    the bands and lopsided star formation move it. `colour_gradient` is blue
    less red over the mean of the three planes, in the ring between 0.5 and 0.8
    of the source's radius less within 0.3 of it: positive where the outskirts
    are bluer than the core (a disk around a bulge, or the blue band's wider
    seeing). `sky` is subtracted per plane (B, G, R), or one level from all:
    real skies are darkest in blue, which would otherwise redden faint rings.
    """
    sky = np.broadcast_to(np.asarray(sky, np.float32), (3,))
    light = np.clip(cv2.GaussianBlur(bgr.astype(np.float32), (0, 0), 1.5) - sky, 0, None)
    light[~inside] = 0
    total = light.sum(axis=(0, 1))
    if inside.sum() < 50 or total.min() <= 0:
        return {"fringe": np.nan, "colour_gradient": np.nan}
    rows, cols = np.indices(inside.shape)
    centroids = np.stack([(light * rows[..., None]).sum(axis=(0, 1)),
                          (light * cols[..., None]).sum(axis=(0, 1))]) / total
    gray = light.mean(axis=2)
    cy, cx = np.average(rows, weights=gray), np.average(cols, weights=gray)
    r = np.hypot(rows - cy, cols - cx) / np.sqrt(inside.sum() / np.pi)

    def blue_less_red(where):
        level = gray[where].sum()
        return (light[..., 0][where].sum() - light[..., 2][where].sum()) / level if level > 0 else np.nan

    ring, core = inside & (r >= 0.5) & (r < 0.8), inside & (r < 0.3)
    return {"fringe": float(np.hypot(*(centroids[:, 0] - centroids[:, 2]))),
            "colour_gradient": float(blue_less_red(ring) - blue_less_red(core))}


def image_table(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame([s for s in map(image_statistics, paths) if s is not None])


IMAGE_MEASURES = ("sky_b", "sky_g", "sky_r", "sky_noise", "size", "concentration", "wing2", "wing3",
                  "colour_gr", "fringe", "colour_gradient", "faint_asymmetry", "n_compact", "n_extended", "grain",
                  "chroma_grain")


def image_report(sets: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(crop-branch mix per set, median [IQR] of every measure per set, with KS against synthetic)."""
    mix = pd.DataFrame({name: t["branch"].value_counts(normalize=True).reindex(BRANCHES, fill_value=0.0)
                        for name, t in sets.items()})
    rows = []
    synth = sets["synthetic"]
    for measure in IMAGE_MEASURES:
        row = {"measure": measure}
        for name, t in sets.items():
            v = t[measure].dropna()
            row[name] = f"{v.median():.2f} [{v.quantile(0.25):.2f}-{v.quantile(0.75):.2f}]"
            if name != "synthetic":
                row[f"KS vs {name}"] = round(float(ks_2samp(v, synth[measure].dropna()).statistic), 3)
        rows.append(row)
    return mix, pd.DataFrame(rows)


# ---------------------------------------------------------------- run


def synth_images(folder: Path) -> list[Path]:
    return sorted((folder / "images").glob("*.jpg"))


def plot(path: Path, sets: dict[str, pd.DataFrame], ks: pd.DataFrame) -> None:
    """Histograms of the image measures per set, and the per-answer KS bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = ("sky_noise", "size", "concentration", "wing2", "colour_gr", "n_compact", "n_extended")
    fig, axes = plt.subplots(3, 4, figsize=(16, 10))
    for ax, measure in zip(axes.ravel(), measures):
        values = [t[measure].dropna() for t in sets.values()]
        low, high = np.nanpercentile(np.concatenate(values), [1, 99])
        for (name, _), v in zip(sets.items(), values):
            ax.hist(v.clip(low, high), bins=30, range=(low, high), histtype="step", density=True, label=name)
        ax.set_title(measure)
    axes[0, 0].legend(fontsize=8)
    for ax in axes.ravel()[len(measures):]:
        ax.remove()
    ax = fig.add_subplot(3, 4, (9, 12))
    ax.bar(range(len(ks)), ks["ks"])
    ax.axhline(KS_MAX_TARGET, color="red", lw=0.8)
    ax.axhline(KS_MEAN_TARGET, color="orange", lw=0.8)
    ax.set_xticks(range(len(ks)), [re.sub(r"^(t\d\d).*_a(\d\d).*$", r"\1a\2", a) for a in ks["answer"]],
                  rotation=90, fontsize=7)
    ax.set_title(f"catalogue KS per answer (mean {ks['ks'].mean():.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="the shared/real folder")
    parser.add_argument("--gz2-images", type=Path, help="real GZ2 JPEGs (default: ../gz2/sample_images beside --real)")
    parser.add_argument("--synth", type=Path, help="an existing synthetic sample (default: generate one)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="write histograms and KS bars to this PNG")
    args = parser.parse_args()
    gz2_images = args.gz2_images or args.real.parent / "gz2" / "sample_images"
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.synth
        if folder is None:
            from galaxyzoo.data.synth import generate

            folder = generate(Path(tmp) / "synth", n=args.n, seed=args.seed, progress=False)
        run(args, folder, gz2_images)


def run(args, folder: Path, gz2_images: Path) -> None:
    dtypes = dict(schema.hart16_columns())
    real_cat = pd.read_csv(args.real / REAL_CATALOGUE, dtype=dtypes)
    synth_cat = pd.read_csv(folder / "gz2_hart16.csv", dtype=dtypes)
    ks, summary = catalogue_report(real_cat, synth_cat)
    pd.set_option("display.width", 200)
    print(f"catalogue: {len(real_cat)} real rows vs {len(synth_cat)} synthetic rows ({folder})")
    print(ks.round(3).to_string(index=False))
    ok = summary["ks_mean"] <= KS_MEAN_TARGET and summary["ks_max"] <= KS_MAX_TARGET
    print(f"KS mean {summary['ks_mean']:.3f} (target <= {KS_MEAN_TARGET}), max {summary['ks_max']:.3f} "
          f"(target <= {KS_MAX_TARGET}): {'met' if ok else 'NOT met'}")
    print(f"total_classifications KS {summary['ks_total_classifications']:.3f}, "
          f"median real {summary['total_classifications_median'][0]:.0f} / "
          f"synthetic {summary['total_classifications_median'][1]:.0f}")
    print(f"features > 0.5: real {summary['featured_share'][0]:.1%}, synthetic {summary['featured_share'][1]:.1%}")
    print(f"gz2_class first letters: real {_fmt(summary['class_letters'][0])}; "
          f"synthetic {_fmt(summary['class_letters'][1])}")

    sets = {"gz2 real": image_table(sorted(gz2_images.glob("*.jpg"))),
            "gz1 real": image_table(sorted((args.real / GZ1_IMAGES).glob("*.jpeg"))),
            "synthetic": image_table(synth_images(folder))}
    mix, measures = image_report(sets)
    print(f"\nimages: {', '.join(f'{k} {len(v)}' for k, v in sets.items())}")
    print("crop-branch mix:")
    print((100 * mix).round(1).to_string())
    worst = float((mix["synthetic"] - mix["gz2 real"]).abs().max())
    print(f"largest branch difference from the real GZ2 images: {100 * worst:.1f} points "
          f"(target <= {100 * BRANCH_TOLERANCE:.0f}): {'met' if worst <= BRANCH_TOLERANCE else 'NOT met'}")
    print("image measures, median [IQR]:")
    print(measures.to_string(index=False))
    if args.plot:
        plot(args.plot, sets, ks)
        print(f"plot: {args.plot}")


def _fmt(mix: dict[str, float]) -> str:
    return " ".join(f"{k} {100 * v:.1f}%" for k, v in mix.items())


if __name__ == "__main__":
    main()
