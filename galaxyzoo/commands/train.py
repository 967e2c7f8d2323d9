"""`galaxyzoo train`: train an experiment file as one MLflow run."""

from __future__ import annotations

import json
import re

# A comma separates assignments only where the next text starts a new KEY=;
# commas inside values (`model.conv_filters=[16,32]`) stay.
_NEXT_ASSIGNMENT = re.compile(r",(?=\s*[A-Za-z_][\w.]*\s*=)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train an experiment file, tracked as one MLflow run",
        description="Train the CNN of an experiment file on its data (built if missing) and record the run in "
        "MLflow: params, per-epoch metrics, test metrics, the model, the CSV log and plots. Empty values "
        "(as `mlflow run` passes for unset parameters) keep the file's settings.",
    )
    p.add_argument("--experiment", required=True, metavar="FILE", help="experiment YAML file (experiments/*.yaml)")
    p.add_argument("--epochs", default="", metavar="N", help="override train.epochs")
    p.add_argument("--data", default="", metavar="synthetic|RAW_DIR",
                   help="override data.source: the built-in synthetic sample or a raw GZ2 folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE ...",
                   help="override config keys, e.g. --set 'epochs=2 model.conv_filters=[16,32]'; several "
                   "assignments may share one value, separated by spaces or commas; may repeat")
    # The underscore spellings are what `mlflow run . -P init_from=...` appends.
    p.add_argument("--init-from", "--init_from", default="", metavar="URI",
                   help="override warm_start.init_from: start from this model's weights (models:/NAME@ALIAS, "
                   "models:/NAME/VERSION, runs:/ID/model, a run id); its network must match the config's")
    p.add_argument("--freeze-blocks", "--freeze_blocks", default="", metavar="N",
                   help="override warm_start.freeze_blocks: keep the first N conv blocks' copied weights fixed")
    p.add_argument("--resume", default="", metavar="RUN_ID|auto",
                   help="continue a killed training from its last checkpoint in the same MLflow run; "
                   "'auto' picks the latest unfinished run of this experiment file and config")
    p.set_defaults(func=run)


def split_assignments(text: str) -> list[str]:
    """`"epochs=2 batch_size=8,model.conv_filters=[16,32]"` -> the three assignments.

    Spaces separate assignments, and a comma does when a `KEY=` follows it, except inside
    quotes (`"tracking.tags.note='a b, c=1 # d'"`). The quotes stay: the value is YAML, so a
    quoted value is one string (`'null'`, `'1.0'`), whatever it holds.
    """
    from galaxyzoo.errors import GalaxyZooError

    out, current, quote = [], [], None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char.isspace() or (char == "," and _NEXT_ASSIGNMENT.match(text, i)):
            out.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote:
        raise GalaxyZooError(f"--set {text!r}: no closing quotation ({quote}); quote a value whole, "
                             "e.g. \"tracking.tags.note='a b'\"")
    return [part for part in (*out, "".join(current)) if part]


def overrides_from_args(args) -> list[str]:
    """Config overrides from `--set`, then `--epochs` and `--data` (which win); empty values are ignored."""
    overrides = [a for text in args.set for a in split_assignments(text)]
    if args.epochs.strip():
        overrides.append(f"train.epochs={args.epochs.strip()}")
    # JSON quoting keeps a path or URI such as `123` or `yes` a string when parsed as YAML.
    if args.data.strip():
        overrides.append(f"data.source={json.dumps(args.data.strip())}")
    return overrides


def warm_start_overrides(args) -> list[str]:
    """`--init-from` and `--freeze-blocks` as config overrides (after `overrides_from_args`'s, so they win)."""
    overrides = []
    if args.init_from.strip():
        overrides.append(f"warm_start.init_from={json.dumps(args.init_from.strip())}")
    if args.freeze_blocks.strip():
        overrides.append(f"warm_start.freeze_blocks={args.freeze_blocks.strip()}")
    return overrides


def run(args) -> int:
    import os

    from galaxyzoo.config.experiment import load_experiment

    # A bad experiment file or override is refused before Keras and MLflow load (10 s on 2 cores).
    cfg = load_experiment(args.experiment, overrides_from_args(args) + warm_start_overrides(args))

    from galaxyzoo.tracking.mlflow_runs import run_id_from_env
    from galaxyzoo.training.run import train

    result = train(cfg, experiment_file=os.path.normpath(args.experiment), resume=args.resume.strip() or None,
                   project_run_id=run_id_from_env())
    shown = ", ".join(f"{k}={result.metrics[k]:.4f}" for k in ("test_rmse", "test_r2_flat", "test_rmse_cumulative"))
    print(f"run {result.run_id} finished after {result.epochs} epochs: {shown}")
    print(f"model: {result.model_uri}")
    return 0
