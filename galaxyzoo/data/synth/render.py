"""Draw one synthetic GZ2 image from its latent `Morphology`.

The picture is built the way an SDSS colour composite is: light in linear
units, blurred by the seeing, on top of sky and photon noise, then squeezed
into 8 bits by an asinh stretch (Lupton et al. 2004). Everything is float32,
each light component is evaluated only inside a box around it, and large
galaxies on a grid coarser than the pixels (they are smooth on that scale
after the seeing), so one render takes a few milliseconds.

Units. Linear light is measured in units of the per-pixel sky noise (one sigma
per channel). `m.flux` is the total (summed over pixels) light of the galaxy
in the channel mean, so its mean surface brightness inside the half-light
ellipse is `flux / (2 pi q radius^2)`. `m.radius` is the half-light radius of
the whole galaxy in pixels (for an edge-on disk: of the same disk seen
face-on). Colour triples (B, G, R) are relative weights, scaled here to mean 1.
A companion's `flux` is relative to `m.flux`.

Geometry. The image centre is pixel ((size - 1) / 2, (size - 1) / 2);
`position_angle` is the angle of the major axis from the +x (column) axis
towards +y (row).

Visible extent. The crop (gray, 5x5 blur, threshold 30) sees light down to
about 7.5 sky sigma per pixel. Write the brightness as
`flux = k * TYPICAL_FLUX_PER_AREA * radius**2` (`morphology.TYPICAL_FLUX_PER_AREA`
= 800). Half the larger side of the gray-30 box, in units of `radius`
(mean of 3 seeds over radii 6-40 px; it shrinks by ~10% from 6 to 40 px):

    k                      0.1    0.3    0.5    1      2      10
    exponential, b/a 1     1.2    1.9    2.2    2.6    3.0    4.0
    exponential, b/a 0.5   1.5    2.2    2.4    2.9    3.3    4.2
    Sersic n=4, b/a 1      0.9    1.5    1.9    2.5    3.3    5.8
    Sersic n=4, b/a 0.6    1.1    1.8    2.2    2.9    3.8    6.6
    disk, B/T 0.3          1.2    2.0    2.3    2.9    3.4    4.7
    edge-on, b/a 0.12      1.5    2.2    2.6    3.0    3.5    4.6

So at k = 1 the extent is 2.5-3 `radius`: radius <~ 18 px fits the central
106 square, ~18-36 px the central 212 square, larger takes the full frame.
(Measured with seeing sigma 1.3-2.2 px; the present 1.5-2.5 px adds 2-5%.)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.special import gammainc

from galaxyzoo.data.synth.morphology import Companion, Morphology, bulge_axis_ratio

# asinh stretch: gray = GAIN * asinh(I / SOFTENING), I the channel mean in sky sigma.
# GAIN / SOFTENING makes the sky noise ~3.7 gray levels, as in real GZ2 JPEGs, and
# GAIN keeps typical bright cores at gray ~190 like theirs.
_STRETCH_SOFTENING = 9.8
_STRETCH_GAIN = 38.0
_SKY_OFFSET = (0.4, 0.9, 0.9)  # residual sky per channel B, G, R: real GZ2 skies are dark, not blue
# Object light that adds one unit of noise variance. In the 100 real GZ2 images a galaxy's faint
# light (gray 15-60) is about twice as grainy as their sky at the finest scale (band-pass sigma
# 0.35-0.7 px: 1.15 against 0.55 gray levels), and little of that grain is colour (red - green
# 0.45). Independent per-channel noise gave the reverse even through our own JPEG encoding, so
# the photon noise is on the sky noise's grid and mostly shared by the channels: an empirical match
# (synth_realism.py's `grain` and `chroma_grain`; docs/synthetic.md).
_PHOTON_GAIN = 1.75
# Noise shared by the three channels, and each one's own: (common, own), common^2 + own^2 = 1.
_SKY_MIX = (0.96, 0.28)  # channel correlation ~0.92
_SHOT_MIX = (0.95, 0.312)  # squares sum to 0.9998; kept as the benchmarks measured it
_PITCH_DEG = {"tight": 12.0, "medium": 20.0, "loose": 32.0}
_YOUNG_TINT = (1.15, 1.0, 0.88)  # young stars in arms and knots: bluer than the disk
_EDGEON_DUST = (0.5, (0.8, 1.0, 1.2))  # light kept and colour tint of a disk seen through its dust
_FAINT_LIMIT = 0.15  # sky sigma; light below this is left outside a component's box
# A galaxy's outskirts are bluer than its core: per galaxy, the natural log of its g/i light ratio
# rises by `slope` per e-fold of radius, slope ~ normal(mean, sigma) + disk * (1 - B/T). Matched to
# the real images' `colour_gradient` (docs/synthetic.md, "Colour fringes, colour gradients and
# lopsided outskirts", as are the two settings below).
_COLOUR_GRADIENT = {"mean": 0.035, "sigma": 0.06, "disk": 0.09}
_OUTSKIRT_LUMPS = (0.2, 0.8)  # `_lumpy` strength range of every galaxy's outskirts (`faint_asymmetry`)
# Each band's seeing against r's (B, R = g, i): the atmosphere's lambda^-0.2, times the seeing's
# change in the minutes between the bands' exposures (log sigma). And g's and i's registration
# error against r, per axis, in SDSS pixels: matched to the real GZ2 images' offsets between
# their colour planes (`fringe`).
_BAND_SEEING = ((1.055, 0.96), 0.1)
_BAND_SHIFT = 0.28


def render(m: Morphology, rng: np.random.Generator, size: int = 424) -> np.ndarray:
    """Render `m` as a (size, size, 3) uint8 BGR image, ready for `cv2.imencode`.

    All randomness (noise, seeing, the details the morphology leaves open) comes
    from `rng`, so one generator state always gives the same bytes.

    Example:

    ```python
    image = render(m, np.random.default_rng(0))
    ok, jpeg = cv2.imencode(".jpg", image)
    ```
    """
    psf = m.seeing * size / 424
    zoom = m.zoom * size / 424  # image pixels per SDSS pixel at this size
    canvas = np.zeros((size, size, 3), np.float32)
    centre = (size - 1) / 2
    cx, cy = centre + m.centre_dx, centre + m.centre_dy
    if m.kind == "star":
        _add_star(canvas, cx, cy, m.flux, _unit_colour(m.colour_bulge), psf, rng)
    else:
        _add_main_galaxy(canvas, m, cx, cy, psf, rng)
    if m.kind == "artifact":
        _add_artifact(canvas, m, cx, cy, psf, rng)
    for comp in m.companions:
        _add_companion(canvas, comp, m.flux, centre, psf, rng)
    for comp in _field_population(size, m.radius if m.kind != "star" else 5.0, rng):
        _add_companion(canvas, comp, 1.0, centre, psf, rng)
    _band_mismatch(canvas, zoom, psf, rng)
    _subtract_sky_estimate(canvas)
    cv2.add(canvas, _sky(canvas, zoom, rng), dst=canvas)
    return _asinh_stretch(canvas, rng)


# ---------------------------------------------------------------- profiles


def _sersic_b(n: float) -> float:
    """b_n such that r_e encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n * n)


