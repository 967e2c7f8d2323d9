"""A synthetic Galaxy Zoo 2 sample in the real release's file formats.

`generate(out_dir, n, seed)` writes `gz2_hart16.csv`, `gz2_filename_mapping.csv`,
`images/{asset_id}.jpg` and `truth.csv` (the latent morphology and the true
answer probabilities behind every galaxy). The pieces: `morphology` samples the
latent truth, `render` draws the image, `volunteers` simulates the votes,
`gz2class` names the class, `catalogue` builds the tables with the real quirks
and `generate` runs it all in parallel.
"""

from galaxyzoo.data.synth.generate import generate

__all__ = ["generate"]
