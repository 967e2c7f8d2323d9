"""The training callbacks on their own: the seed's LR step, the CSV log repair, the checkpoint state."""

import csv

import numpy as np
import pytest

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.training import callbacks as cb


def test_step_schedule_multiplies_every_n_epochs_from_the_first_step():
    lrs = [1.0]
    for epoch in range(1, 25):
        lrs.append(cb.step_schedule(epoch, lrs[-1], factor=0.8, every=10))
    assert lrs[9] == 1.0 and lrs[10] == pytest.approx(0.8) and lrs[19] == pytest.approx(0.8)
    assert lrs[20] == pytest.approx(0.64)


def test_cosine_schedule_follows_the_half_cosine_and_keeps_a_plateau_cut():
    epochs, low = 10, 0.1
    rates = [1e-3]
    for epoch in range(1, epochs):
        rates.append(cb.cosine_schedule(epoch, rates[-1], epochs=epochs, min_factor=low))
    curve = [low + (1 - low) * 0.5 * (1 + np.cos(np.pi * e / epochs)) for e in range(epochs)]
    assert rates == pytest.approx([1e-3 * c for c in curve], rel=1e-5)
    assert rates[-1] > 1e-3 * low  # the floor is reached at `epochs`, after the last epoch
    # A plateau halving the rate at epoch 4 stays in force: the cosine continues from half the curve.
    cut = rates[:4] + [rates[4] / 2]
    for epoch in range(5, epochs):
        cut.append(cb.cosine_schedule(epoch, cut[-1], epochs=epochs, min_factor=low))
    assert cut[4:] == pytest.approx([r / 2 for r in rates[4:]], rel=1e-5)


def test_truncate_csv_log_keeps_the_epochs_before_the_resume_point(tmp_path):
    path = tmp_path / "training_log.csv"
    path.write_text("epoch,loss\n0,0.3\n1,0.2\n2,0.1\n")
    assert cb.truncate_csv_log(path, next_epoch=2) == 2
    with open(path) as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["0", "1"]
    assert cb.truncate_csv_log(tmp_path / "absent.csv", 3) == 0


def _tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_checkpoint_carries_weights_optimizer_dropout_and_callback_state(tmp_path):
    import keras

    x = np.random.default_rng(0).random((32, 4))
    y = np.random.default_rng(1).random((32, 3))
    model = _tiny_model()
    early = keras.callbacks.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=5)
    checkpoint = cb.EpochCheckpoint(tmp_path, {"early_stopping": early, "reduce_lr_on_plateau": plateau})
    model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau, early, checkpoint])
    state = cb.read_state(tmp_path)
    weights, best = cb.checkpoint_files(tmp_path, state)
    assert state["next_epoch"] == 3 and weights.name == "checkpoint-epoch0003.weights.h5" and best.is_file()
    # one epoch's files only: the earlier epochs' are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([weights.name, best.name, "state.json"])

    again = _tiny_model()
    again.optimizer.build(again.trainable_variables)
    again.load_weights(str(weights))
    cb.restore_seed_generators(again, state["seed_generators"])
    for a, b in zip(again.variables, model.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations)

    early2 = keras.callbacks.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    plateau2 = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=5)
    restore = cb.EpochCheckpoint(tmp_path, {"early_stopping": early2, "reduce_lr_on_plateau": plateau2}, restore=True)
    for callback in (early2, plateau2, restore):  # Keras's order: the stateful ones reset, then the restore
        callback.set_model(again)
        callback.on_train_begin()
    assert (early2.wait, early2.best, early2.best_epoch) == (early.wait, pytest.approx(early.best), early.best_epoch)
    assert plateau2.best == pytest.approx(plateau.best)
    for a, b in zip(early2.best_weights, early.best_weights):
        np.testing.assert_array_equal(a, b)


class _RecordingClient:
    """Stands in for an MlflowClient: keeps what `log_batch` was given."""

    def __init__(self):
        self.logged = []

    def log_batch(self, run_id, metrics=()):
        self.logged += [(m.key, m.step, m.value) for m in metrics]


def test_mlflow_logger_numbers_steps_as_the_console_and_skips_the_ones_a_resume_holds():
    client = _RecordingClient()
    # A resumed run that already holds epoch 1's loss (logged, then killed before its checkpoint).
    logger = cb.MlflowMetricsLogger(client, "run", skip={"loss": {1}})
    logger.on_epoch_end(0, {"loss": 0.5, "lr": 1e-3})
    logger.on_epoch_end(1, {"loss": 0.4, "lr": 1e-4})
    assert [(k, s) for k, s, _ in client.logged if k == "loss"] == [("loss", 2)]
    rates = [(k, s) for k, s, _ in client.logged if k.endswith("lr")]
    assert rates == [("lr", 1), ("log10_lr", 1), ("lr", 2), ("log10_lr", 2)]
    assert [v for k, _, v in client.logged if k == "log10_lr"] == pytest.approx([-3.0, -4.0])