def _sersic_surface(total: float, r_e: float, n: float, q: float) -> float:
    """Surface brightness at r_e of a Sersic profile holding `total` light."""
    b = _sersic_b(n)
    area = 2 * math.pi * q * r_e * r_e * n * math.exp(b) * math.gamma(2 * n) / b ** (2 * n)
    return total / area


def _sersic(r2: np.ndarray, total: float, r_e: float, n: float, q: float, soft: float = 0.25) -> np.ndarray:
    """Sersic light on squared elliptical radii `r2` (float32, pixels^2).

    `soft` (pixels^2) stands in for a pixel's area at the cusp of high-n profiles.
    """
    b = _sersic_b(n)
    # (r/r_e)^(1/n) from r^2 avoids a square root
    x = cv2.pow((r2 + np.float32(soft)) * np.float32(1 / (r_e * r_e)), 0.5 / n)
    return cv2.exp(x * np.float32(-b)) * np.float32(_sersic_surface(total, r_e, n, q) * math.exp(b))


def _sersic_reach(total: float, r_e: float, n: float, q: float) -> float:
    """Major-axis radius (pixels) where a Sersic profile fades to `_FAINT_LIMIT`."""
    i_e = _sersic_surface(total, r_e, n, q)
    b = _sersic_b(n)
    if i_e * math.exp(b) <= _FAINT_LIMIT:
        return 2.0
    return r_e * (1 + math.log(i_e / _FAINT_LIMIT) / b) ** n


def _disk_scale(bulge_fraction: float, n: float, bulge_to_disk_re: float) -> float:
    """Disk half-light radius over the galaxy's, so that bulge + disk hold half the light inside 1.

    The light inside R of a Sersic profile is P(2n, b_n (R/r_e)^(1/n)); the
    answer depends only on B/T, n and the bulge/disk size ratio, so a grid
    search is enough.
    """
    if bulge_fraction <= 0:
        return 1.0
    s = np.linspace(0.3, 6.0, 115)
    bulge = gammainc(2 * n, _sersic_b(n) * (1 / (bulge_to_disk_re * s)) ** (1 / n))
    disk = gammainc(2.0, _sersic_b(1.0) / s)
    enclosed = bulge_fraction * bulge + (1 - bulge_fraction) * disk
    return float(np.interp(-0.5, -enclosed, s))  # enclosed falls as the disk grows


# ---------------------------------------------------------------- geometry


