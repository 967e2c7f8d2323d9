"""The dtype policy a model computes in: `train.precision` resolved on this machine.

```python
from galaxyzoo.model.precision import resolve_precision, machine_precision, policy_scope

resolve_precision("auto", gpus=0, cpu_flags="... amx_bf16 ...").policy  # "mixed_bfloat16"
choice = machine_precision("auto")  # this machine's GPUs and /proc/cpuinfo
with policy_scope(choice.policy):
    model = build_model(...)  # layers compute in bfloat16, the head in float32
```

`auto` picks `mixed_bfloat16` on a CPU with native bfloat16 (AMX or
AVX512-BF16, read from the CPU's flags, never guessed), `mixed_float16`
where a GPU is visible, and `float32` otherwise. Training (`training.fit`),
`evaluate` and the packaged model all resolve through here, so a model is
scored and served in the precision this machine would train it in.
Variables stay float32 under both mixed policies, and the head computes in
float32 (`model.network.build_model`), so outputs and losses are float32.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import keras

from galaxyzoo.config.experiment import PRECISIONS
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.network import build_model, concentration_scale, with_concentration_scale

logger = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # the CPU flags of native bfloat16 arithmetic


class Precision(NamedTuple):
    """A resolved `train.precision`: the Keras policy name and the `runtime.precision` tag."""

    policy: str  # "float32", "mixed_bfloat16" or "mixed_float16"
    tag: str  # the policy, with the reason when it is not what was asked for


def cpu_supports_bf16(cpu_flags: str) -> bool:
    """Whether a `/proc/cpuinfo` text lists a native bfloat16 flag (AMX or AVX512-BF16)."""
    words = set(cpu_flags.split())
    return any(flag in words for flag in BF16_FLAGS)


def read_cpu_flags(path: Path = CPUINFO) -> str:
    """This machine's `/proc/cpuinfo`, or `""` where there is none (not Linux)."""
    try:
        return path.read_text()
    except OSError:
        return ""


def resolve_precision(setting: str, gpus: int, cpu_flags: str) -> Precision:
    """The policy `setting` (one of PRECISIONS) means with `gpus` GPUs and these CPU flags."""
    native_bf16 = cpu_supports_bf16(cpu_flags)
    if setting == "auto":
        if gpus:
            return Precision("mixed_float16", "mixed_float16")
        if native_bf16:
            return Precision("mixed_bfloat16", "mixed_bfloat16")
        return Precision("float32", "float32 (auto: no GPU, no native bfloat16)")
    if setting == "float16":
        if gpus:
            return Precision("mixed_float16", "mixed_float16")
        logger.warning("train.precision=float16 but no GPU is visible: computing in float32")
        return Precision("float32", "float32 (no GPU)")
    if setting == "bfloat16":
        if gpus or native_bf16:
            return Precision("mixed_bfloat16", "mixed_bfloat16")
        logger.warning("train.precision=bfloat16 but this CPU has no native bfloat16 (AMX or AVX512-BF16): "
                       "Keras emulates it, slowly")
        return Precision("mixed_bfloat16", "mixed_bfloat16 (emulated: no native bfloat16)")
    if setting == "float32":
        return Precision("float32", "float32")
    raise GalaxyZooError(f"train.precision: must be one of {', '.join(PRECISIONS)}, got {setting!r}")


def machine_precision(setting: str) -> Precision:
    """`resolve_precision` with the GPUs of the Keras backend and this machine's CPU flags."""
    return resolve_precision(setting, len(available_gpus(keras.backend.backend())), read_cpu_flags())


@contextlib.contextmanager
def policy_scope(policy: str) -> Iterator[None]:
    """Set Keras's global dtype policy, and put the previous one back afterwards
    (a sweep builds many models in one process)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def model_policy(model) -> str:
    """The policy a loaded model was built under: its one mixed policy, else float32."""
    # A saved model keeps each layer's policy; the head is float32 under any policy.
    mixed = {layer.dtype_policy.name for layer in model.layers} - {"float32"}
    return mixed.pop() if len(mixed) == 1 else "float32"


def recast(model, policy: str, model_kwargs: dict[str, Any], origin: str):
    """`model` computing in `policy`: itself if it already does, else the same network
    (`build_model(**model_kwargs)`) built under `policy` with its weights."""
    if model_policy(model) == policy:
        return model
    with policy_scope(policy):
        rebuilt = build_model(**model_kwargs)
        try:
            rebuilt.set_weights(model.get_weights())
        except ValueError as exc:
            raise GalaxyZooError(f"{origin}: its weights do not fit the config's network ({exc})") from None
        scale = concentration_scale(model)  # the head's calibration is not in the config
        return rebuilt if scale is None else with_concentration_scale(rebuilt, scale)


def available_gpus(backend: str) -> list:
    """The GPUs the Keras backend can use (device objects or names); empty on a CPU machine."""
    # Only the active backend is importable for certain: each is imported where it is the one.
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.list_physical_devices("GPU")
    if backend == "jax":
        import jax

        return [d for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []
