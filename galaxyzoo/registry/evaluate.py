"""Score a trained model on the test split: every metric, and a table per question.

```python
from galaxyzoo.registry.evaluate import evaluate
result = evaluate("runs:/<run_id>/model")      # or a bare run id, or models:/galaxyzoo-cnn@champion
result.metrics["rmse"], result.per_question
```

The data (source, crop size, channels, split) and the target policy come
from the config the model was trained with, read from its run's
`config.yaml` artifact, so a model is always scored on the crops and targets
it was trained for. Only for a model without a run (a local path) does the
`experiment` file supply them. `train` uses `predict` and
`evaluate_predictions` for its final test metrics, so both report the same
numbers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from galaxyzoo import schema
from galaxyzoo.config.experiment import load_experiment, model_kwargs
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import metrics as metrics_mod
from galaxyzoo.model.precision import machine_precision, recast
from galaxyzoo.model.tta import average_over_views
from galaxyzoo.system.folders import folder_for, writable_folder
from galaxyzoo.system.locks import writer_lock
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import mlflow_runs, model_uri, names
from galaxyzoo.tracking.run_config import download_run_config

logger = logging.getLogger(__name__)

MAX_BATCH = 512  # the prediction batch without --batch-size: the training's, at most this
PER_QUESTION_COLUMNS = ("question", "slug", "answers", "rmse", "mae", "r2_mean_columns", "mean_true", "mean_pred")


@dataclass(frozen=True)
class Evaluation:
    """Metrics over the test split (`metrics.evaluate_arrays` keys plus
    `r2_flat_batched`; with `evaluate.tta` each again under `names.with_tta`)
    and the per-question table (a pandas DataFrame, without TTA)."""

    metrics: dict[str, float]
    per_question: object  # pandas.DataFrame with PER_QUESTION_COLUMNS
    model_uri: str | None = None
    run_id: str | None = None  # the run that trained the model, when known
    n: int = 0


def predict(model, images, rows: np.ndarray, batch_size: int, tta: bool = False) -> np.ndarray:
    """Answer fractions (N, 37) float32 for store `rows`: `predict_outputs` through `network.answer_fractions`."""
    from galaxyzoo.model.network import answer_fractions

    return answer_fractions(model, predict_outputs(model, images, rows, batch_size, tta))


def predict_outputs(model, images, rows: np.ndarray, batch_size: int, tta: bool = False) -> np.ndarray:
    """The model's outputs (N, 37) float32 for store `rows`, streamed in batches (no shuffling, no augmentation):
    fractions, or the Dirichlet head's concentrations ((N, K * 48) for a mixture, `model.head_layout`).

    With `tta`, each batch's outputs are the mean over its 8 rotations and flips (`model.tta`).
    """
    from galaxyzoo.data.stream import GalaxySequence

    dummy = np.zeros((len(rows), schema.N_ANSWERS), np.float32)  # PyDataset batches need a y
    seq = GalaxySequence(images, rows, dummy, batch_size=batch_size)
    step = model.predict_on_batch
    out = [np.asarray(average_over_views(step, x) if tta else step(x), dtype=np.float32)
           for x in (seq[i][0] for i in range(len(seq)))]
    return np.concatenate(out, axis=0)


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray, batch_size: int) -> Evaluation:
    """Every metric of `metrics.evaluate_arrays`, `r2_flat_batched` and the per-question table.

    `r2_flat_batched` is R^2 as the seed's Keras metric reported it (averaged
    over batches of `batch_size`), the number to set beside its 0.6049.
    """
    values = metrics_mod.evaluate_arrays(y_true, y_pred)
    values["r2_flat_batched"] = metrics_mod.r2_flat_batched(y_true, y_pred, batch_size)
    return Evaluation(values, per_question_table(y_true, y_pred), n=len(y_true))


def per_question_table(y_true: np.ndarray, y_pred: np.ndarray):
    """One row per question: RMSE, MAE, mean per-answer R^2 and the mean true/predicted fractions."""
    import pandas as pd
    from sklearn.metrics import r2_score

    rmse = metrics_mod.rmse_per_question(y_true, y_pred)
    rows = []
    for q in schema.QUESTIONS:
        t, p = np.asarray(y_true)[:, q.slice], np.asarray(y_pred)[:, q.slice]
        rows.append({
            "question": q.id,
            "slug": q.slug,
            "answers": q.stop - q.start,
            "rmse": rmse[q.id],
            "mae": float(np.mean(np.abs(t - p))),
            # R^2 needs two rows and some spread; NaN says "undefined" rather than a misleading number.
            "r2_mean_columns": float(r2_score(t, p)) if len(t) > 1 else float("nan"),
            "mean_true": float(t.mean()),
            "mean_pred": float(p.mean()),
        })
    return pd.DataFrame(rows, columns=list(PER_QUESTION_COLUMNS))


def evaluate(
    model: str,
    *,
    experiment_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    out_dir: str | Path | None = None,
    batch_size: int | None = None,
    tracking_uri: str | None = None,
    project_run_id: str | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score `model` (run id, runs:/, models:/ URI or local path) on its test split.

    The config comes from the model's run; `experiment_file` is used only for
    a model without one. `overrides` (e.g. `data.source=...`) change it;
    changing the crop size or channels fails because the model's input
    would not fit. With `out_dir`, writes `metrics.json` and
    `per_question_metrics.csv` there. With `evaluate.tta` in the config (`--set
    evaluate.tta=true`, `--tta`) the metrics also hold the test-time augmented
    ones (`rmse_tta`, ...). With `project_run_id` (the run
    `mlflow run -e evaluate` created; the CLI passes MLFLOW_RUN_ID) the
    results are also logged to that run. The model
    is loaded before any data is built, so a bad URI fails at once.
    """
    import galaxyzoo.model.network  # noqa: F401  registers the custom layers (softmax head) before loading
    from galaxyzoo.data.dataset import load_dataset

    if batch_size is not None and batch_size < 1:
        raise GalaxyZooError(f"--batch-size: must be at least 1, got {batch_size}")
    # Made before the work, so a bad path fails first; removed again if the work fails.
    out = contextlib.nullcontext() if out_dir is None else folder_for(Path(out_dir), f"--out {out_dir}")
    with out:
        # A run id or a models:/ or runs:/ URI is read from the store: one that does not exist (run away from the
        # project folder) is refused, not created empty to say the model is missing.
        client = mlflow_runs.connect(mlflow_runs.tracking_uri(tracking_uri), create=Path(model).exists())
        uri = model_uri.model_uri_for(model)
        run_id = model_uri.source_run_id(client, uri)
        if run_id is None and not urlparse(uri).scheme and not Path(uri).exists():
            raise GalaxyZooError(f"--model {model}: no such run in {client.tracking_uri} (a run id has 32 hex digits), "
                                 "registered model URI or local model folder")
        if run_id is not None:
            model_uri.check_network_run(client, run_id, model)
        uri = model_uri.network_uri(uri, run_id)  # what the test split scores
        if run_id is not None:
            if experiment_file:  # the model was trained with its run's config; another file would not fit it
                logger.warning("--experiment %s is not used: run %s's own config.yaml is (change it with --set)",
                               experiment_file, run_id)
            with scratch("galaxyzoo-config") as tmp:
                cfg = load_experiment(download_run_config(client, run_id, tmp), list(overrides))
        elif experiment_file:
            cfg = load_experiment(experiment_file, list(overrides))
        else:
            raise GalaxyZooError(f"--model {uri}: not logged by a run, so pass --experiment with its training config")
        try:
            keras_model = model_uri.load_keras(uri)
        except Exception as exc:  # MLflow raises many types for a bad URI; all mean "cannot load"
            raise GalaxyZooError(f"--model {uri}: cannot load a Keras model ({type(exc).__name__}: {exc})") from None
        expected = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
        if tuple(keras_model.input_shape[1:]) != expected:
            raise GalaxyZooError(f"--model {uri}: takes inputs {tuple(keras_model.input_shape[1:])}, but the data "
                                 f"config gives crops {expected}")
        # Scored in the precision this machine would train the config in (`model.precision`).
        policy = machine_precision(cfg.train.precision).policy
        keras_model = recast(keras_model, policy, model_kwargs(cfg), f"--model {uri}")
        dataset = load_dataset(cfg.data, with_counts=False, progress=progress)
        test = dataset.parts["test"]
        batch = batch_size if batch_size is not None else min(cfg.train.batch_size, MAX_BATCH)
        y_pred = predict(keras_model, dataset.images, test.rows, batch)
        result = evaluate_predictions(test.targets, y_pred, cfg.train.batch_size)
        values = dict(result.metrics)
        if cfg.evaluate.tta:
            y_tta = predict(keras_model, dataset.images, test.rows, batch, tta=True)
            tta = evaluate_predictions(test.targets, y_tta, cfg.train.batch_size)
            values.update({names.with_tta(k): v for k, v in tta.metrics.items()})
        result = Evaluation(values, result.per_question, uri, run_id, len(test))
        if out_dir is not None:
            write_outputs(result, Path(out_dir))
        if project_run_id:
            _log_to_run(client, project_run_id, result, cfg)
        return result


