"""Put the best finished run's model in the MLflow Model Registry, behind the alias `champion`.

The best run is the finished run (of an experiment, or the trials of one sweep)
with the best final value of a metric that also has a logged Keras model.
Without a scope, the runs compared are the galaxyzoo trainings (found by their
`config_hash` tag) of the experiment that holds the latest one, whatever its
name: a bare `mlflow run . -e sweep` lands in MLflow's `Default` experiment.
The registered model is the packaged one (crop, scaling, network, as one
pyfunc model) that the training run logged (`packaged.log_packaged_model`; runs
from before it did are packaged here), registered as a new version of
`galaxyzoo-cnn`; the version's description says what goes in and comes out,
how to call it, what it was trained on and what it beat. The alias then points
at that version. Aliases replace the deprecated registry stages.

>>> result = promote(client)
>>> result.model_uri
'models:/galaxyzoo-cnn@champion'
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from galaxyzoo import schema
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import compare, mlflow_runs, names
from galaxyzoo.tracking.model_uri import find_packaged_model
from galaxyzoo.tracking.run_config import download_run_config

logger = logging.getLogger(__name__)

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
    scope: str  # which runs were compared, in words
    ranking: tuple[tuple[str, str, float], ...] = ()  # (run id, run name, value), best first

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"


def promote(
    client,
    *,
    experiment_name: str | None = None,
    sweep_run: str | None = None,
    run_id: str | None = None,
    metric: str = "val_rmse",
    mode: str = "auto",
    model_name: str = "galaxyzoo-cnn",
    alias: str = "champion",
    project_run_id: str | None = None,
) -> PromoteResult:
    """Register the best run's packaged model as a new version of `model_name` and alias it.

    Scope: run `run_id` alone (e.g. an ensemble run, which no ranking
    includes: it has no Keras model of its own), else `sweep_run`'s trials,
    else `experiment_name`'s trainings, else those of the experiment holding
    the latest galaxyzoo training. With
    `project_run_id` (the run `mlflow run . -e promote` created; the CLI passes
    MLFLOW_RUN_ID), that run is named and tagged with what was promoted.
    """
    mode = resolve_mode(metric, mode)
    check_names(model_name, alias)  # a bad alias must not leave a registered version without one
    if run_id:
        runs, where = [mlflow_runs.named_run(client, run_id, "--run")], f"run {run_id} (named by --run)"
    else:
        _, runs, where = scope(client, experiment_name=experiment_name, sweep_run=sweep_run)
    ranked = ranked_runs(client, runs, metric=metric, mode=mode, where=where, ensembles=bool(run_id))
    best = ranked[0]
    model_uri = packaged_model_uri(client, best)
    version = _register(client, model_uri, model_name, alias, ranked, metric, mode, where)
    _describe_model(client, model_name)
    client.set_registered_model_alias(model_name, alias, version)
    result = PromoteResult(model_name, version, alias, best.info.run_id, metric, best.data.metrics[metric],
                           len(ranked), where,
                           tuple((r.info.run_id, r.info.run_name or "", r.data.metrics[metric]) for r in ranked))
    if project_run_id:  # under `mlflow run . -e promote`: say what that run did
        client.update_run(project_run_id, name=f"promote → {model_name} v{version}")
        mlflow_runs.set_tags(client, project_run_id, {names.TAG_PROMOTE: result.model_uri,
                                               names.TAG_PROMOTED_VERSION: version,
                                               names.TAG_PROMOTED_RUN: result.run_id,
                                               names.TAG_SELECTED_BY: f"{mode} {metric}"})
    return result


def resolve_mode(metric: str, mode: str) -> str:
    """`min` or `max` for `mode` (one of MODES; auto: max for R² metrics, else min)."""
    if mode not in MODES:
        raise GalaxyZooError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        return "min" if compare.lower_is_better(metric) else "max"
    return mode


def packaged_model_uri(client, run) -> str:
    """`models:/<id>` of the packaged model `run` logged, else (an older run) one packaged now."""
    ensemble = names.TAG_ENSEMBLE in run.data.tags
    found = find_packaged_model(client, run, names.ENSEMBLE_CLASS if ensemble else names.PACKAGED_CLASS)
    if found or ensemble:  # an ensemble run always logs one; only a training run can be packaged now
        if not found:
            raise GalaxyZooError(f"ensemble run {run.info.run_id} has no packaged model; "
                                 "run `galaxyzoo ensemble` again")
        return found
    from galaxyzoo.registry import packaged  # Keras and TensorFlow: only promote's packaging needs them

    # Link it to the run's last epoch, as training does (mlflow_runs.log_keras_model).
    losses = mlflow_runs.metric_histories(client, run.info.run_id, ["loss"]).get("loss")
    return packaged.log_packaged_model(client, run.info.run_id, step=losses[-1][0] if losses else 0)


def check_names(model_name: str, alias: str) -> None:
    """Refuse a model name or alias the registry would refuse, before anything is registered."""
    from mlflow.exceptions import MlflowException

    # The registry's own checks, so the rules cannot drift from what it enforces.
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
        _validate_model_name,
    )

    checks = (("--model-name", model_name, (_validate_model_name,)),
              ("--alias", alias, (_validate_model_alias_name, _validate_model_alias_name_reserved)))
    for option, value, validators in checks:
        try:
            for validate in validators:
                validate(value)
        except MlflowException as exc:
            raise GalaxyZooError(f"{option} {value!r}: {exc.message}") from None


def scope(client, *, experiment_name: str | None = None, sweep_run: str | None = None) -> tuple[str, list, str]:
    """`(experiment_id, runs, where)`: the runs to compare and a phrase naming them."""
    if sweep_run or experiment_name:
        experiment_id, runs = compare.runs_of(client, experiment_name=experiment_name, sweep_run=sweep_run)
        return experiment_id, runs, f"sweep run {sweep_run}" if sweep_run else f"experiment {experiment_name!r}"
    experiments = [e.experiment_id for e in client.search_experiments()]
    # Every galaxyzoo training run carries a config hash: that is how they are told from others.
    latest = client.search_runs(experiments, filter_string=f"tags.{names.TAG_CONFIG_HASH} LIKE '%'",
                                order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
    if not latest:
        raise GalaxyZooError(
            f"nothing to promote in {client.tracking_uri}: no galaxyzoo training run in any experiment; "
            "train with `galaxyzoo train` or `mlflow run . -e sweep` first (or name --experiment-name)"
        )
    name = client.get_experiment(latest[0].info.experiment_id).name
    experiment_id, runs = compare.runs_of(client, experiment_name=name)
    runs = [r for r in runs if names.TAG_CONFIG_HASH in r.data.tags]  # `Default` may hold other projects' runs
    return experiment_id, runs, f"experiment {name!r} (it holds the latest galaxyzoo training)"


def ranked_runs(client, runs: list, *, metric: str, mode: str, where: str, to: str = "promote",
                ensembles: bool = False) -> list:
    """The FINISHED runs with a logged Keras model and a finite `metric`, best first (never empty).

    With `ensembles`, an ensemble run (which has no Keras model of its own) counts too: `promote
    --run` registers its packaged model. `to` is what the runs are chosen for, as the refusals
    say it ("nothing to promote in ...").
    """
    with_model = {r.info.run_id for r in runs if ensembles and names.TAG_ENSEMBLE in r.data.tags}
    for experiment_id in sorted({r.info.experiment_id for r in runs}):
        with_model |= runs_with_model(client, experiment_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    candidates = [
        r
        for r in finished
        if r.info.run_id in with_model and math.isfinite(compare.metric_value(r, metric))
    ]
    if not candidates:
        finished_with_model = sum(r.info.run_id in with_model for r in finished)
        if not finished_with_model:
            raise GalaxyZooError(
                f"nothing to {to} in {where}: no finished run has a logged model ({len(runs)} runs, "
                f"{len(finished)} finished); train one with `galaxyzoo train` first"
            )
        raise GalaxyZooError(
            f"nothing to {to} in {where}: none of the {finished_with_model} finished runs with a model "
            f"has a finite value of the metric {metric!r}"
        )
    return sorted(candidates, key=lambda r: r.data.metrics[metric], reverse=mode == "max")


def runs_with_model(client, experiment_id: str) -> set[str]:
    """Ids of the runs of an experiment that logged the training's Keras model."""
    found, token = set(), None
    while True:
        page = client.search_logged_models(
            [experiment_id], filter_string=f"name = '{names.MODEL_NAME}'", max_results=1000, page_token=token
        )
        found.update(m.source_run_id for m in page if m.source_run_id)
        token = page.token
        if not token:
            return found


