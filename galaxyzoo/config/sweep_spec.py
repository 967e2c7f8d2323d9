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
a valid experiment) and returns a `SweepSpec`. The fixed sections (`study:`,
`keras_tuner:`, the top-level keys) are frozen dataclasses built by
`config.engine`, as experiment files are; `params:` is parsed here. A trial
draws its values through a small `Suggest` interface, which Optuna trials and
keras-tuner hyperparameters both implement (`sweep.optuna_backend`,
`sweep.keras_tuner_backend`), so one file drives either backend:

>>> spec = load_sweep("sweeps/quickstart.yaml")
>>> values = spec.sample(OptunaSuggest(trial))      # {"train.learning_rate": 0.003, ...}
>>> cfg = spec.trial_config(values, ["train.epochs=2"])
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from galaxyzoo.config import experiment
from galaxyzoo.config.engine import (
    Source, above, at_least, build, check_keys, checked, coerce, identifier_problem, one_of, read_mapping,
    setting, suggest, to_dict, to_yaml,
)
from galaxyzoo.errors import GalaxyZooError

METRICS = {"val_rmse": "minimize", "val_r2_flat": "maximize", "val_loss": "minimize"}
"""Per-epoch validation metrics a study may optimise, with their direction."""
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
KT_ALGORITHMS = ("hyperband", "random")
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
            return "one of " + ", ".join(to_yaml(c) for c in self.choices)
        if self.kind == "geometric":
            return f"geometric(start {self.start.describe()}; length {self.length.describe()}; ratio {self.ratio})"
        text = f"{self.kind} in [{self.low}, {self.high}]"
        return text + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")


@dataclass(frozen=True)
class StudySettings:
    """How the Optuna study runs."""

    metric: str = setting("val_rmse", one_of(*METRICS))
    # Finished (complete or pruned) trials the study should reach, all workers together.
    n_trials: int = setting(20, at_least(1))
    sampler: str = setting("tpe", one_of(*SAMPLERS))
    sampler_params: dict[str, Any] = setting({})  # keyword arguments of the Optuna sampler
    # None: every worker samples differently (seeded workers would repeat each other).
    seed: int | None = setting(None, at_least(0))
    pruner: str = setting("median", one_of(*PRUNERS))
    pruner_params: dict[str, Any] = setting({})

    @property
    def direction(self) -> str:
        return METRICS[self.metric]


@dataclass(frozen=True)
class KerasTunerSettings:
    """How the keras-tuner backend runs (`--backend keras-tuner`)."""

    algorithm: str = setting("hyperband", one_of(*KT_ALGORITHMS))
    factor: int = setting(3, at_least(2))  # Hyperband's reduction factor
    hyperband_iterations: int = setting(1, at_least(1))
    seed: int | None = setting(None, at_least(1))  # keras-tuner takes 0 for "no seed" and draws one at random


@dataclass(frozen=True)
class _SweepFile:
    """A sweep file as written; `load_sweep` resolves it into a `SweepSpec`."""

    base: Any = setting(None)  # checked by load_sweep: a file relative to this one
    name: str = setting("sweep", identifier_problem)  # load_sweep defaults it to the file's stem
    description: str = setting("")
    set: dict[str, Any] = setting({})  # experiment key -> value, checked against the experiment schema
    study: StudySettings = setting(StudySettings())
    keras_tuner: KerasTunerSettings = setting(KerasTunerSettings())
    params: dict[str, Any] = setting({})  # experiment key -> range, parsed by _parse_param


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
        base_values = to_dict(self.base_config(extra))
        expanded = {key: _fill_list(key, value, values, base_values) for key, value in values.items()}
        return [*self.fixed, *(f"{k}={to_yaml(v)}" for k, v in expanded.items()), *extra]

    def trial_config(self, values: dict[str, Any],
                     extra: list[str] | tuple[str, ...] = ()) -> experiment.ExperimentConfig:
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
    return tuple(to_yaml(c) for c in choices)


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
    raw = read_mapping(path, "sweep file")
    where = str(path)
    src = Source.of(where)
    raw.setdefault("name", path.stem)
    file = build(_SweepFile, raw, src)
    if not isinstance(file.base, str) or not file.base.strip():
        raise src.fail("base", f"expected the experiment file trials start from, got {file.base!r}")
    base_path = Path(os.path.normpath(path.parent / file.base))
    if not base_path.is_file():
        raise src.fail("base", f"file not found: {base_path} (paths are relative to {path.parent})")
    fixed = tuple(f"{_config_key_of(k, src, 'set')}={to_yaml(v)}" for k, v in file.set.items())
    try:
        base_cfg = experiment.load_experiment(base_path, fixed)
    except GalaxyZooError as exc:
        raise GalaxyZooError(f"{where}: base and set: {exc}") from None
    _check_study(file.study, src)
    spec = SweepSpec(
        path=path,
        name=file.name,
        description=file.description,
        base=base_path,
        fixed=fixed,
        study=file.study,
        keras_tuner=file.keras_tuner,
        params=_parse_params(file.params, src),
    )
    _check_against_base(spec, base_cfg, src)
    return spec


