"""Sim-to-real: train on the synthetic sample, predict real SDSS galaxies with Galaxy Zoo 1 classes.

    .venv/bin/python benchmarks/sim_to_real.py --real ../shared/real/gz1_sdss \\
        [--n 10000] [--epochs 15] [--experiment improved.yaml] [--workdir data/sim2real] [--bf16]
        [--train-seeds 0 1 2] [--set KEY=VALUE ...] [--tta]
    .venv/bin/python benchmarks/sim_to_real.py --real ../shared/real/gz1_sdss --model-uri runs:/<id>/packaged_model ...
        [--tta] [--probe]

Trains the experiment on a synthetic sample of `--n` galaxies with the package's
own API (`data.workspace.build_for`, `training.run.train`, MLflow in a local SQLite
store under `--workdir`), takes the packaged model (crop + network) the training
logged (`registry.promote.packaged_model_uri`) and predicts every real JPEG through
it (`registry.predict.predict_files`, the `galaxyzoo predict` path). `--model-uri`
skips the training and scores packaged models already logged in that store.

Two trainings that differ only in their seed land up to 0.03 apart (sd 0.003-0.023
over three seeds, docs/synthetic.md), as much as most changes of the generator
move them. `--train-seeds` trains one model per seed (`train.seed`) on the same
data and prints each one's figures, their mean and their spread, so that a
change can be judged against that noise in one run, and the figures of the mean
of their predictions (the fractions `galaxyzoo ensemble` would give). Each
model's predictions go to `WORKDIR/gz1_predictions-<config hash>.csv`
(`gz1_predictions-<the URI as a name>.csv` for a `--model-uri`), so runs of other
settings and models keep theirs. Several `--model-uri`s are reported like several seeds.
`--tta` predicts the real images as `galaxyzoo predict --tta` does (each the
mean over the 8 rotations and flips of its crop), into `...-tta.csv`; to score
models already trained that way, give their `--model-uri`s (every run of the
benchmark trains afresh).

The real images only get predicted: nothing is trained or tuned on them. Their
GZ1 classes (`labels.csv`: elliptical, spiral_cw, spiral_acw, edge_on, merger)
carry no GZ2 vote fractions, so the figures are rankings and decisions:

- smooth vs features AUC: ellipticals against spirals and edge-ons, score
  features - smooth (t01 a02 - a01);
- balanced accuracy of "features > smooth" on the same galaxies;
- edge-on vs face-on spiral AUC, score t02 yes;
- merger vs rest AUC, score t06 odd yes x t08 merger.

A check of the labels comes with them (`edge_on_label_check`): GZ1's edge-on button
also took spirals whose winding direction was unclear, so some `edge_on` galaxies
are face-on disks, which in GZ2 terms are not edge-on. It measures each real disk's
axis ratio in its image (second moments of the light inside the crop's own
outline of the galaxy), prints the share of `edge_on` galaxies that look round
(b/a > ROUND) and the edge-on AUC that the axis ratio alone reaches with and
without them, and adds a row: each model's edge-on AUC without them. Removing
them raises any score that follows the shape, so read that row against the axis
ratio's own, not against the target.

`--probe` then asks what moves the network's smooth fraction: it shows the
same network real ellipticals and spirals, and freshly rendered synthetic
ellipticals and disks, each changed one way at a time (scale, blur, noise,
stretch, colour removed), and prints the mean predicted smooth of each set
under each change. A change that moves the real galaxies' but not the
synthetic ones' names a nuisance the renderer and the sky do not share.

`--set` changes the experiment further (e.g. `train.augment.zoom=0.3`), as
`train --set` does. `--bf16` trains with `train.precision=bfloat16` (Keras' mixed_bfloat16 policy),
about 2.6x faster on a CPU with AMX.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FACE_ON = ("spiral_cw", "spiral_acw")
DISKS = (*FACE_ON, "edge_on")
TARGETS = {"smooth_vs_features_auc": 0.95, "features_gt_smooth_balanced_accuracy": 0.85,
           "edgeon_vs_faceon_auc": 0.95, "merger_vs_rest_auc": 0.85}


def gz1_figures(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """The four sim-to-real figures from `galaxyzoo predict`'s CSV and the GZ1 labels."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    table = labels.merge(_read(predictions), on="image")
    features = table["t01_smooth_or_features_a02_features_or_disk"] - table["t01_smooth_or_features_a01_smooth"]
    smooth_or_disk = table["gz1_class"].isin(("elliptical", *DISKS))
    is_disk = table["gz1_class"].isin(DISKS)[smooth_or_disk]
    face_or_edge = table["gz1_class"].isin(DISKS)
    merger = table["t06_odd_a14_yes"] * table["t08_odd_feature_a24_merger"]
    return {
        "smooth_vs_features_auc": roc_auc_score(is_disk, features[smooth_or_disk]),
        "features_gt_smooth_balanced_accuracy": balanced_accuracy_score(is_disk, features[smooth_or_disk] > 0),
        "edgeon_vs_faceon_auc": roc_auc_score(table["gz1_class"][face_or_edge] == "edge_on",
                                              table["t02_edgeon_a04_yes"][face_or_edge]),
        "merger_vs_rest_auc": roc_auc_score(table["gz1_class"] == "merger", merger),
        "mean_smooth_of_ellipticals": float(table.loc[table["gz1_class"] == "elliptical",
                                                      "t01_smooth_or_features_a01_smooth"].mean()),
        "images": float(len(table)),
    }


