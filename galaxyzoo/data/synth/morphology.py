"""The latent truth behind one synthetic galaxy.

A `Morphology` is what the universe "really" put in the image. The renderer
(`render.py`) draws it; the volunteer model (`volunteers.py`) decides what
people see in it. Keeping the truth explicit is what lets `truth.csv` report the
noise floor a perfect model could reach.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

KINDS = ("elliptical", "disk", "edgeon", "star", "artifact")
WINDINGS = ("tight", "medium", "loose")
BULGE_SHAPES = ("rounded", "boxy", "none")  # edge-on bulge shape (t09)


@dataclass(frozen=True)
class Companion:
    """A second light source in the frame: merger partner, neighbour or foreground star."""

    dx: float  # offset from the image centre, pixels
    dy: float
    radius: float  # half-light radius in pixels (stars: PSF-sized)
    flux: float  # relative to the main galaxy's total flux
    axis_ratio: float
    position_angle: float  # radians
    is_star: bool


@dataclass(frozen=True)
class Morphology:
    """Physically motivated parameters of one synthetic galaxy (pixels, radians)."""

    kind: str  # one of KINDS
    radius: float  # half-light radius of the whole galaxy, pixels (sets the crop branch)
    flux: float  # total flux in units of the sky noise; sets surface brightness / visibility
    axis_ratio: float  # b/a of the disk or spheroid, 0..1 (edge-on disks < 0.25)
    position_angle: float
    centre_dx: float  # small offset of the galaxy from the image centre
    centre_dy: float
    sersic_n: float  # bulge (or elliptical) Sersic index
    bulge_fraction: float  # B/T, 0 for pure disks, 1 for ellipticals
    bulge_shape: str  # one of BULGE_SHAPES (meaningful for edge-on)
    bar_strength: float  # 0 = no bar
    bar_length: float  # in units of radius
    n_arms: int  # 0 = no spiral; 1..4, or 5+ ("more than 4")
    winding: str  # one of WINDINGS (meaningful when n_arms > 0)
    arm_strength: float  # arm contrast, 0..1
    ring: bool
    lens_or_arc: bool
    dust_lane: bool
    disturbance: float  # 0..1, asymmetric distortion (t08 disturbed)
    clumpiness: float  # 0..1, irregular clumpy light (t08 irregular)
    other_odd: bool  # an odd feature with no better name (t08 other)
    colour_bulge: tuple[float, float, float]  # relative B, G, R weights (bulges redder)
    colour_disk: tuple[float, float, float]
    companions: tuple[Companion, ...] = field(default_factory=tuple)  # mergers, neighbours, stars
    merger: bool = False  # whether one companion is an interacting partner
    seeing: float = 2.0  # PSF sigma, pixels
    zoom: float = 2.3  # image pixels per SDSS pixel: the grain of the resampled noise

    def to_record(self) -> dict:
        """A flat dict for `truth.csv` (companions summarised by count)."""
        rec = asdict(self)
        comps = rec.pop("companions")
        rec["n_companions"] = len(comps)
        rec["n_field_stars"] = sum(c["is_star"] for c in comps)
        for key in ("colour_bulge", "colour_disk"):
            rec[key] = ";".join(f"{v:.4f}" for v in rec[key])
        return rec


# ---------------------------------------------------------------------------
# The population: `sample_morphology` draws one galaxy of a GZ2-like sample.
# Rates are per galaxy unless a comment says otherwise; docs/synthetic.md
# ("How the labels are simulated") lists the targets they were tuned to.

# In KINDS order. Calibrated on the 2,000 real hart16 rows: gz2_class E 54%, S 42%, Se 4%, A 0%.
KIND_SHARES = (0.55, 0.408, 0.038, 0.002, 0.002)
TYPICAL_FLUX_PER_AREA = 800.0
"""flux / radius**2 of a typically bright galaxy (sky-noise units; the renderer's scale).

At this surface brightness the crop's threshold isophote lies at 2.5-3 radius;
ten times fainter shrinks it to 0.9-1.5 radius, ten times brighter grows it to
4-6.6 radius (measured on the renderer; see docs/synthetic.md).
"""
# GZ2 cutouts are scaled to each galaxy's Petrosian radius, a radius set by its own light, so
# every galaxy's visible extent fills about the same share of the frame (real GZ2 images: 89%
# of crops central-212, 10% full, 1% central-106); what varies is how many SDSS pixels, and
# seeing discs, it spans. The frame fixes the extent; the radius follows from the brightness.
EXTENT_MEDIAN = 70.0  # px, half the larger side of the crop's gray-30 box; lognormal
EXTENT_LOG_SIGMA = 0.10
# extent / radius ~ EXTENT_PER_RADIUS * k**slope at brightness k (the table in render.py)
EXTENT_PER_RADIUS = {"elliptical": (2.4, 0.33), "disk": (2.5, 0.2), "edgeon": (2.8, 0.2)}
RADIUS_RANGE = (5.0, 80.0)
ZOOM_MEDIAN = 2.3  # image px per SDSS px (GZ2: 0.02 petroR90 arcsec/px against SDSS's 0.396")
ZOOM_LOG_SIGMA = 0.3  # small galaxies are blown up more: coarser noise, wider seeing in pixels
ZOOM_RANGE = (1.4, 4.5)
SEEING_PER_ZOOM = 0.87  # PSF sigma in SDSS px, times jitter; sigma ~2 px at the median zoom, as
SEEING_JITTER = (0.85, 1.2)  # measured on the real GZ2 images (docs/synthetic.md)
# log10 of flux / (TYPICAL_FLUX_PER_AREA radius^2), per body: real disks are of lower surface
# brightness than ellipticals (in the real images: large, faint and blue against compact and bright)
LOG_BRIGHTNESS_MEAN = {"elliptical": 0.0, "disk": -0.4, "edgeon": -0.2}  # ~12% of galaxies
LOG_BRIGHTNESS_SIGMA = 0.4  # are over 6x fainter than typical, ~2% over 16x
LOG_BRIGHTNESS_RANGE = (-2.0, 0.8)
STAR_FLUX_MEDIAN = 1.0e4
# Sersic index of the rendered light, not of a fitted 2-D model: the radial gray profile of the
# stretched, seeing-blurred composite is what a network sees. Indices of 2.5-6 (the fitted values of
# real ellipticals) gave every synthetic galaxy glowing wings: at twice the half-peak radius the
# gray level was 0.24 of the peak against 0.19 in the 100 real GZ2 images, and a model trained on
# them took real ellipticals, whose profiles fall as steeply as disks', for disks (docs/synthetic.md).
ELLIPTICAL_SERSIC_N = (0.6, 2.5)
BULGE_SERSIC_N = (0.6, 1.6, 1.0)  # a bulge's index: uniform(low, high) + slope * B/T
BULGE_CLASSES = ((0.03, 0.00, 0.04), (0.40, 0.06, 0.20), (0.47, 0.20, 0.50), (0.10, 0.50, 0.80))
"""(share, B/T low, B/T high) of face-on disks: no bulge, just noticeable, obvious, dominant."""
ARM_COUNTS = ((0.06, 1), (0.48, 2), (0.18, 3), (0.10, 4), (0.18, 5))  # 5 means "more than 4"
IRREGULAR_SHARE = 0.04  # of face-on disks
BAR_SHARE = 0.40  # of regular face-on disks (real t03 bar mean 0.22)
SPIRAL_SHARE = 0.82  # of regular face-on disks (irregulars: 0.2)
MERGER_RATE = {"elliptical": 0.025, "disk": 0.03, "edgeon": 0.02}
DISTURBED_RATE = 0.03  # disturbed without a partner in the frame
RING_RATE = {"elliptical": 0.10, "disk": 0.18, "edgeon": 0.0}  # barred disks: +0.06
LENS_RATE = 0.04
DUST_LANE_RATE = {"elliptical": 0.005, "disk": 0.005, "edgeon": 0.25}
OTHER_ODD_RATE = 0.025
FIELD_STARS_MEAN = 0.5  # foreground stars per frame (Poisson)
NEIGHBOUR_COUNTS = (0.72, 0.22, 0.06)  # P(0, 1, 2 neighbouring galaxies)
CLOSE_NEIGHBOUR_SHARE = 0.2  # projected close pairs that are not interacting
FRAME_REACH = 200.0  # px from the centre where companions may sit (424 px frame)
RED = (0.55, 0.78, 1.0)  # B, G, R weights of old stellar populations (bulges, ellipticals)
# Real GZ2 disks are only a little bluer than bulges: even their bluest outskirts keep R >= B.
BLUE = (0.95, 1.0, 0.98)  # star-forming disks
BLUER = (1.0, 0.97, 0.9)  # irregulars
# Colour is a redness t on the BLUE (0) to RED (1) line, drawn per galaxy with wide, overlapping
# spreads: real ellipticals and spirals overlap in colour (blue ellipticals, red passive spirals,
# dust), so colour alone must not tell a smooth galaxy from a disk. (mean, sigma) of t:
REDNESS = {"elliptical": (0.95, 0.4), "disk": (0.3, 0.35), "edgeon": (0.3, 0.4)}
REDNESS_RANGE = (-0.5, 1.8)
BULGE_REDDER = (0.45, 0.2)  # a disk's bulge is older than its disk: t_bulge = t_disk + |N(m, s)|


def sample_morphology(rng: np.random.Generator) -> Morphology:
    """Draw one galaxy from a GZ2-like population.

    About 41% ellipticals, 57% disks (15% of them edge-on, 4% irregular,
    30% of the regular face-on ones barred, 82% spiral), 1.5% stars and
    artifacts; odd features (rings, lenses, dust lanes, mergers, disturbed,
    irregular, other) on roughly 16% of galaxies, so rare combinations give
    `gz2_class` its long tail.

    >>> m = sample_morphology(np.random.default_rng(0))
    >>> m.kind in KINDS
    True
    """
    kind = KINDS[_pick(rng, KIND_SHARES)]
    if kind == "star":
        return _sample_star(rng)
    # An artifact (trail, bleed, ghost) is drawn over an ordinary galaxy.
    body = kind if kind != "artifact" else ("elliptical", "disk")[_pick(rng, (0.5, 0.5))]
    log_brightness = _clamp(rng.normal(LOG_BRIGHTNESS_MEAN[body], LOG_BRIGHTNESS_SIGMA), *LOG_BRIGHTNESS_RANGE)
    per_radius, slope = EXTENT_PER_RADIUS[body]
    extent = rng.lognormal(math.log(EXTENT_MEDIAN), EXTENT_LOG_SIGMA)
    radius = _clamp(extent / (per_radius * 10.0 ** (slope * log_brightness)), *RADIUS_RANGE)
    zoom, seeing = _sample_resampling(rng)
    structure = {"elliptical": _sample_elliptical, "disk": _sample_disk, "edgeon": _sample_edgeon}[body](rng)
    odd = _sample_odd_features(rng, body, barred=structure["bar_strength"] > 0)
    companions = _sample_field_stars(rng) + _sample_neighbours(rng, radius)
    if odd["merger"]:
        companions += (_sample_merger_partner(rng, radius),)
    colour_bulge, colour_disk = _sample_colours(rng, body, irregular=structure["clumpiness"] > 0.4)
    return Morphology(
        kind=kind,
        radius=radius,
        flux=TYPICAL_FLUX_PER_AREA * radius**2 * 10.0**log_brightness,
        position_angle=float(rng.uniform(0.0, math.pi)),
        centre_dx=_clamp(rng.normal(0.0, 1.0), -4.0, 4.0),
        centre_dy=_clamp(rng.normal(0.0, 1.0), -4.0, 4.0),
        colour_bulge=colour_bulge,
        colour_disk=colour_disk,
        companions=companions,
        seeing=seeing,
        zoom=zoom,
        **structure,
        **odd,
    )


def surface_brightness(m: Morphology) -> float:
    """Mean surface brightness relative to a typical galaxy's (1 = typical, 0.1 = faint)."""
    return m.flux / (TYPICAL_FLUX_PER_AREA * m.radius**2)


def bulge_axis_ratio(disk_q: float) -> float:
    """Apparent b/a of a bulge (intrinsic flattening 0.6) in a disk seen at b/a `disk_q`."""
    return math.sqrt(disk_q * disk_q + (1 - disk_q * disk_q) * 0.36)


def half_light_snr(m: Morphology) -> float:
    """Signal-to-noise of the light inside the half-light radius (unit sky noise per pixel).

    Half the flux over the noise of the pi r^2 pixels inside r; a typical
    galaxy has ~225 r (r in pixels), so this is large even for faint ones.
    """
    return m.flux / (2.0 * math.sqrt(math.pi) * m.radius)


# Plain-Python helpers for single draws: numpy's per-call overhead on scalars would dominate.


def _pick(rng: np.random.Generator, shares) -> int:
    """Index drawn with the given (not necessarily normalised) probabilities."""
    target = rng.random() * sum(shares)
    for i, cumulative in enumerate(itertools.accumulate(shares)):
        if target < cumulative:
            return i
    return len(shares) - 1


def _clamp(x: float, low: float, high: float) -> float:
    return float(min(max(x, low), high))


def _reddened(t: float, cast: np.ndarray, blue: tuple[float, float, float] = BLUE) -> tuple[float, float, float]:
    """The colour at redness `t` on the line from `blue` (0) to RED (1), extrapolated beyond, plus `cast`."""
    return tuple(_clamp(b + (r - b) * t + d, 0.2, 1.2) for b, r, d in zip(blue, RED, cast))


def _sample_colours(rng: np.random.Generator, body: str, irregular: bool) -> tuple[tuple, tuple]:
    """(bulge, disk) colours: one redness per galaxy, the bulge redder than the disk, one small colour
    cast (per-channel jitter) shared by both so that it cannot undo that order."""
    mean, sigma = REDNESS[body]
    t = _clamp(rng.normal(mean, sigma), *REDNESS_RANGE)
    cast = 0.04 * rng.standard_normal(3)
    disk = _reddened(t, cast, BLUER if irregular else BLUE)
    if body == "elliptical":
        return disk, disk
    return _reddened(t + max(abs(rng.normal(*BULGE_REDDER)), 0.1), cast), disk


def _bulge_sersic_n(rng: np.random.Generator, bulge_fraction: float) -> float:
    """Bulgier disks have more concentrated bulges."""
    low, high, slope = BULGE_SERSIC_N
    return float(rng.uniform(low, high) + slope * bulge_fraction)


def _no_spiral(winding: str = WINDINGS[1]) -> dict:
    # "medium" is a placeholder: winding only means something when n_arms > 0.
    return {"n_arms": 0, "winding": winding, "arm_strength": 0.0}


def winding_shares(bulge_fraction: float) -> tuple[float, float, float]:
    """How often a spiral with this bulge is drawn tight, medium or loose (`WINDINGS`).

    Bulgier disks wind their arms tighter (the Hubble sequence); real GZ2 spirals are
    mostly tight (t10 means 0.27 / 0.18 / 0.07).
    """
    t = min(1.0, bulge_fraction / 0.5)
    return 0.50 + 0.35 * t, 0.34 - 0.20 * t, 0.16 - 0.15 * t


def _sample_elliptical(rng: np.random.Generator) -> dict:
    return {
        "axis_ratio": _clamp(rng.beta(5.0, 1.6), 0.2, 1.0),  # real ellipticals are mostly round (t07 cigar rare)
        "sersic_n": float(rng.uniform(*ELLIPTICAL_SERSIC_N)),
        "bulge_fraction": 1.0,
        "bulge_shape": "rounded",
        "bar_strength": 0.0,
        "bar_length": 0.0,
        "clumpiness": 0.0,
        **_no_spiral(),
    }


def _sample_disk(rng: np.random.Generator) -> dict:
    irregular = rng.random() < IRREGULAR_SHARE
    if irregular:
        bulge_fraction = float(rng.uniform(0.0, 0.03))
    else:
        _, low, high = BULGE_CLASSES[_pick(rng, [c[0] for c in BULGE_CLASSES])]
        bulge_fraction = float(rng.uniform(low, high))
    barred = not irregular and rng.random() < BAR_SHARE
    spiral = rng.random() < (0.2 if irregular else SPIRAL_SHARE)
    arms = _no_spiral()
    if spiral:
        n_arms = ARM_COUNTS[_pick(rng, [c[0] for c in ARM_COUNTS])][1]
        if n_arms == 5:
            n_arms = int(rng.integers(5, 8))
        winding = WINDINGS[_pick(rng, winding_shares(bulge_fraction))]
        arms = {"n_arms": n_arms, "winding": winding, "arm_strength": float(rng.uniform(0.6, 1.0))}
    return {
        "axis_ratio": float(rng.uniform(0.3, 1.0)),
        "sersic_n": _bulge_sersic_n(rng, bulge_fraction),
        "bulge_fraction": bulge_fraction,
        "bulge_shape": "none" if bulge_fraction < 0.05 else "rounded",
        "bar_strength": float(0.25 + 0.75 * rng.beta(2.0, 1.5)) if barred else 0.0,
        "bar_length": float(rng.uniform(0.5, 1.3)) if barred else 0.0,
        "clumpiness": float(rng.uniform(0.45, 1.0) if irregular else rng.uniform(0.0, 0.2)),
        **arms,
    }


def _sample_edgeon(rng: np.random.Generator) -> dict:
    bulge_shape = BULGE_SHAPES[_pick(rng, (0.55, 0.12, 0.33))]
    low, high = {"rounded": (0.1, 0.5), "boxy": (0.1, 0.4), "none": (0.0, 0.04)}[bulge_shape]
    bulge_fraction = float(rng.uniform(low, high))
    return {
        "axis_ratio": float(rng.uniform(0.12, 0.32)),  # real edge-ons look thick after the seeing
        "sersic_n": _bulge_sersic_n(rng, bulge_fraction),
        "bulge_fraction": bulge_fraction,
        "bulge_shape": bulge_shape,
        "bar_strength": 0.0,
        "bar_length": 0.0,
        "clumpiness": float(rng.uniform(0.0, 0.15)),
        **_no_spiral(),
    }


def _sample_odd_features(rng: np.random.Generator, kind: str, barred: bool) -> dict:
    merger = rng.random() < MERGER_RATE[kind]
    if merger or rng.random() < DISTURBED_RATE:
        disturbance = float(rng.uniform(0.3, 0.9))
    else:
        disturbance = float(rng.uniform(0.0, 0.2))  # no real galaxy is perfectly symmetric
    return {
        "merger": bool(merger),
        "disturbance": disturbance,
        "ring": bool(rng.random() < RING_RATE[kind] + (0.06 if barred else 0.0)),
        "lens_or_arc": bool(rng.random() < LENS_RATE),
        "dust_lane": bool(rng.random() < DUST_LANE_RATE[kind]),
        "other_odd": bool(rng.random() < OTHER_ODD_RATE),
    }


def _random_offset(rng: np.random.Generator, r_min: float, r_max: float) -> tuple[float, float]:
    """A position uniform in area on the annulus r_min..r_max around the centre."""
    r_max = max(r_max, r_min)
    dist = math.sqrt(rng.uniform(r_min**2, r_max**2))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    return dist * math.cos(angle), dist * math.sin(angle)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sample_field_stars(rng: np.random.Generator) -> tuple[Companion, ...]:
    stars = []
    for _ in range(rng.poisson(FIELD_STARS_MEAN)):
        dx, dy = _random_offset(rng, 8.0, FRAME_REACH)
        stars.append(Companion(dx, dy, float(rng.uniform(1.0, 2.2)), _log_uniform(rng, 0.005, 0.5), 1.0, 0.0, True))
    return tuple(stars)


def _sample_neighbours(rng: np.random.Generator, radius: float) -> tuple[Companion, ...]:
    neighbours = []
    for _ in range(_pick(rng, NEIGHBOUR_COUNTS)):
        if rng.random() < CLOSE_NEIGHBOUR_SHARE:
            dx, dy = _random_offset(rng, 1.8 * radius, min(3.0 * radius, FRAME_REACH))
        else:
            dx, dy = _random_offset(rng, max(3.0 * radius, 40.0), FRAME_REACH)
        neighbours.append(Companion(
            dx, dy, max(2.0, radius * float(rng.uniform(0.15, 0.7))), _log_uniform(rng, 0.02, 0.5),
            float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.0, math.pi)), False,
        ))
    return tuple(neighbours)


