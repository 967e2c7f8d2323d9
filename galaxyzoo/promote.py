"""Put the best finished run's model in the MLflow Model Registry, behind the alias `champion`.

The best run is the finished run (of an experiment, or the trials of one sweep)
with the best final value of a metric that also has a logged Keras model. Its
model is packaged with its preprocessing (`predict.log_packaged_model`: crop,
scaling, network, as one pyfunc model) and registered as a new version of
`galaxyzoo-cnn`, described with its metrics, config and source run; the alias
then points at that version. Aliases replace the deprecated registry stages.

>>> result = promote(client, experiment_name="galaxyzoo")
>>> result.model_uri
'models:/galaxyzoo-cnn@champion'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from galaxyzoo import compare, tracking
from galaxyzoo.errors import GalaxyZooError

MODES = ("auto", "min", "max")  # auto: min, except for R² metrics


@dataclass(frozen=True)
class PromoteResult:
    model_name: str
    version: int
    alias: str
    run_id: str
    metric: str
    value: float
    candidates: int  # finished runs with a model and the metric

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"


def promote(
    client,
    *,
    experiment_name: str | None = None,
    sweep_run: str | None = None,
    metric: str = "val_rmse",
    mode: str = "auto",
    model_name: str = "galaxyzoo-cnn",
    alias: str = "champion",
) -> PromoteResult:
    """Register the best run's packaged model as a new version of `model_name` and alias it."""
    if mode not in MODES:
        raise GalaxyZooError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "min" if compare.lower_is_better(metric) else "max"
    experiment_id, runs = compare.runs_of(client, experiment_name=experiment_name, sweep_run=sweep_run)
    where = f"sweep run {sweep_run}" if sweep_run else f"experiment {experiment_name!r}"
    best, count = best_run(client, experiment_id, runs, metric=metric, mode=mode, where=where)
    from galaxyzoo import predict

    model_uri = predict.log_packaged_model(client, best.info.run_id)
    version = _register(client, model_uri, model_name, best, metric, mode, where, count)
    client.set_registered_model_alias(model_name, alias, version)
    result = PromoteResult(model_name, version, alias, best.info.run_id, metric, best.data.metrics[metric], count)
    if env_run := tracking.run_id_from_env():  # under `mlflow run . -e promote`: say what that run did
        tracking.set_tags(client, env_run, {compare.TAG_PROMOTE: result.model_uri, "promoted_version": version,
                                            "promoted_run_id": result.run_id, "selected_by": f"{mode} {metric}"})
    return result


def best_run(client, experiment_id: str, runs: list, *, metric: str, mode: str, where: str):
    """`(run, candidates)`: the best FINISHED run with a logged model and a finite `metric`."""
    with_model = runs_with_model(client, experiment_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    candidates = [
        r
        for r in finished
        if r.info.run_id in with_model and math.isfinite(r.data.metrics.get(metric, math.nan))
    ]
    if not candidates:
        finished_with_model = sum(r.info.run_id in with_model for r in finished)
        if not finished_with_model:
            raise GalaxyZooError(
                f"nothing to promote in {where}: no finished run has a logged model ({len(runs)} runs, "
                f"{len(finished)} finished); train one with `galaxyzoo train` first"
            )
        raise GalaxyZooError(
            f"nothing to promote in {where}: none of the {finished_with_model} finished runs with a model "
            f"has the metric {metric!r}"
        )
    pick = min if mode == "min" else max
    return pick(candidates, key=lambda r: r.data.metrics[metric]), len(candidates)


def runs_with_model(client, experiment_id: str) -> set[str]:
    """Ids of the runs of an experiment that logged the training's Keras model."""
    found, token = set(), None
    while True:
        page = client.search_logged_models(
            [experiment_id], filter_string=f"name = '{tracking.MODEL_NAME}'", max_results=1000, page_token=token
        )
        found.update(m.source_run_id for m in page if m.source_run_id)
        token = page.token
        if not token:
            return found


def _register(client, model_uri: str, model_name: str, run, metric: str, mode: str, where: str, count: int) -> int:
    import mlflow

    version = int(mlflow.register_model(model_uri, model_name).version)
    client.update_model_version(model_name, version, description=_description(client, run, metric, mode, where, count))
    tags = {"source_run_id": run.info.run_id, "selected_by": f"{mode} {metric}", metric: repr(run.data.metrics[metric])}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version


def _description(client, run, metric: str, mode: str, where: str, count: int) -> str:
    """Markdown for the version page: why it was chosen, its final metrics and its config."""
    metrics = run.data.metrics
    headline = sorted(k for k in metrics if compare.HEADLINE.fullmatch(k))
    lines = [
        f"Run `{run.info.run_id}` ({run.info.run_name}), the best of {count} finished runs with a model "
        f"in {where} by {metric} ({'lower' if mode == 'min' else 'higher'} is better).",
        "",
        "Metrics:",
        *(f"- {k}: {metrics[k]:.5g}" for k in headline),
        "",
        "Config:",
        "```yaml",
        _config_text(client, run.info.run_id).rstrip(),
        "```",
    ]
    return "\n".join(lines)


def _config_text(client, run_id: str) -> str:
    """The resolved experiment config logged with the run, or a note that it is missing."""
    import tempfile

    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, tracking.CONFIG_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return f"# the run has no {tracking.CONFIG_ARTIFACT} artifact"
        with open(path, encoding="utf-8") as f:
            return f.read()