ROUND = 0.6  # image axis ratio above which a disk is far from edge-on (face-on spirals: median 0.72)


def axis_ratio(gray) -> float:
    """b/a of the central galaxy in a grayscale frame: the second moments of the light inside
    the crop's outline of it (`crop.galaxy_contour`); NaN where the crop finds no galaxy or there
    is no frame (None)."""
    import cv2
    import numpy as np

    from galaxyzoo.data.crop import galaxy_contour

    contour = None if gray is None else galaxy_contour(gray)  # gray None: cv2.imread could not read it
    if contour is None:
        return float("nan")
    inside = np.zeros_like(gray)
    cv2.drawContours(inside, [contour], -1, 255, cv2.FILLED)
    m = cv2.moments(np.where(inside > 0, gray, 0).astype(np.float32))
    spread = np.linalg.eigvalsh(np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]]))
    return float(np.sqrt(max(spread[0], 0.0) / spread[1]))


def disk_shapes(labels: pd.DataFrame, images: Path) -> pd.DataFrame:
    """`image`, `gz1_class` and the image's axis ratio `q` of every real disk (GZ1 spiral or edge-on) whose
    frame in `images` shows the crop a galaxy."""
    import cv2

    disks = labels.loc[labels["gz1_class"].isin(DISKS), ["image", "gz1_class"]].copy()
    disks["q"] = [axis_ratio(cv2.imread(str(images / name), cv2.IMREAD_GRAYSCALE)) for name in disks["image"]]
    return disks.dropna(subset=["q"])


def edge_on_label_check(shapes: pd.DataFrame) -> dict[str, float]:
    """How far the GZ1 `edge_on` class itself is from edge-on (see the module's docstring), from
    `disk_shapes`: the share of its galaxies that look round, and the edge-on AUC of b/a alone over all
    the disks and without those round `edge_on` galaxies (the yardstick for `edge_on_auc_without_round`)."""
    from sklearn.metrics import roc_auc_score

    edge_on, kept = _edge_on_and_kept(shapes)
    return {"edge_on_class_round_share": float((shapes.loc[edge_on, "q"] > ROUND).mean()),
            "edgeon_vs_faceon_auc_axis_ratio_alone": roc_auc_score(edge_on, 1 - shapes["q"]),
            "edgeon_vs_faceon_auc_axis_ratio_alone_without_round": roc_auc_score(edge_on[kept],
                                                                                 1 - shapes.loc[kept, "q"])}


def edge_on_auc_without_round(predictions: pd.DataFrame, shapes: pd.DataFrame) -> float:
    """The edge-on AUC (score t02 yes) without the `edge_on` galaxies that look round (b/a > ROUND),
    over the disks of `disk_shapes` that the model read."""
    from sklearn.metrics import roc_auc_score

    table = shapes.merge(_read(predictions)[["image", "t02_edgeon_a04_yes"]], on="image")
    edge_on, kept = _edge_on_and_kept(table)
    return roc_auc_score(edge_on[kept], table.loc[kept, "t02_edgeon_a04_yes"])


