"""Warm start: a new training begins from another model's weights (`warm_start:` in the config).

```python
init = load_init(client, cfg)  # refuses a network without the config's layers, before any run exists
with fitting(cfg, loss, run_dir, init=init) as f:  # the weights copied, the first freeze_blocks conv blocks fixed
    f.fit(dataset)
```

`warm_start.init_from` names the source as any `--model` does, resolved by
`tracking.model_uri`: `models:/NAME@ALIAS` or `models:/NAME/VERSION` (the
packaged model: its network is its run's Keras model), `runs:/ID/model`, a run
id, a logged model's `models:/m-...`, or a local MLflow model folder. Its
network must have the config's layers, with the same names and weight shapes
in the same order (and the same input), and the same head: the same output
activation, and for the Dirichlet head the same number of components and
concentration bounds, since the copied logits mean concentrations only under
the bounds they were trained with. Otherwise one line names the source and the
first layer that differs. Every weight is copied, the moving
statistics of batch norm included; the optimizer starts afresh. A resumed run
restores its own checkpoint and never loads the source again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from galaxyzoo.config.experiment import ExperimentConfig, model_kwargs
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.network import OUTPUT_LAYER, Concentrations, PerQuestionSoftmax, build_model
from galaxyzoo.tracking import model_uri, names

OPTION = "warm_start.init_from"  # names the source in every error

# A network's shape as compared here: ("input", (its shape,)), then (layer name, its weights' shapes)
# for each layer with weights, in the model's order.
Layout = list[tuple[str, tuple[tuple[int, ...], ...]]]


@dataclass(frozen=True)
class InitWeights:
    """The source's weights, checked against the config's network: what `apply` copies."""

    uri: str  # as the config gives it
    source_run_id: str | None  # the run that trained it, when it was logged by one
    weights: tuple[tuple[Any, ...], ...]  # each weighted layer's `get_weights()`, in `layout` order

    def apply(self, model) -> None:
        """Copy the weights into `model`, a network of the config `load_init` checked them against."""
        for layer, values in zip(_weighted(model), self.weights):
            layer.set_weights(list(values))

    def tags(self, freeze_blocks: int) -> dict[str, str]:
        """What the run records of its start (`names.TAG_INIT_FROM` and the rest)."""
        tags = {names.TAG_INIT_FROM: self.uri, names.TAG_FREEZE_BLOCKS: str(freeze_blocks)}
        if self.source_run_id:
            tags[names.TAG_INIT_FROM_RUN] = self.source_run_id
        return tags

    def note(self, freeze_blocks: int) -> str:
        """The sentence the run's description ends with: the UI cuts long tag values short, a description not."""
        trained_by = f" (trained by run `{self.source_run_id}`)" if self.source_run_id else ""
        frozen = {0: "no conv block frozen", 1: "the first conv block frozen"}.get(
            freeze_blocks, f"the first {freeze_blocks} conv blocks frozen")
        return f"Warm start from `{self.uri}`{trained_by}, {frozen}."


def load_init(client, cfg: ExperimentConfig) -> InitWeights:
    """Load `cfg.warm_start.init_from` and check it has the layers of `cfg`'s network.

    A source that cannot be found or loaded, or whose network differs, is a
    one-line `GalaxyZooError` naming it.
    """
    given = cfg.warm_start.init_from
    uri = model_uri.model_uri_for(given)
    run_id = model_uri.source_run_id(client, uri, option=OPTION)
    if run_id is not None:
        model_uri.check_network_run(client, run_id, given, option=OPTION)
    try:
        source = model_uri.load_keras(model_uri.network_uri(uri, run_id))
    except Exception as exc:  # MLflow raises many types for a bad URI; all mean "cannot load"
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GalaxyZooError(f"{OPTION} {given}: cannot load a Keras model ({type(exc).__name__}: {problem})") \
            from None
    target = build_model(**model_kwargs(cfg))
    mismatch = first_mismatch(layout(source), layout(target)) or head_mismatch(source, target)
    if mismatch:
        raise GalaxyZooError(f"{OPTION} {given}: its network does not match this config's: {mismatch}")
    return InitWeights(given, run_id, tuple(tuple(layer.get_weights()) for layer in _weighted(source)))


def layout(model) -> Layout:
    """The input shape, then each weighted layer's name and weight shapes, in order."""
    return [("input", (tuple(model.input_shape[1:]),))] + [
        (layer.name, tuple(tuple(w.shape) for w in layer.weights)) for layer in _weighted(model)
    ]


def first_mismatch(source: Layout, target: Layout) -> str | None:
    """Where `source` first differs from `target`, in words, or None when they match."""
    for i in range(max(len(source), len(target))):
        have = source[i] if i < len(source) else None
        want = target[i] if i < len(target) else None
        if have == want:
            continue
        if want is None:
            return f"layer {have[0]!r} ({_shapes(have[1])}) of the source has no counterpart here"
        if have is None:
            return f"layer {want[0]!r} ({_shapes(want[1])}) is missing from the source"
        if have[0] != want[0]:
            return f"layer {want[0]!r} ({_shapes(want[1])}) is {have[0]!r} ({_shapes(have[1])}) in the source"
        return f"layer {want[0]!r} has {_shapes(have[1])} in the source but {_shapes(want[1])} here"
    return None


def head_mismatch(source, target) -> str | None:
    """How `source`'s head differs from `target`'s in what its outputs mean, or None when it does not.

    Two heads of the same Dense shape can read their logits differently (a
    softmax per question, or concentrations under another ceiling), which the
    weights' shapes alone do not show.
    """
    have, want = head_description(source), head_description(target)
    return None if have == want else f"its head is {have} in the source but {want} here"


def head_description(model) -> str:
    """The output layer's kind and the settings that give its logits their meaning, in words."""
    layer = next((layer for layer in model.layers if layer.name == OUTPUT_LAYER), None)
    if layer is None:
        return f"no {OUTPUT_LAYER!r} layer"
    if isinstance(layer, Concentrations):
        return (f"a Dirichlet head ({layer.components} component{'s' if layer.components > 1 else ''}, "
                f"concentrations {layer.low:g} to {layer.high:g})")
    if isinstance(layer, PerQuestionSoftmax):
        return "a softmax per question"
    return f"a Dense {layer.get_config().get('activation')} head"


def _shapes(shapes: tuple[tuple[int, ...], ...]) -> str:
    return " + ".join("x".join(str(d) for d in shape) for shape in shapes)


def _weighted(model) -> list:
    return [layer for layer in model.layers if layer.weights]
