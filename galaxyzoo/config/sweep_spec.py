"""Sweep files: an experiment to start from, the keys to search and how to search them.

A sweep file names a base experiment file, fixed changes to it, the study's
settings and one range per searched config key:

```yaml
base: ../experiments/improved.yaml     # relative to this file
set: {train.epochs: 20}                # the same for every trial
study: {metric: val_rmse, n_trials: 30, sampler: tpe, pruner: median}
params:
  train.learning_rate: {low: 1e-4, high: 1e-2, log: true}
  model.head: {choices: [sigmoid, softmax-per-question]}
  model.conv_filters: {type: geometric, start: {choices: [16, 32]}, length: {low: 2, high: 4}}
```

`load_sweep` checks every key, range and choice (each extreme value must make
a valid experiment) and returns a `SweepSpec`. A trial draws its values through
a small `Suggest` interface, which Optuna trials and keras-tuner
hyperparameters both implement (`sweep.optuna_backend`, `sweep.keras_tuner_backend`), so one file drives either backend:

>>> spec = load_sweep("sweeps/quickstart.yaml")
>>> values = spec.sample(OptunaSuggest(trial))      # {"train.learning_rate": 0.003, ...}
>>> cfg = spec.trial_config(values, ["train.epochs=2"])
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import inspect
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from galaxyzoo.config import experiment
from galaxyzoo.errors import GalaxyZooError

METRICS = {"val_rmse": "minimize", "val_r2_flat": "maximize", "val_loss": "minimize"}
"""Per-epoch validation metrics a study may optimise, with their direction."""
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
KT_ALGORITHMS = ("hyperband", "random")
TOP_KEYS = ("base", "name", "description", "set", "study", "keras_tuner", "params")
STUDY_KEYS = ("metric", "n_trials", "sampler", "sampler_params", "seed", "pruner", "pruner_params")
KT_KEYS = ("algorithm", "factor", "hyperband_iterations", "seed")
KINDS = ("float", "int", "categorical", "geometric")
_SPEC_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
    "geometric": ("type", "start", "length", "ratio"),
}
# Hyperparameters only: searching the data source, the split or the tracking
# settings would make trials incomparable (or scatter them over experiments).
_SEARCHABLE = re.compile(r"(model|train)\..+|data\.(image_size|channels)")
# A number given for a list key fills the list; these lists take their length from another key.
_LENGTH_FOLLOWS = {"model.dense_dropout": "model.dense_units"}


class Suggest(Protocol):
    """What a backend offers a trial to draw values (Optuna trial, keras-tuner hp)."""

    def float(self, name: str, low: float, high: float, *, log: bool, step: float | None) -> float: ...

    def int(self, name: str, low: int, high: int, *, log: bool, step: int) -> int: ...

    def categorical(self, name: str, choices: list) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One searched value: a range, a list of choices, or a geometric list of ints."""

    name: str  # the backend's parameter name: the dotted config key (or key.start / key.length)
    kind: str  # one of KINDS
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    start: "Param | None" = None  # geometric: first value ...
    length: "Param | None" = None  # ... how many values ...
    ratio: int = 2  # ... and the factor from one value to the next

    def sample(self, suggest: Suggest) -> Any:
        """Draw this parameter's config value through `suggest`."""
        if self.kind == "float":
            return suggest.float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return suggest.int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        if self.kind == "categorical":
            labels = choice_labels(self.choices)
            return self.choices[labels.index(suggest.categorical(self.name, list(labels)))]
        first, count = self.start.sample(suggest), self.length.sample(suggest)
        return geometric(first, count, self.ratio)

    def extremes(self) -> list:
        """The config values at the edges of the range (every choice), checked at load time."""
        if self.kind in ("float", "int"):
            return [self.low, self.high]
        if self.kind == "categorical":
            return list(self.choices)
        return [
            geometric(first, count, self.ratio)
            for first in self.start.extremes()
            for count in self.length.extremes()
        ]

    def describe(self) -> str:
        """One short line for logs and the parent run's params."""
        if self.kind == "categorical":
            return "one of " + ", ".join(_yaml_value(c) for c in self.choices)
        if self.kind == "geometric":
            return f"geometric(start {self.start.describe()}; length {self.length.describe()}; ratio {self.ratio})"
        text = f"{self.kind} in [{self.low}, {self.high}]"
        return text + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")


