"""Experiment files -> one typed, validated configuration.

An experiment is a YAML file. It may name a `base:` file whose values it only
changes, and the command line may change single keys (`train.epochs=2`).
`load_experiment` merges those layers, checks every key and value against the
frozen dataclasses below (declared and built with `config.engine`), and
returns an `ExperimentConfig`; the rest of the package receives its values as
explicit arguments.

>>> cfg = load_experiment("experiments/quickstart.yaml", ["epochs=2"])
>>> cfg.train.epochs
2
>>> flatten(cfg)["model.conv_filters"]
'[32, 64, 128]'

Every error is a `GalaxyZooError` naming the file (or override) and the dotted
key, e.g. `experiments/x.yaml: train.epochs: expected an integer, got 'ten'`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from galaxyzoo.config.engine import (
    Source, StrictDumper, above, at_least, between, build, identifier_problem, load_yaml, not_empty, one_of,
    read_mapping, schema_keys, setting, show, suggest, to_dict, to_yaml, unit_interval, yaml_problem,
)
from galaxyzoo.errors import GalaxyZooError

logger = logging.getLogger(__name__)

HEADS = ("sigmoid", "softmax-per-question", "dirichlet")
LOSSES = ("mse", "vote-weighted-mse", "dirichlet-multinomial", "dirichlet-learned")
# The head whose outputs are Dirichlet concentrations, and the one loss that reads them as such.
CONCENTRATION_HEAD, CONCENTRATION_LOSS = "dirichlet", "dirichlet-learned"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DISTRIBUTE = ("none", "mirrored")
# The dtype policies `model.precision.resolve_precision` knows; `auto` is resolved on the machine that runs.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Only quantities where lower is better, so callbacks can be built with mode="min"
# (Keras cannot infer the direction of a custom metric such as `r2_flat`).
MONITORS = ("loss", "val_loss", "rmse", "val_rmse")

ALIASES = {
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate",
    "optimizer": "train.optimizer",
    "loss": "train.loss",
    "seed": "train.seed",
    "augment": "train.augment.enabled",
    "precision": "train.precision",
    "distribute": "train.distribute",
    "source": "data.source",
    "synthetic_n": "data.synthetic_n",
    "workdir": "data.workdir",
    "image_size": "data.image_size",
    "channels": "data.channels",
    "head": "model.head",
    "batch_norm": "model.batch_norm",
    "experiment_name": "tracking.experiment_name",
    "run_name": "tracking.run_name",
    "init_from": "warm_start.init_from",
    "freeze_blocks": "warm_start.freeze_blocks",
}
"""Short override names (the MLproject parameters) for the keys changed most often."""

# build_model's input shape follows the data (see ModelConfig), so these keys live in `data`.
_MOVED = {"model.input_size": "data.image_size", "model.channels": "data.channels"}
# Keys that were replaced by a setting of another kind, and the hint that says so.
_REPLACED = {"train.mixed_precision": "replaced by 'train.precision': auto, float32, bfloat16 or float16",
             "mixed_precision": "replaced by 'precision': auto, float32, bfloat16 or float16"}
# Free-form mappings whose keys belong together: a later layer replaces them whole
# (parameters of one loss make no sense merged into another loss's).
_REPLACED_WHOLE = ("train.loss_params",)
# What an experiment says about itself; a file that builds on a base does not inherit it.
_NOT_INHERITED = ("name", "description")


# ---------------------------------------------------------------- the schema
# Defaults reproduce the seed project (see experiments/baseline.yaml for sources).


@dataclass(frozen=True)
class DataConfig:
    """Where the galaxies come from, how they are cut and how they are split."""

    source: str = setting("synthetic", not_empty)  # "synthetic" or a raw GZ2 directory
    # the generator's range (`synth.catalogue.MIN_ROWS`, `synth.generate.MAX_N`), checked before any work
    synthetic_n: int = setting(2000, between(10, 200_000))
    synthetic_seed: int = setting(0, at_least(0))
    workdir: str = setting("data", not_empty)  # ingest/prepare/split outputs
    image_size: int = setting(106, between(8, 424))  # at most the images' side (`data.crop.MAX_SIDE`)
    channels: int = setting(1, one_of(1, 3))
    test_size: float = setting(0.25, unit_interval(open_low=True))
    val_size: float = setting(0.1, unit_interval(open_low=False))  # fraction of the training rows
    split_seed: int = setting(32, between(0, 2**32 - 1))  # scikit-learn's seeds


@dataclass(frozen=True)
class ModelConfig:
    """The CNN's shape: `model.network.build_model(**model_kwargs(cfg))`.

    The input size and channels are not here: the model takes whatever the data
    is cut to (`data.image_size`, `data.channels`), so the two cannot disagree.
    """

    conv_filters: tuple[int, ...] = setting((32, 64, 128), not_empty, at_least(1))
    kernel_size: int = setting(3, at_least(1))
    convs_per_block: int = setting(1, at_least(1))  # unpadded convs before each block's 2x2 pool
    conv_dropout: float = setting(0.2, unit_interval(open_low=False))
    dense_units: tuple[int, ...] = setting((128, 64), None, at_least(1))
    dense_dropout: tuple[float, ...] = setting((0.2, 0.0), None, unit_interval(open_low=False))
    batch_norm: bool = setting(False)
    head: str = setting("sigmoid", one_of(*HEADS))
    # The "dirichlet" head only: Dirichlets per question (a mixture from 2), and their concentrations' bound.
    dirichlet_components: int = setting(1, between(1, 8))
    # Above 10,000 the float32 log-gamma terms of the loss lose whole tenths of a nat to cancellation.
    concentration_ceiling: float = setting(100.0, between(10.0, 10_000.0))


@dataclass(frozen=True)
class AugmentConfig:
    """Random label-preserving views of each training image (galaxies have no up or left)."""

    enabled: bool = setting(False)
    rot90: bool = setting(True)
    flip: bool = setting(True)
    shift_px: int = setting(4, at_least(0))
    zoom: float = setting(0.0, unit_interval(open_low=False))  # scale by up to 1 + zoom either way
    # Domain randomisation of the imaging (stream.photometric_views): seeing, stretch, colour, noise.
    blur: float = setting(0.0, between(0, 4))  # extra Gaussian blur, sigma up to this many pixels
    gamma: float = setting(0.0, unit_interval(open_low=False))  # intensity ** (1 + gamma) either way
    colour: float = setting(0.0, unit_interval(open_low=False))  # each channel's gain by up to 1 + colour either way
    noise: float = setting(0.0, between(0, 0.2))  # added Gaussian noise, sigma up to this share of full scale


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool = setting(True)
    monitor: str = setting("loss", one_of(*MONITORS))
    patience: int = setting(7, at_least(1))
    restore_best_weights: bool = setting(False)


@dataclass(frozen=True)
class LrStepConfig:
    """Multiply the learning rate by `factor` every `every` epochs."""

    enabled: bool = setting(True)
    factor: float = setting(0.8, unit_interval(open_low=True))
    every: int = setting(10, at_least(1))


@dataclass(frozen=True)
class CosineDecayConfig:
    """Lower the learning rate along half a cosine over `train.epochs`, to `min_factor` of it.

    Applied as a factor per epoch, so it composes with the other two schedules:
    a plateau's reduction stays in force and the cosine continues from there.
    """

    enabled: bool = setting(False)
    min_factor: float = setting(0.0, unit_interval(open_low=False))


@dataclass(frozen=True)
class ReduceLrOnPlateauConfig:
    enabled: bool = setting(True)
    monitor: str = setting("loss", one_of(*MONITORS))
    factor: float = setting(0.1, unit_interval(open_low=True))
    patience: int = setting(5, at_least(1))


@dataclass(frozen=True)
class CsvLoggerConfig:
    enabled: bool = setting(True)
    append: bool = setting(True)


@dataclass(frozen=True)
class CallbacksConfig:
    checkpoint: bool = setting(True)  # save the model after every epoch
    early_stopping: EarlyStoppingConfig = setting(EarlyStoppingConfig())
    lr_step: LrStepConfig = setting(LrStepConfig())
    cosine_decay: CosineDecayConfig = setting(CosineDecayConfig())
    reduce_lr_on_plateau: ReduceLrOnPlateauConfig = setting(ReduceLrOnPlateauConfig())
    csv_logger: CsvLoggerConfig = setting(CsvLoggerConfig())


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted."""

    epochs: int = setting(120, at_least(1))
    batch_size: int = setting(2000, at_least(1))
    optimizer: str = setting("adam", one_of(*OPTIMIZERS))
    learning_rate: float = setting(0.001, above(0))
    loss: str = setting("mse", one_of(*LOSSES))
    loss_params: dict[str, Any] = setting({})  # keyword arguments of losses.get_loss
    augment: AugmentConfig = setting(AugmentConfig())
    seed: int = setting(0, between(0, 2**32 - 1))  # NumPy's global seed, which Keras sets
    precision: str = setting("float32", one_of(*PRECISIONS))  # float32 by default: reproducible results
    distribute: str = setting("none", one_of(*DISTRIBUTE))
    callbacks: CallbacksConfig = setting(CallbacksConfig())
    # After training, fit the head's last Dense again on unaugmented, dropout-free features (`training.head_refit`).
    refit_head: bool = setting(False)
    # The Dirichlet head only: then scale each question's concentrations by the factor that gives the
    # validation votes the highest likelihood (`training.calibration`), so its intervals are as wide as
    # held-out votes say, not as the training galaxies' own votes do.
    calibrate_head: bool = setting(False)