MODEL_DESCRIPTION = """\
Galaxy Zoo 2 morphology from raw galaxy images: a CNN packaged with the crop and scaling it was
trained with (galaxyzoo). In: a DataFrame column `image`, a raw 424×424 GZ2 JPEG, base64-encoded.
Out: the 37 GZ2 vote fractions, the most likely path through the decision tree, the crop branch and an
error per row. Each version's description says what it was trained on, how it was chosen and how to call it.
"""
MODEL_TAGS = {"project": "galaxyzoo", "task": "galaxy morphology (GZ2 vote fractions)",
              "input": "image: base64 raw 424x424 GZ2 JPEG",
              "output": "37 fractions, most_likely_path, crop_branch, error"}


def _describe_model(client, model_name: str) -> None:
    """The registered model's own description and tags: what every version shares."""
    client.update_registered_model(model_name, description=MODEL_DESCRIPTION)
    for key, value in MODEL_TAGS.items():
        client.set_registered_model_tag(model_name, key, value)


def _register(client, model_uri: str, model_name: str, alias: str, ranked: list, metric: str, mode: str,
              where: str) -> int:
    import mlflow

    run = ranked[0]
    # MLflow registers, and its SQL registry looks a `models:/<id>` source up, through the
    # process-wide tracking URI, not the client's: point it at the client's store first.
    mlflow.set_tracking_uri(client.tracking_uri)
    existing = _existing_version(client, model_name, run.info.run_id, model_uri, alias)
    if existing is None:
        version = int(mlflow.register_model(model_uri, model_name).version)
    else:
        version, held = int(existing.version), sorted(existing.aliases)
        logger.warning("%s v%d already holds this model of run %s: pointing %s at it instead of registering another%s",
                       model_name, version, run.info.run_id, alias,
                       f" (its description and tags stay those of the promote that gave it @{', @'.join(held)})"
                       if held else "")
        if held:  # an alias relies on the record of why it points here: this promote's ranking would replace it
            return version
        earlier = existing.tags.get(names.TAG_SELECTED_BY, "").partition(" ")[2]
        if earlier and earlier != metric:  # the previous record's metric tag would stay beside this one's
            client.delete_model_version_tag(model_name, str(version), earlier)
    description = _description(client, model_name, version, ranked, metric, mode, where)
    client.update_model_version(model_name, version, description=description)
    facts = _facts(run)
    tags = {names.TAG_SOURCE_RUN: run.info.run_id, names.TAG_SELECTED_BY: f"{mode} {metric}",
            metric: repr(run.data.metrics[metric]), names.TAG_COMPARED_RUNS: str(len(ranked)), names.TAG_SCOPE: where,
            names.TAG_DATA_KIND: facts.get(names.TAG_DATA_KIND_OF_RUN, ""),
            names.TAG_SPLIT_ID: facts.get(names.TAG_DATA_SPLIT_ID, "")}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version


