"""Average the predictions of several finished runs and record the ensemble as one MLflow run.

```python
from galaxyzoo.training.ensemble import ensemble
result = ensemble(client, sweep_run="<parent run id>", top_k=3)   # or experiment_name=..., or run_ids=[...]
result.run_id, result.metrics["test_rmse"]
```

The members are the top `top_k` finished runs with a Keras model, ranked by a
metric exactly as `galaxyzoo promote` ranks them (`registry.promote.scope` and
`ranked_runs`), or the runs named. They must crop alike (`data.image_size`,
`data.channels`) and share one split (the `data.split_id` tag), since the
ensemble is scored on one test split. Runs of the Dirichlet head, whose outputs are
concentrations, are left out of a ranked choice (a warning says how many) and refused
when named; so is a run named twice. Fewer ranked runs than `top_k` make a smaller
ensemble, with a warning.

The ensemble run, named `ensemble of K`, holds:

- tags: `galaxyzoo.ensemble` (K, what tells it from a training), `ensemble.members`
  (their run ids, best first), `selected_by`, `scope`, and the best member's `data.*`
  tags, with its `data.*` params: the data the ensemble was scored on;
- a description naming each member (run id, name, ranking metric) and how they were chosen;
- the best member's `config.yaml`;
- the test metrics of a training run (`training.record.score_on_test`; `test_loss`
  by the best member's loss; with its `evaluate.tta`, the `_tta` twins too), the
  same metrics on the validation split (`val_rmse`, ...) and the per-question table;
- the packaged model (`registry.packaged.EnsembleModel`), which averages the members'
  networks after the crop, as `predict` and `mlflow models serve` load it.

It has no Keras model of its own, so promote's rankings and later ensembles pass
over it; `galaxyzoo promote --run ID` registers it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from galaxyzoo.config.experiment import CONCENTRATION_HEAD, load_experiment
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.ensemble import MeanOfModels
from galaxyzoo.registry import evaluate, packaged, promote
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import mlflow_runs, names
from galaxyzoo.tracking.model_uri import keras_model_uri
from galaxyzoo.tracking.run_config import download_run_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnsembleResult:
    run_id: str
    members: tuple[str, ...]  # run ids, best first
    metrics: dict[str, float]  # test_* and val_*, as logged
    model_uri: str  # the packaged model
    scope: str  # which runs the members were chosen from, in words


def ensemble(
    client,
    *,
    experiment_name: str | None = None,
    sweep_run: str | None = None,
    run_ids: tuple[str, ...] | list[str] = (),
    top_k: int = 3,
    metric: str = "val_rmse",
    mode: str = "auto",
    batch_size: int | None = None,
    project_run_id: str | None = None,
    progress: bool = True,
) -> EnsembleResult:
    """Log the mean of the best `top_k` runs (or of every run in `run_ids`) as one ensemble run.

    Scope as `promote`'s: `run_ids`, else `sweep_run`'s trials, else
    `experiment_name`'s trainings, else the experiment holding the latest
    galaxyzoo training. With `project_run_id` (the run `mlflow run . -e
    ensemble` created) that run becomes the ensemble run.
    """
    if top_k < 1:
        raise GalaxyZooError(f"--top-k: must be at least 1, got {top_k}")
    twice = next((run_id for i, run_id in enumerate(run_ids) if run_id in run_ids[:i]), None)
    if twice is not None:  # counted once, the ensemble would have fewer members than named
        raise GalaxyZooError(f"--runs {twice}: named twice; name each member once")
    mode = promote.resolve_mode(metric, mode)
    members, where = _members(client, list(run_ids), experiment_name, sweep_run, top_k, metric, mode)
    ids = [m.info.run_id for m in members]
    best = members[0]
    tags = {names.TAG_ENSEMBLE: len(ids), names.TAG_ENSEMBLE_MEMBERS: ",".join(ids),
            names.TAG_SELECTED_BY: f"{mode} {metric}", names.TAG_SCOPE: where,
            names.TAG_NOTE: _note(members, metric, mode, where),
            **{k: v for k, v in best.data.tags.items() if k.startswith("data.")}}
    _close_killed_ensembles(client, best.info.experiment_id)
    with scratch() as tmp:
        # Held (locked) while this process lives: the run is created only once its marker is.
        tags[names.TAG_HELD_BY] = mlflow_runs.held_by(tmp)
        config_path, configs = _shared_configs(client, members, Path(tmp))
        with mlflow_runs.open_run(client, experiment_id=best.info.experiment_id, run_id=project_run_id,
                                  run_name=f"ensemble of {len(ids)}", tags=tags) as active:
            run_id = active.info.run_id
            with mlflow_runs.recording_outcome(client, run_id):
                mlflow_runs.log_params(client, run_id, {k: v for k, v in best.data.params.items()
                                                        if k.startswith("data.")})
                client.log_artifact(run_id, str(_headed(config_path, members, Path(tmp))))
                metrics = _score(client, run_id, ids, configs, batch_size, Path(tmp), progress)
                model_uri = packaged.log_ensemble_model(client, run_id, ids)
    return EnsembleResult(run_id, tuple(ids), metrics, model_uri, where)


def _close_killed_ensembles(client, experiment_id: str) -> None:
    """Close FAILED the ensemble runs a killed `ensemble` on this machine left RUNNING for ever.

    Each run names the scratch folder its process held (`TAG_HELD_BY`); the kernel
    dropped that lock with the process, so a free lock is a dead builder. Runs built on another
    machine are left alone: their lock is not visible here.
    """
    running = client.search_runs([experiment_id], f"tags.`{names.TAG_ENSEMBLE}` != '' and "
                                                   "attributes.status = 'RUNNING'")
    for run in running:
        if mlflow_runs.holder_dead(client, run):
            why = "its ensemble process was killed (its scratch folder's lock was free)"
            mlflow_runs.close_failed(client, run.info.run_id, why)
            logger.warning("ensemble: run %s was left RUNNING; %s: closed FAILED", run.info.run_id, why)


def _members(client, run_ids: list[str], experiment_name, sweep_run, top_k: int, metric: str, mode: str):
    """(the member runs, best first; the phrase naming where they were chosen)."""
    if run_ids:
        runs = [mlflow_runs.named_run(client, run_id, "--runs") for run_id in run_ids]
        where = "the runs named by --runs"
    else:
        _, runs, where = promote.scope(client, experiment_name=experiment_name, sweep_run=sweep_run)
        dirichlet = [r for r in runs if r.data.tags.get(names.TAG_HEAD) == CONCENTRATION_HEAD]
        if dirichlet:  # chosen by rank, they would stop the ensemble (`_shared_configs`): left out, and said so
            logger.warning("ensemble: left out %d run(s) with the %r head in %s; ensembles average fractions",
                           len(dirichlet), CONCENTRATION_HEAD, where)
            runs = [r for r in runs if r not in dirichlet]
    ranked = promote.ranked_runs(client, runs, metric=metric, mode=mode, where=where, to="ensemble")
    if run_ids:  # a named run is never dropped silently
        left_out = sorted(set(run_ids) - {r.info.run_id for r in ranked})
        if left_out:
            raise GalaxyZooError(f"--runs {left_out[0]}: not a finished run with a logged model and a finite "
                                 f"value of the metric {metric!r}")
        return ranked, where
    if len(ranked) < top_k:
        logger.warning("ensemble: --top-k %d, but only %d finished run(s) with a model and %r in %s: an "
                       "ensemble of %d", top_k, len(ranked), metric, where, len(ranked))
    return ranked[:top_k], where


def _note(members: list, metric: str, mode: str, where: str) -> str:
    """The run's description: its members, named and scored (the UI cuts the `ensemble.members` tag short)."""
    listed = ", ".join(f"{mlflow_runs.run_link(m, f'`{m.info.run_id}`')} ({m.info.run_name}, {metric} "
                       f"{m.data.metrics[metric]:.5g})" for m in members)
    return f"Ensemble: the mean prediction of {len(members)} runs, chosen by {mode} {metric} in {where}: {listed}."


