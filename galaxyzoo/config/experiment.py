"""Experiment files -> one typed, validated configuration.

An experiment is a YAML file. It may name a `base:` file whose values it only
changes, and the command line may change single keys (`train.epochs=2`).
`load_experiment` merges those layers, checks every key and value against the
frozen dataclasses below, and returns an `ExperimentConfig`; the rest of the
package receives its values as explicit arguments.

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
import difflib
import hashlib
import json
import math
import os
import re
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

import yaml

from galaxyzoo.errors import GalaxyZooError

HEADS = ("sigmoid", "softmax-per-question")
LOSSES = ("mse", "vote-weighted-mse", "dirichlet-multinomial")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DISTRIBUTE = ("none", "mirrored")
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
    "mixed_precision": "train.mixed_precision",
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
}
"""Short override names (the MLproject parameters) for the keys changed most often."""

# build_model's input shape follows the data (see ModelConfig), so these keys live in `data`.
_MOVED = {"model.input_size": "data.image_size", "model.channels": "data.channels"}
# Free-form mappings whose keys belong together: a later layer replaces them whole
# (parameters of one loss make no sense merged into another loss's).
_REPLACED_WHOLE = ("train.loss_params",)
# What an experiment says about itself; a file that builds on a base does not inherit it.
_NOT_INHERITED = ("name", "description")


# ---------------------------------------------------------------- value checks
# Each check returns what is wrong with a value, or None when it is fine.

Check = Callable[[Any], "str | None"]


def _one_of(*options: Any) -> Check:
    return lambda v: None if v in options else f"expected one of {', '.join(map(repr, options))}, got {v!r}"


def _at_least(low: int | float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}, got {v!r}"


def _above(low: float) -> Check:
    return lambda v: None if v > low else f"must be greater than {low}, got {v!r}"


def _unit_interval(*, open_low: bool) -> Check:
    bounds = "(0, 1)" if open_low else "[0, 1)"
    return lambda v: None if (0 < v if open_low else 0 <= v) and v < 1 else f"must be in {bounds}, got {v!r}"


def _not_empty(v: Any) -> str | None:
    return None if len(v) > 0 and (not isinstance(v, str) or v.strip()) else "must not be empty"


def identifier_problem(v: str) -> str | None:
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v)
    return None if ok else f"must be letters, digits, '.', '_' or '-' (it names runs and files), got {v!r}"


def _field(default: Any, check: Check | None = None, items: Check | None = None) -> Any:
    """A dataclass field with a whole-value `check` and a per-element `items` check."""
    meta = {"check": check, "items": items}
    if isinstance(default, dict) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------- the schema
# Defaults reproduce the seed project (see experiments/baseline.yaml for sources).


@dataclass(frozen=True)
class DataConfig:
    """Where the galaxies come from, how they are cut and how they are split."""

    source: str = _field("synthetic", _not_empty)  # "synthetic" or a raw GZ2 directory
    synthetic_n: int = _field(2000, _at_least(1))
    synthetic_seed: int = _field(0, _at_least(0))
    workdir: str = _field("data", _not_empty)  # ingest/prepare/split outputs
    image_size: int = _field(106, _at_least(8))
    channels: int = _field(1, _one_of(1, 3))
    test_size: float = _field(0.25, _unit_interval(open_low=True))
    val_size: float = _field(0.1, _unit_interval(open_low=False))  # fraction of the training rows
    split_seed: int = _field(32, _at_least(0))


@dataclass(frozen=True)
class ModelConfig:
    """The CNN's shape: `model.build_model(**model_kwargs(cfg))`.

    The input size and channels are not here: the model takes whatever the data
    is cut to (`data.image_size`, `data.channels`), so the two cannot disagree.
    """

    conv_filters: tuple[int, ...] = _field((32, 64, 128), _not_empty, _at_least(1))
    kernel_size: int = _field(3, _at_least(1))
    conv_dropout: float = _field(0.2, _unit_interval(open_low=False))
    dense_units: tuple[int, ...] = _field((128, 64), None, _at_least(1))
    dense_dropout: tuple[float, ...] = _field((0.2, 0.0), None, _unit_interval(open_low=False))
    batch_norm: bool = _field(False)
    head: str = _field("sigmoid", _one_of(*HEADS))


@dataclass(frozen=True)
class AugmentConfig:
    """Random label-preserving views of each training image (galaxies have no up or left)."""

    enabled: bool = _field(False)
    rot90: bool = _field(True)
    flip: bool = _field(True)
    shift_px: int = _field(4, _at_least(0))


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool = _field(True)
    monitor: str = _field("loss", _one_of(*MONITORS))
    patience: int = _field(7, _at_least(1))
    restore_best_weights: bool = _field(False)


@dataclass(frozen=True)
class LrStepConfig:
    """Multiply the learning rate by `factor` every `every` epochs."""

    enabled: bool = _field(True)
    factor: float = _field(0.8, _unit_interval(open_low=True))
    every: int = _field(10, _at_least(1))


@dataclass(frozen=True)
class ReduceLrOnPlateauConfig:
    enabled: bool = _field(True)
    monitor: str = _field("loss", _one_of(*MONITORS))
    factor: float = _field(0.1, _unit_interval(open_low=True))
    patience: int = _field(5, _at_least(1))


@dataclass(frozen=True)
class CsvLoggerConfig:
    enabled: bool = _field(True)
    append: bool = _field(True)


@dataclass(frozen=True)
class CallbacksConfig:
    checkpoint: bool = _field(True)  # save the model after every epoch
    early_stopping: EarlyStoppingConfig = _field(EarlyStoppingConfig())
    lr_step: LrStepConfig = _field(LrStepConfig())
    reduce_lr_on_plateau: ReduceLrOnPlateauConfig = _field(ReduceLrOnPlateauConfig())
    csv_logger: CsvLoggerConfig = _field(CsvLoggerConfig())


@dataclass(frozen=True)
class TrainConfig:
    """How the model is fitted."""

    epochs: int = _field(120, _at_least(1))
    batch_size: int = _field(2000, _at_least(1))
    optimizer: str = _field("adam", _one_of(*OPTIMIZERS))
    learning_rate: float = _field(0.001, _above(0))
    loss: str = _field("mse", _one_of(*LOSSES))
    loss_params: dict[str, Any] = _field({})  # keyword arguments of losses.get_loss
    augment: AugmentConfig = _field(AugmentConfig())
    seed: int = _field(0, _at_least(0))
    mixed_precision: bool = _field(False)
    distribute: str = _field("none", _one_of(*DISTRIBUTE))
    callbacks: CallbacksConfig = _field(CallbacksConfig())


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow records the run. A null `tracking_uri` leaves the choice to
    `tracking.py` (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the project root)."""

    experiment_name: str = _field("galaxyzoo", _not_empty)
    tracking_uri: str | None = _field(None)
    run_name: str | None = _field(None)
    tags: dict[str, str] = _field({})
    system_metrics: bool = _field(True)  # CPU, memory (and GPU) as `system/*` metrics of each training run


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: what data, which model, how to train it, where to record it."""

    name: str = _field("experiment", identifier_problem)  # load_experiment defaults it to the file's stem
    description: str = _field("")
    data: DataConfig = _field(DataConfig())
    model: ModelConfig = _field(ModelConfig())
    train: TrainConfig = _field(TrainConfig())
    tracking: TrackingConfig = _field(TrackingConfig())


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
        raise GalaxyZooError(f"{source}: expected a mapping of keys at the top level, got {_show(raw)}")
    cfg = _build(ExperimentConfig, raw, "", origin_of)
    _check_together(cfg, origin_of)
    return cfg


def _read_chain(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict[str, str]]:
    """Merge `path` over its `base:` chain; also return which file set each key."""
    raw = _read_yaml(path)
    base = raw.pop("base", None)
    merged: dict = {}
    origins: dict[str, str] = {}
    if base is not None:
        if not isinstance(base, str) or not base.strip():
            raise GalaxyZooError(f"{path}: base: expected the name of another experiment file, got {_show(base)}")
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


def _read_yaml(path: Path) -> dict:
    data = read_yaml_file(path, "experiment file")
    if not isinstance(data, dict):
        raise GalaxyZooError(f"{path}: expected a mapping of keys at the top level, got {_show(data)}")
    return data


def _parse_override(text: str, label: str) -> dict:
    """`"train.epochs=2"` -> `{"train": {"epochs": 2}}`, the value parsed as YAML."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GalaxyZooError(f"{label}: expected KEY=VALUE, e.g. train.epochs=2")
    top = {f.name for f in fields(ExperimentConfig)}
    if "." not in key and key not in top:
        if key not in ALIASES:
            hint = _suggest(key, list(ALIASES) + sorted(top))
            raise GalaxyZooError(f"{label}: unknown key {key!r}{hint}; short names: {', '.join(ALIASES)}")
        key = ALIASES[key]
    try:
        value = yaml.load(value_text, Loader=StrictLoader)
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


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (PyYAML would silently keep the last)
    and reads `1e-4` (no dot, which YAML 1.1 takes for text) as a number."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


