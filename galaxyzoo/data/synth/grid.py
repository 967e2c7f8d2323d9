"""A picture of the synthetic sample: one galaxy per morphology type, crop branch marked.

    python -m galaxyzoo.data.synth.grid --out docs/synthetic_grid.png

Each tile is drawn by the same sampler and renderer as `galaxyzoo synth`: we
draw morphologies until every type has appeared (preferring large, bright
examples so the feature is visible), render them, and label each tile with its
type and the branch the original crop takes. The rectangle is the crop's box
(central 106 or 212 square; none when the whole frame is resized).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from galaxyzoo.data.crop import crop_image
from galaxyzoo.data.synth.morphology import Morphology, sample_morphology
from galaxyzoo.data.synth.render import render
from galaxyzoo.data.synth.volunteers import visibility

CROP_BOXES = {"center106": (159, 265), "center212": (106, 318)}  # pixel range of the crop square
MAX_DRAWS = 200_000


def _clear(m: Morphology) -> bool:
    """Big and bright enough that a feature reads at tile size, small enough to fit the frame."""
    return 22 < m.radius < 45 and visibility(m) > 0.85


def _regular_disk(m: Morphology, arms: int | None = None) -> bool:
    """A clear, fairly face-on, non-irregular disk (with `arms` spiral arms, if given)."""
    return (m.kind == "disk" and _clear(m) and m.axis_ratio > 0.6 and m.clumpiness < 0.3
            and (arms is None or m.n_arms == arms))


# (label, predicate on the morphology, crop branch it must take or None)
TYPES: tuple[tuple[str, Callable[[Morphology], bool], str | None], ...] = (
    ("elliptical: round", lambda m: m.kind == "elliptical" and _clear(m) and m.axis_ratio > 0.85, None),
    ("elliptical: in-between", lambda m: m.kind == "elliptical" and _clear(m) and 0.5 < m.axis_ratio < 0.7, None),
    ("elliptical: cigar", lambda m: m.kind == "elliptical" and _clear(m) and m.axis_ratio < 0.4, None),
    ("edge-on: dust lane", lambda m: m.kind == "edgeon" and _clear(m) and m.dust_lane, None),
    ("edge-on: boxy bulge", lambda m: m.kind == "edgeon" and _clear(m) and m.bulge_shape == "boxy", None),
    ("barred spiral", lambda m: _regular_disk(m) and m.bar_strength > 0.4 and m.n_arms > 0, None),
    ("spiral: 1 arm", lambda m: _regular_disk(m, 1) and m.arm_strength > 0.5, None),
    ("spiral: 2 arms", lambda m: _regular_disk(m, 2) and m.arm_strength > 0.5, None),
    ("spiral: 3 arms", lambda m: _regular_disk(m, 3) and m.arm_strength > 0.5, None),
    ("spiral: 4 arms", lambda m: _regular_disk(m, 4) and m.arm_strength > 0.5, None),
    ("spiral: more than 4", lambda m: _regular_disk(m, 5) and m.arm_strength > 0.5, None),
    ("winding: tight", lambda m: _regular_disk(m, 2) and m.winding == "tight" and m.arm_strength > 0.5, None),
    ("winding: loose", lambda m: _regular_disk(m, 2) and m.winding == "loose" and m.arm_strength > 0.5, None),
    ("ring", lambda m: m.ring and _clear(m), None),
    ("lens or arc", lambda m: m.lens_or_arc and _clear(m), None),
    ("merger", lambda m: m.merger and _clear(m), None),
    ("irregular", lambda m: m.kind == "disk" and _clear(m) and m.clumpiness > 0.5, None),
    ("disturbed", lambda m: _clear(m) and m.disturbance > 0.5 and not m.merger, None),
    ("star", lambda m: m.kind == "star", None),
    ("artifact", lambda m: m.kind == "artifact", None),
    # The framing keeps the visible extent near-constant, so the branches are picked by the crop itself;
    # the radius bound only saves renders (small in frame and large in frame are 6% and 9% of galaxies).
    ("size: small", lambda m: m.kind in ("elliptical", "disk") and m.radius < 26, "center106"),
    ("size: medium", lambda m: m.kind in ("elliptical", "disk") and 26 < m.radius < 34, "center212"),
    ("size: large", lambda m: m.kind in ("elliptical", "disk") and m.radius > 36, "full"),
)


def pick_examples(seed: int) -> dict[str, tuple[np.ndarray, str]]:
    """Draw morphologies until every type has an example; return {label: (BGR image, crop branch)}.

    Types are tried in `TYPES` order and each draw serves at most one type.
    """
    rng = np.random.default_rng(seed)
    found: dict[str, tuple[np.ndarray, str]] = {}
    for draw in range(MAX_DRAWS):
        if len(found) == len(TYPES):
            break
        m = sample_morphology(rng)
        for label, matches, branch_wanted in TYPES:
            if label in found or not matches(m):
                continue
            image = render(m, np.random.default_rng([seed, draw]))
            branch = crop_image(image)[1]
            if branch_wanted is None or branch == branch_wanted:
                found[label] = (image, branch)
                break  # one galaxy shows one type, so no two tiles repeat
    return found


def draw_tile(image: np.ndarray | None, label: str, branch: str, tile: int) -> np.ndarray:
    """One labelled tile: the image scaled to `tile` pixels, the crop box, type and branch."""
    if image is None:
        out = np.zeros((tile, tile, 3), np.uint8)
    else:
        scale = tile / image.shape[0]
        out = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        if branch in CROP_BOXES:
            lo, hi = (int(round(v * scale)) for v in CROP_BOXES[branch])
            cv2.rectangle(out, (lo, lo), (hi, hi), (0, 200, 255), 1, cv2.LINE_AA)
    _text(out, label, (6, 18))
    _text(out, f"crop: {branch}", (6, tile - 8))
    return out


def _text(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    # A dark outline keeps white labels readable on bright galaxies.
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, thickness, cv2.LINE_AA)


def tile_grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Arrange equal square tiles row by row, with a 2-pixel gap."""
    tile = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    gap = 2
    canvas = np.full((rows * (tile + gap) - gap, columns * (tile + gap) - gap, 3), 40, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        canvas[r * (tile + gap): r * (tile + gap) + tile, c * (tile + gap): c * (tile + gap) + tile] = t
    return canvas


def make_grid(seed: int = 0, tile: int = 256, columns: int = 6) -> np.ndarray:
    """The whole labelled grid as a BGR image, types in `TYPES` order."""
    examples = pick_examples(seed)
    tiles = []
    for label, _, _ in TYPES:
        image, branch = examples.get(label, (None, f"not drawn in {MAX_DRAWS} tries"))
        tiles.append(draw_tile(image, label, branch, tile))
    return tile_grid(tiles, columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw one synthetic galaxy per morphology type.")
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic_grid.png"), help="PNG to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=256, help="tile size in pixels (images are 424)")
    parser.add_argument("--columns", type=int, default=6)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), make_grid(args.seed, args.tile, args.columns), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