def _existing_version(client, model_name: str, run_id: str, model_uri: str, alias: str):
    """The version (a ModelVersion, with its aliases) that already holds `run_id`'s model `model_uri`, if
    any: the one `alias` points at, else the oldest (one a killed promote left, the alias being set last,
    or one the alias moved away from). One run's model is one version, so promoting it again never
    registers a copy beside it."""
    found = client.search_model_versions(f"name = '{mlflow_runs.quote(model_name)}' and run_id = '{run_id}'")
    # The search leaves `aliases` empty; the version itself has them.
    same = [client.get_model_version(model_name, v.version)
            for v in sorted(found, key=lambda v: int(v.version)) if v.source == model_uri]
    return next((v for v in same if alias in v.aliases), same[0] if same else None)


def _description(client, model_name: str, version: int, ranked: list, metric: str, mode: str, where: str) -> str:
    """Markdown for the version page: what it is, in and out, how to call it, its data, why it won, metrics,
    config. The first line is plain text: the registry's versions table shows only its start, unrendered."""
    run = ranked[0]
    metrics, params = run.data.metrics, _facts(run)
    uri = f"models:/{model_name}/{version}"
    size, colour = params.get("data.image_size", "?"), "grayscale" if params.get("data.channels") == "1" else "colour"
    kind = params.get(names.TAG_DATA_KIND_OF_RUN) or "real"
    lines = [
        f"{run.info.run_name}: {metric} {metrics[metric]:.5g}, {'lowest' if mode == 'min' else 'highest'} of "
        f"{len(ranked)} runs; {size} px {colour}, trained on {kind} galaxies.",
        "",
        "**In**: a DataFrame with one column `image`: a raw 424×424 Galaxy Zoo 2 JPEG (or PNG), "
        f"base64-encoded. The model crops and scales it as in training ({size} px, {colour}).",
        "",
        f"**Out**: one row per image: the {schema.N_ANSWERS} vote fractions (`{schema.ANSWERS[0].stem}`, ...), "
        "`most_likely_path` (answers joined by ` > `), `crop_branch` (center106, center212, full or fallback) "
        "and `error` (empty, or why the image was unreadable; its fractions are then NaN, null over REST).",
        "",
        "Python:",
        "```python",
        "import base64, mlflow, pandas as pd",
        f'model = mlflow.pyfunc.load_model("{uri}")',
        'image = base64.b64encode(open("100008.jpg", "rb").read()).decode()',
        'print(model.predict(pd.DataFrame({"image": [image]})))',
        "```",
        f"REST, after `mlflow models serve -m {uri} --env-manager local -p 5000`:",
        "```bash",
        "curl -s localhost:5000/invocations -H 'Content-Type: application/json' \\",
        '  -d "{\\"dataframe_split\\": {\\"columns\\": [\\"image\\"], \\"data\\": [[\\"$(base64 -w0 100008.jpg)\\"]]}}"',
        "```",
        "",
        f"**Training data**: {_data_text(params)}",
        "",
        f"**Chosen**: {_choice_text(ranked, metric, mode, where)}",
        "",
        *_ensemble_text(run),
        "Metrics:",
        *(f"- {k}: {metrics[k]:.5g}" for k in sorted(k for k in metrics if compare.HEADLINE.fullmatch(k))),
        "",
        "Config:",
        "```yaml",
        _config_text(client, run.info.run_id).rstrip(),
        "```",
    ]
    return "\n".join(lines)