def _shared_configs(client, members: list, tmp: Path):
    """(the best member's config.yaml path, every member's config), refusing members that crop differently,
    were trained on another split or have the Dirichlet head."""
    configs, paths = [], []
    for i, run in enumerate(members):
        (tmp / f"config{i}").mkdir()
        paths.append(download_run_config(client, run.info.run_id, tmp / f"config{i}"))
        configs.append(load_experiment(paths[-1]))
    best, first = configs[0], members[0]
    crops = (best.data.image_size, best.data.channels)
    split = first.data.tags.get(names.TAG_DATA_SPLIT_ID)
    for run, cfg in zip(members, configs):  # the best member matches itself
        if cfg.model.head == CONCENTRATION_HEAD:  # its loss reads concentrations, the mean is fractions
            raise GalaxyZooError(f"ensemble: run {run.info.run_id} has the {CONCENTRATION_HEAD!r} head; ensembles "
                                 "average the fraction heads (sigmoid, softmax-per-question) only")
        if (cfg.data.image_size, cfg.data.channels) != crops:
            raise GalaxyZooError(
                f"ensemble: run {run.info.run_id} crops {cfg.data.image_size} px with {cfg.data.channels} "
                f"channel(s), run {first.info.run_id} {crops[0]} px with {crops[1]}; members must share "
                "data.image_size and data.channels")
        if run.data.tags.get(names.TAG_DATA_SPLIT_ID) != split:
            raise GalaxyZooError(
                f"ensemble: run {run.info.run_id} was trained on split "
                f"{run.data.tags.get(names.TAG_DATA_SPLIT_ID)}, run {first.info.run_id} on {split}; members "
                "must share the data split they are scored on")
    return paths[0], configs


