"""Warm start (`warm_start:`, `train --init-from`): weights copied, frozen blocks fixed, a foreign
network refused in one line, a resume that never reads the source again, and what the run records."""

import shutil

import numpy as np
import pytest

from galaxyzoo.cli import main
from galaxyzoo.config.experiment import config_hash, load_experiment, model_kwargs
from stores import seeded_uri


def _save_source(cfg, folder, seed: int = 7):
    """A network of `cfg` with weights no training of `cfg` would start from, as a local MLflow model."""
    import keras
    import mlflow.keras

    from galaxyzoo.model.network import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(**model_kwargs(cfg))
    mlflow.keras.save_model(model, str(folder), pip_requirements=[])  # no inference of requirements: fast
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _weights(model) -> dict:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_init_from_copies_the_weights_frozen_blocks_stay_and_a_resume_ignores_the_source(tiny_experiment,
                                                                                       tmp_path):
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.training.fit import fit, fitting, make_loss
    from galaxyzoo.training.warm_start import load_init

    source_dir = tmp_path / "source"
    cold = load_experiment(tiny_experiment)
    source = _save_source(cold, source_dir)
    store = tmp_path / "mlflow.db"  # a local source and a resume need no store: none is created
    cfg = load_experiment(tiny_experiment, [f"init_from={source_dir}", "freeze_blocks=1",
                                            f"tracking.tracking_uri=sqlite:///{store}"])
    assert config_hash(cfg) != config_hash(cold)
    dataset = load_dataset(cfg.data, with_counts=False, progress=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with fitting(cfg, make_loss(cfg.train), run_dir, init=load_init(None, cfg)) as f:
        copied = _weights(f.model)
        assert copied.keys() == source.keys() and all(_same(copied[k], source[k]) for k in source)
        trained = _weights(f.fit(dataset, verbose=0).model)
    assert _same(trained["conv1"], source["conv1"])  # frozen
    for name in ("conv2", "dense1", "answers"):
        assert not any(np.array_equal(a, b) for a, b in zip(trained[name], source[name])), name
    # A resume restores its own checkpoint and never looks for the source (gone now).
    shutil.rmtree(source_dir)
    resumed = _weights(fit(cfg, dataset, run_dir, resume=True, verbose=0).model)
    assert all(_same(resumed[k], trained[k]) for k in trained) and not store.exists()


def test_a_network_of_another_architecture_is_refused_in_one_line(tiny_experiment, tmp_path, capsys, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    source_dir = tmp_path / "wider"
    _save_source(load_experiment(tiny_experiment, ["model.conv_filters=[8,32]"]), source_dir)
    uri = seeded_uri(tmp_path)
    code = main(["train", "--experiment", str(tiny_experiment), "--init-from", str(source_dir),
                 "--set", f"tracking.tracking_uri={uri}"])
    # MLflow may log lines of its own first (opening the store); ours is one line, last.
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not any("Traceback" in line for line in lines)
    assert lines[-1] == (f"galaxyzoo: error: warm_start.init_from {source_dir}: its network does not match this "
                         "config's: layer 'conv2' has 3x3x8x32 + 32 in the source but 3x3x8x16 + 16 here")
    assert mlflow.MlflowClient(uri).search_runs(["0"]) == []  # refused before any run was created
    assert main(["train", "--experiment", str(tiny_experiment), "--freeze-blocks", "1"]) == 2
    assert "warm_start.freeze_blocks: is 1 but warm_start.init_from is null" in capsys.readouterr().err


def test_a_warm_started_run_records_its_source(tiny_experiment, tmp_path, own_tempdir):
    """The one training through MLflow: from a run's logged model, resolved to that run."""
    import mlflow
    import mlflow.keras

    from galaxyzoo.model.network import build_model
    from galaxyzoo.training.run import train

    uri = seeded_uri(tmp_path)
    cold = load_experiment(tiny_experiment, [f"tracking.tracking_uri={uri}"])
    client = mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id="0") as source_run:
        mlflow.keras.log_model(build_model(**model_kwargs(cold)), name="model", pip_requirements=[])
    source = source_run.info.run_id
    cfg = load_experiment(tiny_experiment, [f"tracking.tracking_uri={uri}", f"init_from={source}", "freeze_blocks=2"])
    # MLflow downloads the source into a new temporary folder to load it: none may be left behind.
    result = train(cfg, experiment_file=str(tiny_experiment), runs_dir=tmp_path / "runs", verbose=0, progress=False)
    assert list(own_tempdir.iterdir()) == []
    run = client.get_run(result.run_id)
    assert {k: run.data.tags.get(k) for k in ("warm_start.init_from", "warm_start.freeze_blocks",
                                              "warm_start.source_run_id")} == {
        "warm_start.init_from": source, "warm_start.freeze_blocks": "2", "warm_start.source_run_id": source}
    # the description says it too: the UI cuts long tag values short
    assert run.data.tags["mlflow.note.content"].endswith(
        f"Warm start from `{source}` (trained by run `{source}`), the first 2 conv blocks frozen.")
    assert run.data.tags["config_hash"] == config_hash(cfg) != config_hash(cold)
    assert not any(k.startswith("warm_start.") for k in run.data.params)  # the same params as a cold run


@pytest.mark.parametrize("source_sets, message", [
    (["model.head=softmax-per-question", "train.loss=mse"],
     "its head is a softmax per question in the source but a Dirichlet head (1 component, concentrations 1 to 100) "
     "here"),
    (["model.concentration_ceiling=1000"],
     "its head is a Dirichlet head (1 component, concentrations 1 to 1000) in the source but a Dirichlet head "
     "(1 component, concentrations 1 to 100) here"),
])
def test_a_head_that_reads_its_logits_otherwise_is_refused(tiny_experiment, tmp_path, source_sets, message):
    """The same Dense shape under another activation or ceiling: the copied logits would mean something else."""
    from galaxyzoo.errors import GalaxyZooError
    from galaxyzoo.training.warm_start import load_init

    dirichlet = ["model.head=dirichlet", "train.loss=dirichlet-learned"]
    source_dir = tmp_path / "source"
    _save_source(load_experiment(tiny_experiment, dirichlet + source_sets), source_dir)
    cfg = load_experiment(tiny_experiment, dirichlet + [f"init_from={source_dir}"])
    with pytest.raises(GalaxyZooError) as refused:
        load_init(None, cfg)
    assert str(refused.value) == f"warm_start.init_from {source_dir}: its network does not match this config's: " \
                                 + message
    _save_source(load_experiment(tiny_experiment, dirichlet), source_dir / "same")
    same = load_experiment(tiny_experiment, dirichlet + [f"init_from={source_dir / 'same'}"])
    assert load_init(None, same).weights  # the same head is accepted


def test_a_runs_packaged_model_names_its_network():
    """`runs:/ID/packaged_model` (what predict takes) is the crop + network; a warm start or evaluate reads the
    network inside, as it does for a registered version."""
    from galaxyzoo.tracking.model_uri import keras_model_uri, network_uri

    run = "0123456789abcdef0123456789abcdef"
    assert network_uri(f"runs:/{run}/packaged_model", run) == keras_model_uri(run)
    assert network_uri("models:/galaxyzoo-cnn@champion", run) == keras_model_uri(run)
    assert network_uri(f"runs:/{run}/model", run) == f"runs:/{run}/model"
    assert network_uri("/some/folder", None) == "/some/folder"
