"""The training callbacks on their own: the seed's LR step, the CSV log repair, the checkpoint state."""

import csv

import numpy as np
import pytest

from galaxyzoo import callbacks as cb


def test_step_schedule_multiplies_every_n_epochs_from_the_first_step():
    lrs = [1.0]
    for epoch in range(1, 25):
        lrs.append(cb.step_schedule(epoch, lrs[-1], factor=0.8, every=10))
    assert lrs[9] == 1.0 and lrs[10] == pytest.approx(0.8) and lrs[19] == pytest.approx(0.8)
    assert lrs[20] == pytest.approx(0.64)


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
    assert state["next_epoch"] == 3 and (tmp_path / cb.BEST_WEIGHTS).is_file()

    again = _tiny_model()
    again.optimizer.build(again.trainable_variables)
    again.load_weights(str(tmp_path / cb.CHECKPOINT_WEIGHTS))
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