@dataclass(frozen=True)
class WarmStartConfig:
    """Start from another model's weights instead of a random initialisation (`training.warm_start`).

    `init_from` is a model URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/ID/model`,
    a run id, a logged model's `models:/m-...`); its network must have this config's layers.
    The first `freeze_blocks` conv blocks keep the source's weights. Unset (`init_from: null`),
    the section is no part of `config_hash`, so a cold start hashes as it did before warm starts.
    """

    init_from: str | None = setting(None, not_empty)
    freeze_blocks: int = setting(0, at_least(0))


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow records the run. A null `tracking_uri` leaves the choice to
    `tracking.mlflow_runs` (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project root)."""

    experiment_name: str = setting("galaxyzoo", not_empty)
    tracking_uri: str | None = setting(None)
    run_name: str | None = setting(None)
    tags: dict[str, str] = setting({})
    system_metrics: bool = setting(True)  # CPU, memory (and GPU) as `system/*` metrics of each training run
    plots: bool = setting(True)  # draw and log the figures (about a second each); off for large sweeps


@dataclass(frozen=True)
class EvaluateConfig:
    """How the trained model is scored on the test split. Nothing here changes the model, so
    this section is no part of `config_hash` and its settings are no params (`knobs`)."""

    tta: bool = setting(False)  # also score the mean over the 8 rotations and flips (`model.tta`)


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: what data, which model, how to train it, how to score it, where to record it."""

    name: str = setting("experiment", identifier_problem)  # load_experiment defaults it to the file's stem
    description: str = setting("")
    data: DataConfig = setting(DataConfig())
    model: ModelConfig = setting(ModelConfig())
    train: TrainConfig = setting(TrainConfig())
    warm_start: WarmStartConfig = setting(WarmStartConfig())
    evaluate: EvaluateConfig = setting(EvaluateConfig())
    tracking: TrackingConfig = setting(TrackingConfig())