@dataclass(frozen=True)
class StudySettings:
    """How the Optuna study runs."""

    metric: str = "val_rmse"
    n_trials: int = 20  # finished (complete or pruned) trials the study should reach, all workers together
    sampler: str = "tpe"
    sampler_params: dict = field(default_factory=dict)  # keyword arguments of the Optuna sampler
    seed: int | None = None  # None: every worker samples differently (seeded workers would repeat each other)
    pruner: str = "median"
    pruner_params: dict = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return METRICS[self.metric]


@dataclass(frozen=True)
class KerasTunerSettings:
    """How the keras-tuner backend runs (`--backend keras-tuner`)."""

    algorithm: str = "hyperband"
    factor: int = 3  # Hyperband's reduction factor
    hyperband_iterations: int = 1
    seed: int | None = None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file."""

    path: Path
    name: str
    description: str
    base: Path  # the experiment file every trial starts from
    fixed: tuple[str, ...]  # `set:` as KEY=VALUE overrides of the base
    study: StudySettings
    keras_tuner: KerasTunerSettings
    params: tuple[Param, ...]

    def sample(self, suggest: Suggest) -> dict[str, Any]:
        """One trial's values, `{config key: value}`."""
        return {p.name: p.sample(suggest) for p in self.params}

    def trial_overrides(self, values: dict[str, Any], extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        """`KEY=VALUE` overrides of the base for a trial: `set:`, the trial's values, then `extra`."""
        base_values = experiment.to_dict(self.base_config(extra))
        expanded = {key: _fill_list(key, value, values, base_values) for key, value in values.items()}
        return [*self.fixed, *(f"{k}={_yaml_value(v)}" for k, v in expanded.items()), *extra]

    def trial_config(self, values: dict[str, Any], extra: list[str] | tuple[str, ...] = ()) -> experiment.ExperimentConfig:
        """The experiment a trial trains. `extra` (e.g. `train.epochs=1`) wins over everything."""
        return experiment.load_experiment(self.base, self.trial_overrides(values, extra))

    def base_config(self, extra: list[str] | tuple[str, ...] = ()) -> experiment.ExperimentConfig:
        """The base experiment with `set:` and `extra` applied: what every trial shares."""
        return experiment.load_experiment(self.base, [*self.fixed, *extra])

    def distributions(self) -> dict:
        """`{backend parameter name: optuna distribution}`, geometric lists as their two parts."""
        import optuna.distributions as d

        out = {}
        for param in self.params:
            for part in (param.start, param.length) if param.kind == "geometric" else (param,):
                if part.kind == "float":
                    out[part.name] = d.FloatDistribution(part.low, part.high, log=part.log, step=part.step)
                elif part.kind == "int":
                    out[part.name] = d.IntDistribution(part.low, part.high, log=part.log, step=part.step or 1)
                else:
                    out[part.name] = d.CategoricalDistribution(choice_labels(part.choices))
        return out

    def space_hash(self, extra: list[str] | tuple[str, ...] = ()) -> str:
        """12 hex digits for the searched space and what trials share; a study refuses another."""
        payload = {
            "params": [dataclasses.asdict(p) for p in self.params],
            "base": experiment.config_hash(self.base_config(extra)),
            "metric": self.study.metric,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------- helpers shared with the backends


def geometric(first: int, count: int, ratio: int) -> list[int]:
    """`[first, first * ratio, ...]`, `count` values: conv filters that grow block by block."""
    return [int(first * ratio**i) for i in range(count)]


def choice_labels(choices: tuple | list) -> tuple:
    """The values a backend sees for `choices`: the choices themselves when they are scalars of
    one type (keras-tuner needs one type, Optuna needs scalars), else their YAML text."""
    kinds = {type(c) for c in choices}
    if len(kinds) == 1 and kinds <= {bool, int, float, str}:
        return tuple(choices)
    return tuple(_yaml_value(c) for c in choices)


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _get(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _fill_list(key: str, value: Any, values: dict[str, Any], base_values: dict) -> Any:
    """A number for a list-valued key becomes one value per element (e.g. every dense dropout)."""
    current = _get(base_values, key)
    if not isinstance(current, list) or isinstance(value, (list, tuple)):
        return value
    source = _LENGTH_FOLLOWS.get(key, key)
    length = len(values[source]) if source in values else len(_get(base_values, source))
    return [value] * length


# ---------------------------------------------------------------- loading and validation


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep file; every problem is one `GalaxyZooError` naming file and key."""
    path = Path(os.path.normpath(path))
    raw = _read(path)
    where = str(path)
    _check_keys(raw, TOP_KEYS, where, "")
    base = raw.get("base")
    if not isinstance(base, str) or not base.strip():
        raise GalaxyZooError(f"{where}: base: expected the experiment file trials start from, got {base!r}")
    base_path = Path(os.path.normpath(path.parent / base))
    if not base_path.is_file():
        raise GalaxyZooError(f"{where}: base: file not found: {base_path} (paths are relative to {path.parent})")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or experiment.identifier_problem(name):
        raise GalaxyZooError(f"{where}: name: must be letters, digits, '.', '_' or '-', got {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise GalaxyZooError(f"{where}: description: expected text, got {description!r}")
    fixed = _parse_fixed(raw.get("set", {}), where)
    try:
        base_cfg = experiment.load_experiment(base_path, fixed)
    except GalaxyZooError as exc:
        raise GalaxyZooError(f"{where}: base and set: {exc}") from None
    study = _parse_study(raw.get("study", {}), where)
    params = _parse_params(raw.get("params"), where)
    spec = SweepSpec(
        path=path,
        name=name,
        description=description,
        base=base_path,
        fixed=fixed,
        study=study,
        keras_tuner=_parse_keras_tuner(raw.get("keras_tuner", {}), where),
        params=params,
    )
    _check_against_base(spec, base_cfg, where)
    return spec


def _read(path: Path) -> dict:
    data = experiment.read_yaml_file(path, "sweep file")
    if not isinstance(data, dict):
        raise GalaxyZooError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    return data


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else f"; expected {', '.join(allowed)}"
            raise GalaxyZooError(f"{where}: unknown key {prefix + str(key)!r}{hint}")


def _mapping(value: Any, where: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise GalaxyZooError(f"{where}: {key}: expected a mapping, got {value!r}")
    return value


def _config_key_of(key: Any, where: str, section: str) -> str:
    """A dotted experiment key (or one of experiment.ALIASES) as its full dotted name."""
    if not isinstance(key, str):
        raise GalaxyZooError(f"{where}: {section}: keys must be dotted experiment keys, got {key!r}")
    key = experiment.ALIASES.get(key, key)
    known = list(experiment.flatten(experiment.ExperimentConfig()))
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise GalaxyZooError(f"{where}: {section}: unknown experiment key {key!r}{hint}")
    return key


def _parse_fixed(value: Any, where: str) -> tuple[str, ...]:
    fixed = _mapping(value, where, "set")
    return tuple(f"{_config_key_of(k, where, 'set')}={_yaml_value(v)}" for k, v in fixed.items())


def _number(value: Any, where: str, key: str, integer: bool = False) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise GalaxyZooError(f"{where}: {key}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def _optional_seed(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if _number(value, where, key, integer=True) < 0:
        raise GalaxyZooError(f"{where}: {key}: must be at least 0, got {value!r}")
    return value


def _choice(value: Any, options: tuple[str, ...], where: str, key: str) -> str:
    if value not in options:
        raise GalaxyZooError(f"{where}: {key}: expected one of {', '.join(options)}, got {value!r}")
    return value


def _parse_study(value: Any, where: str) -> StudySettings:
    raw = _mapping(value, where, "study")
    _check_keys(raw, STUDY_KEYS, where, "study.")
    defaults = StudySettings()
    metric = _choice(raw.get("metric", defaults.metric), tuple(METRICS), where, "study.metric")
    n_trials = _number(raw.get("n_trials", defaults.n_trials), where, "study.n_trials", integer=True)
    if n_trials < 1:
        raise GalaxyZooError(f"{where}: study.n_trials: must be at least 1, got {n_trials}")
    pruner = _choice(raw.get("pruner", defaults.pruner), PRUNERS, where, "study.pruner")
    pruner_params = _mapping(raw.get("pruner_params", {}), where, "study.pruner_params")
    _check_arguments(optuna_class("pruner", pruner), pruner_params, where, "study.pruner_params")
    sampler = _choice(raw.get("sampler", defaults.sampler), SAMPLERS, where, "study.sampler")
    sampler_params = _mapping(raw.get("sampler_params", {}), where, "study.sampler_params")
    if "seed" in sampler_params:
        raise GalaxyZooError(f"{where}: study.sampler_params.seed: give the seed as study.seed")
    _check_arguments(optuna_class("sampler", sampler), sampler_params, where, "study.sampler_params")
    return StudySettings(
        metric=metric,
        n_trials=n_trials,
        sampler=sampler,
        sampler_params=dict(sampler_params),
        seed=_optional_seed(raw.get("seed"), where, "study.seed"),
        pruner=pruner,
        pruner_params=dict(pruner_params),
    )


def optuna_class(kind: str, name: str):
    """The Optuna sampler or pruner class for a sweep file's name of it."""
    import optuna

    return {
        "sampler": {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler},
        "pruner": {
            "median": optuna.pruners.MedianPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
            "none": optuna.pruners.NopPruner,
        },
    }[kind][name]


def _check_arguments(cls, params: dict, where: str, key: str) -> None:
    """Unknown or bad sampler/pruner arguments fail now, not when the first worker starts."""
    if not params:
        return
    allowed = tuple(p for p in inspect.signature(cls).parameters if p != "self")
    if not allowed:
        raise GalaxyZooError(f"{where}: {key}: {cls.__name__} takes no parameters")
    _check_keys(params, allowed, where, f"{key}.")
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:
        raise GalaxyZooError(f"{where}: {key}: {exc}") from None


def _parse_keras_tuner(value: Any, where: str) -> KerasTunerSettings:
    raw = _mapping(value, where, "keras_tuner")
    _check_keys(raw, KT_KEYS, where, "keras_tuner.")
    defaults = KerasTunerSettings()
    factor = _number(raw.get("factor", defaults.factor), where, "keras_tuner.factor", integer=True)
    if factor < 2:
        raise GalaxyZooError(f"{where}: keras_tuner.factor: must be at least 2, got {factor}")
    iterations = _number(
        raw.get("hyperband_iterations", defaults.hyperband_iterations), where, "keras_tuner.hyperband_iterations", True
    )
    if iterations < 1:
        raise GalaxyZooError(f"{where}: keras_tuner.hyperband_iterations: must be at least 1, got {iterations}")
    return KerasTunerSettings(
        algorithm=_choice(raw.get("algorithm", defaults.algorithm), KT_ALGORITHMS, where, "keras_tuner.algorithm"),
        factor=factor,
        hyperband_iterations=iterations,
        seed=_optional_seed(raw.get("seed"), where, "keras_tuner.seed"),
    )


def _parse_params(value: Any, where: str) -> tuple[Param, ...]:
    if value is None or value == {}:
        raise GalaxyZooError(f"{where}: params: name at least one experiment key to search")
    params = []
    for key, spec in _mapping(value, where, "params").items():
        full = _config_key_of(key, where, "params")
        if not _SEARCHABLE.fullmatch(full):
            raise GalaxyZooError(
                f"{where}: params.{full}: not a hyperparameter; search model.*, train.*, "
                "data.image_size or data.channels (fix the rest with `set:`)"
            )
        params.append(_parse_param(full, spec, where))
    return tuple(params)


def _parse_param(name: str, spec: Any, where: str, integer_only: bool = False) -> Param:
    key = f"params.{name}"
    spec = _mapping(spec, where, key)
    kind = spec.get("type") or ("categorical" if "choices" in spec else None)
    if kind is None:
        if "low" not in spec or "high" not in spec:
            raise GalaxyZooError(f"{where}: {key}: give low and high, choices, or type: geometric")
        both_int = all(isinstance(spec[b], int) and not isinstance(spec[b], bool) for b in ("low", "high"))
        kind = "int" if both_int else "float"
    _choice(kind, KINDS, where, f"{key}.type")
    _check_keys(spec, _SPEC_KEYS[kind], where, f"{key}.")
    if integer_only and kind not in ("int", "categorical"):
        raise GalaxyZooError(f"{where}: {key}: expected integer low/high or integer choices")
    if kind == "categorical":
        return _parse_choices(name, spec, where, key, integer_only)
    if kind == "geometric":
        return _parse_geometric(name, spec, where, key)
    return _parse_range(name, kind, spec, where, key)


def _parse_choices(name: str, spec: dict, where: str, key: str, integer_only: bool) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise GalaxyZooError(f"{where}: {key}.choices: expected a non-empty list, got {choices!r}")
    labels = choice_labels(choices)
    duplicated = sorted({str(c) for c in labels if labels.count(c) > 1})
    if duplicated:
        raise GalaxyZooError(f"{where}: {key}.choices: listed more than once: {', '.join(duplicated)}")
    if integer_only:
        for c in choices:
            _number(c, where, f"{key}.choices", integer=True)
    return Param(name, "categorical", choices=tuple(choices))


def _parse_range(name: str, kind: str, spec: dict, where: str, key: str) -> Param:
    integer = kind == "int"
    low = _number(spec.get("low"), where, f"{key}.low", integer)
    high = _number(spec.get("high"), where, f"{key}.high", integer)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise GalaxyZooError(f"{where}: {key}.log: expected true or false, got {log!r}")
    step = spec.get("step")
    if not low < high:
        raise GalaxyZooError(f"{where}: {key}: low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise GalaxyZooError(f"{where}: {key}: a log range needs low > 0, got {low}")
    if step is not None:
        step = _number(step, where, f"{key}.step", integer)
        if step <= 0:
            raise GalaxyZooError(f"{where}: {key}.step: must be positive, got {step}")
        if log:
            raise GalaxyZooError(f"{where}: {key}: step and log cannot be combined")
        if not math.isclose((high - low) / step, round((high - low) / step), abs_tol=1e-9):
            raise GalaxyZooError(f"{where}: {key}: high - low ({high - low}) is not a multiple of step ({step})")
    return Param(name, kind, low=float(low) if not integer else low, high=float(high) if not integer else high,
                 log=log, step=step)


def _parse_geometric(name: str, spec: dict, where: str, key: str) -> Param:
    for part in ("start", "length"):
        if part not in spec:
            raise GalaxyZooError(f"{where}: {key}: a geometric list needs {part} (a range or choices)")
    start = _parse_param(f"{name}.start", spec["start"], where, integer_only=True)
    length = _parse_param(f"{name}.length", spec["length"], where, integer_only=True)
    ratio = _number(spec.get("ratio", 2), where, f"{key}.ratio", integer=True)
    if ratio < 1:
        raise GalaxyZooError(f"{where}: {key}.ratio: must be at least 1, got {ratio}")
    for part, sub in (("start", start), ("length", length)):
        if min(sub.extremes()) < 1:
            raise GalaxyZooError(f"{where}: {key}.{part}: values must be at least 1")
    return Param(name, "geometric", start=start, length=length, ratio=ratio)


def _check_against_base(spec: SweepSpec, base_cfg: experiment.ExperimentConfig, where: str) -> None:
    """Each extreme of each range must make a valid experiment (the other keys at their first extreme)."""
    if base_cfg.data.val_size == 0:
        raise GalaxyZooError(
            f"{where}: study.metric: {spec.study.metric} needs a validation set, but data.val_size is 0 in {spec.base}"
        )
    keys = {p.name for p in spec.params}
    if spec.study.metric == "val_loss" and "train.loss" in keys:
        raise GalaxyZooError(
            f"{where}: study.metric: val_loss is not comparable between the searched losses; use val_rmse"
        )
    firsts = {p.name: p.extremes()[0] for p in spec.params}
    for param in spec.params:
        for value in param.extremes():
            try:
                spec.trial_config({**firsts, param.name: copy.deepcopy(value)})
            except GalaxyZooError as exc:
                raise GalaxyZooError(
                    f"{where}: params.{param.name}: the value {_yaml_value(value)} makes an invalid experiment: "
                    f"{_last_clause(exc)}"
                ) from None


def _last_clause(exc: GalaxyZooError) -> str:
    """`'file (override ...): key: problem'` -> `'key: problem'`: the sweep file is named already."""
    text = str(exc)
    match = re.search(r"\): (.*)$", text) or re.search(r"^[^:]+: (.*)$", text)
    return match.group(1) if match else text