def test_cosine_decay_trains_along_its_curve_and_a_resume_continues_it(tiny_experiment, tmp_path):
    import keras

    from galaxyzoo.config.experiment import load_experiment
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.training.fit import fit

    cfg = load_experiment(tiny_experiment, [
        "epochs=4", "learning_rate=0.01", "train.callbacks.cosine_decay.enabled=true",
        "train.callbacks.cosine_decay.min_factor=0.2", "train.callbacks.lr_step.enabled=false",
        "train.callbacks.reduce_lr_on_plateau.enabled=false"])
    dataset = load_dataset(cfg.data, with_counts=False, progress=False)
    curve = [0.01 * (0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * e / 4))) for e in range(4)]
    assert fit(cfg, dataset, tmp_path / "straight", verbose=0).history["lr"] == pytest.approx(curve, rel=1e-5)

    class StopAfterTwoEpochs(keras.callbacks.Callback):  # after the checkpoint of epoch 2, like a kill
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    fit(cfg, dataset, tmp_path / "resumed", callbacks=[StopAfterTwoEpochs()], verbose=0)
    resumed = fit(cfg, dataset, tmp_path / "resumed", resume=True, verbose=0)
    assert resumed.initial_epoch == 2 and resumed.history["lr"] == pytest.approx(curve[2:], rel=1e-5)


def test_a_save_killed_before_its_state_leaves_the_previous_epochs_pair(tmp_path):
    """A kill after the new weights were written but before state.json: the state still names the previous
    epoch's weights, which are still there (a fixed weights name once paired epoch 4's weights with epoch 3's
    state, and the resumed run trained an epoch more than it logged)."""
    x, y = np.random.default_rng(0).random((16, 4)), np.random.default_rng(1).random((16, 3))
    model = _tiny_model()
    checkpoint = cb.EpochCheckpoint(tmp_path, {})
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    saved = [np.asarray(v).copy() for v in model.weights]
    model.fit(x, y, epochs=1, verbose=0)  # epoch 3 trains...
    model.save_weights(str(tmp_path / cb.CHECKPOINT_WEIGHTS.format(3)))  # ...its weights land, then the kill
    state = cb.read_state(tmp_path)
    weights, _ = cb.checkpoint_files(tmp_path, state)
    assert state["next_epoch"] == 2 and weights.name == "checkpoint-epoch0002.weights.h5"
    again = _tiny_model()
    again.optimizer.build(again.trainable_variables)
    again.load_weights(str(weights))
    for a, b in zip(again.weights, saved):
        np.testing.assert_array_equal(np.asarray(a), b)
    checkpoint.on_epoch_end(2)  # the resumed epoch 3 saves: the killed save's file goes
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["checkpoint-epoch0003.weights.h5"]


def test_a_checkpoint_of_the_earlier_fixed_names_still_resumes(tmp_path):
    """Checkpoints written before each epoch's files had names of their own name none in state.json: their
    fixed names are read, and the next save replaces them."""
    x, y = np.random.default_rng(0).random((16, 4)), np.random.default_rng(1).random((16, 3))
    model = _tiny_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(str(tmp_path / cb.EARLIER_WEIGHTS))
    (tmp_path / "state.json").write_text('{"next_epoch": 1, "seed_generators": [], "callbacks": {}}')
    assert cb.checkpoint_files(tmp_path, cb.read_state(tmp_path)) == (tmp_path / cb.EARLIER_WEIGHTS, None)
    assert cb.checkpoint_files(tmp_path, {}) == (tmp_path / cb.EARLIER_WEIGHTS, None)  # no state: a clear error later
    checkpoint = cb.EpochCheckpoint(tmp_path, {})
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch0002.weights.h5", "state.json"]
    # resumed from the earlier names with EarlyStopping's best weights in memory: saved under the new ones
    import keras

    early = keras.callbacks.EarlyStopping(monitor="loss", restore_best_weights=True)
    early.best_weights, early.best_epoch = model.get_weights(), 0
    later = cb.EpochCheckpoint(tmp_path, {"early_stopping": early})
    later.set_model(model)
    later.on_epoch_end(2)  # not the best epoch: without the rule its best weights were never saved
    state = cb.read_state(tmp_path)
    assert state["best_weights"] == "best-epoch0001.weights.npz"
    assert cb.checkpoint_files(tmp_path, state)[1].is_file()
    state.pop("best_weights")  # a state.json that names weights but no best: none, not a KeyError
    assert cb.checkpoint_files(tmp_path, state)[1] is None
    for weights in ("7", '"../elsewhere.weights.h5"'):
        (tmp_path / "state.json").write_text(f'{{"next_epoch": 2, "weights": {weights}, "best_weights": null}}')
        with pytest.raises(GalaxyZooError, match="damaged checkpoint \\(its weights files are not named as plain"):
            cb.read_state(tmp_path)