# ---------------------------------------------------------------- loading


def load_experiment(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment file, its `base:` chain and `KEY=VALUE` overrides.

    Layers merge in order base -> file -> overrides: mappings merge key by key,
    anything else (numbers, strings, lists) is replaced. Override values are
    parsed as YAML (`model.conv_filters=[16,32]` is a list); a key without a dot
    may be one of `ALIASES` (`epochs=2` means `train.epochs=2`).
    """
    path = Path(os.path.normpath(path))
    raw, origins = _read_chain(path, chain=())
    raw.setdefault("name", path.stem)
    for text in overrides:
        label = f"{path} (override {text!r})"
        _merge(raw, _parse_override(text, label), origins, label, prefix="")
    return from_dict(raw, source=str(path), origins=origins)


def from_dict(raw: dict, source: str = "<dict>", origins: dict[str, str] | None = None) -> ExperimentConfig:
    """Validate a plain nested mapping into an `ExperimentConfig`.

    `source` names the mapping in error messages; `origins` may name, per dotted
    key, the file or override that set it (keys not listed fall back to `source`).
    """
    origins = origins or {}

    def origin_of(key: str) -> str:
        key = re.sub(r"\[\d+\]", "", key)
        while key:
            if key in origins:
                return origins[key]
            key = key.rpartition(".")[0]
        return source

    if not isinstance(raw, dict):
        raise GalaxyZooError(f"{source}: expected a mapping of keys at the top level, got {show(raw)}")
    src = Source(origin_of, hint=_where_instead)
    cfg = build(ExperimentConfig, raw, src)
    _check_together(cfg, src)
    return cfg


def _read_chain(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict[str, str]]:
    """Merge `path` over its `base:` chain; also return which file set each key."""
    raw = read_mapping(path, "experiment file")
    _read_mixed_precision(raw, path)
    base = raw.pop("base", None)
    merged: dict = {}
    origins: dict[str, str] = {}
    if base is not None:
        if not isinstance(base, str) or not base.strip():
            raise GalaxyZooError(f"{path}: base: expected the name of another experiment file, got {show(base)}")
        base_path = Path(os.path.normpath(path.parent / base))
        here = chain + (path.resolve(),)
        if base_path.resolve() in here:
            names = " -> ".join(str(p) for p in here + (base_path.resolve(),))
            raise GalaxyZooError(f"{path}: base: {base!r} makes a cycle ({names})")
        if not base_path.is_file():
            raise GalaxyZooError(f"{path}: base: file not found: {base_path} (paths are relative to {path.parent})")
        merged, origins = _read_chain(base_path, here)
        for key in _NOT_INHERITED:
            merged.pop(key, None)
            origins.pop(key, None)
    _merge(merged, raw, origins, str(path), prefix="")
    return merged, origins


def _read_mixed_precision(raw: dict, path: Path) -> None:
    """A file written before `train.precision` existed (an older run's config.yaml, a user's experiment)
    says `train.mixed_precision: true|false`: read it as `precision: float16|float32`, with a warning,
    so older runs can still be evaluated, promoted and predicted. `--set mixed_precision=` is refused."""
    train = raw.get("train")
    if not isinstance(train, dict) or not isinstance(train.get("mixed_precision"), bool) or "precision" in train:
        return  # nothing to read, or a value validation reports
    precision = "float16" if train.pop("mixed_precision") else "float32"
    train["precision"] = precision
    logger.warning("%s: train.mixed_precision is replaced by train.precision; read as precision: %s", path, precision)


def _parse_override(text: str, label: str) -> dict:
    """`"train.epochs=2"` -> `{"train": {"epochs": 2}}`, the value parsed as YAML."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GalaxyZooError(f"{label}: expected KEY=VALUE, e.g. train.epochs=2")
    top = {f.name for f in fields(ExperimentConfig)}
    if "." not in key and key not in top:
        if key not in ALIASES:
            hint = f" ({_REPLACED[key]})" if key in _REPLACED else suggest(key, list(ALIASES) + sorted(top))
            raise GalaxyZooError(f"{label}: unknown key {key!r}{hint}; short names: {', '.join(ALIASES)}")
        key = ALIASES[key]
    try:
        value = load_yaml(value_text)
    except yaml.YAMLError as exc:
        raise GalaxyZooError(f"{label}: {key}: value is not valid YAML: {yaml_problem(exc)}") from None
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def _merge(dst: dict, src: dict, origins: dict[str, str], label: str, prefix: str) -> None:
    """Deep-merge `src` into `dst` in place, recording `label` as the origin of what it sets."""
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict) and dotted not in _REPLACED_WHOLE:
            _merge(dst[key], value, origins, label, dotted + ".")
            continue
        dst[key] = copy.deepcopy(value)
        for stale in [k for k in origins if k.startswith(dotted + ".")]:
            del origins[stale]
        origins[dotted] = label


