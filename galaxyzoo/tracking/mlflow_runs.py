"""MLflow bookkeeping for training runs: where runs go, what they record, finding them again.

A training is one MLflow run. This module decides the tracking store, opens
(or re-opens) the run, writes its parameters and tags, logs the Keras model
and reads metric histories back. It holds no Keras or TensorFlow import at
module level; `mlflow` itself is imported on first use, so the CLI stays fast
for commands that never track anything.

>>> uri = tracking_uri(None)           # doctest: +SKIP
'sqlite:////home/me/galaxyzoo/mlflow.db'

Where runs go, in order of precedence:

1. `tracking.tracking_uri` in the experiment file;
2. the `MLFLOW_TRACKING_URI` environment variable (`mlflow run` sets it);
3. `sqlite:///mlflow.db` in the current directory (the project root), so a
   plain `mlflow ui` there shows every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from galaxyzoo import __version__
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.locks import lock_path
from galaxyzoo.system.tempdirs import tempfiles_in_scratch
from galaxyzoo.tracking import names

DEFAULT_DB = "mlflow.db"

# Tags written by `galaxyzoo train`; resume and the sweep read them back.
STATE_FILE = "state.json"  # a run folder's checkpoint state (callbacks.EpochCheckpoint writes it)
OUTCOMES = ("running", "completed", "failed", "interrupted", "pruned")
# An unfinished run in one of these may be continued by `--resume auto`.
RESUMABLE_STATUSES = ("RUNNING", "FAILED", "KILLED")
# MLflow's experiment tag for how the UI opens an experiment, and its value for model training
# (the UI's ExperimentKind enum: genai_development, custom_model_development, ...).
EXPERIMENT_TAGS = {
    names.TAG_EXPERIMENT_KIND: names.EXPERIMENT_KIND,
    names.TAG_NOTE: (
        "Galaxy Zoo 2 morphology CNNs (galaxyzoo). One run per training: the experiment config's knobs as "
        "params; data identity, library versions and runtime as tags; train/val/test as datasets; per-epoch "
        "and test metrics; the Keras model and the packaged (crop + network) pyfunc model. Sweeps add a "
        "parent run per study. Metrics: rmse over all 37 answers (rmse_t01..t11 per question); r2_flat, the "
        "seed's R² of all outputs flattened; r2_mean_columns, scikit-learn's R² per answer averaged (very "
        "negative when an answer hardly varies in the test set); rmse_cumulative, the Kaggle 2014 score; "
        "best_val_* a training's best epoch, on a sweep parent the study's best trial; _tta with test-time "
        "augmentation. See docs/training.md and docs/sweeps.md."
    ),
}


def tracking_uri(configured: str | None = None) -> str:
    """The tracking URI to use: the config's, else MLFLOW_TRACKING_URI, else ./mlflow.db."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"


def in_a_store(model_uri: str) -> bool:
    """Whether `model_uri` is read from a tracking store (`models:/...`, `runs:/...`), not from a folder."""
    return urlparse(model_uri).scheme.lower() in ("models", "runs")


def connect_for_model(model_uri: str, configured: str | None) -> None:
    """Point MLflow at the store a `models:/` or `runs:/` URI is read from (`configured`, else the default of
    `tracking_uri`), refusing one that does not exist: run outside the project folder, MLflow would create
    an empty ./mlflow.db and say the model is not registered. A model folder needs no store."""
    if configured or in_a_store(model_uri):
        connect(tracking_uri(configured), create=False)