def _headed(config_path: Path, members: list, tmp: Path) -> Path:
    """The best member's config.yaml, headed by a comment saying whose it is: on the ensemble's Artifacts tab
    its `name` and `description` (`... trial 3: ...`) would read as if the ensemble were that trial."""
    best = members[0].info
    header = (f"# The config of this ensemble's best member, run {best.run_id} ({best.run_name}): the data and\n"
              f"# crop all {len(members)} members share (tag ensemble.members names them), as the packaged ensemble\n"
              "# and `galaxyzoo evaluate` read it. Each member's own config is in its run.\n")
    path = tmp / "headed" / config_path.name
    path.parent.mkdir()
    path.write_text(header + config_path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _score(client, run_id: str, member_ids: list[str], configs: list, batch_size: int | None, tmp: Path,
           progress: bool) -> dict[str, float]:
    """The mean network's test and validation metrics, logged to run `run_id` with the per-question table."""
    from galaxyzoo.data.dataset import load_dataset
    from galaxyzoo.training.fit import make_loss
    from galaxyzoo.training.record import score_on_test

    cfg = configs[0]
    network = MeanOfModels([packaged.load_network(keras_model_uri(m), c, f"run {m}")
                            for m, c in zip(member_ids, configs)])
    loss = make_loss(cfg.train)
    dataset = load_dataset(cfg.data, with_counts=loss.needs_counts, progress=progress)
    batch = batch_size if batch_size is not None else min(cfg.train.batch_size, evaluate.MAX_BATCH)
    test, val = dataset.parts["test"], dataset.parts["val"]
    evaluation, metrics = score_on_test(cfg, test, loss, network, evaluate.predict(network, dataset.images, test.rows, batch))
    if cfg.evaluate.tta:
        y_tta = evaluate.predict(network, dataset.images, test.rows, batch, tta=True)
        metrics.update({names.with_tta(k): v for k, v in score_on_test(cfg, test, loss, network, y_tta)[1].items()})
    y_val = evaluate.predict(network, dataset.images, val.rows, batch)
    scored = evaluate.evaluate_predictions(val.targets, y_val, cfg.train.batch_size).metrics
    metrics.update({names.on_val_split(k): v for k, v in scored.items()})
    mlflow_runs.log_metrics(client, run_id, metrics)
    if cfg.evaluate.tta:
        mlflow_runs.set_tags(client, run_id, {names.TAG_TTA: "true"})
    table = tmp / names.PER_QUESTION_CSV
    evaluation.per_question.to_csv(table, index=False)
    client.log_artifact(run_id, str(table))
    return metrics