def write_outputs(result: Evaluation, out_dir: Path) -> list[Path]:
    """Write `metrics.json` and `per_question_metrics.csv` into `out_dir`, one evaluation's pair.

    Under the folder's lock (`metrics.json.lock`), both are written beside their names and renamed
    into place, the old `metrics.json` removed first and the new one renamed last: a second
    evaluate, or a kill between the renames, never leaves one model's metrics beside another's table.
    """
    writable_folder(out_dir, f"--out {out_dir}")
    metrics_path, table_path = out_dir / names.METRICS_JSON, out_dir / names.PER_QUESTION_CSV
    # Hidden names of our own, so a user's `metrics.json.tmp` beside them is never touched.
    staged_metrics, staged_table = (p.with_name(f".{p.name}.galaxyzoo-partial") for p in (metrics_path, table_path))
    try:
        with writer_lock(metrics_path, wait=True):  # milliseconds: a second evaluate waits, not fails
            try:
                staged_metrics.write_text(json.dumps({"model": result.model_uri, "run_id": result.run_id,
                                                      "n_test": result.n, **result.metrics}, indent=2,
                                                     allow_nan=True) + "\n")
                result.per_question.to_csv(staged_table, index=False)
                metrics_path.unlink(missing_ok=True)
                os.replace(staged_table, table_path)
                os.replace(staged_metrics, metrics_path)
            finally:  # a failed write leaves neither half
                staged_metrics.unlink(missing_ok=True)
                staged_table.unlink(missing_ok=True)
    except OSError as exc:  # a full disk
        raise GalaxyZooError(f"--out {out_dir}: cannot write the results there ({exc.strerror or exc})") from None
    return [metrics_path, table_path]


