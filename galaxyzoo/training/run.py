"""Train the CNN from an experiment config, as one tracked MLflow run.

```python
from galaxyzoo.config.experiment import load_experiment
from galaxyzoo.training.run import train

cfg = load_experiment("experiments/quickstart.yaml", ["epochs=2"])
result = train(cfg, experiment_file="experiments/quickstart.yaml")
result.run_id, result.metrics["test_rmse"]
```

`train` builds whatever data stages are missing (synthetic sample, ingest,
crops, split), fits the model with the seed's callbacks (`training.fit`),
evaluates it on the test split and records everything in one MLflow run
(`training.record`): the config's knobs as params; data identity, library
versions and runtime as tags; the three parts as MLflow datasets; per-epoch,
test and system metrics; the Keras model and the packaged (crop + network)
pyfunc model, both showing the last epoch's metrics; the CSV log, the
resolved config and plots. A checkpoint after every epoch lets a killed
training continue in the same run (`resume=RUN_ID` or `"auto"`). A warm start
(`warm_start.init_from`) loads and checks its source before the run is
created (`training.warm_start`). See docs/training.md for the run's layout.

This module imports Keras and MLflow: the CLI imports it only inside the
`train` command.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import keras
import mlflow
import pandas as pd

from galaxyzoo.config.experiment import (ExperimentConfig, config_hash, dump_yaml, flatten, hashed_sections, knobs,
                                         load_experiment)
from galaxyzoo.data.dataset import Dataset, load_dataset
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.locks import remove_with_lock_file, writer_lock
from galaxyzoo.system.tempdirs import scratch, sweep_scratch
from galaxyzoo.tracking import mlflow_runs, model_uri, names
from galaxyzoo.training import callbacks as cb
from galaxyzoo.training.fit import fitting, make_loss
from galaxyzoo.training.record import record
from galaxyzoo.training.warm_start import InitWeights, load_init

logger = logging.getLogger(__name__)

_SCRATCH = "galaxyzoo-train"  # the folder a new run holds while it lives (`names.TAG_HELD_BY`)


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class TrainResult:
    """What one `train` call produced.

    `metrics` holds the final test metrics (`test_rmse`, `test_r2_flat`, ...);
    `history` every per-epoch series logged to MLflow, as `(epoch, value)`
    pairs, resumed epochs included.
    """

    run_id: str
    experiment_id: str
    outcome: str  # "completed" (a failed, interrupted or pruned training raises instead)
    epochs: int  # epochs completed in total, across resumes
    resumed_from: int | None  # the epoch a resume started at, None for a fresh run
    model_uri: str  # runs:/<run_id>/model
    metrics: dict[str, float]
    history: dict[str, list[tuple[int, float]]] = field(repr=False)

    def best(self, key: str = "val_loss") -> float:
        """The lowest value of a per-epoch series (e.g. `val_rmse` for a sweep's objective)."""
        values = [v for _, v in self.history.get(key, [])]
        if not values:
            raise KeyError(f"run {self.run_id} logged no {key!r}; logged: {', '.join(sorted(self.history))}")
        return min(values)


# ---------------------------------------------------------------- training


def train(
    cfg: ExperimentConfig,
    *,
    experiment_file: str | None = None,
    resume: str | None = None,
    parent_run_id: str | None = None,
    project_run_id: str | None = None,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    extra_callbacks: Iterable = (),
    pruned_exceptions: tuple[type[BaseException], ...] = (),
    runs_dir: str | Path | None = None,
    verbose: int | str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `cfg` as one MLflow run and return its id and final metrics.

    Args:
        cfg: the resolved experiment (`config.experiment.load_experiment`).
        experiment_file: the file `cfg` came from, recorded as a tag; `--resume
            auto` only continues runs of the same file and config hash.
        resume: `None` (new run), a run id to continue from its last
            checkpoint, or `"auto"` (the latest unfinished run of this file and
            config, else a new run).
        parent_run_id: nest the run under this run (a sweep trial).
        run_name: the MLflow run name (default `tracking.run_name`, else `cfg.name`).
        extra_tags: more MLflow tags (e.g. a trial number).
        extra_callbacks: more Keras callbacks, run after the built-in ones
            (e.g. a pruning callback that reads `val_rmse`).
        pruned_exceptions: exception types (e.g. `optuna.TrialPruned`) that
            end the run as "pruned" (status KILLED, tag outcome=pruned) before
            they propagate.
        runs_dir: where run folders (checkpoints, CSV log) go; default
            `<data.workdir>/runs`.
        verbose: Keras `fit` verbosity; default 1 on a terminal, 2 (a line per
            epoch) otherwise.
        progress: show progress bars while the data is built.
        project_run_id: the run `mlflow run` created for this process (the CLI
            passes MLFLOW_RUN_ID): the training is recorded in it. Ignored for
            a sweep's trial (`parent_run_id`).

    Raises `GalaxyZooError` for a bad resume request or unusable data;
    failures during training end the run as FAILED (KeyboardInterrupt:
    KILLED, outcome=interrupted) and propagate.
    """
    loss = make_loss(cfg.train)  # bad loss parameters fail here, before any run exists
    _check_own_tags(cfg.tracking.tags)
    env_run = project_run_id if parent_run_id is None else None
    uri = mlflow_runs.tracking_uri(None if env_run else cfg.tracking.tracking_uri)
    client = mlflow_runs.connect(uri)
    file_tag = experiment_file or "<none>"
    chash = config_hash(cfg)
    run_id, experiment_id = _choose_run(client, cfg, resume, env_run, parent_run_id, file_tag, chash)
    mlflow_runs.mark_experiment(client, experiment_id)  # also the one `mlflow run` or a sweep chose
    resuming = run_id is not None and run_id != env_run
    # A resume holds its checkpoint folder's lock: two `--resume auto` at once would both continue the run,
    # and one run being trained must not be picked up by another process.
    checkpoint_lock = contextlib.ExitStack()
    if resuming:
        checkpoint = _recorded_checkpoint(client, run_id) or _checkpoint_dir(runs_dir, cfg, run_id)
        checkpoint_lock.enter_context(writer_lock(checkpoint))
        _check_still_unfinished(client, run_id)  # another resume may have ended it before we held the lock
    with checkpoint_lock:
        # A warm start's source is loaded and checked before any run exists; a resume has its own checkpoint.
        init = load_init(client, cfg) if cfg.warm_start.init_from is not None and not resuming else None

        dataset = load_dataset(cfg.data, with_counts=loss.needs_counts,
                               progress=progress)
        logger.info("data: %s; %s", dataset.workspace.store, dataset.split.describe())
        keras.utils.set_random_seed(cfg.train.seed)

        tags = {} if resuming else _tags(cfg, file_tag, chash, dataset, init, extra_tags)
        if not resuming:  # held while this process lives: a kill before its checkpoint folder is named is seen
            tags[names.TAG_HELD_BY] = mlflow_runs.held_by(checkpoint_lock.enter_context(scratch(_SCRATCH)))
        else:  # a killed new run's held folder, which only a new run's scratch would otherwise sweep
            sweep_scratch(_SCRATCH)
        name = run_name or cfg.tracking.run_name or cfg.name
        with mlflow_runs.open_run(client, experiment_id=experiment_id, run_id=run_id, parent_run_id=parent_run_id,
                                  run_name=None if resuming else name, tags=tags,
                                  system_metrics=cfg.tracking.system_metrics) as active:
            run_id = active.info.run_id
            run_dir = checkpoint if resuming else _checkpoint_dir(runs_dir, cfg, run_id)
            if not resuming:  # a new run's own: no `--resume auto` elsewhere may take it over while it trains
                checkpoint_lock.enter_context(writer_lock(run_dir))
            run_dir.mkdir(parents=True, exist_ok=True)
            mlflow_runs.set_tags(client, run_id, {names.TAG_CHECKPOINT_DIR: str(run_dir),
                                                  names.TAG_OUTCOME: "running"})
            try:
                with mlflow_runs.recording_outcome(client, run_id, pruned=tuple(pruned_exceptions)):
                    result = _run(cfg, client, run_id, experiment_id, run_dir, dataset, loss, resuming, init,
                                  list(extra_callbacks), verbose)
            except tuple(pruned_exceptions):
                remove_with_lock_file(run_dir)  # a pruned trial is never resumed
                raise
        # The model is in MLflow now; the checkpoint only served a resume.
        remove_with_lock_file(run_dir)
        return result


_TAG_NAMES = [v for k, v in vars(names).items() if k.startswith("TAG_") and isinstance(v, str)]
# Every tag the toolkit writes (but the description, which `tracking.tags` may give), and the prefixes of its
# families, those of the flattened config's tags among them.
_OWN_TAGS = frozenset(t for t in _TAG_NAMES if not t.endswith(".")) - {names.TAG_NOTE}
_OWN_TAG_PREFIXES = (*(t for t in _TAG_NAMES if t.endswith(".")), "data.", "tracking.", "evaluate.",
                     "warm_start.", "galaxyzoo.")


def _check_own_tags(tags: dict[str, str]) -> None:
    """Refuse a `tracking.tags` name the toolkit sets itself: it would overwrite the run's own (`config_hash=mine`
    hides the run from `--resume`)."""
    for tag in tags:
        if tag in _OWN_TAGS or tag.startswith(_OWN_TAG_PREFIXES):
            raise GalaxyZooError(f"tracking.tags.{tag}: is a tag galaxyzoo sets itself; give yours another name")


def _recorded_checkpoint(client, run_id: str) -> Path | None:
    """The checkpoint folder run `run_id` recorded (`checkpoint_dir`): where a resume finds its state, whatever
    the working directory a relative `data.workdir` is read from now."""
    recorded = client.get_run(run_id).data.tags.get(names.TAG_CHECKPOINT_DIR)
    return Path(recorded) if recorded else None


def _check_still_unfinished(client, run_id: str) -> None:
    """Refuse to resume a run that another process finished between our choosing it and taking its lock."""
    status = client.get_run(run_id).info.status
    if status == "FINISHED":
        raise GalaxyZooError(f"--resume: run {run_id} finished meanwhile (another process resumed it); "
                             "nothing left to resume")


def _checkpoint_dir(runs_dir, cfg: ExperimentConfig, run_id: str) -> Path:
    """Where run `run_id` keeps its checkpoint: `runs_dir` (default `data.workdir/runs`) / run id."""
    return Path(runs_dir or Path(cfg.data.workdir) / "runs").resolve() / run_id


def _choose_run(client, cfg, resume, env_run, parent_run_id, file_tag, chash) -> tuple[str | None, str]:
    """(run id to re-open or None for a new run, experiment id)."""
    if resume and env_run:
        raise GalaxyZooError(
            "--resume cannot be used inside `mlflow run` (it already created a new run); "
            "run `galaxyzoo train --resume ...` directly"
        )
    if resume and parent_run_id:
        raise GalaxyZooError("resume and parent_run_id cannot be combined: sweep trials are not resumed")
    if env_run:
        return env_run, client.get_run(env_run).info.experiment_id
    if parent_run_id:
        return None, client.get_run(parent_run_id).info.experiment_id
    experiment_id = mlflow_runs.experiment_id(client, cfg.tracking.experiment_name)
    if not resume:
        return None, experiment_id
    if resume == "auto":
        _close_killed_before_a_checkpoint(client, experiment_id, file_tag, chash)
        found = mlflow_runs.find_resumable_run(client, experiment_id, file_tag, chash)
        if found is None:
            logger.info("resume auto: no unfinished run of %s (config %s) with a checkpoint; starting a new run",
                        file_tag, chash)
        else:
            cb.read_state(Path(client.get_run(found).data.tags[names.TAG_CHECKPOINT_DIR]))  # damaged: refused now
            logger.info("resume auto: continuing run %s", found)
        return found, experiment_id
    return resume, _check_resumable(client, resume, cfg, chash)


def _close_killed_before_a_checkpoint(client, experiment_id: str, file_tag: str, chash: str) -> None:
    """Close FAILED the RUNNING runs of this config that no process trains and that never wrote a checkpoint:
    killed before their first epoch ended, nothing can resume them, and they would stay RUNNING for ever.
    Their folder goes with them."""
    runs = client.search_runs([experiment_id], f"tags.{names.TAG_CONFIG_HASH} = '{chash}' and "
                                               f"tags.{names.TAG_EXPERIMENT_FILE} = '{mlflow_runs.quote(file_tag)}' "
                                               "and attributes.status = 'RUNNING'")
    for run in runs:
        if names.PARENT_TAG in run.data.tags:
            continue  # a sweep repairs its trials
        if _abandoned(client, run):
            why = "killed before its first checkpoint: nothing to resume"
            mlflow_runs.close_failed(client, run.info.run_id, why)
            logger.warning("resume auto: run %s was %s; closed FAILED", run.info.run_id, why)


def _abandoned(client, run) -> bool:
    """Whether `run` (RUNNING when searched) has no checkpoint and no live trainer; its folder is removed then.

    Its checkpoint folder's lock is held by its trainer from the moment the folder is named; before that,
    the scratch folder it names in `TAG_HELD_BY` (from its creation) is. The status is read again once the
    lock is known free: the run may have ended between the search and now.
    """
    folder = run.data.tags.get(names.TAG_CHECKPOINT_DIR)
    if not folder:  # killed between creating the run and naming its folder (or still in that instant)
        return mlflow_runs.holder_dead(client, run)
    if (Path(folder) / cb.STATE_FILE).is_file():
        return False  # a checkpoint: resumed instead
    if not Path(folder).is_dir():
        return False  # trained on another machine (its lock cannot be seen from here), or already cleaned up
    try:
        with writer_lock(folder):
            if client.get_run(run.info.run_id).info.status != "RUNNING":
                return False
            remove_with_lock_file(folder)
            return True
    except GalaxyZooError:
        return False  # a live training holds it


def _check_resumable(client, run_id: str, cfg: ExperimentConfig, chash: str) -> str:
    """The experiment id of `run_id`, after checking it can continue with `cfg`."""
    run = mlflow_runs.named_run(client, run_id, "--resume")
    tags = run.data.tags
    if run.info.status == "FINISHED":
        raise GalaxyZooError(f"--resume {run_id}: the run already finished; start a new run instead")
    if tags.get(names.TAG_CONFIG_HASH) != chash:
        changed = _changed_keys({**tags, **run.data.params}, cfg)
        raise GalaxyZooError(
            f"--resume {run_id}: the run was trained with another config (hash "
            f"{tags.get(names.TAG_CONFIG_HASH)}, this one is {chash}; differing: {changed}); "
            f"resume with the run's experiment file {tags.get(names.TAG_EXPERIMENT_FILE)!r} and overrides"
        )
    directory = tags.get(names.TAG_CHECKPOINT_DIR)
    if not directory or not cb.read_state(Path(directory)):
        raise GalaxyZooError(
            f"--resume {run_id}: no checkpoint at {directory or '(no checkpoint_dir tag)'} (the run stopped before "
            "its first epoch ended, or ran elsewhere, or train.callbacks.checkpoint was off); start a new run"
        )
    return run.info.experiment_id


def _changed_keys(logged: dict[str, str], cfg: ExperimentConfig) -> str:
    """The hashed keys whose logged value (param, or tag for a warm start) differs from `cfg`'s."""
    current = flatten(cfg)
    sections = hashed_sections(cfg) + (("warm_start",) if names.TAG_INIT_FROM in logged else ())
    keys = [k for k, v in current.items() if k.split(".")[0] in sections and logged.get(k) != v]
    return ", ".join(f"{k}: {logged.get(k)} -> {current[k]}" for k in keys[:5]) or "unknown"


def _tags(cfg: ExperimentConfig, file_tag: str, chash: str, dataset: Dataset, init: InitWeights | None,
          extra: dict | None) -> dict[str, str]:
    """A new run's tags: what makes runs findable and what is not a knob of the training
    (data identity and sizes, library versions, tracking settings, a warm start's source);
    see docs/training.md."""
    flat = flatten(cfg)
    tags = {
        names.TAG_EXPERIMENT_FILE: file_tag,
        names.TAG_CONFIG_HASH: chash,
        names.TAG_EXPERIMENT_NAME: cfg.name,
        names.TAG_HEAD: cfg.model.head,
        names.TAG_LOSS: cfg.train.loss,
        **_data_tags(dataset),
        "data.workdir": flat["data.workdir"],
        **{names.TAG_VERSION_PREFIX + k: v for k, v in mlflow_runs.library_versions().items()},
        # Settings that do not change the trained model: tags, not params (the params are the knobs).
        **{k: v for k, v in flat.items() if k.startswith(("tracking.", "evaluate."))},
        **(init.tags(cfg.warm_start.freeze_blocks) if init else {}),
        **cfg.tracking.tags,
        **(extra or {}),
    }
    # the description (else a note given in tracking.tags), what the command line changed in it (a trial's
    # own description names its values), then a warm start's source
    trial = names.TAG_TRIAL_NUMBER in (extra or {})
    note = " ".join(filter(None, [cfg.description or tags.get(names.TAG_NOTE),
                                  None if trial else _changed_from_file(cfg, file_tag),
                                  init.note(cfg.warm_start.freeze_blocks) if init else None]))
    if note:
        tags[names.TAG_NOTE] = note
    return tags


def _changed_from_file(cfg: ExperimentConfig, experiment_file: str) -> str | None:
    """"Changed from FILE: key old -> new, ..." for the knobs overridden on the command line, so the
    description written for the file (e.g. "5 epochs on 2000 galaxies") is not read as this run's."""
    try:
        written = knobs(load_experiment(experiment_file))
    except (GalaxyZooError, OSError):
        return None  # no file (`<none>`), or one that changed since: nothing to compare with
    changed = [f"{k} {written.get(k)} -> {v}" for k, v in knobs(cfg).items() if written.get(k) != v]
    if not changed:
        return None
    more = f", and {len(changed) - 6} more" if len(changed) > 6 else ""
    return f"Changed from {Path(experiment_file).name}: {', '.join(changed[:6])}{more}."


def _data_tags(dataset: Dataset) -> dict[str, str]:
    """What the run trained on: kind, raw folder, split and store ids, part sizes, galaxies left out."""
    split = dataset.split
    return {
        names.TAG_DATA_KIND_OF_RUN: "synthetic" if dataset.workspace.is_synthetic else "real",
        names.TAG_DATA_RAW_DIR: str(dataset.workspace.raw.resolve()),
        names.TAG_DATA_SPLIT_ID: split.id,
        names.TAG_DATA_STORE_ID: str(dataset.store.meta.get("content_id")),
        **{names.data_part_size(part): str(len(p)) for part, p in dataset.parts.items()},
        # galaxies of the split without a usable crop (corrupt or missing image), left out
        names.TAG_DATA_LEFT_OUT: str(sum(split.counts[part] - len(p) for part, p in dataset.parts.items())),
    }


def _log_datasets(dataset: Dataset) -> None:
    """The three parts as MLflow dataset inputs of the active run (the runs table's Dataset column).

    Each is the part's asset ids, named `<kind>-<part>`, sourced from the crop
    store; its digest is the split id and the store's content id, so two runs
    show the same digest exactly when they saw the same galaxies and crops.
    """
    tags = _data_tags(dataset)
    digest = f"{tags['data.split_id']}-{tags['data.store_content_id'][:12]}"
    parts = [p for p in dataset.parts.values() if len(p)]
    with warnings.catch_warnings():
        # MLflow registers its local-artifact source twice and warns that a path matches both.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        # and that integer columns cannot hold missing values: asset ids never are missing.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        datasets = [
            mlflow.data.from_pandas(pd.DataFrame({"asset_id": p.asset_ids}), source=str(dataset.workspace.store),
                                    name=f"{tags['data.kind']}-{p.name}", digest=digest)
            for p in parts
        ]
        mlflow.log_inputs(datasets=datasets, contexts=[p.name for p in parts], tags_list=[None] * len(parts))


