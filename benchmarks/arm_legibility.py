"""Probe: can a network learn the drawn spiral arms from the quality benchmark's crops at all?

    python benchmarks/arm_legibility.py [--workdir data/bench] [--n 10000] [--epochs 40] [--bf16]

The improved model's excess over the noise floor is largest on the arm questions
(docs/benchmarks.md, "Where the excess is"): its t04, t10 and t11 fractions barely
follow the arms the generator drew, while the simulated volunteers answer them from
the drawn arms. This probe asks whether that is the network's objective or the
images. It trains the improved experiment's network body (the same crops, colour,
106 px, augmentation by the 8 rotations and flips) on the generator's *truth*
(`truth.csv`) instead of the votes, for the face-on and inclined disks of the
`train_quality.py` sample (same N and seed, same split):

- `spiral`: does the disk have arms (t04's cue), a logistic head;
- `count`: 1, 2, 3, 4 or more arms (t11's), softmax, armed disks only;
- `winding`: tight, medium or loose (t10's), softmax, armed disks only.

It prints, on the test disks, the AUC of `spiral` and the accuracy and balanced
accuracy of `count` and `winding` against always guessing the most common class,
over every disk and over the ones whose arms should be plainest (arm strength
above 0.8, visibility above 0.85, axis ratio above 0.6). A network supervised with
the truth itself is an upper bound on what the votes can teach it from these pixels:
where it stays near chance, the volunteers' certainty asks for information the
crops do not carry. The truth is the synthetic sample's own; no real image is used.

It also prints what that costs on `train_quality.py`'s scale: the noise floor of the
test split (the same estimate), and the floor of a model that knew everything the
generator drew except the arms' count and winding. For each armed test disk, that
model's best prediction is the mean of the expected targets over every count and
winding, weighted as the generator draws them (`arm_blind_targets`); its excess
over the floor, added in quadrature, is what no network that cannot read the arms
can remove. (`--no-network` prints only this part.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the data stages fork: build them (train_quality.build_data) before Keras loads
from train_quality import ROOT, build_data, noise_floor  # noqa: E402

from galaxyzoo.data.synth.morphology import WINDINGS  # noqa: E402

COUNTS = ("1", "2", "3", "4", "more")
PLAIN = {"arm_strength": 0.8, "visibility": 0.85, "axis_ratio": 0.6}  # the plainest arms: all three above these


def disk_labels(truth: pd.DataFrame, asset_ids: np.ndarray) -> pd.DataFrame:
    """The disks among `asset_ids` (in their order, with `pos`, their index there) and their arm labels."""
    rows = truth.set_index("asset_id").loc[asset_ids].reset_index()
    rows["pos"] = np.arange(len(rows))
    disks = rows[rows["kind"] == "disk"].copy()
    disks["spiral"] = (disks["n_arms"] > 0).astype(np.float32)
    disks["count"] = np.clip(disks["n_arms"], 1, 5).astype(int) - 1
    disks["winding_class"] = disks["winding"].map({w: i for i, w in enumerate(WINDINGS)}).astype(int)
    disks["plain"] = (disks["n_arms"] > 0) & np.logical_and.reduce(
        [disks[k] > v for k, v in PLAIN.items()])
    return disks


def arm_blind_targets(truth: pd.DataFrame, expected: np.ndarray, asset_ids: np.ndarray, seed: int,
                      replicates: int) -> np.ndarray:
    """`expected` (the test galaxies' expected targets, (N, 37)) with each armed disk's t10 and t11 answers
    replaced by their mean over arm counts and windings, weighted by the generator's draw
    (`morphology.ARM_COUNTS` and the winding's dependence on the bulge). Each galaxy's morphology is drawn
    again from its own stream of the sample's `seed` (the rows of `truth.csv` are in galaxy order), so every
    other property stays its own."""
    import dataclasses

    from galaxyzoo.data.synth.generate import galaxy_rngs
    from galaxyzoo.data.synth.morphology import ARM_COUNTS, sample_morphology, winding_shares
    from galaxyzoo.data.synth.volunteers import expected_targets, true_probabilities, visibility

    from galaxyzoo import schema

    arm_answers = np.r_[schema.QUESTION_BY_ID["t10"].slice, schema.QUESTION_BY_ID["t11"].slice]
    index = pd.Series(np.arange(len(truth)), index=truth["asset_id"])
    rng = np.random.default_rng(1)
    blind = expected.copy()
    for row, asset_id in enumerate(asset_ids):
        m = sample_morphology(galaxy_rngs(seed, int(index[asset_id]))[0])
        if m.kind != "disk" or m.n_arms == 0:
            continue
        combos = [(dataclasses.replace(m, n_arms=n, winding=w), p * q)
                  for p, n in ARM_COUNTS for w, q in zip(WINDINGS, winding_shares(m.bulge_fraction))]
        probs = np.stack([true_probabilities(c) for c, _ in combos])
        weights = np.array([w for _, w in combos])
        targets = expected_targets(probs, visibility(m), rng, replicates)
        blind[row, arm_answers] = (weights @ targets / weights.sum())[arm_answers]  # nothing else depends on them
    return blind


def probe_model(cfg):
    """The improved experiment's network up to its head, then the three arm heads."""
    import keras
    from keras import layers

    from galaxyzoo.config.experiment import model_kwargs
    from galaxyzoo.model.network import build_model, embedding_model

    body = embedding_model(build_model(**model_kwargs(cfg)))
    features = body.output
    outputs = {
        "spiral": layers.Dense(1, activation="sigmoid", name="spiral", dtype="float32")(features),
        "count": layers.Dense(len(COUNTS), activation="softmax", name="count", dtype="float32")(features),
        "winding": layers.Dense(len(WINDINGS), activation="softmax", name="winding", dtype="float32")(features),
    }
    model = keras.Model(body.input, outputs, name="arm_probe")
    model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
                  loss={"spiral": "binary_crossentropy", "count": "sparse_categorical_crossentropy",
                        "winding": "sparse_categorical_crossentropy"})
    return model


def batches(images: np.ndarray, disks: pd.DataFrame, batch_size: int, seed: int, augment: bool):
    """A Keras dataset of (crop, labels, weights): the count and winding losses weigh armed disks only."""
    import keras

    from galaxyzoo.data.crop import to_unit

    armed = (disks["n_arms"].to_numpy() > 0).astype(np.float32)
    labels = {"spiral": disks["spiral"].to_numpy()[:, None], "count": disks["count"].to_numpy(),
              "winding": disks["winding_class"].to_numpy()}

    class Views(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(disks))

        def __len__(self):
            return -(-len(disks) // batch_size)

        def on_epoch_end(self):
            if augment:
                self.rng.shuffle(self.order)

        def __getitem__(self, i):
            take = self.order[i * batch_size:(i + 1) * batch_size]
            x = to_unit(images[take])
            if augment:  # one of the 8 rotations and flips per batch: a galaxy has no preferred orientation
                x = np.rot90(x, k=int(self.rng.integers(4)), axes=(1, 2))
                if self.rng.random() < 0.5:
                    x = x[:, :, ::-1]
            y = {k: v[take] for k, v in labels.items()}
            w = {"spiral": np.ones(len(take), np.float32), "count": armed[take], "winding": armed[take]}
            return np.ascontiguousarray(x), y, w

    return Views()


def scores(disks: pd.DataFrame, predicted: dict, train: pd.DataFrame) -> dict:
    """AUC of spiral; accuracy and balanced accuracy of count and winding, with the majority-class guess."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    out = {"disks": len(disks), "spiral_auc": roc_auc_score(disks["spiral"], predicted["spiral"][:, 0])}
    for name, column in (("count", "count"), ("winding", "winding_class")):
        for subset, keep in (("all", disks["n_arms"] > 0), ("plain", disks["plain"])):
            truth = disks.loc[keep, column].to_numpy()
            guess = predicted[name][keep.to_numpy()].argmax(axis=1)
            majority = train.loc[train["n_arms"] > 0, column].mode()[0]
            out[f"{name}_{subset}"] = {"galaxies": int(keep.sum()), "accuracy": float(np.mean(guess == truth)),
                                       "balanced": float(balanced_accuracy_score(truth, guess)),
                                       "majority": float(np.mean(truth == majority))}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=40, help="upper bound; stops when validation loss stalls")
    parser.add_argument("--workdir", default="data/bench")
    parser.add_argument("--bf16", action="store_true", help="train.precision=bfloat16 (CPUs with AMX/AVX512-BF16)")
    parser.add_argument("--replicates", type=int, default=100, help="re-votes per test galaxy for the floors")
    parser.add_argument("--no-network", action="store_true", help="only the floors: train no probe")
    args = parser.parse_args(argv)
    for name in ("epochs", "replicates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    overrides = ["data.source=synthetic", f"data.synthetic_n={args.n}", "data.synthetic_seed=2026",
                 f"data.workdir={args.workdir}", *(["train.precision=bfloat16"] if args.bf16 else [])]
    build_data("improved.yaml", overrides)

    import keras

    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.model import metrics
    from galaxyzoo.model.precision import machine_precision, policy_scope

    cfg = load_experiment(ROOT / "experiments" / "improved.yaml", overrides)
    dataset = load_dataset(cfg.data, with_counts=False)
    truth = pd.read_csv(dataset.workspace.raw / "truth.csv")
    test = dataset.parts["test"]
    floor, expected = noise_floor(dataset.workspace.raw, test.targets, test.asset_ids, args.replicates)
    blind = arm_blind_targets(truth, expected, test.asset_ids, cfg.data.synthetic_seed, args.replicates)
    # Not `excess_rmse`: its Monte-Carlo correction is for all 37 answers of every galaxy, and only the arm
    # answers of armed disks differ here; their own re-vote noise is negligible (the same to 4 digits at 40 and
    # 160 re-votes).
    unreadable = float(np.sqrt(metrics.mse(blind, expected)))
    print(f"test split {len(test.asset_ids)} galaxies: noise floor {floor:.4f}; arms' count and winding unknown: "
          f"excess {unreadable:.4f}, floor {np.hypot(floor, unreadable):.4f} = "
          f"{np.hypot(floor, unreadable) / floor:.3f}x the noise floor")
    if args.no_network:
        return
    parts = {}
    for name, part in dataset.parts.items():
        disks = disk_labels(truth, part.asset_ids)
        parts[name] = (disks, dataset.images[part.rows[disks["pos"].to_numpy()]])
    keras.utils.set_random_seed(cfg.train.seed)
    with policy_scope(machine_precision(cfg.train.precision).policy):
        model = probe_model(cfg)
        (train, x_train), (val, x_val), (disks, x_test) = parts["train"], parts["val"], parts["test"]
        model.fit(batches(x_train, train, cfg.train.batch_size, cfg.train.seed, augment=True),
                  validation_data=batches(x_val, val, 256, 0, augment=False), epochs=args.epochs, verbose=2,
                  callbacks=[keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True),
                             keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3)])
        predicted = model.predict(batches(x_test, disks, 256, 0, augment=False), verbose=0)
    result = scores(disks, predicted, train)
    print(f"\ntest disks {result['disks']} (train {len(train)}, of which armed {int((train['n_arms'] > 0).sum())})")
    print(f"spiral (arms or none) AUC {result['spiral_auc']:.3f}")
    for key in ("count_all", "count_plain", "winding_all", "winding_plain"):
        r = result[key]
        print(f"{key:<14} {r['galaxies']:>5} galaxies  accuracy {r['accuracy']:.3f}  balanced {r['balanced']:.3f}  "
              f"majority guess {r['majority']:.3f}")


if __name__ == "__main__":
    from galaxyzoo.errors import GalaxyZooError

    try:
        main()
    except GalaxyZooError as exc:  # e.g. --n out of the generator's range: one line, as the CLI gives
        print(f"arm_legibility: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
