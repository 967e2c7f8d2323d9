"""The realism benchmark's image measures on hand-made images: radial-profile wings, faint-light texture."""

import numpy as np
import pytest

from benchmark_scripts import load


def _gaussian_galaxy(sigma: float, peak: float = 180.0, sky: float = 5.0, centre=(210, 214)) -> np.ndarray:
    rows, cols = np.indices((424, 424))
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    return np.round(sky + peak * np.exp(-r2 / (2 * sigma**2))).astype(np.uint8)


def test_wings_of_a_gaussian_profile_are_its_analytic_levels():
    # half the peak at r50 = sigma sqrt(2 ln 2); there exp(-r^2 / 2 sigma^2) is 2^-(r / r50)^2
    wings = load("synth_realism").profile_wings(_gaussian_galaxy(sigma=12.0), sky=5.0)
    assert wings["wing2"] == pytest.approx(2.0**-4, abs=0.012)  # r50 is read to a whole pixel
    assert wings["wing3"] == pytest.approx(2.0**-9, abs=0.006)


def test_a_wider_halo_shows_as_brighter_wings_and_an_empty_frame_has_none():
    realism = load("synth_realism")
    core = _gaussian_galaxy(sigma=6.0, peak=150.0)
    halo = _gaussian_galaxy(sigma=30.0, peak=30.0)
    with_halo = realism.profile_wings(np.minimum(core.astype(int) + halo - 5, 255).astype(np.uint8), sky=5.0)
    without = realism.profile_wings(core, sky=5.0)
    assert with_halo["wing2"] > 2 * without["wing2"] and with_halo["wing3"] > 2 * without["wing3"]
    empty = realism.profile_wings(np.full((424, 424), 5, np.uint8), sky=5.0)
    assert np.isnan(empty["wing2"]) and np.isnan(empty["wing3"])


def test_texture_tells_gray_grain_from_colour_grain_and_reads_only_faint_light():
    texture = load("synth_realism").texture
    rng = np.random.default_rng(0)
    level = np.full((200, 200), 35.0)
    gray_noise = rng.normal(0, 3, level.shape)
    grey = np.repeat(np.round(level + gray_noise)[..., None], 3, axis=2).astype(np.uint8)
    coloured = grey.copy()
    coloured[..., 2] = np.round(level + gray_noise + rng.normal(0, 3, level.shape)).astype(np.uint8)
    plain = texture(grey, grey[..., 1])  # green carries the gray level in both frames
    speckled = texture(coloured, coloured[..., 1])
    assert plain["chroma_grain"] == 0 and plain["grain"] > 0.5
    assert speckled["chroma_grain"] > 0.5 and speckled["grain"] == pytest.approx(plain["grain"])
    # bright light (above the faint band) is not read at all
    bright = texture(grey + np.uint8(100), grey[..., 1] + np.uint8(100))
    assert np.isnan(bright["grain"]) and np.isnan(bright["chroma_grain"])


def _coloured_galaxy(blue_shift: float = 0.0, blue_halo: float = 0.0) -> np.ndarray:
    """A white Gaussian galaxy; its blue plane moved `blue_shift` px along x, plus a wider blue halo."""
    rows, cols = np.indices((424, 424)).astype(np.float64)
    r2 = (rows - 212) ** 2 + (cols - 212) ** 2
    light = 150 * np.exp(-r2 / (2 * 20.0**2))
    blue = 150 * np.exp(-(r2 + 2 * blue_shift * (cols - 212) + blue_shift**2) / (2 * 20.0**2))
    blue = blue + blue_halo * np.exp(-r2 / (2 * 40.0**2))
    return np.round(np.stack([blue, light, light], axis=2) + 5).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_fringe_is_the_offset_between_the_blue_and_red_light(shift):
    realism = load("synth_realism")
    image = _coloured_galaxy(blue_shift=shift)
    inside = image.mean(axis=2) > 5.5  # all the light: a tight footprint pulls the centroids together
    measured = realism.colour_structure(image, inside, sky=5.0)
    assert measured["fringe"] == pytest.approx(shift, abs=0.15)  # 1.96 for 2
    assert abs(measured["colour_gradient"]) < 0.02  # a shift alone makes no ring bluer on average


def test_colour_gradient_is_positive_for_bluer_outskirts_and_needs_a_source():
    realism = load("synth_realism")
    image = _coloured_galaxy(blue_halo=20.0)
    measured = realism.colour_structure(image, image.mean(axis=2) > 30, sky=5.0)
    assert measured["colour_gradient"] > 0.05  # 0.09 here
    assert measured["fringe"] < 0.1
    tiny = realism.colour_structure(image, np.zeros((424, 424), bool), sky=5.0)
    assert np.isnan(tiny["fringe"]) and np.isnan(tiny["colour_gradient"])


def test_faint_asymmetry_is_zero_for_a_symmetric_galaxy_and_grows_with_a_lopsided_halo():
    faint_asymmetry = load("synth_realism").faint_asymmetry
    round_galaxy = _gaussian_galaxy(sigma=20.0)
    assert faint_asymmetry(round_galaxy, sky=5.0)["faint_asymmetry"] < 0.02
    rows, cols = np.indices((424, 424))
    lobe = 25 * np.exp(-((rows - 210) ** 2 + (cols - 264) ** 2) / (2 * 15.0**2))  # faint light on one side
    lopsided = np.clip(round_galaxy + np.round(lobe), 0, 255).astype(np.uint8)
    assert faint_asymmetry(lopsided, sky=5.0)["faint_asymmetry"] > 0.2
    assert np.isnan(faint_asymmetry(np.full((424, 424), 5, np.uint8), sky=5.0)["faint_asymmetry"])
