"""Evaluate a fitted model on the test part and record the result in its MLflow run.

`record` runs once a training's epochs are done (or a resume found none left):
the test metrics (with `evaluate.tta`, also their test-time augmented `_tta`
twins) and the best validation values, at the last epoch's step; the
per-question table, the CSV log and the plots; the Keras model and the packaged
(crop + network) pyfunc model, both linked to that step's metrics. Call it inside
the training's runtime (`fit.fitting`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from galaxyzoo.config.experiment import ExperimentConfig
from galaxyzoo.data.crop import to_unit
from galaxyzoo.data.dataset import Dataset
from galaxyzoo.model.network import answer_fractions
from galaxyzoo.registry import evaluate, packaged
from galaxyzoo.tracking import mlflow_runs, names, plots
from galaxyzoo.tracking.compare import lower_is_better

logger = logging.getLogger(__name__)

GALLERY_SIZE = 16  # test crops drawn with their predictions


def record(cfg: ExperimentConfig, client, run_id: str, run_dir: Path, model, loss, dataset: Dataset, *,
           resuming: bool, extra_metrics: dict[str, float] | None = None
           ) -> tuple[dict[str, float], dict[str, list[tuple[int, float]]]]:
    """Evaluate `model` and log everything to run `run_id`; return (test metrics, per-epoch history).

    The history is every per-epoch series the run holds, as `(epoch, value)`
    pairs, resumed epochs included. `extra_metrics` (e.g. a head refit's) are
    logged and returned with the test metrics.
    """
    history = mlflow_runs.metric_histories(client, run_id, list(names.CURVE_KEYS) + [names.EPOCH_SECONDS])
    # The last epoch's step: the test and best metrics are logged at it, and both logged
    # models link the metrics of this step, so their pages show the final values.
    step = history["loss"][-1][0] if history.get("loss") else 0
    # A process killed after logging the test metrics logged them already: keep its values, once.
    logged = mlflow_runs.logged_steps(client, run_id) if resuming else None
    metrics = _evaluate_and_log(cfg, client, run_id, run_dir, model, loss, dataset, history, step, logged)
    if extra_metrics:
        mlflow_runs.log_metrics(client, run_id, extra_metrics, step=step, skip=logged)
        metrics = {**metrics, **extra_metrics}
    mlflow_runs.log_metrics(client, run_id, best_metrics(history), step=step, skip=logged)
    if resuming and (gone := mlflow_runs.delete_run_models(client, run_id)):
        logger.info("deleted the %d model(s) the killed process had logged; logging them again", gone)
    mlflow_runs.log_keras_model(_inference_copy(model), _input_example(dataset), step=step)
    packaged.log_packaged_model(client, run_id, step=step)
    return metrics, history


def best_metrics(history: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """`best_<key>` for each validation series: its lowest value (highest for R²)."""
    pick = {True: min, False: max}
    return {names.best_of(key): pick[lower_is_better(key)](v for _, v in series)
            for key, series in history.items() if key.startswith("val_") and series}


def _evaluate_and_log(cfg, client, run_id, run_dir, model, loss, dataset, history, step: int,
                      logged: dict[str, set[int]] | None = None) -> dict[str, float]:
    """Test metrics (at `step`; with `evaluate.tta` each again with test-time augmentation, `_tta`), the
    per-question table and (with `tracking.plots`) the figures, logged to the run; returns the metrics."""
    test = dataset.parts["test"]
    y_out = evaluate.predict_outputs(model, dataset.images, test.rows, batch_size=cfg.train.batch_size)
    evaluation, metrics = score_on_test(cfg, test, loss, model, y_out)
    y_pred = answer_fractions(model, y_out)
    if cfg.evaluate.tta:
        y_tta = evaluate.predict_outputs(model, dataset.images, test.rows, batch_size=cfg.train.batch_size, tta=True)
        metrics.update({names.with_tta(k): v for k, v in score_on_test(cfg, test, loss, model, y_tta)[1].items()})
    mlflow_runs.log_metrics(client, run_id, metrics, step=step, skip=logged)

    artifacts = run_dir / "artifacts"
    table = artifacts / names.PER_QUESTION_CSV
    table.parent.mkdir(parents=True, exist_ok=True)
    evaluation.per_question.to_csv(table, index=False)
    client.log_artifact(run_id, str(table))
    if (run_dir / names.CSV_LOG).is_file():
        client.log_artifact(run_id, str(run_dir / names.CSV_LOG))
    if cfg.tracking.plots:
        _log_figures(cfg, client, run_id, artifacts / names.PLOTS_DIR, dataset, history, evaluation, y_pred)
    shown = [key for k in ("test_rmse", "test_r2_flat", "test_rmse_cumulative") for key in (k, names.with_tta(k))
             if key in metrics]
    logger.info("test: %s", ", ".join(f"{k}={metrics[k]:.4f}" for k in shown))
    return metrics


def score_on_test(cfg, test, loss, model, y_out) -> tuple[evaluate.Evaluation, dict[str, float]]:
    """The evaluation of the model's outputs `y_out` on the test part (as fractions), and its metrics
    (the loss too, on the outputs themselves) under their `test_` keys."""
    evaluation = evaluate.evaluate_predictions(test.targets, answer_fractions(model, y_out),
                                               batch_size=cfg.train.batch_size)
    y_full = test.targets if test.counts is None else np.concatenate([test.targets, test.counts], axis=1)
    test_loss = float(keras.ops.convert_to_numpy(loss(y_full, y_out)))
    return evaluation, {names.on_test_split("loss"): test_loss,
                        **{names.on_test_split(k): v for k, v in evaluation.metrics.items()}}


def _log_figures(cfg, client, run_id: str, figures, dataset: Dataset, history, evaluation, y_pred) -> None:
    """The learning curves, predicted vs true for each question and a gallery of test crops, under `plots/`."""
    test = dataset.parts["test"]
    run_name = client.get_run(run_id).info.run_name or cfg.name  # a trial's "<study> trial <n>", not the file's name
    plots.training_curves(history, figures / names.TRAINING_CURVES_PLOT, title=f"{run_name} ({run_id[:8]})")
    for question in evaluation.per_question["question"]:
        plots.predicted_vs_true(test.targets, y_pred, question, figures / names.PRED_VS_TRUE_DIR / f"{question}.png")
    pick = np.random.default_rng(cfg.train.seed).choice(len(test), min(GALLERY_SIZE, len(test)), replace=False)
    pick.sort()
    plots.crop_gallery(dataset.images[test.rows[pick]], test.targets[pick], y_pred[pick], test.asset_ids[pick],
                       figures / names.TEST_CROPS_PLOT)
    client.log_artifacts(run_id, str(figures), names.PLOTS_DIR)


def _inference_copy(model):
    """An uncompiled copy of `model` with its weights: the logged model carries no optimizer
    state or training metrics, so it loads anywhere `galaxyzoo.model.network` is importable."""
    # Not clone_model: it would also re-compile the copy from the original's compile config.
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _input_example(dataset: Dataset) -> np.ndarray:
    """One test crop, as the model sees it: the logged model's input example."""
    return to_unit(dataset.images[dataset.parts["test"].rows[:1]])