def _run(cfg, client, run_id, experiment_id, run_dir, dataset, loss, resuming, init, extra_callbacks,
         verbose) -> TrainResult:
    """Fit, evaluate and record one run (the active MLflow run `run_id`), from `init`'s weights if given."""
    skip = mlflow_runs.logged_steps(client, run_id) if resuming else None
    metrics_logger = cb.MlflowMetricsLogger(client, run_id, skip)
    with fitting(cfg, loss, run_dir, resume=resuming, data=str(dataset.workspace.db),
                 metrics_logger=metrics_logger, init=init) as f:
        mlflow_runs.set_tags(client, run_id, f.runtime)  # a resume may run on another machine: its runtime
        if resuming:
            f.restore()
        else:
            mlflow_runs.log_params(client, run_id, knobs(cfg))
            _log_datasets(dataset)
            config_path = dump_yaml(cfg, run_dir / names.CONFIG_ARTIFACT, built=f.callback_params)
            client.log_artifact(run_id, str(config_path))
        if f.initial_epoch < cfg.train.epochs:
            logger.info("training %s for epochs %d..%d (run %s)", cfg.name, f.initial_epoch + 1, cfg.train.epochs,
                        run_id)
        fitted = f.fit(dataset, extra_callbacks=extra_callbacks, verbose=verbose)
        metrics, history = record(cfg, client, run_id, run_dir, fitted.model, loss, dataset, resuming=resuming,
                                  extra_metrics=fitted.extra_metrics() or None)
    epochs = len(history.get("loss", []))
    return TrainResult(run_id, experiment_id, "completed", epochs, f.initial_epoch if resuming else None,
                       model_uri.keras_model_uri(run_id), metrics, history)
