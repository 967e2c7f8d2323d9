"""Fit the CNN of an experiment config: a trained model, and no MLflow (but to find a warm start's source).

```python
from galaxyzoo.config.experiment import load_experiment
from galaxyzoo.data.dataset import load_dataset
from galaxyzoo.training.fit import fit, make_loss

cfg = load_experiment("experiments/quickstart.yaml", ["epochs=2"])
dataset = load_dataset(cfg.data, with_counts=make_loss(cfg.train).needs_counts)
result = fit(cfg, dataset, "runs/local")  # the checkpoint and the CSV log go there
result.model, result.history["val_rmse"], result.runtime
```

`fit` is the whole job for a script or a benchmark: seed, loss, optimizer,
compiled model (its first weights from `warm_start.init_from` when set,
`training.warm_start`), the runtime (the `train.precision` dtype policy and a
multi-GPU strategy where GPUs exist) and the config's callbacks. A tracked run (`training.run`) acts
between those steps: it records the runtime and the params before the first
epoch and evaluates inside the same runtime, so it opens the runtime itself:

```python
with fitting(cfg, loss, run_dir, resume=True, metrics_logger=logger) as f:
    ...  # record f.runtime, f.callback_params
    f.restore()  # weights, optimizer and epoch from run_dir's checkpoint
    result = f.fit(dataset)
    ...  # evaluate f.model
```

This module imports Keras: import it only where a training runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import keras

from galaxyzoo.config.experiment import ExperimentConfig, model_kwargs
from galaxyzoo.data.dataset import Dataset
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import losses, metrics
from galaxyzoo.model.network import build_model, freeze_conv_blocks, outputs_concentrations
from galaxyzoo.model.precision import available_gpus, policy_scope, read_cpu_flags, resolve_precision
from galaxyzoo.tracking import names
from galaxyzoo.training import callbacks as cb
from galaxyzoo.training.calibration import HeadCalibration, calibrate_head
from galaxyzoo.training.head_refit import HeadRefit, refit_head, require_validation
from galaxyzoo.training.warm_start import InitWeights, load_init

logger = logging.getLogger(__name__)

# Background threads per sequence (Keras PyDataset workers) that read and augment the
# next batches while the model trains on this one; the backend keeps the other cores.
PREFETCH_WORKERS = 2


@dataclass(frozen=True)
class FitResult:
    """What one `fit` produced.

    `history` is Keras's `History.history` of this fit: one value per epoch
    it ran (a resumed fit holds only the epochs after `initial_epoch`).
    """

    model: Any  # the trained keras.Model: compiled, or with `train.calibrate_head` its uncompiled calibrated copy
    history: dict[str, list[float]] = field(repr=False)
    initial_epoch: int  # the epoch this fit started at (0 unless restored from a checkpoint)
    seconds: float  # wall time of `model.fit`: training and validation
    runtime: dict[str, str]  # runtime.* tags: backend, GPUs, precision, distribution
    head_refit: HeadRefit | None = None  # what `train.refit_head` did, when set
    calibration: HeadCalibration | None = None  # what `train.calibrate_head` did, when set

    def extra_metrics(self) -> dict[str, float]:
        """The refit's and the calibration's metrics, for the run."""
        return {**(self.head_refit.metrics() if self.head_refit else {}),
                **(self.calibration.metrics() if self.calibration else {})}

    @property
    def epochs(self) -> int:
        """Epochs this fit ran."""
        return len(self.history.get("loss", []))


def fit(cfg: ExperimentConfig, dataset: Dataset, run_dir: str | Path, *, resume: bool = False,
        callbacks: Iterable = (), verbose: int | str | None = None) -> FitResult:
    """Train the model of `cfg` on `dataset` with the config's callbacks, without MLflow.

    Args:
        cfg: the resolved experiment (`config.experiment.load_experiment`).
        dataset: its data (`data.dataset.load_dataset`, with counts when the loss needs them).
        run_dir: the folder for the checkpoint and the CSV log (created if missing).
        resume: continue from the checkpoint in `run_dir` instead of starting afresh.
        callbacks: more Keras callbacks, run after the config's.
        verbose: Keras `fit` verbosity; default 1 on a terminal, 2 (a line per epoch) otherwise.

    Bad loss parameters, a damaged checkpoint or a warm start's source
    (`warm_start.init_from`, read from `tracking.tracking_uri`'s store) that
    does not fit are a `GalaxyZooError`.
    """
    loss = make_loss(cfg.train)
    init = None
    if cfg.warm_start.init_from is not None and not resume:
        from galaxyzoo.tracking import mlflow_runs

        init = load_init(mlflow_runs.connect(mlflow_runs.tracking_uri(cfg.tracking.tracking_uri)), cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with fitting(cfg, loss, run_dir, resume=resume, data=str(dataset.workspace.db), init=init) as f:
        if resume:
            f.restore()
        return f.fit(dataset, extra_callbacks=callbacks, verbose=verbose)


@dataclass
class Fitting:
    """A compiled model in its runtime with the config's callbacks: one training about to run."""

    cfg: ExperimentConfig
    model: Any  # keras.Model, compiled
    run_dir: Path
    callbacks: list
    callback_params: dict[str, str]  # `callback.<name>` -> its class and settings (`build_callbacks`)
    runtime: dict[str, str]  # runtime.* tags (`runtime_scope`)
    initial_epoch: int = 0

    def restore(self) -> int:
        """Continue from the checkpoint in `run_dir`; return the epoch the fit will start at."""
        self.initial_epoch = restore(self.model, self.run_dir, self.cfg)
        return self.initial_epoch

    def fit(self, dataset: Dataset, *, extra_callbacks: Iterable = (), verbose: int | str | None = None) -> FitResult:
        """Train from `initial_epoch` to `train.epochs` (nothing when the checkpoint was the last epoch),
        then with `train.refit_head` fit the head again on clean features (`training.head_refit`),
        and with `train.calibrate_head` scale its concentrations to the validation votes (`training.calibration`).

        The checkpoint holds the weights before both, so a resumed fit does them again, the same way.
        """
        for key in ("refit_head", "calibrate_head"):
            if getattr(self.cfg.train, key):
                require_validation(dataset, f"train.{key}")  # before the epochs, not after them
        train_seq, val_seq = dataset.fit_sequences(self.cfg.train, self.initial_epoch, workers=PREFETCH_WORKERS)
        started = time.perf_counter()
        history = self.model.fit(train_seq, validation_data=val_seq, epochs=self.cfg.train.epochs,
                                 initial_epoch=self.initial_epoch, callbacks=self.callbacks + list(extra_callbacks),
                                 verbose=_verbosity(verbose), shuffle=False)
        seconds = time.perf_counter() - started
        refit = None
        if self.cfg.train.refit_head:
            refit = refit_head(self.model, dataset, loss=self.model.loss, seed=self.cfg.train.seed)
            logger.info("refitted the head on clean features in %d epochs: validation loss %.4f -> %.4f",
                        refit.epochs, refit.val_loss_before, refit.val_loss)
        calibration = None
        if self.cfg.train.calibrate_head:
            calibration = calibrate_head(self.model, dataset, batch_size=self.cfg.train.batch_size)
            logger.info("calibrated the head on the validation votes: %.3f -> %.3f nats a galaxy; factors %s",
                        calibration.val_nll_before, calibration.val_nll,
                        " ".join(f"{q} {v:.2f}" for q, v in calibration.scale.items()))
        model = calibration.model if calibration else self.model
        return FitResult(model, history.history, self.initial_epoch, seconds, self.runtime, refit, calibration)


@contextlib.contextmanager
def fitting(cfg: ExperimentConfig, loss, run_dir: Path, *, resume: bool = False, data: str = "the training data",
            metrics_logger: cb.MlflowMetricsLogger | None = None, init: InitWeights | None = None
            ) -> Iterator[Fitting]:
    """The runtime of `cfg` (`runtime_scope`), and in it the compiled model and its callbacks.

    `resume` has the checkpoint callback put its saved callback state back when
    training begins; call `Fitting.restore` for the weights and the epoch.
    `init` (a warm start, `warm_start.load_init`) gives the model its first
    weights; a resume passes none. `data` and `metrics_logger` go to
    `callbacks.build_callbacks`. Evaluate inside the `with`: the runtime
    (policy, strategy) is put back when it ends.
    """
    if cfg.warm_start.init_from is not None and not resume and init is None:
        raise GalaxyZooError(f"warm_start.init_from {cfg.warm_start.init_from}: a fresh training needs its "
                             "weights (training.warm_start.load_init)")
    with runtime_scope(cfg.train) as (scope, runtime):
        with scope:
            model = compile_model(cfg, loss)
            if init is not None:
                init.apply(model)
        callbacks, params = cb.build_callbacks(cfg.train, run_dir=run_dir, resume=resume, data=data,
                                               metrics_logger=metrics_logger)
        yield Fitting(cfg, model, run_dir, callbacks, params, runtime)


def _verbosity(verbose):
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def make_loss(train_cfg):
    """The configured loss; bad `train.loss_params` are a GalaxyZooError."""
    try:
        return losses.get_loss(train_cfg.loss, **train_cfg.loss_params)
    except (TypeError, ValueError) as exc:
        raise GalaxyZooError(f"train.loss_params: {exc}") from None


def compile_model(cfg: ExperimentConfig, loss):
    """The model of `cfg`, compiled with its optimizer, `loss` and the training metrics; the
    first `warm_start.freeze_blocks` conv blocks are frozen (a resume freezes them again)."""
    # Under a mixed policy the head still computes in float32 (model.network.build_model).
    model = build_model(**model_kwargs(cfg))
    freeze_conv_blocks(model, cfg.warm_start.freeze_blocks)
    model.compile(optimizer=build_optimizer(cfg.train), loss=loss,
                  metrics=metrics.training_metrics(concentrations=outputs_concentrations(model)))
    return model


def build_optimizer(train_cfg):
    """A fresh optimizer of `train.optimizer` (a name `config.experiment.OPTIMIZERS` allows) at
    `train.learning_rate`; Keras resolves the lower-case name to its class (`adamw` -> AdamW)."""
    return keras.optimizers.get({"class_name": train_cfg.optimizer,
                                 "config": {"learning_rate": train_cfg.learning_rate}})


def restore(model, run_dir: Path, cfg: ExperimentConfig) -> int:
    """Load the checkpoint's weights and optimizer state; return the epoch to continue at."""
    state = cb.read_state(run_dir)
    weights = cb.checkpoint_files(run_dir, state)[0]
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(str(weights))
        cb.restore_seed_generators(model, state.get("seed_generators", []))
    except (OSError, ValueError, KeyError) as exc:  # how h5py and Keras report a truncated or foreign file
        raise cb.damaged_checkpoint(weights, f"{type(exc).__name__}: {exc}") from None
    next_epoch = int(state["next_epoch"])
    stopped = state.get("callbacks", {}).get("early_stopping", {}).get("stopped_epoch")
    if stopped:
        next_epoch = cfg.train.epochs  # early stopping had ended the training before the kill
    if cfg.train.callbacks.csv_logger.enabled and cfg.train.callbacks.csv_logger.append:
        cb.truncate_csv_log(run_dir / names.CSV_LOG, next_epoch)
    if next_epoch < cfg.train.epochs:
        logger.info("resuming at epoch %d of %d from %s", next_epoch + 1, cfg.train.epochs, run_dir)
    else:
        why = f"early stopping ended it at epoch {stopped + 1}" if stopped else f"all {next_epoch} epochs ran"
        logger.info("resuming from %s: nothing left to train (%s); recording the test metrics and the model",
                    run_dir, why)
    return next_epoch


@contextlib.contextmanager
def runtime_scope(train_cfg):
    """The dtype policy of `train.precision` and a multi-device strategy where GPUs exist;
    yields (scope, tags).

    `model.precision.resolve_precision` picks the policy (`auto`: bfloat16 on a
    CPU with native bfloat16, float16 on a GPU); float16 or `distribute` without
    a GPU log a line and fall back to float32 on one device. The global Keras
    policy and distribution are put back afterwards (a sweep trains many models
    in one process).
    """
    backend = keras.backend.backend()
    gpus = available_gpus(backend)
    tags = {names.TAG_RUNTIME_PREFIX + "backend": backend, names.TAG_RUNTIME_PREFIX + "gpus": str(len(gpus))}
    precision = resolve_precision(train_cfg.precision, len(gpus), read_cpu_flags())
    tags[names.TAG_RUNTIME_PRECISION] = precision.tag
    scope = contextlib.nullcontext()
    distribution_set = False
    if train_cfg.distribute == "mirrored" and gpus:
        if backend == "tensorflow":
            import tensorflow as tf

            scope = tf.distribute.MirroredStrategy().scope()
            tags[names.TAG_RUNTIME_PREFIX + "distribution"] = f"tf.distribute.MirroredStrategy over {len(gpus)} GPU(s)"
        elif backend == "jax":
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=gpus))
            distribution_set = True
            tags[names.TAG_RUNTIME_PREFIX + "distribution"] = f"keras.distribution.DataParallel over {len(gpus)} GPU(s)"
        else:
            logger.warning("train.distribute=mirrored is not supported on the %s backend: one device", backend)
            tags[names.TAG_RUNTIME_PREFIX + "distribution"] = f"none ({backend} backend)"
    elif train_cfg.distribute == "mirrored":
        logger.warning("train.distribute=mirrored but no GPU is visible to %s: training on the CPU", backend)
        tags[names.TAG_RUNTIME_PREFIX + "distribution"] = "none (no GPU)"
    else:
        tags[names.TAG_RUNTIME_PREFIX + "distribution"] = "none"
    logger.info("runtime: %s", ", ".join(f"{k.split('.')[1]}={v}" for k, v in tags.items()))
    try:
        with policy_scope(precision.policy):
            yield scope, tags
    finally:
        if distribution_set:
            keras.distribution.set_distribution(None)
