"""The validation engine behind experiment files and sweep files.

A file format is a tree of frozen dataclasses whose fields are declared with
`setting(default, check, items)`. `build` walks a parsed YAML mapping down that
tree: it refuses unknown keys (with a "did you mean" hint), checks each value's
type against the annotation and then its `check`, and returns the dataclass.

>>> @dataclass(frozen=True)
... class Study:
...     n_trials: int = setting(20, at_least(1))
>>> build(Study, {"n_trials": 0}, Source.of("s.yaml"))
GalaxyZooError: s.yaml: n_trials: must be at least 1, got 0

Every message has one shape, `<who set it>: <dotted key>: <problem>`, where a
`Source` says who set each key (a file, an override, a base file).
The module also reads YAML strictly and writes values back as one-line YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

import yaml

from galaxyzoo.errors import GalaxyZooError

# ---------------------------------------------------------------- value checks
# Each check returns what is wrong with a value, or None when it is fine.

Check = Callable[[Any], "str | None"]


def one_of(*options: Any) -> Check:
    return lambda v: None if v in options else f"expected one of {', '.join(map(repr, options))}, got {v!r}"


def at_least(low: int | float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}, got {v!r}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be greater than {low}, got {v!r}"


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be in [{low}, {high}], got {v!r}"


def unit_interval(*, open_low: bool) -> Check:
    bounds = "(0, 1)" if open_low else "[0, 1)"
    return lambda v: None if (0 < v if open_low else 0 <= v) and v < 1 else f"must be in {bounds}, got {v!r}"


def not_empty(v: Any) -> str | None:
    return None if len(v) > 0 and (not isinstance(v, str) or v.strip()) else "must not be empty"


def identifier_problem(v: str) -> str | None:
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v)
    return None if ok else f"must be letters, digits, '.', '_' or '-' (it names runs and files), got {v!r}"


def setting(default: Any, check: Check | None = None, items: Check | None = None) -> Any:
    """A dataclass field with a whole-value `check` and a per-element `items` check.

    Checks see the value after its type is checked, and never see None (an
    optional key left unset).
    """
    meta = {"check": check, "items": items}
    if isinstance(default, dict) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------- who set a key


def suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    """`" (did you mean 'train.epochs'?)"` for the closest candidate, or `""`."""
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def near_or_listed(dotted: str, known: list[str], prefix: str) -> str:
    """The default hint for an unknown key: a near spelling, else the keys allowed there."""
    return suggest(dotted.removeprefix(prefix), known, prefix) or f"; expected {', '.join(known)}"


@dataclass(frozen=True)
class Source:
    """Where a mapping came from: `origin_of(dotted key)` names the file (or override)
    that set the key, `hint(dotted, known keys, prefix)` helps with an unknown key."""

    origin_of: Callable[[str], str]
    hint: Callable[[str, list[str], str], str] = near_or_listed

    @classmethod
    def of(cls, where: str) -> Source:
        """Every key set by one file."""
        return cls(lambda _key: where)

    def fail(self, key: str, problem: str) -> GalaxyZooError:
        return GalaxyZooError(f"{self.origin_of(key)}: {key}: {problem}")


# ---------------------------------------------------------------- the walker


def check_keys(mapping: dict, known: list[str], prefix: str, src: Source) -> None:
    """Refuse a key of `mapping` that is not in `known` (or not a string), naming it in full."""
    for key in mapping:
        dotted = f"{prefix}{key}"
        if not isinstance(key, str):
            # YAML 1.1 reads a bare `on:`/`yes:`/`1:` key as a boolean or number.
            raise src.fail(dotted, "keys must be strings (quote it)")
        if key not in known:
            raise GalaxyZooError(f"{src.origin_of(dotted)}: unknown key {dotted!r}{src.hint(dotted, known, prefix)}")


def build(cls: type, raw: dict, src: Source, prefix: str = "") -> Any:
    """Turn one mapping into `cls`, checking keys, types and values; unset keys keep their defaults."""
    check_keys(raw, [f.name for f in fields(cls)], prefix, src)
    hints = get_type_hints(cls)
    kwargs = {
        f.name: checked(hints[f.name], raw[f.name], prefix + f.name, src, f.metadata.get("check"),
                        f.metadata.get("items"))
        for f in fields(cls)
        if f.name in raw
    }
    return cls(**kwargs)


def checked(tp: Any, value: Any, key: str, src: Source, check: Check | None = None,
            items: Check | None = None) -> Any:
    """`value` in the form the annotation `tp` gives it, once it passed `check` (and `items` per element)."""
    value = coerce(tp, value, key, src)
    if value is None:
        return None
    problems = [(key, check(value) if check else None)]
    if items:
        problems += [(f"{key}[{i}]", items(item)) for i, item in enumerate(value)]
    for where, problem in problems:
        if problem:
            raise src.fail(where, problem)
    return value


def coerce(tp: Any, value: Any, key: str, src: Source) -> Any:
    """Check `value` against the annotation `tp`; return it in the dataclass's form."""

    def wrong(expected: str) -> GalaxyZooError:
        return src.fail(key, f"expected {expected}, got {show(value)}")

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong(f"a mapping with keys {', '.join(f.name for f in fields(tp))}")
        return build(tp, value, src, key + ".")
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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise wrong("a number") from None
        if not math.isfinite(number):
            raise wrong("a number")
        return number + 0.0  # -0.0 is 0.0: one config, one hash
    if tp is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if get_origin(tp) is tuple:
        (item_tp, _) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise wrong(f"a list of {_TYPE_WORDS[item_tp]}")
        return tuple(coerce(item_tp, item, f"{key}[{i}]", src) for i, item in enumerate(value))
    if get_origin(tp) is dict:
        (_, value_tp) = get_args(tp)
        if not isinstance(value, dict):
            raise wrong("a mapping")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):  # named as merging recorded it, so the file that wrote it is blamed
                raise src.fail(f"{key}.{k}", f"keys must be strings (quote it), got {show(k)}")
            out[k] = coerce(value_tp, v, f"{key}.{k}", src)
        return out
    raise TypeError(f"engine.py has no rule for the annotation {tp!r} of {key}")


