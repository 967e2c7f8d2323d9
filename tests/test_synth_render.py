"""The synthetic image renderer: format, determinism and the physics the crop and the model rely on."""

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from benchmark_scripts import load
from galaxyzoo.data.synth.morphology import TYPICAL_FLUX_PER_AREA, Companion, Morphology, sample_morphology
from galaxyzoo.data.synth.render import render

SIZE = 424
CENTRE = (SIZE - 1) / 2
RED = (0.6, 1.0, 1.4)
BLUE = (1.3, 1.0, 0.7)


def _morph(**overrides) -> Morphology:
    """A plain, typically bright, face-on-ish disk with a bulge; override what a test needs."""
    fields = dict(
        kind="disk", radius=15.0, flux=None, axis_ratio=0.8, position_angle=0.4, centre_dx=0.0, centre_dy=0.0,
        sersic_n=4.0, bulge_fraction=0.3, bulge_shape="rounded", bar_strength=0.0, bar_length=0.6, n_arms=0,
        winding="medium", arm_strength=0.0, ring=False, lens_or_arc=False, dust_lane=False, disturbance=0.0,
        clumpiness=0.0, other_odd=False, colour_bulge=RED, colour_disk=(0.95, 1.0, 1.05), companions=(),
        merger=False,
    )
    fields.update(overrides)
    if fields["flux"] is None:
        fields["flux"] = TYPICAL_FLUX_PER_AREA * fields["radius"] ** 2
    return Morphology(**fields)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)


def _blobs(image: np.ndarray) -> list[np.ndarray]:
    """The contours the original crop sees: gray, 5x5 blur, threshold 30, 5x5 dilation, area >= 100."""
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    _, mask = cv2.threshold(gray, 30, 255, cv2.THRESH_BINARY)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c for c in contours if cv2.contourArea(c) >= 100]


def _centroid(contour: np.ndarray) -> tuple[float, float]:
    mom = cv2.moments(contour)
    return mom["m10"] / mom["m00"], mom["m01"] / mom["m00"]