# ---------------------------------------------------------------- validation


def _check_together(cfg: ExperimentConfig, src: Source) -> None:
    """Rules that involve more than one key."""

    def fail(key: str, problem: str) -> None:
        raise src.fail(key, problem)

    model, data, train = cfg.model, cfg.data, cfg.train
    if len(model.dense_dropout) != len(model.dense_units):
        fail(
            "model.dense_dropout",
            f"has {len(model.dense_dropout)} values but model.dense_units has "
            f"{len(model.dense_units)} layers (one dropout rate per hidden dense layer)",
        )
    if feature_side(data.image_size, len(model.conv_filters), model.kernel_size, model.convs_per_block) < 1:
        fail(
            "model.conv_filters",
            f"{len(model.conv_filters)} conv blocks of {model.convs_per_block} conv(s) with kernel "
            f"{model.kernel_size} shrink a {data.image_size}px image (data.image_size) to nothing; "
            "use fewer blocks or convs per block, or larger images",
        )
    if data.val_size == 0 and train.refit_head:
        fail("train.refit_head", "needs a validation set to stop on, but data.val_size is 0")
    if train.calibrate_head and model.head != CONCENTRATION_HEAD:
        fail("train.calibrate_head", f"scales the {CONCENTRATION_HEAD!r} head's concentrations, but model.head is "
                                     f"{model.head!r}")
    if data.val_size == 0 and train.calibrate_head:
        fail("train.calibrate_head", "is fitted to the validation votes, but data.val_size is 0")
    if data.val_size == 0:
        callbacks = train.callbacks
        for name in ("early_stopping", "reduce_lr_on_plateau"):
            section = getattr(callbacks, name)
            if section.enabled and section.monitor.startswith("val_"):
                fail(
                    f"train.callbacks.{name}.monitor",
                    f"{section.monitor!r} needs a validation set, but data.val_size is 0",
                )
    warm = cfg.warm_start
    if warm.freeze_blocks and warm.init_from is None:
        fail("warm_start.freeze_blocks", f"is {warm.freeze_blocks} but warm_start.init_from is null "
             "(only weights copied from another model can be kept frozen)")
    if warm.freeze_blocks > len(model.conv_filters):
        fail("warm_start.freeze_blocks", f"must be at most the {len(model.conv_filters)} conv blocks of "
             f"model.conv_filters, got {warm.freeze_blocks}")
    if (model.head == CONCENTRATION_HEAD) != (train.loss == CONCENTRATION_LOSS):
        # The head's outputs are concentrations (1 to 100), not fractions: no other loss reads them right,
        # and this loss reads no other head's outputs right.
        if model.head == CONCENTRATION_HEAD:
            fail("model.head", f"{CONCENTRATION_HEAD!r} needs train.loss {CONCENTRATION_LOSS!r} (its outputs are "
                               f"Dirichlet concentrations, not fractions), got train.loss {train.loss!r}")
        fail("train.loss", f"{CONCENTRATION_LOSS!r} needs model.head {CONCENTRATION_HEAD!r} (it reads the outputs "
                           f"as Dirichlet concentrations), got model.head {model.head!r}")
    if model.head != CONCENTRATION_HEAD:
        for key, default in (("dirichlet_components", 1), ("concentration_ceiling", 100.0)):
            if getattr(model, key) != default:
                fail(f"model.{key}", f"only the {CONCENTRATION_HEAD!r} head has one (model.head is {model.head!r}), "
                                     f"so leave it at {default:g}")
    aug = train.augment
    if aug.enabled and not any(v for k, v in to_dict(aug).items() if k != "enabled"):
        fail("train.augment.enabled", f"is true but {', '.join(k for k in to_dict(aug) if k != 'enabled')} are all off")
    if aug.shift_px >= data.image_size // 2:
        half = f"half of data.image_size ({data.image_size})"
        fail("train.augment.shift_px", f"must be less than {half}, got {aug.shift_px}")