def _edge_on_and_kept(shapes: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Which disks are GZ1 `edge_on`, and which to keep: all but the round-looking `edge_on` ones."""
    edge_on = shapes["gz1_class"] == "edge_on"
    return edge_on, ~edge_on | (shapes["q"] <= ROUND)


def _read(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of `galaxyzoo predict`'s CSV whose image was read and cropped (an empty error field),
    with the file's name as `image`, the key of `labels.csv`."""
    read = predictions.loc[predictions["error"].isna()].copy()  # consolidated: assigning to a fragmented frame warns
    read["image"] = read["file"].map(lambda f: Path(f).name)
    return read


def _probes() -> dict:
    """Image changes, BGR uint8 frame to BGR uint8 frame, before the crop."""
    import cv2
    import numpy as np

    from galaxyzoo.data.stream import zoom_about_centre

    rng = np.random.default_rng(0)

    def gamma(g):
        return lambda image: (255 * (image / 255.0) ** g).round().astype(np.uint8)

    def noise(image):
        return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).round().astype(np.uint8)

    return {"as is": lambda image: image,
            "scaled x0.75": lambda image: zoom_about_centre(image, 0.75),
            "scaled x1.33": lambda image: zoom_about_centre(image, 1.33),
            "blur 1.5 px": lambda image: cv2.GaussianBlur(image, (0, 0), 1.5), "noise 4 levels": noise,
            "gamma 0.7": gamma(0.7), "gamma 1.4": gamma(1.4),
            "grey": lambda image: cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)}


def synthetic_frames(kinds: tuple[str, ...], per_kind: int, seed: int) -> dict[str, list]:
    """`per_kind` freshly rendered frames of each morphology kind, through the JPEG codec as written."""
    import numpy as np

    from galaxyzoo.data.crop import decode_image
    from galaxyzoo.data.synth.generate import encode_jpeg
    from galaxyzoo.data.synth.morphology import KINDS, sample_morphology
    from galaxyzoo.data.synth.render import render

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"no such morphology kinds: {sorted(unknown)}; expected some of {KINDS}")
    rng = np.random.default_rng(seed)
    frames: dict[str, list] = {kind: [] for kind in kinds}
    while min(map(len, frames.values())) < per_kind:
        m = sample_morphology(rng)
        if m.kind in frames and len(frames[m.kind]) < per_kind:
            frames[m.kind].append(decode_image(encode_jpeg(render(m, rng)), 3))
    return frames


def probe_table(smooth, sets: dict[str, list]) -> pd.DataFrame:
    """The mean of `smooth` (a list of BGR frames -> one smooth fraction each) over each set, under each probe."""
    probes = _probes()
    return pd.DataFrame({name: [float(smooth([change(f) for f in frames]).mean()) for change in probes.values()]
                         for name, frames in sets.items()}, index=list(probes))


def probe(model_uri: str, real: Path, per_set: int = 200, seed: int = 11) -> pd.DataFrame:
    """`probe_table` for a packaged model: real GZ1 ellipticals and spirals, synthetic ellipticals and disks."""
    import cv2
    import numpy as np

    from galaxyzoo.data.crop import crop_image, to_unit
    from galaxyzoo.registry.crops import Crops
    from galaxyzoo.registry.packaged import load_packaged, predict_crops

    packaged = load_packaged(model_uri).unwrap_python_model()

    def smooth(frames):
        cropped = [crop_image(frame, packaged.size, packaged.channels) for frame in frames]
        crops = Crops(to_unit(np.stack([c for c, _ in cropped])), list(range(len(frames))),
                      [b for _, b in cropped], [""] * len(frames))
        return predict_crops(packaged.network, crops)["t01_smooth_or_features_a01_smooth"].to_numpy()

    labels = pd.read_csv(real / "labels.csv")

    def real_frames(classes):
        return [cv2.imread(str(real / "images" / f)) for f in labels.loc[labels["gz1_class"].isin(classes), "image"][:per_set]]

    synthetic = synthetic_frames(("elliptical", "disk"), per_set, seed)
    return probe_table(smooth, {"real elliptical": real_frames(["elliptical"]), "real spiral": real_frames(FACE_ON),
                                "synthetic elliptical": synthetic["elliptical"], "synthetic disk": synthetic["disk"]})