def _log_to_run(client, run_id: str, result: Evaluation, cfg) -> None:
    import tempfile

    mlflow_runs.log_params(client, run_id, {names.PARAM_MODEL_URI: result.model_uri,
                                            names.PARAM_SOURCE_RUN: str(result.run_id),
                                            "data.source": cfg.data.source, names.PARAM_N_TEST: str(result.n)})
    mlflow_runs.log_metrics(client, run_id, {names.on_test_split(k): v for k, v in result.metrics.items()})
    if cfg.evaluate.tta:
        mlflow_runs.set_tags(client, run_id, {names.TAG_TTA: "true"})
    with scratch() as tmp:
        for path in write_outputs(result, Path(tmp)):
            client.log_artifact(run_id, str(path))


def format_report(result: Evaluation) -> str:
    """The metrics and the per-question table as text for the terminal."""
    head = [f"model {result.model_uri} on {result.n} test galaxies"]
    shown = ("rmse", "mse", "r2_flat", "r2_flat_batched", "r2_mean_columns", "rmse_cumulative")
    if names.with_tta("rmse") in result.metrics:  # scored with test-time augmentation too: side by side
        head.append(f"  {'':<18} {'plain':>7}  {'tta':>7}")
        head += [f"  {name:<18} {result.metrics[name]:>7.4f}  {result.metrics[names.with_tta(name)]:>7.4f}"
                 for name in shown]
    else:
        head += [f"  {name:<18} {result.metrics[name]:.4f}" for name in shown]
    table = result.per_question.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    return "\n".join(head + ["", table])
