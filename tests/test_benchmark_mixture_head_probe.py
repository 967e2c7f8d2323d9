"""The mixture-head probe: the heads it fits start where it says, and bad options are refused early.
(The mixture's coverage and likelihood are the package's: tests/test_dirichlet_mixture.py.)"""

import numpy as np
import pytest

from benchmark_scripts import load
from galaxyzoo import schema
from galaxyzoo.model import dirichlet


def test_the_built_head_starts_each_component_from_the_networks_head_apart_and_weighs_them_equally():
    probe = load("mixture_head_probe")
    n = schema.N_ANSWERS
    bias = np.linspace(-2.0, 2.0, n)
    head = probe.mixture_head(4, 2, 100.0, (np.zeros((4, n)), bias), seed=1)
    alpha, weights = dirichlet.components(np.asarray(head.predict(np.zeros((3, 4), "float32"), verbose=0)))
    assert alpha.shape == weights.shape == (2, 3, n)
    for k, shift in enumerate((-0.25, 0.25)):  # a zero input leaves the biases: the network's, half a logit apart
        np.testing.assert_allclose(alpha[k], np.tile(1 + 99 / (1 + np.exp(-(bias + shift))), (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(weights, 0.5, rtol=1e-6)  # the weights start equal
    one = probe.mixture_head(4, 1, 1000.0, (np.zeros((4, n)), bias))
    np.testing.assert_allclose(one.predict(np.zeros((1, 4), "float32"), verbose=0),
                               1 + 999 / (1 + np.exp(-bias))[None], rtol=1e-5)  # one component: the 37 alone


@pytest.mark.parametrize("args, message", [(["--components", "0"], "--components must be >= 1"),
                                           (["--high", "1"], "--high must be finite and > 1"),
                                           (["--high", "nan"], "--high must be finite and > 1"),
                                           (["--seeds", "-1"], "--seeds must be >= 0")])
def test_bad_options_are_refused_before_any_data_is_built(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        load("mixture_head_probe").main(["--workdir", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
