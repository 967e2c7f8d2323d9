"""`train.refit_head`: after training, the head alone is fitted again on clean features, stopped on the
validation loss; nothing below it moves, a refit that cannot beat the trained head keeps it, and a resumed
fit refits the same way."""

import numpy as np
import pytest

from galaxyzoo.config.experiment import config_hash, from_dict, load_experiment
from galaxyzoo.errors import GalaxyZooError

DIRICHLET = ["model.head=dirichlet", "train.loss=dirichlet-learned", "epochs=2"]


def _weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _dataset(cfg):
    from galaxyzoo.data.dataset import load_dataset

    return load_dataset(cfg.data, with_counts=True, progress=False)


@pytest.mark.slow
def test_the_refit_moves_only_the_head_lowers_the_validation_loss_and_resumes_the_same(tiny_experiment, tmp_path,
                                                                                      monkeypatch):
    from galaxyzoo.training import head_refit
    from galaxyzoo.training.fit import fit

    monkeypatch.setattr(head_refit, "MAX_EPOCHS", 20)  # on 78 galaxies the validation loss falls for hundreds

    plain = load_experiment(tiny_experiment, DIRICHLET)
    cfg = load_experiment(tiny_experiment, [*DIRICHLET, "train.refit_head=true"])
    dataset = _dataset(cfg)
    before = fit(plain, dataset, tmp_path / "plain", verbose=0)
    assert before.head_refit is None
    result = fit(cfg, dataset, tmp_path / "run", verbose=0)
    refit = result.head_refit
    assert refit.val_loss < refit.val_loss_before and refit.epochs >= 1
    trained, refitted = _weights(before.model), _weights(result.model)  # one seed: the same training until the refit
    assert not _same(trained["logits"], refitted["logits"])
    assert all(_same(trained[name], refitted[name]) for name in trained if name != "logits")
    evaluated = result.model.evaluate(*_clean(dataset, "val"), batch_size=256, verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(refit.val_loss, rel=1e-4)  # the model holds the refit's best epoch
    assert refit.metrics() == {"head_refit_val_loss_before": refit.val_loss_before,
                               "head_refit_val_loss": refit.val_loss, "head_refit_epochs": float(refit.epochs),
                               "head_refit_seconds": refit.seconds} and refit.seconds > 0
    # A resume of the finished training restores the checkpoint (before the refit) and refits it again.
    resumed = fit(cfg, dataset, tmp_path / "run", resume=True, verbose=0)
    assert _same(_weights(resumed.model)["logits"], refitted["logits"])
    assert resumed.head_refit == refit


def _clean(dataset, name):
    """A part's crops as one unaugmented batch, and its targets then counts."""
    from galaxyzoo.data.stream import GalaxySequence

    part = dataset.parts[name]
    y = np.concatenate([part.targets, part.counts], axis=1)
    batch = GalaxySequence(dataset.images, part.rows, y, batch_size=len(part.rows))[0]
    return batch[0], y


@pytest.mark.slow
@pytest.mark.parametrize("rate", [1e4, float("nan")])
def test_a_refit_that_cannot_beat_the_trained_head_keeps_it(tiny_experiment, tmp_path, monkeypatch, rate):
    from galaxyzoo.training import head_refit
    from galaxyzoo.training.fit import fit

    cfg = load_experiment(tiny_experiment, DIRICHLET)
    dataset = _dataset(cfg)
    model = fit(cfg, dataset, tmp_path / "run", verbose=0).model
    trained = _weights(model)
    # A rate that throws every step far off, or turns the head into NaN from its first step (which
    # EarlyStopping would take for its best epoch): no epoch ends below the trained head's loss.
    monkeypatch.setattr(head_refit, "LEARNING_RATE", rate)
    monkeypatch.setattr(head_refit, "PATIENCE", 2)
    report = head_refit.refit_head(model, dataset, loss=model.loss, seed=0)
    assert report.val_loss == report.val_loss_before
    assert all(_same(trained[name], w) for name, w in _weights(model).items())


def test_the_config_needs_a_validation_set_and_keeps_old_hashes():
    assert config_hash(from_dict({"train": {"refit_head": False}})) == config_hash(from_dict({}))
    assert config_hash(from_dict({"train": {"refit_head": True}})) != config_hash(from_dict({}))
    with pytest.raises(GalaxyZooError, match=r"^x\.yaml: train\.refit_head: needs a validation set to stop on, "
                                             r"but data\.val_size is 0"):
        from_dict({"train": {"refit_head": True}, "data": {"val_size": 0}}, source="x.yaml")


def test_the_refit_runs_inside_the_models_distribution_strategy(tiny_experiment, monkeypatch):
    """Under `train.distribute: mirrored` the network's variables are mirrored: the refit's optimizer must be too."""
    import keras
    import tensorflow as tf

    from galaxyzoo.config.experiment import model_kwargs
    from galaxyzoo.model.losses import get_loss
    from galaxyzoo.model.network import build_model
    from galaxyzoo.training import head_refit

    monkeypatch.setattr(head_refit, "MAX_EPOCHS", 3)  # a mirrored step is slow; the first one would fail

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute strategies are TensorFlow's")
    cfg = load_experiment(tiny_experiment, DIRICHLET)
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():  # the CPU as a one-device "mirror"
        model = build_model(**model_kwargs(cfg))
        model.compile(optimizer="adam", loss=get_loss("dirichlet-learned"))
    report = head_refit.refit_head(model, _dataset(cfg), loss=model.loss, seed=0)
    assert report.epochs == 3 and report.val_loss < report.val_loss_before


def test_a_split_without_validation_galaxies_is_one_clear_error(tiny_experiment):
    import dataclasses

    from galaxyzoo.config.experiment import model_kwargs
    from galaxyzoo.model.losses import get_loss
    from galaxyzoo.model.network import build_model
    from galaxyzoo.training.head_refit import refit_head

    cfg = load_experiment(tiny_experiment, DIRICHLET)
    dataset = _dataset(cfg)
    val = dataset.parts["val"]
    empty = dataclasses.replace(val, asset_ids=val.asset_ids[:0], rows=val.rows[:0], targets=val.targets[:0],
                                counts=val.counts[:0])
    dataset = dataclasses.replace(dataset, parts={**dataset.parts, "val": empty})
    with pytest.raises(GalaxyZooError, match="^train.refit_head: the split has no validation galaxies"):
        refit_head(build_model(**model_kwargs(cfg)), dataset, loss=get_loss("dirichlet-learned"), seed=0)