def connect(uri: str, *, create: bool = True):
    """Point the fluent MLflow API at `uri`; return a client for the same store.

    A URI MLflow has no store for is one error here. A SQLite store is created
    and migrated here, under a file lock beside the database: MLflow's own
    migration fails when two processes run it at once on a fresh file
    (`table ... already exists`). The OS drops the lock of a killed process.
    Without `create` (a command that only reads), a SQLite file that does not
    exist is one error instead of a new, empty store.
    """
    import mlflow
    import sqlalchemy
    from filelock import FileLock
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    db = _sqlite_path(uri)
    if db is not None and not create and not db.is_file():
        raise GalaxyZooError(f"tracking URI {uri!r}: no such database {db}; name the store the runs are in "
                             "(--tracking-uri, tracking.tracking_uri or MLFLOW_TRACKING_URI)")
    lock = contextlib.nullcontext()
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{db}.lock")
    try:
        with lock:
            client = mlflow.MlflowClient(uri)  # opens (for SQLite: creates, migrates) the tracking store
            if db is not None:
                client.search_registered_models(max_results=1)  # and the model registry's tables
    except UnsupportedModelRegistryStoreURIException:
        raise GalaxyZooError(
            f"tracking URI {uri!r}: MLflow has no store for the scheme {urlparse(uri).scheme!r}; use "
            "sqlite:///FILE, a folder, or http(s)://SERVER (set by tracking.tracking_uri, --tracking-uri or "
            "MLFLOW_TRACKING_URI)"
        ) from None
    except MlflowException as exc:
        raise GalaxyZooError(f"tracking URI {uri!r}: {exc.message}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise GalaxyZooError(f"tracking URI {uri!r}: cannot use {db} as an MLflow store "
                             f"({getattr(exc, 'orig', None) or exc})") from None
    mlflow.set_tracking_uri(uri)
    return client


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI; None for any other store (or in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


def experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created if missing, marked as the project's (`mark_experiment`).

    In a SQLite store a new experiment keeps its artifacts beside the database
    (`mlruns/<name>` next to `mlflow.db`) rather than under whatever directory
    the process happens to run in.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        location = _artifact_location(client.tracking_uri, name)
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        except MlflowException:
            # Another worker may have created it between our lookup and create.
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise GalaxyZooError(
            f"MLflow experiment {name!r} is deleted in {client.tracking_uri}; restore it "
            "(`mlflow experiments restore`) or set tracking.experiment_name to another name"
        )
    mark_experiment(client, found)
    return found.experiment_id


def named_run(client, run_id: str, option: str):
    """The run `run_id` a command option names, or a GalaxyZooError naming `option` when the store has none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise GalaxyZooError(f"{option} {run_id}: no such run in {client.tracking_uri}") from None


def mark_experiment(client, experiment) -> None:
    """Give an experiment the project's kind and description where it has none yet.

    `experiment` is an id or an `Experiment`. MLflow 3's UI opens an experiment
    without a kind as GenAI (traces, prompts); the kind makes it open as model
    training. What a user set (kind or description) is kept.
    """
    if isinstance(experiment, str):
        experiment = client.get_experiment(experiment)
    for key, value in EXPERIMENT_TAGS.items():
        if key not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, key, value)


def _artifact_location(uri: str, name: str) -> str | None:
    """`<db folder>/mlruns/<name>` for a SQLite store; None (MLflow's default) otherwise."""
    db = _sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"
    return (db.resolve().parent / "mlruns" / slug).as_uri()


@contextlib.contextmanager
def open_run(
    client,
    *,
    experiment_id: str,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    system_metrics: bool = False,
) -> Iterator[Any]:
    """Open the training's run as the active MLflow run; yield its `mlflow.ActiveRun`.

    - `run_id` re-opens an existing run (resume, or the run `mlflow run` made);
    - otherwise a new run is created in `experiment_id`, nested under
      `parent_run_id` when given (a sweep trial).

    The run is created explicitly, so an inherited MLFLOW_RUN_ID can never
    capture a nested trial. `system_metrics` samples CPU, memory (and GPU) into
    `system/*` metrics until the run ends (MLflow's monitor, per run rather than
    process-wide; every 10 s unless MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says). The caller ends the run (`finish_run`): how it
    ended (completed, pruned, failed) is the trainer's to say.
    """
    import mlflow
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    tags = dict(tags or {})
    if run_name:
        tags[MLFLOW_RUN_NAME] = run_name
    if run_id is None:
        if parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run_id = client.create_run(experiment_id, tags=resolve_tags(tags), run_name=run_name).info.run_id
    elif tags:
        set_tags(client, run_id, tags)
    active = mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None,
                              log_system_metrics=system_metrics)
    try:
        yield active
    except BaseException:
        # The caller records the outcome; this only guarantees the run is not left active.
        if mlflow.active_run() and mlflow.active_run().info.run_id == run_id:
            mlflow.end_run("FAILED")
        raise


def finish_run(client, run_id: str, outcome: str) -> None:
    """End the active run `run_id`, recording `outcome` as tag and MLflow status."""
    import mlflow

    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
    status = {"completed": "FINISHED", "failed": "FAILED"}.get(outcome, "KILLED")
    client.set_tag(run_id, names.TAG_OUTCOME, outcome)
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:
        client.set_terminated(run_id, status)


def held_by(folder: str) -> str:
    """The `TAG_HELD_BY` value for a run whose process holds the scratch folder `folder` on this machine."""
    import socket

    return json.dumps({"host": socket.gethostname(), "scratch": folder})


def holder_dead(client, run) -> bool:
    """Whether `run` is still RUNNING although the process that created it is certainly gone: its
    `TAG_HELD_BY` folder is on this machine and no process holds it (the kernel drops the lock with a
    killed process; a finished one removed the folder after ending its run, which the status read last
    tells). False for a run made on another machine, whose lock cannot be seen from here, or without the tag."""
    import socket

    from filelock import FileLock, Timeout

    try:
        held = json.loads(run.data.tags.get(names.TAG_HELD_BY, ""))
        folder, host = Path(str(held["scratch"])), held["host"]
    except (ValueError, TypeError, KeyError):
        return False
    if host != socket.gethostname():
        return False
    if folder.is_dir():
        try:
            with FileLock(lock_path(folder), timeout=0):
                pass
        except (Timeout, OSError):
            return False  # held: its process is alive
    return client.get_run(run.info.run_id).info.status == "RUNNING"


def close_failed(client, run_id: str, why: str, tags: dict[str, str] | None = None) -> None:
    """End a run its own process can no longer end: FAILED, with `why` in the tag `galaxyzoo.closed_why`."""
    set_tags(client, run_id, {names.TAG_CLOSED_WHY: why, **(tags or {})})
    finish_run(client, run_id, "failed")


@contextlib.contextmanager
def recording_outcome(client, run_id: str, pruned: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """End run `run_id` with the outcome of the block: completed, or pruned
    (one of `pruned` raised), interrupted (Ctrl-C) or failed (its reason in
    tag `failure_reason`), re-raising."""
    try:
        yield
    except pruned:
        finish_run(client, run_id, "pruned")
        raise
    except KeyboardInterrupt:
        finish_run(client, run_id, "interrupted")
        raise
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, GalaxyZooError) else f"{type(exc).__name__}: {exc}"
        client.set_tag(run_id, names.TAG_FAILURE, reason[:2000])  # well under MLflow's tag value limit
        finish_run(client, run_id, "failed")
        raise
    finish_run(client, run_id, "completed")


def set_tags(client, run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_params(client, run_id: str, params: dict[str, Any]) -> None:
    """Log parameters in batches of 100 (MLflow's per-request limit)."""
    from mlflow.entities import Param

    items = [Param(k, str(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def log_metrics(client, run_id: str, metrics: dict[str, float], step: int | None = None,
                skip: dict[str, set[int]] | None = None) -> None:
    """Log numeric metrics in one request; non-finite or non-numeric values are skipped,
    and so is every key whose `step` is already in `skip` (`logged_steps`)."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    skip = skip or {}
    items = [
        Metric(key, float(value), now, step or 0)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and math.isfinite(float(value)) and (step or 0) not in skip.get(key, ())
    ]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def library_versions() -> dict[str, str]:
    """Versions of what shapes a training: python, numpy, keras, its backend, mlflow, galaxyzoo."""
    import importlib.metadata as md

    import keras
    import mlflow
    import numpy

    backend = keras.backend.backend()
    versions = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "keras": keras.__version__,
        "keras_backend": backend,
        "mlflow": mlflow.__version__,
        "galaxyzoo": __version__,
    }
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module:
        versions[module] = sys.modules[module].__version__ if module in sys.modules else md.version(module)
    return versions


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged Keras model: keras, its backend, numpy.

    Given explicitly so MLflow does not infer them by re-loading the model in
    a subprocess (many seconds per run).
    """
    import importlib.metadata as md

    versions = library_versions()
    backend = versions["keras_backend"]
    dists = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}.get(backend, ())
    pins = [f"keras=={versions['keras']}", f"numpy=={versions['numpy']}"]
    for dist in dists:
        try:
            pins.append(f"{dist}=={md.version(dist)}")
            break
        except md.PackageNotFoundError:
            continue
    return pins


def run_link(run, text: str = "") -> str:
    """A Markdown link to `run`'s page for a description, which the MLflow UI renders (opening it in a new
    tab); relative, so it holds wherever the UI is served."""
    info = run.info
    return f"[{text or info.run_name or info.run_id}](#/experiments/{info.experiment_id}/runs/{info.run_id})"


def log_keras_model(model, input_example, step: int) -> str:
    """Log `model` under the active run as `model` (Keras 3 flavor) with signature and example.

    Returns the logged model's URI. The input example is a float32 batch like
    the ones the model trains on; the signature is inferred from it and the
    model's prediction on it. MLflow links the run's metrics logged at `step`
    to the model, so its page shows them: pass the last epoch's step.
    """
    from mlflow.models import Model, infer_signature

    prediction = model.predict(input_example, verbose=0)
    with tempfiles_in_scratch("galaxyzoo-log-model"):
        info = Model.log(
            artifact_path=None,
            name=names.MODEL_NAME,
            flavor=_keras_flavor(),
            model=model,
            signature=infer_signature(input_example, prediction),
            input_example=input_example,
            pip_requirements=pip_requirements(),
            step=step,
            # MLflow would reload the saved model to predict the example again (~1 s a run); the
            # prediction above is that check, and evaluate and promote load the logged model anyway.
            validate_serving_input=False,
        )
    return info.model_uri


def delete_run_models(client, run_id: str) -> int:
    """Delete the models run `run_id` logged so far; returns how many. A resumed run logs its models again,
    and a process killed after (or while) logging them left READY (or PENDING) ones beside the new."""
    experiment = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'")
    for model in found:
        client.delete_logged_model(model.model_id)
    return len(found)


def _keras_flavor():
    """`mlflow.keras` as `Model.log` calls it, but creating the model folder first.

    mlflow.keras.log_model writes the input example before it creates the
    folder and fails (mlflow/mlflow#16183, open in MLflow 3.17); this is
    exactly `mlflow.keras.log_model`'s call with that folder made.
    """
    import types

    import mlflow.keras

    def save_model(path, validate_serving_input=True, **kwargs):  # Model.log's switch, not the flavor's
        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)

    return types.SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_model)


def find_resumable_run(client, experiment_id: str, experiment_file: str, config_hash: str) -> str | None:
    """The latest unfinished run of this experiment file and config that has a checkpoint.

    Unfinished: status RUNNING (killed hard), FAILED or KILLED, and not
    pruned by a sweep. Sweep trials (nested runs) are never picked.
    """
    # Status is checked below in Python: not every store's filter grammar supports `OR`.
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.{names.TAG_CONFIG_HASH} = '{config_hash}' and "
            f"tags.{names.TAG_EXPERIMENT_FILE} = '{quote(experiment_file)}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    for run in runs:
        tags = run.data.tags
        if run.info.status not in RESUMABLE_STATUSES or tags.get(names.TAG_OUTCOME) == "pruned":
            continue
        if names.PARENT_TAG in tags:
            continue
        checkpoint = tags.get(names.TAG_CHECKPOINT_DIR)
        if checkpoint and (Path(checkpoint) / STATE_FILE).is_file():
            return run.info.run_id
    return None


def quote(text: str) -> str:
    """`text` as a quoted value inside an MLflow search filter (`tags.x = '...'`)."""
    return text.replace("'", "\\'")


def metric_histories(client, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
    """{key: [(step, value), ...]} sorted by step; for a step logged twice the last value wins."""
    out = {}
    for key in keys:
        by_step: dict[int, tuple[int, float]] = {}
        for m in client.get_metric_history(run_id, key):
            if m.step not in by_step or m.timestamp >= by_step[m.step][0]:
                by_step[m.step] = (m.timestamp, m.value)
        if by_step:
            out[key] = [(step, value) for step, (_, value) in sorted(by_step.items())]
    return out


def logged_steps(client, run_id: str) -> dict[str, set[int]]:
    """{key: steps} of every metric run `run_id` has logged.

    A resumed run skips these: a kill between an epoch's metric log and its
    checkpoint makes the resume train that epoch again, and MLflow cannot
    delete a logged value, so the first one stays and the history keeps each
    step once.
    """
    keys = client.get_run(run_id).data.metrics
    return {key: {m.step for m in client.get_metric_history(run_id, key)} for key in keys}


def run_id_from_env() -> str | None:
    """The run `mlflow run` created for this process (MLFLOW_RUN_ID), if any."""
    return os.environ.get("MLFLOW_RUN_ID") or None
