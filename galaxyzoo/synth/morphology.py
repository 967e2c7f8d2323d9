"""The latent truth behind one synthetic galaxy.

A `Morphology` is what the universe "really" put in the image. The renderer
(`render.py`) draws it; the volunteer model (`volunteers.py`) decides what
people see in it. Keeping the truth explicit is what lets `truth.csv` report the
noise floor a perfect model could reach.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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

    def to_record(self) -> dict:
        """A flat dict for `truth.csv` (companions summarised by count)."""
        rec = asdict(self)
        comps = rec.pop("companions")
        rec["n_companions"] = len(comps)
        rec["n_field_stars"] = sum(c["is_star"] for c in comps)
        for key in ("colour_bulge", "colour_disk"):
            rec[key] = ";".join(f"{v:.4f}" for v in rec[key])
        return rec