def _config_key_of(key: str, src: Source, section: str) -> str:
    """A dotted experiment key (or one of experiment.ALIASES) as its full dotted name."""
    key = experiment.ALIASES.get(key, key)
    known = list(experiment.flatten(experiment.ExperimentConfig()))
    if key not in known:
        raise src.fail(section, f"unknown experiment key {key!r}{suggest(key, known)}")
    return key


def _check_study(study: StudySettings, src: Source) -> None:
    """The sampler's and pruner's arguments fail now, not when the first worker starts."""
    if "seed" in study.sampler_params:
        raise src.fail("study.sampler_params.seed", "give the seed as study.seed")
    _check_arguments(optuna_class("pruner", study.pruner), study.pruner_params, src, "study.pruner_params")
    _check_arguments(optuna_class("sampler", study.sampler), study.sampler_params, src, "study.sampler_params")
    _check_sampling(optuna_class("sampler", study.sampler), study.sampler_params, src)


_DRAWS = 12  # past TPE's 10 random start-up trials, so its own model samples too


def _check_sampling(cls, params: dict, src: Source) -> None:
    """Draw a few values with the sampler, in memory: some arguments (a string for a count, a number
    for a function) are accepted by its constructor and fail only when it samples."""
    import optuna

    if not params:
        return
    quiet = logging.getLogger("optuna")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # an in-memory study's "created" line is noise here
    try:
        study = optuna.create_study(sampler=cls(**params))
        for _ in range(_DRAWS):
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0.0, 1.0) + trial.suggest_int("n", 1, 4))
    except Exception as exc:  # whatever the sampler raises, it is the argument's fault
        raise src.fail("study.sampler_params", f"{type(exc).__name__}: {exc}") from None
    finally:
        quiet.setLevel(level)


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


def _check_arguments(cls, params: dict, src: Source, key: str) -> None:
    if not params:
        return
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    if not allowed:
        raise src.fail(key, f"{cls.__name__} takes no parameters")
    check_keys(params, allowed, f"{key}.", src)
    try:
        cls(**params)
    except (TypeError, ValueError) as exc:
        raise src.fail(key, str(exc)) from None


def _parse_params(value: dict, src: Source) -> tuple[Param, ...]:
    if not value:
        raise src.fail("params", "name at least one experiment key to search")
    params, named = [], {}
    for key, spec in value.items():
        full = _config_key_of(key, src, "params")
        if full in named:  # YAML keeps both keys when one is an alias: the second range would be dropped
            raise src.fail(f"params.{full}", f"listed twice (as {named[full]!r} and {key!r})")
        named[full] = key
        if not _SEARCHABLE.fullmatch(full):
            raise src.fail(
                f"params.{full}",
                "not a hyperparameter; search model.*, train.*, data.image_size or data.channels "
                "(fix the rest with `set:`)",
            )
        params.append(_parse_param(full, spec, src))
    return tuple(params)


def _parse_param(name: str, spec: Any, src: Source, integer_only: bool = False) -> Param:
    key = f"params.{name}"
    spec = coerce(dict[str, Any], spec, key, src)
    kind = spec.get("type") or ("categorical" if "choices" in spec else None)
    if kind is None:
        if "low" not in spec or "high" not in spec:
            raise src.fail(key, "give low and high, choices, or type: geometric")
        both_int = all(isinstance(spec[b], int) and not isinstance(spec[b], bool) for b in ("low", "high"))
        kind = "int" if both_int else "float"
    checked(str, kind, f"{key}.type", src, one_of(*KINDS))
    check_keys(spec, list(_SPEC_KEYS[kind]), f"{key}.", src)
    if integer_only and kind not in ("int", "categorical"):
        raise src.fail(key, "expected integer low/high or integer choices")
    if kind == "categorical":
        return _parse_choices(name, spec, src, key, integer_only)
    if kind == "geometric":
        return _parse_geometric(name, spec, src, key)
    return _parse_range(name, kind, spec, src, key)


