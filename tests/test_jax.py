"""Under the JAX backend, on a machine without TensorFlow: the model layer and a tracked training.

One subprocess does both (a JAX process pays ~15 s of imports on 2 cores): `jax_process` runs it
once for the module, and each test checks its part of the output.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from stores import seeded_uri
from test_model import _fixed_batch, _loss_and_metric_values
from test_train_e2e import _env, _only_run

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, sys

    class NoTensorFlow:
        # Behave as a machine without TensorFlow installed: the JAX trainer must not need it.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError("TensorFlow is hidden in this test")

    sys.meta_path.insert(0, NoTensorFlow())
    sys.path.insert(0, sys.argv[1])
    import numpy as np, keras
    from test_model import _fixed_batch, _loss_and_metric_values
    from galaxyzoo.model.network import build_model, load_model

    x, y = _fixed_batch(channels=3)
    result = {"backend": keras.backend.backend(), "values": _loss_and_metric_values(x, y)}
    # Trained by the CLI run below (same head, loss and batch norm): each JAX compile costs seconds.
    model = build_model(input_size=24, channels=3, conv_filters=(4, 8), dense_units=(8,), dense_dropout=(0.1,),
                        batch_norm=True, head="softmax-per-question")
    model.save(sys.argv[2])
    result["reloaded"] = bool(np.allclose(load_model(sys.argv[2]).predict(x, verbose=0), model.predict(x, verbose=0)))
    print("RESULT" + json.dumps(result), flush=True)

    from galaxyzoo.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.fixture(scope="module")
def jax_process(tiny_experiment, tmp_path_factory):
    """The script's run under KERAS_BACKEND=jax: (completed process, its tracking URI)."""
    folder = tmp_path_factory.mktemp("jax")
    uri = seeded_uri(folder)
    # The model layer's head, loss and batch norm; 39 is half the 78 training galaxies, so every
    # training batch has one shape and JAX compiles the train step once.
    argv = ["train", "--experiment", str(tiny_experiment),
            "--set", f"tracking.tracking_uri={uri} experiment_name=jax precision=float16 distribute=mirrored",
            "--set", "model.head=softmax-per-question train.loss=dirichlet-multinomial model.batch_norm=true "
                     "train.batch_size=39"]
    # On models this small XLA's compiling, not the running, is the cost: its lowest optimization
    # level halves the process's CPU time (~85 s on 2 cores) and changes no value asserted here.
    env = _env(KERAS_BACKEND="jax", XLA_FLAGS="--xla_backend_optimization_level=0")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS), str(folder / "jax.keras"), *argv],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, uri


@pytest.mark.slow
def test_backend_neutral_under_jax(jax_process):
    """Under JAX (set before Keras imports) losses and metrics agree with this backend's, a model
    reloads to the same predictions, and training logs finite losses and metrics."""
    done, uri = jax_process
    result = json.loads(done.stdout.split("RESULT", 1)[1].splitlines()[0])
    assert result["backend"] == "jax"
    expected = _loss_and_metric_values(*_fixed_batch(channels=3))
    assert result["values"] == pytest.approx(expected, rel=1e-5)
    assert result["reloaded"]
    _, run = _only_run(uri, "jax")
    logs = {k: run.data.metrics[k] for k in ("loss", "rmse", "r2_flat")}
    assert all(np.isfinite(v) for v in logs.values()) and 0 < logs["rmse"] < 1, logs


@pytest.mark.slow
def test_training_runs_under_jax_without_tensorflow(jax_process):
    done, uri = jax_process
    # Without a GPU both switches stay off, and say so.
    assert "no GPU is visible to jax" in done.stderr

    client, run = _only_run(uri, "jax")
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["version.keras_backend"] == "jax" and "version.tensorflow" not in tags
    assert tags["runtime.precision"] == "float32 (no GPU)"
    assert tags["runtime.distribution"] == "none (no GPU)"
    assert len(client.get_metric_history(run.info.run_id, "val_rmse")) == 1
    assert 0 < run.data.metrics["test_rmse"] < 1