class _Grid:
    """A window of the frame around a centre, sampled every `step` pixels.

    `dx`, `dy` are the offsets of the sample points from the centre (pixels);
    `paste` interpolates what was drawn on the grid back to pixels.
    """

    def __init__(self, frame_size: int, cx: float, cy: float, half: float, step: int = 1):
        self.cx, self.cy, self.step = cx, cy, step
        self.y0 = max(0, int(math.floor(cy - half)))
        self.y1 = min(frame_size, int(math.ceil(cy + half)) + 1)
        self.x0 = max(0, int(math.floor(cx - half)))
        self.x1 = min(frame_size, int(math.ceil(cx + half)) + 1)
        nx = max(0, -(-(self.x1 - self.x0) // step))
        ny = max(0, -(-(self.y1 - self.y0) // step))
        mid = (step - 1) / 2  # a grid point sits at the centre of its step x step block
        self.dx = (np.arange(nx, dtype=np.float32) * step + np.float32(self.x0 + mid - cx))[None, :]
        self.dy = (np.arange(ny, dtype=np.float32) * step + np.float32(self.y0 + mid - cy))[:, None]

    @property
    def shape(self) -> tuple[int, int]:
        return self.dy.shape[0], self.dx.shape[1]

    @property
    def empty(self) -> bool:
        return self.dy.shape[0] == 0 or self.dx.shape[1] == 0

    def rotated(self, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Offsets along (u) and across (v) the direction `angle` from +x."""
        c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        return self.dx * c + self.dy * s, self.dy * c - self.dx * s

    def to_grid(self, pu: np.ndarray, pv: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Grid positions of points given along/across `angle` from the centre."""
        c, s = math.cos(angle), math.sin(angle)
        mid = (self.step - 1) / 2
        return ((self.cx + pu * c - pv * s - self.x0 - mid) / self.step,
                (self.cy + pu * s + pv * c - self.y0 - mid) / self.step)

    def paste(self, canvas: np.ndarray, light: np.ndarray) -> None:
        """Add grid `light` (H, W, 3) to the canvas, interpolated back to pixels."""
        if self.step > 1:
            h, w = self.shape
            light = cv2.resize(light, (w * self.step, h * self.step), interpolation=cv2.INTER_LINEAR)
        region = canvas[self.y0:self.y1, self.x0:self.x1]
        cv2.add(region, light[: self.y1 - self.y0, : self.x1 - self.x0], dst=region)  # in place, faster than +=


def _unit_colour(colour) -> np.ndarray:
    """B, G, R weights scaled to mean 1, so colour never changes the channel-mean light."""
    c = np.maximum(np.asarray(colour, np.float64), 1e-3)
    return (c / c.mean()).astype(np.float32)


def _deposit(out: np.ndarray, xs: np.ndarray, ys: np.ndarray, fluxes: np.ndarray) -> None:
    """Add point sources at sub-pixel positions, each split bilinearly over four pixels.

    `out` is (H, W) with `fluxes` (N,), or (H, W, C) with `fluxes` (N, C).
    """
    h, w = out.shape[:2]
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    fx, fy = xs - x0, ys - y0
    for ox, oy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + ox, y0 + oy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        share = fluxes * (weight if fluxes.ndim == 1 else weight[:, None])
        np.add.at(out, (yi[ok], xi[ok]), share[ok].astype(np.float32))


# ---------------------------------------------------------------- the main galaxy


def _add_main_galaxy(canvas: np.ndarray, m: Morphology, cx: float, cy: float, psf: float, rng) -> None:
    """Bulge, disk and their features, blurred by the seeing, added to the canvas.

    Light goes into three gray layers that each have one colour (old stars in
    the bulge colour, the disk, young blue light); they are blurred together
    and coloured once, with a 3x3 colour matrix.
    """
    if m.flux <= 0 or m.radius <= 0:
        return
    q = float(np.clip(m.axis_ratio, 0.03, 1.0))
    edgeon = m.kind == "edgeon"
    bt = float(np.clip(m.bulge_fraction, 0.0, 1.0))
    if edgeon and m.bulge_shape == "none":
        bt = 0.0
    n = float(np.clip(m.sersic_n, 0.5, 8.0))
    bulge_ratio = float(rng.uniform(0.18, 0.35))  # bulge r_e / disk r_e
    disk_re = m.radius * _disk_scale(bt, n, bulge_ratio)
    bulge_re = m.radius if bt >= 1 else bulge_ratio * disk_re
    bulge_q = q if bt >= 1 else bulge_axis_ratio(q)
    f_bulge = m.flux * bt
    f_disk = m.flux - f_bulge
    disk_colour = np.asarray(m.colour_disk, np.float64)
    if edgeon:
        # seen edge-on, a disk's own dust dims and reddens it (it would otherwise look ~1/q times brighter)
        f_disk *= _EDGEON_DUST[0]
        disk_colour = disk_colour * np.asarray(_EDGEON_DUST[1])
    thickness = _edgeon_thickness(q, disk_re)

    reach = 0.0
    if f_bulge > 0:
        reach = _sersic_reach(f_bulge, bulge_re, n, bulge_q)
    if f_disk > 0:
        reach = max(reach, _sersic_reach(f_disk, disk_re, 1.0, 0.3 if edgeon else max(q, 0.12)))
    if m.merger:
        reach = max(reach, 4.5 * m.radius)
    if m.lens_or_arc or m.other_odd:
        reach = max(reach, 4.0 * m.radius)
    # the finest detail (bulge core, edge-on thickness) must span two grid cells, and the
    # seeing blur at least 0.6 of one, for the grid to look like pixels once interpolated
    finest = min(bulge_re if f_bulge > 0 else math.inf, thickness if edgeon else math.inf)
    step = int(max(1, min(3, m.radius / 8, finest / 2, psf / 0.6)))
    grid = _Grid(canvas.shape[0], cx, cy, min(reach, canvas.shape[0]) + 3 * psf, step)
    if grid.empty:
        return
    old = np.zeros(grid.shape, np.float32)
    disk = np.zeros(grid.shape, np.float32)
    young = np.zeros(grid.shape, np.float32)
    soft = 0.25 * step * step

    u, v = _disturbed(*grid.rotated(m.position_angle), m.disturbance, m.radius, rng)
    if f_bulge > 0:
        old += _bulge(u, v, f_bulge, bulge_re, n, bulge_q, m.bulge_shape if edgeon else "rounded", soft)
    if f_disk > 0 and edgeon:
        disk += _edgeon_disk(u, v, f_disk, disk_re, thickness)
    elif f_disk > 0:
        _inclined_disk(old, disk, young, grid, u, v, f_disk, disk_re, q, m, rng)
    if m.disturbance > 0 or m.clumpiness > 0:
        _lumpy((disk, young), max(m.disturbance, m.clumpiness), 6, rng)
    # No galaxy's outer isophotes are perfect ellipses: real faint light is more lopsided than
    # analytic profiles' (`faint_asymmetry`), yet too faint for volunteers to call it disturbed.
    # (squared elliptical radius in half-light radii; q held >= 0.3 so an edge-on's minor axis stays near)
    r2 = (u * u + (v * np.float32(1 / max(q, 0.3))) ** 2) * np.float32(1 / m.radius**2)
    far = (r2 * np.float32(0.25)) ** 2  # (r / 2 r_e)^4: the lumps reach half strength at two half-light radii
    _lumpy((old, disk, young), float(rng.uniform(*_OUTSKIRT_LUMPS)), 6, rng, where=far / (1 + far))
    if m.clumpiness > 0:
        young += _clumps(grid, m, m.flux * 0.3 * m.clumpiness, disk_re, q, rng)
    if m.merger:
        disk += _tidal_tails(u, v, m.flux * float(rng.uniform(0.08, 0.18)), m.radius, step, rng)
    if m.lens_or_arc:
        _lens_or_arc(old, young, u, v, m.flux, m.radius, q, rng)
    if m.other_odd:
        old += _shells(u, v, m.flux * float(rng.uniform(0.015, 0.035)), m.radius, rng)
    if m.dust_lane:
        lane = _dust_lane(u, v, disk_re, q, thickness, edgeon, rng)
        old *= lane
        disk *= lane

    colours = np.stack([
        _unit_colour(m.colour_bulge),
        _unit_colour(disk_colour),
        _unit_colour(disk_colour * np.asarray(_YOUNG_TINT)),
    ], axis=1)  # rows B, G, R; columns old, disk, young
    layers = cv2.GaussianBlur(cv2.merge([old, disk, young]), (0, 0), psf / step)
    gradient = _COLOUR_GRADIENT
    slope = rng.normal(gradient["mean"], gradient["sigma"]) + gradient["disk"] * (1 - bt)
    grid.paste(canvas, cv2.transform(layers, colours) * _bluer_outskirts(r2, slope))


def _bluer_outskirts(r2: np.ndarray, slope: float) -> np.ndarray:
    """(H, W, 3) BGR factors: blue up and red down by half of `slope` per e-fold of elliptical radius.

    `r2` is the squared radius in half-light radii; the radius is held between
    0.2 and 6 so that neither the core nor the far outskirts take extreme colours.
    """
    log_rho = cv2.log(np.clip(r2, 0.04, 36.0)) * np.float32(slope / 4)
    return cv2.merge([cv2.exp(log_rho), np.ones_like(log_rho), cv2.exp(-log_rho)])


def _bulge(u, v, total, r_e, n, q, shape, soft) -> np.ndarray:
    """Sersic bulge; a boxy one has superellipse isophotes |u|^c + |v/q|^c = r^c, c = 3.5."""
    if shape == "boxy":
        c = 3.5
        rc = cv2.pow(np.abs(u), c) + cv2.pow(np.abs(v) * np.float32(1 / q), c)
        # a c = 3.5 superellipse holds ~1.15 times the area of its ellipse
        return _sersic(cv2.pow(rc, 2 / c), total / 1.15, r_e, n, q, soft)
    return _sersic(u * u + v * v * np.float32(1 / (q * q)), total, r_e, n, q, soft)


def _edgeon_thickness(q: float, disk_re: float) -> float:
    """Scale height z0 (pixels) of the sech^2 profile of an edge-on disk of b/a `q`."""
    return max(q * disk_re, 0.7)


def _edgeon_disk(u, v, total, r_e, z0) -> np.ndarray:
    """Edge-on exponential disk: exp(-|u|/h) along the plane, sech^2(v/z0) across it."""
    h = r_e / _sersic_b(1.0)
    i0 = total / (4 * h * z0)
    radial = cv2.exp(cv2.sqrt(u * u + np.float32(0.25)) * np.float32(-1 / h))
    # sech^2(x) = 4 e^-2|x| / (1 + e^-2|x|)^2 never overflows
    e = cv2.exp(np.abs(v) * np.float32(-2 / z0))
    return radial * e * np.float32(4 * i0) / ((e + np.float32(1)) ** 2)


def _inclined_disk(old, disk, young, grid: _Grid, u, v, total, r_e, q, m: Morphology, rng) -> None:
    """An inclined exponential disk with its bar, spiral arms and ring.

    Features live in the disk plane: we deproject (v / q), so a bar or ring
    seen at low b/a is foreshortened like the disk itself.
    """
    q = max(q, 0.12)
    vd = v * np.float32(1 / q)
    r2 = u * u + vd * vd
    bar_frac = 0.3 * float(np.clip(m.bar_strength, 0, 1))
    ring_frac = float(rng.uniform(0.12, 0.22)) if m.ring else 0.0
    smooth = _sersic(r2, total * (1 - bar_frac - ring_frac), r_e, 1.0, q)
    bar_end = 0.0
    if bar_frac > 0:
        bar_end = max(m.bar_length, 0.2) * m.radius
        old += _bar(u, vd, total * bar_frac, bar_end, q, rng)
    if m.n_arms > 0 and m.arm_strength > 0:
        h = r_e / _sersic_b(1.0)
        arms = _SpiralArms(m.n_arms, m.winding, max(bar_end, 0.7 * h), h, rng)
        pattern, share = arms.pattern(u, vd, r2)
        amp = np.float32(0.4 * np.clip(m.arm_strength, 0, 1))  # real arms are faint and diffuse
        arm_light = smooth * amp * pattern
        # star formation along the arms is patchy, more so in flocculent spirals
        _lumpy((arm_light,), 0.7 if m.n_arms >= 5 else 0.4, 12, rng)
        young += arm_light  # arms gather the disk light; what they hold is young and blue
        disk += smooth * (np.float32(1) - amp * share)
        knots = total * (1 - bar_frac - ring_frac) * 0.06 * float(amp)
        young += arms.knots(grid, m.position_angle, q, knots, int(4 + 10 * m.arm_strength), rng)
    else:
        disk += smooth
    if ring_frac > 0:
        r_ring = bar_end * 1.05 if bar_end > 0 else r_e * float(rng.uniform(0.9, 1.6))
        width = r_ring * float(rng.uniform(0.07, 0.13))
        ring = cv2.exp((cv2.sqrt(r2) - np.float32(r_ring)) ** 2 * np.float32(-0.5 / width**2))
        area = 2 * math.pi * q * r_ring * width * math.sqrt(2 * math.pi)
        disk += ring * np.float32(total * ring_frac / area)


def _bar(u, vd, total, length, q, rng) -> np.ndarray:
    """Ferrers bar (1 - m^2)^2 of semi-major axis `length`, at a random angle in the disk plane."""
    phi = float(rng.uniform(0, math.pi))
    c, s = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    b = length * float(rng.uniform(0.2, 0.3))
    bu = (u * c + vd * s) * np.float32(1 / length)
    bv = (vd * c - u * s) * np.float32(1 / b)
    ferrers = cv2.max(np.float32(1) - bu * bu - bv * bv, 0)
    # (1 - m^2)^2 integrates to pi / 3 over the unit disk; the sky squeezes the disk plane by q
    return ferrers * ferrers * np.float32(total / (math.pi / 3 * length * b * q))


class _SpiralArms:
    """Logarithmic spiral arms in the disk plane, each drawn on its own.

    Arm k follows theta = phase_k + sense ln(R) / tan(pitch_k). Across it the
    light is a Gaussian in the wrapped angle d_k = theta - that (so its width
    grows with R, as real arms broaden outwards). Each arm starts a little
    beyond `r_start` and fades out past its own end radius, and the arms are
    not exactly evenly spaced: together that keeps many or tightly wound arms
    from closing into concentric rings.
    """

    def __init__(self, n_arms, winding, r_start, scale, rng):
        count = int(n_arms) if n_arms < 5 else int(rng.integers(5, 7))
        spacing = 2 * math.pi / count
        pitch = _PITCH_DEG.get(winding, 20.0) + float(rng.normal(0, 2.0))
        self.sense = 1.0 if rng.random() < 0.5 else -1.0
        self.phase = rng.uniform(0, 2 * math.pi) + spacing * (np.arange(count) + rng.normal(0, 0.12, count))
        self.cot = 1 / np.tan(np.radians(np.clip(pitch * (1 + rng.normal(0, 0.1, count)), 6, 50)))
        # an arm is 0.10-0.16 R across (flocculent ones broader), which in angle is that over
        # sin(pitch); capped so that many tightly wound arms still leave gaps between them
        across = rng.uniform(0.16, 0.26, count) * (1.3 if count >= 5 else 1.0)
        self.width = np.minimum(across * np.sqrt(1 + self.cot**2), min(0.2 * spacing, 0.6))
        self.start = r_start * rng.uniform(0.8, 1.3, count)
        self.end = scale * rng.uniform(2.5, 4.5, count) * (0.7 if count >= 5 else 1.0)
        self.end = np.maximum(self.end, 2 * self.start)
        self.strength = rng.uniform(0.7, 1.3, count)
        self.scale = scale

    def _envelope(self, k, radius):
        """Arm k's contrast along R: rises from its start, fades past its end."""
        onset = np.clip((radius - np.float32(self.start[k])) * np.float32(1 / self.start[k]), 0, 1)
        x = radius * np.float32(1 / self.end[k])
        x2 = x * x
        return onset * np.float32(self.strength[k]) / (np.float32(1) + x2 * x2)

    def pattern(self, u, vd, r2):
        """(arm light over the smooth disk's, its azimuthal mean) on disk-plane offsets."""
        radius = cv2.sqrt(r2)
        theta = np.arctan2(vd, u)
        log_r = cv2.log(r2 + np.float32(1e-2)) * np.float32(0.5)
        pattern = np.zeros(u.shape, np.float32)
        share = np.zeros(u.shape, np.float32)
        count = len(self.phase)
        for k in range(count):
            d = theta - log_r * np.float32(self.sense * self.cot[k]) - np.float32(self.phase[k])
            d = (d + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
            envelope = self._envelope(k, radius) * np.float32(1 / count)
            # the Gaussian's azimuthal mean is width / sqrt(2 pi): divide it out for unit mean
            ridge = cv2.exp(d * d * np.float32(-0.5 / self.width[k] ** 2))
            pattern += ridge * envelope * np.float32(math.sqrt(2 * math.pi) / self.width[k])
            share += envelope
        return pattern, share

    def knots(self, grid: _Grid, angle, q, total, count, rng) -> np.ndarray:
        """Blue star-forming knots strung along the arm ridges."""
        k = rng.integers(0, len(self.phase), count)
        radius = np.exp(rng.uniform(np.log(self.start[k] * 1.2), np.log(self.end[k])))
        theta = self.phase[k] + self.sense * self.cot[k] * np.log(radius) + rng.normal(0, 0.3 * self.width[k])
        # knots are brightest where the disk is: far out a bright knot would look like a bead
        weights = (rng.pareto(2.5, count) + 1) * np.exp(-radius / self.scale)
        blur = float(rng.uniform(0.8, 1.3))
        return _points(grid, angle, radius * np.cos(theta), radius * np.sin(theta) * q, weights, total, blur)


def _disturbed(u, v, disturbance, radius, rng):
    """Lopsided coordinates: outer isophotes slide towards one side, inner ones stay."""
    if disturbance <= 0:
        return u, v
    phi = float(rng.uniform(0, 2 * math.pi))
    r = cv2.sqrt(u * u + v * v)
    shift = r * r * np.float32(0.35 * disturbance) / (r + np.float32(radius))
    return u - shift * np.float32(math.cos(phi)), v - shift * np.float32(math.sin(phi))


def _lumpy(layers, strength, cells, rng, where=None) -> None:
    """Multiply layers by a smooth random field of `cells` x `cells` lumps: patchy light.

    `where` (the layers' shape, 0..1) scales the lumps' strength from place to place.
    """
    h, w = layers[0].shape
    field = cv2.resize(rng.normal(0, 1, (cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if where is not None:
        field *= where
    lumps = cv2.exp(field * np.float32(0.8 * strength))
    for layer in layers:
        layer *= lumps


def _points(grid: _Grid, angle, pu, pv, weights, total, blur) -> np.ndarray:
    """Blobs (`blur` pixels) at galaxy-frame positions (pu along `angle`), holding `total` light."""
    xs, ys = grid.to_grid(pu, pv, angle)
    out = np.zeros(grid.shape, np.float32)
    # one grid cell covers step^2 pixels: divide to keep light per pixel
    _deposit(out, xs, ys, weights * (total / weights.sum() / grid.step**2))
    return cv2.GaussianBlur(out, (0, 0), blur / grid.step)


def _clumps(grid: _Grid, m: Morphology, total, r_e, q, rng) -> np.ndarray:
    """Knots of star formation scattered over the inner disk, a few pixels across."""
    count = int(rng.integers(3, 6) + 30 * m.clumpiness)
    r = rng.gamma(2.0, 0.7 * r_e / _sersic_b(1.0), count)
    t = rng.uniform(0, 2 * math.pi, count)
    weights = rng.pareto(2.0, count) + 1
    blur = float(rng.uniform(1.0, 2.0)) + 0.03 * r_e
    return _points(grid, m.position_angle, r * np.cos(t), r * np.sin(t) * max(q, 0.25), weights, total, blur)


def _tidal_tails(u, v, total, radius, step, rng) -> np.ndarray:
    """One or two smooth curved streams of stars pulled out by the interaction.

    A tail is a diffuse band around the curve theta = start + bend (R/radius - 1),
    R from 1 to ~4.5 radii, widening and fading outwards, with faint lumps.
    """
    r = cv2.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    s = r * np.float32(1 / radius)
    out = np.zeros(u.shape, np.float32)
    start = float(rng.uniform(0, 2 * math.pi))
    bend = float(rng.uniform(0.4, 0.9)) * (1 if rng.random() < 0.5 else -1)
    for k in range(int(rng.integers(1, 3))):
        length = float(rng.uniform(3.0, 4.5))
        centre = np.float32(start + k * math.pi + float(rng.normal(0, 0.3))) + s * np.float32(bend) - np.float32(bend)
        d = (theta - centre + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
        width = np.float32(0.25 * radius) + r * np.float32(float(rng.uniform(0.1, 0.18)))  # pixels across
        across = d * r / width
        onset = np.clip(s - np.float32(0.7), 0, 1)
        along = cv2.exp(s * np.float32(-1 / 1.6)) * onset / (np.float32(1) + (s * np.float32(1 / length)) ** 8)
        out += cv2.exp(across * across * np.float32(-0.5)) * along * np.float32(rng.uniform(0.6, 1.0))
    _lumpy((out,), 0.35, 10, rng)
    total_now = float(out.sum())
    # one grid cell covers step^2 pixels: divide to keep light per pixel
    return out * np.float32(total / (total_now * step**2)) if total_now > 0 else out


def _lens_or_arc(old, young, u, v, flux, radius, q, rng) -> None:
    """A lens (flat plateau of old light with a sharp edge) or, one time in three, a thin blue lensed arc."""
    if rng.random() < 2 / 3:
        r_lens = radius * float(rng.uniform(0.8, 1.3))
        vd = v * np.float32(1 / max(q, 0.2))
        x2 = (u * u + vd * vd) * np.float32(1 / r_lens**2)
        x4 = x2 * x2
        plateau = np.float32(1) / (np.float32(1) + x4 * x4 * x4)
        old += plateau * np.float32(flux * float(rng.uniform(0.25, 0.4)) / (math.pi * r_lens**2 * max(q, 0.2)))
        return
    r_arc = radius * float(rng.uniform(2.0, 2.8))
    span = float(rng.uniform(0.6, 1.4))  # radians
    width = float(rng.uniform(0.6, 1.0))
    centre = float(rng.uniform(-math.pi, math.pi))
    r = cv2.sqrt(u * u + v * v)
    dtheta = np.arctan2(v, u) - np.float32(centre)
    dtheta = (dtheta + np.float32(math.pi)) % np.float32(2 * math.pi) - np.float32(math.pi)
    arc = cv2.exp((r - np.float32(r_arc)) ** 2 * np.float32(-0.5 / width**2)
                  + dtheta * dtheta * np.float32(-2 / span**2))
    young += arc * np.float32(rng.uniform(30, 70))  # a lensed source is faint whatever the lens


def _shells(u, v, total, radius, rng) -> np.ndarray:
    """Sharp-edged shells on alternating sides: the 'other' odd feature of a minor merger."""
    r = cv2.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    out = np.zeros(u.shape, np.float32)
    side = float(rng.uniform(0, 2 * math.pi))
    for k in range(int(rng.integers(2, 5))):
        edge = radius * (1.4 + 0.7 * k) * float(rng.uniform(0.9, 1.1))
        inside = cv2.max(np.float32(edge) - r, 0)
        profile = cv2.exp(inside * np.float32(-1 / (0.2 * edge))) * (r < np.float32(edge))
        window = cv2.max(np.cos(theta - np.float32(side + k * math.pi)) + np.float32(0.2), 0)
        out += profile * window
    s = float(out.sum())
    return out * np.float32(total / s) if s > 0 else out


def _dust_lane(u, v, r_e, q, thickness, edgeon, rng) -> np.ndarray:
    """Transmission of a dark band along the major axis (a little off-centre: not exactly edge-on)."""
    h = r_e / _sersic_b(1.0)
    thick = thickness if edgeon else max(q, 0.15) * r_e * 0.5
    width = max(thick * float(rng.uniform(0.45, 0.7)), 0.8)  # wide enough to survive the seeing
    side = thick * float(rng.uniform(-0.3, 0.3) if edgeon else rng.choice([-1, 1]) * rng.uniform(0.2, 0.6))
    depth = float(rng.uniform(0.7, 0.95))
    x = u * np.float32(1 / (3 * h))
    x2 = x * x
    along = np.float32(1) / (np.float32(1) + x2 * x2)
    band = cv2.exp((v - np.float32(side)) ** 2 * np.float32(-0.5 / width**2))
    return np.float32(1) - band * along * np.float32(depth)


# ---------------------------------------------------------------- other light


def _star_colour(rng) -> np.ndarray:
    """A point on the stellar locus, from hot blue-white to cool red stars."""
    t = float(rng.beta(1.6, 1.1))  # most field stars are cool, orange-red dwarfs
    return _unit_colour((1.6 - 1.2 * t, 1.0, 0.6 + 1.5 * t))


def _add_star(canvas, cx, cy, flux, colour, psf, rng) -> None:
    """A point source: Moffat profile (beta 2.5, the seeing's FWHM), diffraction spikes when bright."""
    if flux <= 0:
        return
    beta = 2.5
    alpha = 2.3548 * psf / (2 * math.sqrt(2 ** (1 / beta) - 1))
    peak = flux * (beta - 1) / (math.pi * alpha * alpha)
    reach = alpha * math.sqrt(max((peak / _FAINT_LIMIT) ** (1 / beta) - 1, 1.0))
    spike_len = 0.06 * math.sqrt(flux) if flux > 2e4 else 0.0
    grid = _Grid(canvas.shape[0], cx, cy, min(max(reach, 2.5 * spike_len), canvas.shape[0]))
    if grid.empty:
        return
    r2 = grid.dx * grid.dx + grid.dy * grid.dy
    light = cv2.pow(r2 * np.float32(1 / alpha**2) + np.float32(1), -beta) * np.float32(peak)
    if spike_len > 0:
        u, v = grid.rotated(float(rng.normal(0, 0.05)))
        thin = 0.7 * psf
        scale = np.float32(0.02 * flux / (4 * spike_len * math.sqrt(2 * math.pi) * thin))
        for along, across in ((u, v), (v, u)):
            spike = np.abs(along) * np.float32(-1 / spike_len) - across * across * np.float32(0.5 / thin**2)
            light += cv2.exp(spike) * scale
    grid.paste(canvas, light[..., None] * colour)


def _add_companion(canvas, comp: Companion, main_flux, centre, psf, rng) -> None:
    """A foreground star or a neighbouring galaxy at an offset from the image centre."""
    cx, cy = centre + comp.dx, centre + comp.dy
    flux = comp.flux * main_flux
    if comp.is_star:
        _add_star(canvas, cx, cy, flux, _star_colour(rng), psf, rng)
        return
    if flux <= 0 or comp.radius <= 0:
        return
    n = float(rng.uniform(0.8, 4.0))
    q = float(np.clip(comp.axis_ratio, 0.1, 1.0))
    grid = _Grid(canvas.shape[0], cx, cy, min(_sersic_reach(flux, comp.radius, n, q), canvas.shape[0]) + 3 * psf)
    if grid.empty:
        return
    u, v = grid.rotated(comp.position_angle)
    light = cv2.GaussianBlur(_sersic(u * u + v * v * np.float32(1 / q**2), flux, comp.radius, n, q), (0, 0), psf)
    # from red early types to blue star-forming neighbours
    colour = _unit_colour(np.array((0.65, 0.95, 1.4)) * (np.array((2.1, 1.05, 0.5)) ** float(rng.uniform(0, 1))))
    grid.paste(canvas, light[..., None] * colour)


def _field_population(size: int, radius: float, rng) -> list[Companion]:
    """The visible stars and small background galaxies of an SDSS field, away from the galaxy.

    A few to ~15 per frame, peaking at 8-300 sky sigma (most faint); they keep
    out of 3 radii (at least 25 px) around the centre so that the crop still
    sees the galaxy alone. Fluxes are absolute (the caller passes main flux 1).
    """
    count = int(rng.poisson(rng.uniform(3, 12)))
    half = (size - 1) / 2
    xy = rng.uniform(-half, half, (count, 2))
    keep = np.hypot(xy[:, 0], xy[:, 1]) > max(25.0, 3 * radius) * size / 424
    out = []
    for dx, dy in xy[keep]:
        if rng.random() < 0.35:
            # a PSF (sigma ~2 px) holds ~25 peak fluxes; log-uniform in flux favours faint ones
            peak = math.exp(rng.uniform(math.log(8), math.log(300)))
            out.append(Companion(float(dx), float(dy), 2.0, 25 * peak, 1.0, 0.0, True))
        else:
            r_e = float(rng.uniform(1.5, 4.5))
            flux = r_e * r_e * math.exp(rng.uniform(math.log(30), math.log(400)))
            out.append(Companion(float(dx), float(dy), r_e, flux, float(rng.uniform(0.3, 1)),
                                 float(rng.uniform(0, math.pi)), False))
    return out


def _add_artifact(canvas, m: Morphology, cx, cy, psf, rng) -> None:
    """A satellite trail, a saturated star's bleed column, or a big coloured ghost."""
    size = canvas.shape[0]
    kind = ("trail", "bleed", "ghost")[int(rng.integers(0, 3))]
    if kind == "bleed":
        _add_star(canvas, cx, cy, max(m.flux, 1e5), _star_colour(rng), psf, rng)
        length = float(rng.uniform(40, 160))
        grid = _Grid(size, cx, cy, length)
        if grid.empty:
            return
        column = cv2.exp(grid.dx * grid.dx * np.float32(-0.5 / 1.2**2)) * np.clip(
            np.float32(1) - np.abs(grid.dy) * np.float32(1 / length), 0, None)
        grid.paste(canvas, column[..., None] * (np.float32(rng.uniform(300, 2000)) * _star_colour(rng)))
        return
    grid = _Grid(size, (size - 1) / 2, (size - 1) / 2, size)
    # artifacts live in one or two filters, so they are strongly coloured
    colour = _unit_colour(rng.dirichlet(np.full(3, 0.5)) + 0.05)
    if kind == "trail":
        _, v = grid.rotated(float(rng.uniform(0, math.pi)))
        offset = np.float32(rng.normal(0, 25))
        light = cv2.exp((v - offset) ** 2 * np.float32(-0.5 / rng.uniform(0.8, 1.6) ** 2))
        light *= np.float32(rng.uniform(20, 150))
    else:
        gx, gy = rng.normal(0, 40, 2)
        r = cv2.sqrt((grid.dx - np.float32(gx)) ** 2 + (grid.dy - np.float32(gy)) ** 2)
        x2 = (r * np.float32(1 / rng.uniform(40, 160))) ** 2
        light = np.float32(rng.uniform(2, 8)) / (np.float32(1) + x2 * x2 * x2)
    grid.paste(canvas, light[..., None] * colour)


# ---------------------------------------------------------------- sky and stretch


def _band_mismatch(canvas: np.ndarray, zoom: float, psf: float, rng) -> None:
    """Give each band its own seeing, and shift the g and i light against r's.

    SDSS takes g, r and i minutes apart through different air, and the colour
    composite registers them to a fraction of a pixel: every source on the
    canvas gets faint colour fringes (a bluer halo where g's seeing is the
    wider, a blue and a red edge where the bands are offset; the faint speckle
    `_sky` adds later gets none). `psf`, the seeing the sources were drawn
    with, becomes the sharpest band's, so the other two get wider: r's by 6 %
    at the median (r is the sharpest a third of the time), g's by 14 %.
    """
    (g_ratio, i_ratio), jitter = _BAND_SEEING
    widths = np.array([g_ratio, 1.0, i_ratio]) * np.exp(rng.normal(0.0, jitter, 3))
    widths /= widths.min()
    shifts = rng.normal(0.0, _BAND_SHIFT * zoom, (3, 2))  # g's and i's offsets from r (row 1 unused)
    planes = list(cv2.split(canvas))
    for c, plane in enumerate(planes):
        extra = psf * math.sqrt(widths[c] ** 2 - 1.0)
        if extra > 0.05:  # the sharpest band, and any within a few per cent of it, stay as drawn
            plane = cv2.GaussianBlur(plane, (0, 0), extra)
        if c != 1:
            move = np.float32([[1, 0, shifts[c, 0]], [0, 1, shifts[c, 1]]])
            # replicate the edge: a zero fill would leave a dark strip in one band along the frame's edge
            plane = cv2.warpAffine(plane, move, plane.shape[::-1], flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
        planes[c] = plane
    cv2.merge(planes, dst=canvas)


def _subtract_sky_estimate(canvas: np.ndarray) -> None:
    """Remove the light level at the frame's border, as the SDSS sky subtraction does.

    The pipeline takes a big galaxy's outer halo for sky, so around the
    largest, brightest galaxies the frame edge is dark rather than glowing.
    """
    border = np.concatenate([canvas[:4].reshape(-1, 3), canvas[-4:].reshape(-1, 3),
                             canvas[:, :4].reshape(-1, 3), canvas[:, -4:].reshape(-1, 3)])
    level = np.median(border, axis=0)
    if level.max() > 0.05:  # most frames have no halo at the edge: skip the full-frame pass
        cv2.subtract(canvas, tuple(float(v) for v in level) + (0.0,), dst=canvas)


def _coarse_noise_gain(blur: float) -> float:
    """How much a Gaussian blur of `blur` then a bilinear upsampling shrink unit white noise.

    Bilinear interpolation between neighbours of correlation rho keeps, on
    average over the sub-pixel position, (2 + rho) / 3 of the variance per axis.
    """
    k = cv2.getGaussianKernel(int(round(blur * 8 + 1)) | 1, blur).ravel()  # OpenCV's own kernel size
    var = float((k * k).sum())  # per axis; the 2-D blur keeps var^2 of the variance
    rho = float((k[:-1] * k[1:]).sum()) / var
    return var * (2 + rho) / 3  # the standard deviation kept over both axes


_NOISE_BLUR = 0.6  # coarse pixels
_NOISE_GAIN = _coarse_noise_gain(_NOISE_BLUR)


def _sky(light: np.ndarray, zoom: float, rng) -> np.ndarray:
    """What to add to the `light` canvas: residual sky, noise, faint field sources.

    The noise has unit sigma per channel on empty sky, plus photon noise of
    variance light / _PHOTON_GAIN in each channel under objects, mostly shared
    by the channels (`_SHOT_MIX`). It is made on a grid `zoom` times coarser
    (the SDSS pixels) and interpolated up, because GZ2 cutouts are resampled
    SDSS frames, so neighbouring pixels share their noise; that also keeps it
    cheap. Most of the sky noise is common to the three channels, as the JPEG
    chroma subsampling of the real images leaves it. Faint background galaxies
    and stars go onto the same coarse grid, where the blur and interpolation
    make them seeing-sized blobs for free.
    """
    size = light.shape[0]
    coarse = max(8, int(round(size / zoom)))
    noise = _channel_noise(coarse, _SKY_MIX, rng)
    photons = cv2.resize(light, (coarse, coarse), interpolation=cv2.INTER_LINEAR)
    noise += _channel_noise(coarse, _SHOT_MIX, rng) * cv2.sqrt(cv2.max(photons, 0) * np.float32(1 / _PHOTON_GAIN))
    _add_field_sources(noise, rng)
    _add_sky_residuals(noise, rng)
    noise = cv2.GaussianBlur(noise, (0, 0), _NOISE_BLUR)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)


def _channel_noise(side: int, mix: tuple[float, float], rng) -> np.ndarray:
    """(side, side, 3) noise for `_sky`, of unit sigma once blurred and upsampled there.

    Each channel is `common` times one shared plane plus `own` times a plane of
    its own (`mix` = (common, own)). Uniform bytes are the cheapest random
    numbers, and after the blur their sum is Gaussian enough.
    """
    common, own = mix
    scale = 1 / (math.sqrt((256**2 - 1) / 12) * _NOISE_GAIN)
    matrix = np.zeros((3, 5), np.float32)
    matrix[:, 0] = common * scale
    matrix[[0, 1, 2], [1, 2, 3]] = own * scale
    matrix[:, 4] = -127.5 * (common + own) * scale
    raw = np.frombuffer(rng.bytes(side * side * 4), np.uint8).reshape(side, side, 4)
    return cv2.transform(raw.astype(np.float32), matrix)


def _add_sky_residuals(coarse_noise: np.ndarray, rng) -> None:
    """Residual sky: dark and lowest in blue, sometimes with a faint colour cast or a scattered-light halo.

    Both stay under ~3 sky sigma, far below the crop's threshold. They go on
    the coarse grid, where a constant or smooth glow survives interpolation.
    """
    offset = np.asarray(_SKY_OFFSET, np.float32)
    if rng.random() < 0.3:
        offset = offset + rng.normal(0, 0.35, 3).astype(np.float32)
    coarse_noise += offset
    if rng.random() < 0.1:
        side = coarse_noise.shape[0]
        gx, gy = rng.uniform(-0.2 * side, 1.2 * side, 2)
        sigma = side * float(rng.uniform(0.25, 0.7))
        dx = np.arange(side, dtype=np.float32) - np.float32(gx)
        dy = np.arange(side, dtype=np.float32) - np.float32(gy)
        glow = cv2.exp((dy[:, None] ** 2 + dx[None, :] ** 2) * np.float32(-0.5 / sigma**2))
        coarse_noise += glow[..., None] * (np.float32(rng.uniform(0.8, 2.5)) * _star_colour(rng))


def _add_field_sources(coarse_noise: np.ndarray, rng) -> None:
    """Faint background galaxies and stars, the speckle of a real SDSS field.

    They peak at 1.5-40 sky sigma and stay small, mostly under the crop's
    threshold, so they do not compete with the companions the morphology lists.
    """
    side = coarse_noise.shape[0]
    count = int(rng.poisson(rng.uniform(15, 70)))
    xs, ys = rng.uniform(0, side - 1, (2, count))
    peaks = np.exp(rng.uniform(math.log(1.5), math.log(40.0), count))
    # the coarse blur spreads a point over ~2.3 cells: scale so the blob peaks at `peaks`
    t = rng.beta(2.0, 2.0, count)[:, None]
    colours = np.hstack([1.4 - 0.9 * t, np.ones_like(t), 0.7 + 1.0 * t])
    colours /= colours.mean(axis=1, keepdims=True)
    _deposit(coarse_noise, xs, ys, colours * (peaks * 2.3)[:, None])


def _asinh_stretch(linear: np.ndarray, rng) -> np.ndarray:
    """Lupton asinh stretch of the channel mean, applied to all channels alike (keeps colour)."""
    softening = _STRETCH_SOFTENING * float(rng.uniform(0.85, 1.2))
    gain = _STRETCH_GAIN * float(rng.uniform(0.9, 1.12))
    x = cv2.transform(linear, np.full((1, 3), 1 / (3 * softening), np.float32))
    np.abs(x, out=x)
    cv2.max(x, 1e-4, dst=x)  # asinh(x) / x is even and tends to 1 at 0
    ratio = np.arcsinh(x)
    cv2.divide(ratio, x, dst=ratio, scale=gain / softening)
    # the cast to uint8 saturates: negative noise becomes 0 and bright cores 255, as in a composite
    return cv2.multiply(linear, cv2.merge((ratio, ratio, ratio)), dtype=cv2.CV_8U)