def _sample_merger_partner(rng: np.random.Generator, radius: float) -> Companion:
    dx, dy = _random_offset(rng, 0.8 * radius, min(2.0 * radius, FRAME_REACH))
    return Companion(
        dx, dy, radius * float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.15, 0.9)),
        float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.0, math.pi)), False,
    )


def _sample_resampling(rng: np.random.Generator) -> tuple[float, float]:
    """(zoom, seeing sigma in image pixels) of one cutout."""
    zoom = _clamp(rng.lognormal(math.log(ZOOM_MEDIAN), ZOOM_LOG_SIGMA), *ZOOM_RANGE)
    return zoom, SEEING_PER_ZOOM * zoom * float(rng.uniform(*SEEING_JITTER))


def _sample_star(rng: np.random.Generator) -> Morphology:
    """A foreground star where a galaxy was expected; its radius is the seeing's."""
    t = rng.random()  # stars span blue to red
    colour = tuple(float(b + (r - b) * t) for b, r in zip(BLUE, RED))
    zoom, seeing = _sample_resampling(rng)
    return Morphology(
        kind="star",
        seeing=seeing,
        zoom=zoom,
        radius=1.1774 * seeing,  # a Gaussian holds half its light inside 1.18 sigma
        flux=float(rng.lognormal(math.log(STAR_FLUX_MEDIAN), 0.9)),
        axis_ratio=1.0,
        position_angle=0.0,
        centre_dx=_clamp(rng.normal(0.0, 1.0), -4.0, 4.0),
        centre_dy=_clamp(rng.normal(0.0, 1.0), -4.0, 4.0),
        sersic_n=0.5,
        bulge_fraction=1.0,
        bulge_shape="none",
        bar_strength=0.0,
        bar_length=0.0,
        **_no_spiral(),
        ring=False,
        lens_or_arc=False,
        dust_lane=False,
        disturbance=0.0,
        clumpiness=0.0,
        other_odd=False,
        colour_bulge=colour,
        colour_disk=colour,
        companions=_sample_field_stars(rng),
    )
