"""Probe: would a mixture of Dirichlets per question fit the Dirichlet head's intervals to the truth?

    python benchmarks/mixture_head_probe.py --workdir data/bench --bf16 [--components 1 2 3] [--high 100 1000]
        [--seeds 0 1 2]

The Dirichlet head's 90 % intervals hold the true probability of t02 and t03
98 % and 97 % of the time: too wide (docs/benchmarks.md, "Why t02 and t03 stay
too wide for the true probability"). Its errors are a sharp peak and a heavy
tail, and one Dirichlet per galaxy must cover both. A mixture of K Dirichlets
per question, weighted per galaxy, can hold both. This probe asks whether it
would before anything is built into the package. It takes the finished
network of `uncertainty_coverage.py` (the same options, trained first if
missing), freezes it, and fits new heads on its features (the input of its
head, `model.network.embedding_model`):

- for each `--components` K and each `--high`, the package's Dirichlet head
  with K components per question and that ceiling (`model.network.Concentrations`,
  `model.dirichlet_components` and `model.concentration_ceiling`; the network's
  own head: K = 1, 100): K concentrations per answer in (1, high) and K
  weights per question (a softmax);
- trained on the training galaxies' vote counts by the mixture's
  Dirichlet-multinomial likelihood (the `"dirichlet-learned"` loss), and
  stopped on the validation galaxies';
- K = 1 with high 100 is the network's own head fitted again: the control.

For each head (one per `--seeds` too: the seed jitters its start and orders
its batches) it prints how many questions' coverage lies within the target's
0.85-0.95 on the validation and on the test galaxies, as
`uncertainty_coverage.py` measures it (`true`: the truth inside the central
90 % interval of the mixture of Betas; `votes`: the randomised PIT of the count
under the mixture of beta-binomials), and the test galaxies' shares per
question. The truth is only scored, never trained on; the validation galaxies'
truth is there to choose a head by, the test galaxies' to measure it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_quality import build_data  # noqa: E402  (the data stages fork: build them before Keras loads)
from uncertainty_coverage import dirichlet_overrides, true_probabilities, trained, within_band  # noqa: E402

BAND = (0.85, 0.95)


def mixture_head(features: int, components: int, high: float, init: tuple[np.ndarray, np.ndarray], seed: int = 0):
    """features -> the package's Dirichlet head of `components` per question (`model.network.Concentrations`,
    the layout of `model.dirichlet`). Each component starts from the network's own head (`init`: its logits
    layer's kernel and bias), jittered by `seed`'s draw and shifted apart, so that the K differ; the weights
    start equal."""
    import keras
    from keras import layers

    from galaxyzoo import schema
    from galaxyzoo.model.network import Concentrations

    kernel, bias = init
    rng = np.random.default_rng(seed)
    # Identical components would get identical gradients and never part: a small jitter of the kernel
    # and a spread of half a logit in the bias (about x1.6 in concentration) set them apart.
    shifts = np.arange(components) - (components - 1) / 2
    weights = components * len(schema.QUESTIONS) if components > 1 else 0
    kernels = [kernel + rng.normal(0, 0.05, kernel.shape) for _ in shifts] + [np.zeros((features, weights))]
    biases = [bias + 0.5 * s for s in shifts] + [np.zeros(weights)]
    inputs = keras.Input((features,))
    logits = layers.Dense(kernel.shape[1] * components + weights,
                          kernel_initializer=keras.initializers.Constant(np.concatenate(kernels, axis=1)),
                          bias_initializer=keras.initializers.Constant(np.concatenate(biases)))(inputs)
    return keras.Model(inputs, Concentrations(high=high, components=components)(logits))


def fit_head(parts: dict, components: int, high: float, init, seed: int = 0):
    """A mixture head fitted on `parts["train"]` (features, targets then counts), stopped on `parts["val"]`'s loss
    as `train.refit_head` fits the network's own (`training.head_refit.fit_on_features`); `seed` sets its start
    (`mixture_head`) and the order of its batches. Returns the head and its validation loss."""
    from galaxyzoo.model.losses import get_loss
    from galaxyzoo.training.head_refit import fit_on_features

    model = mixture_head(parts["train"][0].shape[1], components, high, init, seed)
    _, val_loss, _ = fit_on_features(model, parts, loss=get_loss("dirichlet-learned"), seed=seed)
    return model, val_loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=40, help="the network's, as uncertainty_coverage.py's")
    parser.add_argument("--workdir", default="data/bench")
    parser.add_argument("--bf16", action="store_true", help="the network trained under mixed_bfloat16")
    parser.add_argument("--components", nargs="+", type=int, default=[1, 2, 3], metavar="K")
    parser.add_argument("--high", nargs="+", type=float, default=[100.0, 1000.0],
                        help="upper bounds of the concentrations (the network's own: 100)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of each head's start and batches")
    args = parser.parse_args(argv)
    if min(args.components) < 1:
        parser.error("--components must be >= 1")
    if not all(1 < high < np.inf for high in args.high):
        parser.error("--high must be finite and > 1 (the concentrations' lower bound)")
    if min(args.seeds) < 0:
        parser.error("--seeds must be >= 0")

    overrides = dirichlet_overrides(args.n, args.epochs, args.workdir, args.bf16)
    build_data("improved.yaml", overrides)

    from galaxyzoo.model import dirichlet
    from galaxyzoo.model.network import LOGITS_LAYER
    from galaxyzoo.registry import evaluate
    from galaxyzoo.training.head_refit import clean_features

    cfg, result, dataset = trained("improved.yaml", overrides, Path(args.workdir))
    parts = clean_features(result.model, dataset, dataset.parts, with_counts=True)
    scored = {name: (dataset.parts[name], true_probabilities(dataset, dataset.parts[name])) for name in ("val", "test")}

    def coverage_of(table_of) -> dict[str, pd.DataFrame]:
        """`table_of(part name, part, its truth)` for the validation and the test galaxies."""
        return {part_name: table_of(part_name, part, truth) for part_name, (part, truth) in scored.items()}

    init = result.model.get_layer(LOGITS_LAYER).get_weights()
    tables = {"the network's head": coverage_of(lambda _, part, truth: dirichlet.coverage(
        evaluate.predict_outputs(result.model, dataset.images, part.rows, batch_size=cfg.train.batch_size),
        truth, part.counts))}
    for high in args.high:
        for k in args.components:
            for seed in args.seeds:
                head, val_loss = fit_head(parts, k, high, init, seed)
                name = f"K={k}, high {high:g}, seed {seed} (val NLL {val_loss:.2f})"
                tables[name] = coverage_of(lambda part_name, part, truth: dirichlet.coverage(
                    head.predict(parts[part_name][0], verbose=0), truth, part.counts))
                print(f"fitted {name}", flush=True)
    print(report(tables))


def report(tables: dict[str, dict[str, pd.DataFrame]]) -> str:
    """Per head: how many questions' `true` and `votes` coverage lie within BAND on the validation and
    the test galaxies, then the test galaxies' shares per question."""
    lines = []
    for name, by_part in tables.items():
        counts = []
        for part, table in by_part.items():
            within = within_band(table.set_index("question")[["true_coverage", "vote_coverage"]], band=BAND)
            counts.append(f"{part} true {within['true_coverage']}, votes {within['vote_coverage']}")
        test = by_part["test"].set_index("question")
        lines.append(f"{name}: questions within {BAND[0]}-{BAND[1]} of {len(test)}: " + "; ".join(counts))
        # four digits: a share printed as 0.850 may lie on either side of the band's edge
        lines.append("  test " + " ".join(f"{q} {t:.4f}/{v:.4f}" for q, t, v in
                                          zip(test.index, test["true_coverage"], test["vote_coverage"])))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