def experiment_configs(args, uri: str) -> list:
    """The experiment's config for each of `--train-seeds`, refused (GalaxyZooError) before any data is built."""
    from galaxyzoo.config.experiment import load_experiment

    overrides = ["data.source=synthetic", f"data.synthetic_n={args.n}", f"data.synthetic_seed={args.seed}",
                 f"data.workdir={args.workdir}", f"train.epochs={args.epochs}", f"tracking.tracking_uri={uri}",
                 *args.set]
    if args.bf16:
        overrides.append("train.precision=bfloat16")
    return [load_experiment(ROOT / "experiments" / args.experiment, [*overrides, f"train.seed={seed}"])
            for seed in args.train_seeds]


def train_packaged(configs: list, experiment: str, uri: str) -> list[str]:
    """Build the synthetic data, train each config, package it; returns the packaged models' URIs."""
    from galaxyzoo.data import workspace

    start = time.perf_counter()
    workspace.build_for(configs[0].data)  # forks worker processes: before Keras starts its threads
    print(f"data built in {time.perf_counter() - start:.0f} s", flush=True)

    from galaxyzoo.registry import promote
    from galaxyzoo.tracking import mlflow_runs
    from galaxyzoo.training import run

    client = mlflow_runs.connect(uri)
    uris = []
    for cfg in configs:
        start = time.perf_counter()
        result = run.train(cfg, experiment_file=str(ROOT / "experiments" / experiment),
                           run_name=f"sim2real-n{cfg.data.synthetic_n}-seed{cfg.train.seed}", verbose=2)
        print(f"training seed {cfg.train.seed}: {result.epochs} epochs in {time.perf_counter() - start:.0f} s; "
              f"synthetic test RMSE {result.metrics.get('test_rmse', float('nan')):.4f}", flush=True)
        uris.append(promote.packaged_model_uri(client, client.get_run(result.run_id)))  # training logged it
    return uris


def figures_of(predictions: pd.DataFrame, labels: pd.DataFrame, shapes: pd.DataFrame) -> dict[str, float]:
    """`gz1_figures` of one table of predictions of the real images, and its edge-on AUC without the
    round-looking `edge_on` galaxies (`edge_on_auc_without_round`)."""
    return {**gz1_figures(predictions, labels),
            "edgeon_vs_faceon_auc_without_round_edge_on": edge_on_auc_without_round(predictions, shapes)}