_TYPE_WORDS = {int: "integers", float: "numbers"}


def schema_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key of a schema, sections included: `train`, `train.callbacks`, `train.epochs`, ..."""
    keys = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys += schema_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


def to_dict(obj: Any) -> Any:
    """A built dataclass as plain nested dicts and lists (what YAML writes)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------- YAML in and out


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (PyYAML would silently keep the last) and reads
    decimal numbers as YAML 1.2's core schema does: `1e-4` (no dot, which YAML 1.1 takes for text) is a
    number, and `010` is ten, not YAML 1.1's octal eight. Unlike YAML 1.2 it keeps hex, octal and binary
    (`0x10`, `0o10`, `0b10`), YAML 1.1's base 60 (`1:30`) and `1_000` as text, so the config check names
    them instead of a silently different number."""


class StrictDumper(yaml.SafeDumper):
    """SafeDumper that quotes every string a YAML reader could take for a number or a boolean: StrictLoader's
    (`08`, `-.5`) as well as YAML 1.1's (`010`, `1:30`, `y`) and YAML 1.2's (`0o10`), so what it writes reads
    back the same here and in other YAML readers."""


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


def _construct_number(text_rule: re.Pattern, parse, what: str):
    """A constructor for a scalar the number rules below resolved, or that an explicit `!!int`/`!!float`
    tags: text outside `text_rule` (`!!int 0x10`, `!!float 1:30`, `!!int 1_0`) is a YAML error at its line,
    not a traceback and not another number."""

    def construct(loader: StrictLoader, node: yaml.ScalarNode):
        text = loader.construct_scalar(node)
        if not text_rule.match(text):
            raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not {what}", node.start_mark)
        return parse(text)

    return construct


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# ASCII digits only: `\d` would take other scripts' digits for numbers too.
_INT_TEXT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_TEXT = re.compile(
    r"^(?:[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
StrictLoader.add_constructor(_INT, _construct_number(_INT_TEXT, lambda text: int(text, 10), "a decimal integer"))
# float() reads YAML's `.inf` and `.nan` once the dot is gone
StrictLoader.add_constructor(_FLOAT, _construct_number(
    _FLOAT_TEXT, lambda text: float(text.lower().replace(".inf", "inf").replace(".nan", "nan")), "a number"))
for _cls in (StrictLoader, StrictDumper):  # the dumper keeps YAML 1.1's resolvers besides: it quotes for both
    _cls.add_implicit_resolver(_INT, _INT_TEXT, list("-+0123456789"))
    _cls.add_implicit_resolver(_FLOAT, _FLOAT_TEXT, list("-+0123456789."))
# YAML 1.2's octal and hex, and YAML 1.1's y/n booleans: text here, but other readers take them for numbers
# or booleans, so the dumper quotes them.
StrictDumper.add_implicit_resolver(_INT, re.compile(r"^[-+]?0[oOxX][0-9a-fA-F]+$"), list("-+0"))
StrictDumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^[yYnN]$"), list("yYnN"))


def load_yaml(text: str) -> Any:
    """`text` read with `StrictLoader`. A recursive alias (`&x [*x]`: a value that holds itself) is a
    YAMLError here; every later step (merging, hashing, logging) would recurse without end on it."""
    data = yaml.load(text, Loader=StrictLoader)
    _refuse_cycles(data, set(), set())
    return data


def _refuse_cycles(value: Any, open_: set[int], done: set[int]) -> None:
    """Walk `value`'s lists and mappings once each (`done`: aliases shared without a cycle are cheap)."""
    if not isinstance(value, (dict, list)) or id(value) in done:
        return
    if id(value) in open_:
        raise yaml.YAMLError("a recursive alias: a value that holds itself")
    open_.add(id(value))
    for item in value.values() if isinstance(value, dict) else value:
        _refuse_cycles(item, open_, done)
    open_.discard(id(value))
    done.add(id(value))


def read_mapping(path: Path, kind: str) -> dict:
    """Parse a YAML file of keys strictly; a missing, binary, empty, bad YAML or non-mapping file
    is one error naming `kind` and `path`.

    An empty file (or one of comments only) is refused: taking it for "all
    defaults" would start a 120-epoch training nobody asked for.
    """
    if not path.is_file():
        raise GalaxyZooError(f"{path}: {kind} not found")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise GalaxyZooError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected a YAML "
                             f"{kind}") from None
    except yaml.YAMLError as exc:
        raise GalaxyZooError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        raise GalaxyZooError(f"{path}: the {kind} is empty; write at least one key (e.g. `base: baseline.yaml`)")
    if not isinstance(data, dict):
        raise GalaxyZooError(f"{path}: expected a mapping of keys at the top level, got {show(data)}")
    return data


def yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def to_yaml(value: Any) -> str:
    """`value` as one line of YAML (`[16, 32]`, `{concentration: 20}`): it parses back to itself."""
    text = yaml.dump(value, Dumper=StrictDumper, default_flow_style=True, width=math.inf, allow_unicode=True,
                     sort_keys=False)
    return text.removesuffix("\n...\n").removesuffix("\n")  # not strip(): a value may end in Unicode space


def show(value: Any) -> str:
    """A value as an error message quotes it: strings in quotes, the rest as YAML."""
    return repr(value) if isinstance(value, str) else to_yaml(value)
