"""`train.precision`: the CPU flags, the policy table, this machine's `auto`, float32 outputs."""

import keras
import numpy as np
import pytest

from galaxyzoo.model.losses import get_loss
from galaxyzoo.model.network import build_model
from galaxyzoo.model.precision import (
    cpu_supports_bf16, model_policy, policy_scope, read_cpu_flags, recast, resolve_precision,
)

CPU = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {}\n"
SMALL = dict(input_size=16, conv_filters=(4,), dense_units=(8,), dense_dropout=(0.1,))


@pytest.mark.parametrize("flag, native", [("amx_bf16", True), ("avx512_bf16", True), ("avx512_fp16", False),
                                          ("", False)])
def test_cpu_flags_name_native_bfloat16(flag, native):
    assert cpu_supports_bf16(CPU.format(flag)) is native


@pytest.mark.parametrize("setting, gpus, flag, policy, tag", [
    ("auto", 0, "amx_bf16", "mixed_bfloat16", "mixed_bfloat16"),
    ("auto", 1, "amx_bf16", "mixed_float16", "mixed_float16"),
    ("auto", 0, "", "float32", "float32 (auto: no GPU, no native bfloat16)"),
    ("float16", 0, "amx_bf16", "float32", "float32 (no GPU)"),
    ("float16", 2, "", "mixed_float16", "mixed_float16"),
    ("bfloat16", 0, "", "mixed_bfloat16", "mixed_bfloat16 (emulated: no native bfloat16)"),
    ("float32", 1, "amx_bf16", "float32", "float32"),
])
def test_resolve_precision_table(setting, gpus, flag, policy, tag):
    assert tuple(resolve_precision(setting, gpus, CPU.format(flag))) == (policy, tag)


def test_auto_resolves_as_documented_on_this_machine():
    flags = read_cpu_flags()
    words = set(flags.split())
    expected = "mixed_bfloat16" if words & {"amx_bf16", "avx512_bf16"} else "float32"
    assert resolve_precision("auto", 0, flags).policy == expected


def test_a_missing_cpuinfo_means_no_native_bfloat16(tmp_path):
    assert read_cpu_flags(tmp_path / "cpuinfo") == ""


def test_mixed_bfloat16_model_outputs_and_loss_are_float32():
    before = keras.mixed_precision.global_policy().name
    with policy_scope("mixed_bfloat16"):
        model = build_model(**SMALL)
        hidden = next(layer for layer in model.layers if layer.name.startswith("conv"))
        assert hidden.compute_dtype == "bfloat16" and hidden.variable_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == before  # put back
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype="float32")
    y = model(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    loss = get_loss("mse")(np.full((4, y.shape[1]), 0.5, "float32"), y)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    # A float32 model recast to bfloat16 (inference on a bf16 machine) keeps its weights and predictions.
    model32 = build_model(**SMALL)
    recast16 = recast(model32, "mixed_bfloat16", SMALL, "test")
    assert model_policy(model32) == "float32" and model_policy(recast16) == "mixed_bfloat16"
    np.testing.assert_allclose(recast16.predict(x, verbose=0), model32.predict(x, verbose=0), atol=0.02)
    assert recast(recast16, "mixed_bfloat16", SMALL, "test") is recast16