def _parse_choices(name: str, spec: dict, src: Source, key: str, integer_only: bool) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise src.fail(f"{key}.choices", f"expected a non-empty list, got {choices!r}")
    labels = choice_labels(choices)
    duplicated = sorted({str(c) for c in labels if labels.count(c) > 1})
    if duplicated:
        raise src.fail(f"{key}.choices", f"listed more than once: {', '.join(duplicated)}")
    if integer_only:
        for c in choices:
            coerce(int, c, f"{key}.choices", src)
    return Param(name, "categorical", choices=tuple(choices))


def _parse_range(name: str, kind: str, spec: dict, src: Source, key: str) -> Param:
    number = int if kind == "int" else float
    low, high = (coerce(number, spec.get(b), f"{key}.{b}", src) for b in ("low", "high"))
    log = coerce(bool, spec.get("log", False), f"{key}.log", src)
    if not low < high:
        raise src.fail(key, f"low ({low}) must be less than high ({high})")
    if log and low <= 0:
        raise src.fail(key, f"a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        # An integer step of a float range stays an integer: the step is part of space_hash.
        step = checked(int if isinstance(step, int) else number, step, f"{key}.step", src, above(0))
        if log:
            raise src.fail(key, "step and log cannot be combined")
        if not math.isclose((high - low) / step, round((high - low) / step), abs_tol=1e-9):
            raise src.fail(key, f"high - low ({high - low}) is not a multiple of step ({step})")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _parse_geometric(name: str, spec: dict, src: Source, key: str) -> Param:
    for part in ("start", "length"):
        if part not in spec:
            raise src.fail(key, f"a geometric list needs {part} (a range or choices)")
    start = _parse_param(f"{name}.start", spec["start"], src, integer_only=True)
    length = _parse_param(f"{name}.length", spec["length"], src, integer_only=True)
    ratio = checked(int, spec.get("ratio", 2), f"{key}.ratio", src, at_least(1))
    for part, sub in (("start", start), ("length", length)):
        if min(sub.extremes()) < 1:
            raise src.fail(f"{key}.{part}", "values must be at least 1")
    return Param(name, "geometric", start=start, length=length, ratio=ratio)


def _check_against_base(spec: SweepSpec, base_cfg: experiment.ExperimentConfig, src: Source) -> None:
    """Each extreme of each range must make a valid experiment (the other keys at their first extreme)."""
    if base_cfg.data.val_size == 0:
        raise src.fail("study.metric",
                       f"{spec.study.metric} needs a validation set, but data.val_size is 0 in {spec.base}")
    keys = {p.name for p in spec.params}
    both = sorted({item.split("=", 1)[0] for item in spec.fixed} & keys)
    if both:  # every trial's searched value would overwrite the fixed one without a word
        raise src.fail(f"set.{both[0]}", "is also searched in params: fix it or search it, not both")
    if spec.study.metric == "val_loss" and "train.loss" in keys:
        raise src.fail("study.metric", "val_loss is not comparable between the searched losses; use val_rmse")
    for key, step in (("train.refit_head", "refit"), ("train.calibrate_head", "calibration")):
        if key in keys:
            # A trial's objective is its last epoch's value, read before this step: on or off look alike.
            raise src.fail(f"params.{key}", f"cannot be searched: a trial is scored on its epochs, before the "
                                            f"{step}; set it in the base experiment instead")
    firsts = {p.name: p.extremes()[0] for p in spec.params}
    for param in spec.params:
        for value in param.extremes():
            try:
                spec.trial_config({**firsts, param.name: copy.deepcopy(value)})
            except GalaxyZooError as exc:
                raise src.fail(
                    f"params.{param.name}",
                    f"the value {to_yaml(value)} makes an invalid experiment: {_last_clause(exc)}",
                ) from None


def _last_clause(exc: GalaxyZooError) -> str:
    """`'file (override ...): key: problem'` -> `'key: problem'`: the sweep file is named already."""
    text = str(exc)
    match = re.search(r"\): (.*)$", text) or re.search(r"^[^:]+: (.*)$", text)
    return match.group(1) if match else text