def mean_predictions(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The fractions an ensemble of the models gives (`galaxyzoo ensemble` averages its members'):
    `file`, each answer's mean over `tables` and `error` (a file any model failed on keeps its error).
    The tables must list the same files in the same order."""
    from galaxyzoo import schema

    files = tables[0]["file"].tolist()
    if any(t["file"].tolist() != files for t in tables[1:]):
        raise ValueError("the prediction tables do not list the same files in the same order")
    answers = [a.stem for a in schema.ANSWERS]
    error = tables[0]["error"]
    for t in tables[1:]:
        error = error.fillna(t["error"])
    return pd.DataFrame({"file": files, **{a: sum(t[a] for t in tables) / len(tables) for a in answers},
                         "error": error})


def uri_file_stem(model_uri: str) -> str:
    """A model URI as a file name's part: each run of characters other than letters, digits, `_` and `.`
    becomes one `-` (`runs:/ab12/packaged_model` -> `runs-ab12-packaged_model`)."""
    return re.sub(r"[^\w.]+", "-", model_uri).strip("-")


def report(figures: pd.DataFrame, ensemble: dict[str, float] | None = None) -> str:
    """One line per figure: each model's value, then (for several models) their mean and spread,
    the `ensemble`'s value if given, and the verdict on the mean (on the value, for one model)."""
    table = figures.T
    if len(figures) > 1:  # a figure one model could not give is no mean: NaN, and not met
        table = table.assign(mean=figures.mean(skipna=False), sd=figures.std(ddof=1, skipna=False))
    if ensemble is not None:
        table = table.assign(ensemble=pd.Series(ensemble))
    judged = "mean" if len(figures) > 1 else table.columns[0]
    width = max(len(name) for name in table.index) + 1
    lines = [" " * width + "".join(f"{str(c):>9s}" for c in table.columns)]
    for name, row in table.iterrows():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  (target >= {target}: {'met' if row[judged] >= target else 'NOT met'})"
        lines.append(f"{name:{width}s}" + "".join(f"{v:9.3f}" for v in row) + verdict)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="the gz1_sdss folder (images/, labels.csv)")
    parser.add_argument("--n", type=int, default=10_000, help="synthetic galaxies to train on (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--experiment", default="improved.yaml")
    parser.add_argument("--workdir", type=Path, default=ROOT / "data" / "sim2real")
    parser.add_argument("--bf16", action="store_true", help="train under mixed_bfloat16 (faster on a CPU)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="more overrides of the experiment, e.g. train.augment.zoom=0.3")
    parser.add_argument("--train-seeds", nargs="+", type=int, metavar="K",
                        help="train one model per seed and report each, their mean and spread (default: 0)")
    parser.add_argument("--model-uri", nargs="+", metavar="URI",
                        help="score these packaged models instead of training any")
    parser.add_argument("--tta", action="store_true",
                        help="predict each real image as the mean over the 8 rotations and flips of its crop")
    parser.add_argument("--probe", action="store_true",
                        help="also print the mean predicted smooth of real and synthetic galaxies under image changes")
    args = parser.parse_args(argv)
    if any("train.seed=" in item for item in args.set):
        parser.error("give training seeds with --train-seeds, not --set train.seed")
    if args.model_uri and args.train_seeds:
        parser.error("--model-uri scores models already trained: it takes no --train-seeds")
    args.train_seeds = list(dict.fromkeys(args.train_seeds or [0]))
    args.workdir = args.workdir.resolve()
    uri = f"sqlite:///{args.workdir / 'mlflow.db'}"
    configs = [] if args.model_uri else experiment_configs(args, uri)  # a bad --set fails before anything is built
    if not ((args.real / "labels.csv").is_file() and (args.real / "images").is_dir()):
        parser.error(f"--real {args.real}: expected labels.csv and images/ there (the gz1_sdss folder)")
    labels = pd.read_csv(args.real / "labels.csv")
    shapes = disk_shapes(labels, args.real / "images")  # before the training, which takes long
    args.workdir.mkdir(parents=True, exist_ok=True)
    suffix = "-tta.csv" if args.tta else ".csv"
    if args.model_uri:
        models = {f"model {i}": (model_uri, args.workdir / f"gz1_predictions-{uri_file_stem(model_uri)}{suffix}")
                  for i, model_uri in enumerate(args.model_uri, start=1)}
    else:
        from galaxyzoo.config.experiment import config_hash

        uris = train_packaged(configs, args.experiment, uri)
        models = {f"seed {cfg.train.seed}": (model_uri, args.workdir / f"gz1_predictions-{config_hash(cfg)}{suffix}")
                  for cfg, model_uri in zip(configs, uris)}

    from galaxyzoo.registry import predict

    figures, tables = {}, []
    for name, (model_uri, out) in models.items():
        predict.predict_files(model_uri, [args.real / "images"], out, overwrite=True, tracking_uri=uri, tta=args.tta)
        tables.append(pd.read_csv(out))
        figures[name] = figures_of(tables[-1], labels, shapes)
        print(f"{name}: {model_uri}; {int(figures[name].pop('images'))} real images; predictions in {out}")
    branches = tables[0]["crop_branch"].value_counts(normalize=True)  # the crop is the same for every model
    print("crop branches of the real images: " + ", ".join(f"{b} {100 * s:.0f}%" for b, s in branches.items()))
    ensemble = None
    if len(tables) > 1:  # the fractions of an ensemble of the models
        ensemble = figures_of(mean_predictions(tables), labels, shapes)
        ensemble.pop("images")
    check = edge_on_label_check(shapes)
    print(f"GZ1 labels: {100 * check['edge_on_class_round_share']:.0f} % of the edge-on class look round (image "
          f"b/a > {ROUND}). The image's b/a alone ranks edge-on above face-on with AUC "
          f"{check['edgeon_vs_faceon_auc_axis_ratio_alone']:.3f}, and with "
          f"{check['edgeon_vs_faceon_auc_axis_ratio_alone_without_round']:.3f} without those round ones: the "
          "yardstick for the last row below, which leaves them out too.")
    print(report(pd.DataFrame(figures).T, ensemble))
    if args.probe:
        for name, (model_uri, _) in models.items():
            print(f"{name}: mean predicted smooth, each set changed one way (before the crop):")
            print(probe(model_uri, args.real).round(3).to_string())


if __name__ == "__main__":
    import sys

    from galaxyzoo.errors import GalaxyZooError

    try:
        main()
    except GalaxyZooError as exc:  # e.g. a bad --set: one line, as the CLI gives
        print(f"sim_to_real: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