def _facts(run) -> dict[str, str]:
    """A run's params and tags in one mapping: data identity and sizes are tags since the runs
    log only the config's knobs as params (older runs have them as params)."""
    return {**run.data.params, **run.data.tags}


def _data_text(params: dict[str, str]) -> str:
    """Which data the run trained on, from its `data.*` params and tags."""
    if params.get(names.TAG_DATA_KIND_OF_RUN) == "synthetic":
        source = (f"synthetic galaxies (galaxyzoo synth, n={params.get('data.synthetic_n', '?')}, "
                  f"seed {params.get('data.synthetic_seed', '?')})")
    else:
        source = (f"real GZ2 images with the gz2_hart16 vote fractions (Hart et al. 2016) from "
                  f"`{params.get(names.TAG_DATA_RAW_DIR, params.get('data.source', '?'))}`")
    sizes = " / ".join(f"{params.get(names.data_part_size(part), '?')} {part}" for part in ("train", "val", "test"))
    return f"{source}; split `{params.get(names.TAG_DATA_SPLIT_ID, '?')}` ({sizes})."


def _ensemble_text(run) -> list[str]:
    """For an ensemble run, the lines naming its members; nothing for a training run."""
    members = run.data.tags.get(names.TAG_ENSEMBLE_MEMBERS)
    if not members:
        return []
    listed = ", ".join(f"`{m}`" for m in members.split(","))
    return [f"**Ensemble**: the mean prediction of the runs {listed} "
            f"(chosen by {run.data.tags.get(names.TAG_SELECTED_BY, '?')} in {run.data.tags.get(names.TAG_SCOPE, '?')}).",
            ""]


def _choice_text(ranked: list, metric: str, mode: str, where: str) -> str:
    """Why this run: its metric, how many runs it beat, and the runner-up."""
    run = ranked[0]
    text = (f"run `{run.info.run_id}` ({run.info.run_name}), {metric} {run.data.metrics[metric]:.5g} "
            f"({'lowest' if mode == 'min' else 'highest'}), the best of {len(ranked)} finished runs with a "
            f"model in {where}")
    if len(ranked) == 1:
        return text + "; it was the only candidate."
    second = ranked[1]
    return (text + f"; runner-up `{second.info.run_id}` ({second.info.run_name}), "
            f"{metric} {second.data.metrics[metric]:.5g}.")


def _config_text(client, run_id: str) -> str:
    """The resolved experiment config logged with the run, or a note that it is missing."""
    with scratch() as tmp:
        try:
            return download_run_config(client, run_id, tmp).read_text(encoding="utf-8")
        except GalaxyZooError:
            return f"# the run has no {names.CONFIG_ARTIFACT} artifact"