def _central_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x, y, w, h) of the blob nearest the centre, as the crop picks it."""
    blobs = _blobs(image)
    assert blobs, "the galaxy left no blob above the crop threshold"
    nearest = min(blobs, key=lambda c: math.dist(_centroid(c), (CENTRE, CENTRE)))
    return cv2.boundingRect(nearest)


def _inside(box, half: int) -> bool:
    """Whether the box lies inside the central (2 half) square, as the crop tests it."""
    x, y, w, h = box
    lo, hi = SIZE // 2 - half, SIZE // 2 + half
    return x >= lo and y >= lo and x + w <= hi and y + h <= hi


def _radial_mask(radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return np.hypot(xx - CENTRE, yy - CENTRE) <= radius


def test_image_is_uint8_bgr_of_the_requested_size():
    image = render(_morph(), np.random.default_rng(0))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert render(_morph(radius=6.0), np.random.default_rng(0), size=128).shape == (128, 128, 3)
    # a red galaxy: the last channel (R in BGR order) is the brightest at its centre
    centre = image[205:220, 205:220].reshape(-1, 3).astype(float).mean(axis=0)
    assert centre[2] > 1.2 * centre[0]
    ok, _ = cv2.imencode(".jpg", image)
    assert ok


def test_same_generator_state_gives_the_same_bytes():
    m = _morph(n_arms=2, arm_strength=0.8, bar_strength=0.5, clumpiness=0.4, disturbance=0.3, ring=True,
               companions=(Companion(80, -60, 2.0, 0.05, 1.0, 0.0, True),))
    first = render(m, np.random.default_rng(123))
    assert np.array_equal(first, render(m, np.random.default_rng(123)))
    assert not np.array_equal(first, render(m, np.random.default_rng(124)))


def test_sky_is_dark_noisy_and_mostly_under_the_threshold():
    image = render(_morph(radius=8.0), np.random.default_rng(1))
    sky = _gray(image)[:100, :100]
    assert 1.5 < sky.mean() < 9 and 2 < sky.std() < 8
    # real GZ2 skies: blue darkest. 30 % of frames get a random colour cast, so compare medians over frames
    skies = np.array([render(_morph(radius=8.0), np.random.default_rng(seed))[:100, :100].reshape(-1, 3).mean(axis=0)
                      for seed in range(1, 8)])
    assert np.median(skies[:, 0]) < np.median(skies[:, 1])


def test_bulge_is_redder_than_the_disk():
    m = _morph(radius=25.0, bulge_fraction=0.35, colour_bulge=RED, colour_disk=BLUE, axis_ratio=1.0)
    image = render(m, np.random.default_rng(2)).astype(np.float64)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(xx - CENTRE, yy - CENTRE)
    centre, outskirts = r < 3, (r > 30) & (r < 45)
    ratio_centre = image[..., 2][centre].sum() / image[..., 0][centre].sum()
    ratio_outskirts = image[..., 2][outskirts].sum() / image[..., 0][outskirts].sum()
    assert ratio_centre > 1.2 > 1.0 > ratio_outskirts


@pytest.mark.parametrize("angle", [0.3, 1.2, 2.5])
def test_edgeon_disk_is_elongated_along_its_position_angle(angle):
    m = _morph(kind="edgeon", radius=20.0, axis_ratio=0.12, bulge_fraction=0.15, position_angle=angle)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.drawContours(mask, [min(_blobs(render(m, np.random.default_rng(3))),
                                key=lambda c: math.dist(_centroid(c), (CENTRE, CENTRE)))], -1, 1, -1)
    mom = cv2.moments(mask, binaryImage=True)
    mu20, mu02, mu11 = mom["mu20"], mom["mu02"], mom["mu11"]
    measured = 0.5 * math.atan2(2 * mu11, mu20 - mu02)  # +y is down in the image, as for the angle
    diff = (measured - angle + math.pi / 2) % math.pi - math.pi / 2
    assert abs(diff) < 0.08
    spread = math.hypot(mu20 - mu02, 2 * mu11)
    assert (mu20 + mu02 + spread) / (mu20 + mu02 - spread) > 9  # axis ratio of the blob below 1/3


@pytest.mark.parametrize("radius, branch", [(8.0, "center106"), (25.0, "center212"), (60.0, "full")])
def test_radius_sets_the_crop_branch(radius, branch):
    for seed in range(3):
        box = _central_box(render(_morph(radius=radius), np.random.default_rng(seed)))
        took = "center106" if _inside(box, 53) else "center212" if _inside(box, 106) else "full"
        assert took == branch, (radius, seed, box)


def test_bigger_radius_gives_a_bigger_blob():
    areas = [cv2.contourArea(max(_blobs(render(_morph(radius=r), np.random.default_rng(4))), key=cv2.contourArea))
             for r in (6.0, 12.0, 24.0)]
    assert areas[0] < areas[1] < areas[2]
    assert areas[2] > 8 * areas[0]  # the area grows about as radius^2


def test_fainter_galaxy_of_the_same_size_looks_smaller():
    bright = _central_box(render(_morph(radius=20.0), np.random.default_rng(5)))
    faint = _central_box(render(_morph(radius=20.0, flux=0.1 * TYPICAL_FLUX_PER_AREA * 400), np.random.default_rng(5)))
    assert faint[2] < 0.7 * bright[2]


def test_companion_star_is_a_separate_blob():
    star = Companion(dx=120.0, dy=-80.0, radius=1.8, flux=0.3, axis_ratio=1.0, position_angle=0.0, is_star=True)
    where = (CENTRE + 120, CENTRE - 80)
    for seed in range(3):
        alone = _blobs(render(_morph(), np.random.default_rng(seed)))
        both = _blobs(render(_morph(companions=(star,)), np.random.default_rng(seed)))
        assert min(math.dist(_centroid(c), where) for c in alone) > 5  # the field's own sources may be near
        assert min(math.dist(_centroid(c), where) for c in both) < 3
        # the crop still finds the galaxy, not the star
        assert math.dist(_centroid(min(both, key=lambda c: math.dist(_centroid(c), (CENTRE, CENTRE)))),
                         (CENTRE, CENTRE)) < 3


def test_neighbour_galaxy_lands_at_its_offset():
    neighbour = Companion(dx=-90.0, dy=100.0, radius=6.0, flux=0.4, axis_ratio=0.6, position_angle=1.0, is_star=False)
    blobs = _blobs(render(_morph(companions=(neighbour,)), np.random.default_rng(7)))
    assert min(math.dist(_centroid(c), (CENTRE - 90, CENTRE + 100)) for c in blobs) < 3


def _concentration(image: np.ndarray, radius: float) -> float:
    """Sky-subtracted gray light within `radius` over that within 3 `radius`."""
    gray = _gray(image)
    gray -= np.median(gray[:80, :80])
    return gray[_radial_mask(radius)].sum() / gray[_radial_mask(3 * radius)].sum()


def test_high_sersic_index_elliptical_is_more_concentrated_than_a_disk():
    radius = 14.0
    elliptical = _morph(kind="elliptical", radius=radius, sersic_n=5.0, bulge_fraction=1.0, axis_ratio=1.0)
    disk = _morph(radius=radius, bulge_fraction=0.0, axis_ratio=1.0)
    c_ell = np.mean([_concentration(render(elliptical, np.random.default_rng(s)), radius / 2) for s in range(3)])
    c_disk = np.mean([_concentration(render(disk, np.random.default_rng(s)), radius / 2) for s in range(3)])
    assert c_ell > c_disk + 0.05


def test_sampled_ellipticals_fade_no_slower_than_sampled_disks():
    # Real ellipticals' gray profiles fall as steeply as disks' (docs/synthetic.md); with fitted
    # indices of 2.5-6 the synthetic ones kept the brighter wings, and a network learnt that cue.
    wings = {"elliptical": [], "disk": []}
    rng = np.random.default_rng(11)
    while min(map(len, wings.values())) < 30:
        m = sample_morphology(rng)
        if m.kind in wings and len(wings[m.kind]) < 30:
            gray = cv2.cvtColor(render(m, rng), cv2.COLOR_BGR2GRAY)
            sky = float(np.median(np.concatenate([gray[:40].ravel(), gray[-40:].ravel()])))
            wings[m.kind].append(load("synth_realism").profile_wings(gray, sky)["wing3"])
    assert np.median(wings["elliptical"]) < np.median(wings["disk"])


def _azimuthal_contrast(image: np.ndarray, radius: float) -> float:
    """Std over mean of the (lightly blurred) gray light on a circle of `radius` around the centre."""
    gray = cv2.GaussianBlur(_gray(image), (5, 5), 0)
    angles = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    ring = [gray[int(round(CENTRE + radius * math.sin(a))), int(round(CENTRE + radius * math.cos(a)))]
            for a in angles]
    return np.std(ring) / np.mean(ring)


@pytest.mark.parametrize("n_arms, winding", [(2, "medium"), (3, "medium"), (4, "tight"), (6, "medium")])
def test_spiral_arms_modulate_the_disk_around_its_centre(n_arms, winding):
    # arms are spirals, not concentric rings: on a face-on disk they vary with azimuth at every radius
    plain = _morph(radius=25.0, axis_ratio=1.0, bulge_fraction=0.1)
    spiral = replace(plain, n_arms=n_arms, winding=winding, arm_strength=1.0)
    for radius in (22.0, 30.0):
        # the median of 6 renders: one render's arm phases and noise move its contrast by +-40 %
        contrast = [np.median([_azimuthal_contrast(render(m, np.random.default_rng(seed)), radius)
                               for seed in range(8, 14)]) for m in (plain, spiral)]
        assert contrast[1] > 1.6 * contrast[0], (radius, contrast)


def test_field_holds_visible_strongly_coloured_sources():
    # real SDSS fields show a handful of visible, strongly coloured sources around the galaxy: by this
    # count ~8.6 red and ~0.8 blue ones per frame of the 100 real GZ2 images, ~5.4 and ~1.4 per written
    # (JPEG) synthetic frame. On raw renders the photon noise, mostly shared by the channels, evens
    # out the faint peaks' colour, and the g band's wider seeing lowers blue peaks (`_band_mismatch`):
    # 43 red and 7 blue over these 24 frames (before the bands' own seeing: 13 and 6 over 12).
    yy, xx = np.mgrid[:SIZE, :SIZE]
    far = np.hypot(xx - CENTRE, yy - CENTRE) > 40
    red = blue = 0
    for seed in range(24):
        image = render(_morph(radius=10.0), np.random.default_rng(seed))
        gray = cv2.GaussianBlur(_gray(image), (3, 3), 0)
        peaks = (gray == cv2.dilate(gray, np.ones((7, 7), np.uint8))) & (gray > 60) & far
        for y, x in zip(*np.nonzero(peaks)):
            b, _, r = image[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3).astype(float).mean(axis=0)
            red += r > 1.6 * b
            blue += b > 1.2 * r
    assert red >= 24 and blue >= 3, (red, blue)


def test_dust_lane_darkens_the_midplane_of_an_edgeon_disk():
    m = _morph(kind="edgeon", radius=25.0, axis_ratio=0.15, bulge_fraction=0.2, position_angle=0.0)
    centre = int(round(CENTRE))
    midplane = slice(centre - 1, centre + 2), slice(centre + 10, centre + 40)
    # the median of 8 pairs: the lane sits a little off the midplane at random, and the draws after
    # it (the bands' seeing, the stretch) differ between the two renders; one pair ranged 0.61-1.02
    kept = [_gray(render(replace(m, dust_lane=True), np.random.default_rng(seed)))[midplane].mean()
            / _gray(render(m, np.random.default_rng(seed)))[midplane].mean() for seed in range(9, 17)]
    assert np.median(kept) < 0.85, kept


def _autocorrelation(gray: np.ndarray, lag: int) -> float:
    a = gray - gray.mean()
    return float((a[:, :-lag] * a[:, lag:]).mean() / a.var())


def test_seeing_and_zoom_set_the_blur_and_the_noise_grain():
    """A cutout blown up more from SDSS pixels has a wider seeing disc and coarser noise, in pixels."""
    star = dict(kind="star", radius=2.0, flux=3e4, bulge_fraction=0.0, colour_bulge=(1.0, 1.0, 1.0))
    widths = [_central_box(render(_morph(**star, seeing=s), np.random.default_rng(3)))[2] for s in (1.5, 4.0)]
    assert widths[1] > widths[0] + 4
    # the corner of the frame is empty sky (the field keeps its sources faint there only by chance,
    # so take the median over seeds)
    grain = [np.median([_autocorrelation(_gray(render(_morph(zoom=z), np.random.default_rng(seed)))[:90, :90], 3)
                        for seed in range(5)]) for z in (1.5, 4.0)]
    assert grain[1] > grain[0] + 0.2


def test_star_is_a_compact_point_source():
    star = _morph(kind="star", radius=1.8, flux=3e4, bulge_fraction=0.0, colour_bulge=(1.0, 1.0, 1.0))
    galaxy = _morph(radius=15.0, flux=3e4 * 4)
    _, _, w_star, _ = _central_box(render(star, np.random.default_rng(10)))
    _, _, w_gal, _ = _central_box(render(galaxy, np.random.default_rng(10)))
    assert w_star < 0.6 * w_gal


FEATURES = {
    "elliptical": dict(kind="elliptical", bulge_fraction=1.0, sersic_n=3.5),
    "boxy edge-on with dust": dict(kind="edgeon", axis_ratio=0.1, bulge_shape="boxy", dust_lane=True),
    "bulgeless edge-on": dict(kind="edgeon", axis_ratio=0.08, bulge_shape="none", bulge_fraction=0.0),
    "barred spiral with ring": dict(bar_strength=0.9, bar_length=0.8, n_arms=2, arm_strength=0.7, ring=True),
    "flocculent": dict(n_arms=5, winding="tight", arm_strength=0.8),
    "one loose arm": dict(n_arms=1, winding="loose", arm_strength=0.9),
    "lens or arc": dict(lens_or_arc=True),
    "merger": dict(merger=True, companions=(Companion(30.0, 10.0, 8.0, 0.5, 0.7, 1.0, False),)),
    "disturbed irregular": dict(disturbance=0.9, clumpiness=0.9, bulge_fraction=0.0),
    "other": dict(other_odd=True, kind="elliptical", bulge_fraction=1.0),
    "inclined dusty disk": dict(dust_lane=True, axis_ratio=0.35),
    "artifact": dict(kind="artifact"),
    "large": dict(radius=90.0),
    "off frame companion": dict(companions=(Companion(400.0, 0.0, 5.0, 0.5, 1.0, 0.0, False),)),
}


@pytest.mark.parametrize("name", list(FEATURES))
def test_every_feature_renders_a_galaxy_at_the_centre(name):
    m = _morph(**FEATURES[name])
    for seed in range(3):  # several seeds: features pick sub-kinds (lens or arc, artifact type) at random
        image = render(m, np.random.default_rng(seed))
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert _gray(image)[205:220, 205:220].max() > 60


def test_galaxy_light_adds_grain_that_is_mostly_gray_not_colour():
    # Real galaxies are about twice as grainy as their sky at gray levels 15-60, and little of the
    # grain is colour (benchmarks/synth_realism.py, `grain` and `chroma_grain`)
    realism = load("synth_realism")
    grain, chroma, sky_grain = [], [], []
    for seed in range(4):
        image = render(_morph(radius=30.0, bulge_fraction=1.0, colour_bulge=(1.0, 1.0, 1.0)), np.random.default_rng(seed))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        measured = realism.texture(image, gray)
        grain.append(measured["grain"])
        chroma.append(measured["chroma_grain"])
        sky_grain.append(realism.band_pass(gray[:60, :60].astype(np.float32)).std())  # the frame's corner
    # (before: grain 1.2 over a sky of 0.87, chroma 1.4; now 1.56, 0.89 and 0.83)
    assert np.median(grain) > 1.5 * np.median(sky_grain), (grain, sky_grain)
    assert np.median(chroma) < 0.65 * np.median(grain), (chroma, grain)


def _central_source(image: np.ndarray) -> np.ndarray:
    """The crop threshold's connected light at the frame's centre, as synth_realism finds it."""
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    _, labels = cv2.connectedComponents((gray > 30).astype(np.uint8))
    return labels == labels[SIZE // 2, SIZE // 2]


def _corner_sky(image: np.ndarray) -> np.ndarray:
    return np.median(image[:40, :40].reshape(-1, 3), axis=0)


def test_bands_are_offset_and_blurred_against_each_other_as_in_an_sdss_composite():
    # Real GZ2 composites register g and i to r within a fraction of an SDSS pixel (benchmarks/
    # synth_realism.py `fringe`: 1.28 image px between the blue and red light); one plane for all
    # three bands gave 0.2. A white star shows it best: any colour offset is the bands'.
    structure = load("synth_realism").colour_structure
    fringes = []
    for seed in range(8):
        image = render(_morph(kind="star", radius=2.4, flux=3000.0, colour_bulge=(1.0, 1.0, 1.0)),
                       np.random.default_rng(seed))
        fringes.append(structure(image, _central_source(image), _corner_sky(image))["fringe"])
    assert 0.4 < np.median(fringes) < 3.0, fringes


def test_outskirts_are_bluer_than_the_core_and_more_so_in_disks():
    # Bulge and disk of one colour: any gradient is the renderer's own, as in real galaxies
    # (synth_realism `colour_gradient`: real GZ2 0.09, GZ1 ellipticals 0.03, spirals 0.21).
    structure = load("synth_realism").colour_structure
    grey = (1.0, 1.0, 1.0)

    def gradient(**kind):
        values = []
        for seed in range(8):
            image = render(_morph(radius=25.0, colour_bulge=grey, colour_disk=grey, **kind),
                           np.random.default_rng(seed))
            values.append(structure(image, _central_source(image), _corner_sky(image))["colour_gradient"])
        return np.median(values)

    disk, elliptical = gradient(bulge_fraction=0.2), gradient(kind="elliptical", bulge_fraction=1.0)
    assert disk > 0.05 and disk > elliptical + 0.04, (disk, elliptical)


def test_the_faint_outskirts_are_lopsided_but_the_core_is_not():
    # Real galaxies' faint light is far from point-symmetric (synth_realism `faint_asymmetry`), while
    # their cores are as symmetric as analytic profiles. Over these 16 renders the median was 0.20
    # (quartiles 0.19-0.24) without the outskirts' lumps, 0.31 with them.
    realism = load("synth_realism")
    faint, core = [], []
    for seed in range(16):
        elliptical = _morph(kind="elliptical", radius=20.0, bulge_fraction=1.0, sersic_n=2.0)
        image = render(elliptical, np.random.default_rng(seed))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        sky = float(np.median(gray[:40]))
        faint.append(realism.faint_asymmetry(gray, sky)["faint_asymmetry"])
        bright = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.5)[192:233, 192:233] - sky
        core.append(np.abs(bright - bright[::-1, ::-1]).sum() / bright.sum())
    assert np.median(faint) > 0.26, faint
    # (0.04; the same lumps at full strength over the whole galaxy gave 0.11)
    assert np.median(core) < 0.07, core