def read_yaml_file(path: Path, kind: str) -> Any:
    """Parse a YAML file strictly; a missing, binary, empty or bad YAML file is one error naming `kind` and `path`.

    An empty file (or one of comments only) is refused: taking it for "all
    defaults" would start a 120-epoch training nobody asked for.
    """
    if not path.is_file():
        raise GalaxyZooError(f"{path}: {kind} not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)
    except UnicodeDecodeError as exc:
        raise GalaxyZooError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected a YAML "
                             f"{kind}") from None
    except yaml.YAMLError as exc:
        raise GalaxyZooError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        raise GalaxyZooError(f"{path}: the {kind} is empty; write at least one key (e.g. `base: baseline.yaml`)")
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


# ---------------------------------------------------------------- validation


def _build(cls: type, raw: dict, prefix: str, origin_of: Callable[[str], str]) -> Any:
    """Turn one mapping into `cls`, checking keys, types and values."""
    known = [f.name for f in fields(cls)]
    for key in raw:
        dotted = f"{prefix}{key}"
        if not isinstance(key, str):
            # YAML 1.1 reads a bare `on:`/`yes:`/`1:` key as a boolean or number.
            raise GalaxyZooError(f"{origin_of(prefix.rstrip('.'))}: {dotted}: keys must be strings (quote it)")
        if key not in known:
            raise GalaxyZooError(f"{origin_of(dotted)}: unknown key {dotted!r}{_where_instead(dotted, known, prefix)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        key = prefix + f.name
        value = _coerce(hints[f.name], raw[f.name], key, origin_of)
        check, items = f.metadata.get("check"), f.metadata.get("items")
        problems = [(key, check(value) if check else None)]
        if items:
            problems += [(f"{key}[{i}]", items(item)) for i, item in enumerate(value)]
        for where, problem in problems:
            if problem:
                raise GalaxyZooError(f"{origin_of(where)}: {where}: {problem}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str, origin_of: Callable[[str], str]) -> Any:
    """Check `value` against the annotation `tp`; return it in the dataclass's form."""

    def wrong(expected: str) -> GalaxyZooError:
        return GalaxyZooError(f"{origin_of(key)}: {key}: expected {expected}, got {_show(value)}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong(f"a mapping with keys {', '.join(f.name for f in fields(tp))}")
        return _build(tp, value, key + ".", origin_of)
    if get_origin(tp) in (Union, types.UnionType):  # `str | None`
        if value is None:
            return None
        (tp,) = [a for a in get_args(tp) if a is not type(None)]
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if tp is float:
        if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value.strip()):
            value = float(value)  # PyYAML reads `1e-3` (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if get_origin(tp) is tuple:
        (item_tp, _) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise wrong(f"a list of {_TYPE_WORDS[item_tp]}")
        return tuple(_coerce(item_tp, item, f"{key}[{i}]", origin_of) for i, item in enumerate(value))
    if get_origin(tp) is dict:
        (_, value_tp) = get_args(tp)
        if not isinstance(value, dict):
            raise wrong("a mapping")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise GalaxyZooError(f"{origin_of(key)}: {key}: keys must be strings, got {_show(k)}")
            out[k] = v if value_tp is Any else _coerce(value_tp, v, f"{key}.{k}", origin_of)
        return out
    raise TypeError(f"config.py has no rule for the annotation {tp!r} of {key}")


_TYPE_WORDS = {int: "integers", float: "numbers"}


def _check_together(cfg: ExperimentConfig, origin_of: Callable[[str], str]) -> None:
    """Rules that involve more than one key."""

    def fail(key: str, problem: str) -> None:
        raise GalaxyZooError(f"{origin_of(key)}: {key}: {problem}")

    model, data, train = cfg.model, cfg.data, cfg.train
    if len(model.dense_dropout) != len(model.dense_units):
        fail(
            "model.dense_dropout",
            f"has {len(model.dense_dropout)} values but model.dense_units has "
            f"{len(model.dense_units)} layers (one dropout rate per hidden dense layer)",
        )
    # The seed's conv blocks: an unpadded k x k convolution, then 2x2 max pooling.
    side = data.image_size
    for _ in model.conv_filters:
        side = (side - model.kernel_size + 1) // 2
        if side < 1:
            fail(
                "model.conv_filters",
                f"{len(model.conv_filters)} conv blocks with kernel {model.kernel_size} shrink a "
                f"{data.image_size}px image (data.image_size) to nothing; use fewer blocks or larger images",
            )
    if data.val_size == 0:
        callbacks = train.callbacks
        for name in ("early_stopping", "reduce_lr_on_plateau"):
            section = getattr(callbacks, name)
            if section.enabled and section.monitor.startswith("val_"):
                fail(
                    f"train.callbacks.{name}.monitor",
                    f"{section.monitor!r} needs a validation set, but data.val_size is 0",
                )
    aug = train.augment
    if aug.enabled and not (aug.rot90 or aug.flip or aug.shift_px):
        fail("train.augment.enabled", "is true but rot90, flip and shift_px are all off")
    if aug.shift_px >= data.image_size // 2:
        half = f"half of data.image_size ({data.image_size})"
        fail("train.augment.shift_px", f"must be less than {half}, got {aug.shift_px}")


def _where_instead(dotted: str, siblings: list[str], prefix: str) -> str:
    """A hint for an unknown key: a known move, the same name elsewhere, or a near spelling."""
    all_keys = _dotted_keys(ExperimentConfig)
    leaf = dotted.rpartition(".")[2]
    elsewhere = [k for k in all_keys if k.rpartition(".")[2] == leaf]
    target = _MOVED.get(dotted) or (elsewhere[0] if len(elsewhere) == 1 else None)
    if target:
        return f" (did you mean {target!r}?)"
    if elsewhere:
        return f" (did you mean one of {', '.join(map(repr, elsewhere))}?)"
    return _suggest(leaf, siblings, prefix) or _suggest(dotted, all_keys)


def _suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key of the schema, sections included: `train`, `train.callbacks`, `train.epochs`, ..."""
    keys = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _dotted_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _to_yaml(value)


# ---------------------------------------------------------------- output


def to_dict(cfg: Any) -> Any:
    """The config as plain nested dicts and lists (what `dump_yaml` writes)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


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
                out[prefix + f.name] = _to_yaml(to_dict(value))

    walk(cfg, "")
    return out


# Keys of `flatten` that are not knobs of the training: what the experiment says about itself
# (tags `experiment` and `mlflow.note.content`), where it is recorded, and where its data is built.
NOT_KNOBS = ("name", "description", "data.workdir")


def knobs(cfg: ExperimentConfig) -> dict[str, str]:
    """The run's MLflow params: `flatten(cfg)` without `NOT_KNOBS` and the tracking settings.

    What is left is what a researcher compares between runs; two trials of one
    sweep differ only in the searched keys.
    """
    return {k: v for k, v in flatten(cfg).items() if k not in NOT_KNOBS and not k.startswith("tracking.")}


def _to_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def dump_yaml(cfg: ExperimentConfig, path: str | os.PathLike, built: dict[str, str] | None = None) -> Path:
    """Write the resolved config (every key, no `base:`) so a run records exactly what it ran.

    `built` (e.g. the Keras callbacks as constructed, `callback.<name>` ->
    description) is appended as comments, so the file still loads as the config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Resolved experiment {cfg.name!r} (config hash {config_hash(cfg)});"
        " load with galaxyzoo.config.load_experiment.\n"
    )
    body = yaml.dump(to_dict(cfg), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
    footer = ""
    if built:
        footer = "\n# As built for this run:\n" + "".join(f"#   {k}: {v}\n" for k, v in built.items())
    path.write_text(header + body + footer, encoding="utf-8")
    return path


class _BlockDumper(yaml.SafeDumper):
    """Sections as indented blocks, lists on one line (`conv_filters: [32, 64, 128]`)."""


_BlockDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def config_hash(cfg: ExperimentConfig) -> str:
    """12 hex digits identifying what determines the trained model: `data`, `model`, `train`.

    The name, description and tracking settings are left out, so two experiment
    files that train the same thing share a hash.
    """
    payload = {part: to_dict(getattr(cfg, part)) for part in ("data", "model", "train")}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def model_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for `model.build_model`: the model section plus the data's input shape."""
    return {"input_size": cfg.data.image_size, "channels": cfg.data.channels, **to_dict(cfg.model)}