def _where_instead(dotted: str, siblings: list[str], prefix: str) -> str:
    """A hint for an unknown key: a known move, the same name elsewhere, or a near spelling."""
    if dotted in _REPLACED:
        return f" ({_REPLACED[dotted]})"
    all_keys = schema_keys(ExperimentConfig)
    leaf = dotted.rpartition(".")[2]
    elsewhere = [k for k in all_keys if k.rpartition(".")[2] == leaf]
    target = _MOVED.get(dotted) or (elsewhere[0] if len(elsewhere) == 1 else None)
    if target:
        return f" (did you mean {target!r}?)"
    if elsewhere:
        return f" (did you mean one of {', '.join(map(repr, elsewhere))}?)"
    return suggest(leaf, siblings, prefix) or suggest(dotted, all_keys)


# ---------------------------------------------------------------- output


def flatten(cfg: ExperimentConfig) -> dict[str, str]:
    """`{"train.epochs": "120", ...}`: one string per key, for MLflow parameters.

    Values are YAML, so `load_experiment(path, [f"{k}={v}" for k, v in
    flatten(cfg).items()])` rebuilds `cfg`. Lists and the free-form mappings
    (`train.loss_params`, `tracking.tags`) stay one value each.
    """
    out: dict[str, str] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                out[prefix + f.name] = to_yaml(to_dict(value))

    walk(cfg, "")
    return out


# Keys of `flatten` that are not knobs of the training: what the experiment says about itself
# (tags `experiment` and `mlflow.note.content`), where it is recorded, and where its data is built.
NOT_KNOBS = ("name", "description", "data.workdir")


def knobs(cfg: ExperimentConfig) -> dict[str, str]:
    """The run's MLflow params: `flatten(cfg)` without `NOT_KNOBS`, the warm start, the evaluate and the
    tracking settings.

    What is left is what a researcher compares between runs; two trials of one
    sweep differ only in the searched keys. A warm start is recorded as tags
    (`warm_start.*`), so warm and cold runs log the same params.
    """
    return {k: v for k, v in flatten(cfg).items()
            if k not in NOT_KNOBS and not k.startswith(("warm_start.", "evaluate.", "tracking."))}


def dump_yaml(cfg: ExperimentConfig, path: str | os.PathLike, built: dict[str, str] | None = None) -> Path:
    """Write the resolved config (every key, no `base:`) so a run records exactly what it ran.

    `built` (e.g. the Keras callbacks as constructed, `callback.<name>` ->
    description) is appended as comments, so the file still loads as the config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Resolved experiment {cfg.name!r} (config hash {config_hash(cfg)});"
        " load with galaxyzoo.config.experiment.load_experiment.\n"
    )
    body = yaml.dump(to_dict(cfg), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
    footer = ""
    if built:
        footer = "\n# As built for this run:\n" + "".join(f"#   {k}: {v}\n" for k, v in built.items())
    path.write_text(header + body + footer, encoding="utf-8")
    return path


class _BlockDumper(StrictDumper):
    """Sections as indented blocks, lists on one line (`conv_filters: [32, 64, 128]`)."""


_BlockDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


# Keys added after runs were recorded, and the default at which they change nothing.
_HASHED_UNLESS_DEFAULT = {"model.convs_per_block": 1, "model.dirichlet_components": 1,
                          "model.concentration_ceiling": 100.0, "train.augment.zoom": 0.0,
                          "train.augment.blur": 0.0, "train.augment.gamma": 0.0, "train.augment.colour": 0.0,
                          "train.augment.noise": 0.0, "train.refit_head": False, "train.calibrate_head": False,
                          "train.callbacks.cosine_decay": to_dict(CosineDecayConfig())}


def hashed_sections(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The sections that determine the trained model: `data`, `model`, `train`, and `warm_start`
    when it is used (a cold start hashes as it did before the section existed)."""
    return ("data", "model", "train") + (("warm_start",) if cfg.warm_start.init_from is not None else ())


def config_hash(cfg: ExperimentConfig) -> str:
    """12 hex digits identifying what determines the trained model: its `hashed_sections`.

    The name, description, evaluate and tracking settings are left out, so two
    experiment files that train the same thing share a hash; a warm and a cold
    start of one file do not. Settings added since runs were first recorded
    (`_HASHED_UNLESS_DEFAULT`) count only when changed, so an older run keeps its
    hash, and with it its resume and its checkpoint folder.
    """
    payload = {part: to_dict(getattr(cfg, part)) for part in hashed_sections(cfg)}
    for dotted, default in _HASHED_UNLESS_DEFAULT.items():
        *path, key = dotted.split(".")
        section = functools.reduce(dict.__getitem__, path, payload)
        if section[key] == default:
            del section[key]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def feature_side(image_size: int, blocks: int, kernel_size: int, convs_per_block: int) -> int:
    """The side of the conv stack's last feature map, below 1 when the image is too small.

    Each of the seed's conv blocks is unpadded k x k convolutions, each taking k - 1
    pixels off the side, then a 2x2 max pool that halves it (rounding down).
    """
    side = image_size
    for _ in range(blocks):
        side = (side - convs_per_block * (kernel_size - 1)) // 2
        if side < 1:
            return side
    return side


def model_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for `model.network.build_model`: the model section plus the data's input shape."""
    return {"input_size": cfg.data.image_size, "channels": cfg.data.channels, **to_dict(cfg.model)}
