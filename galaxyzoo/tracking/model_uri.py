"""Which model a `--model` names, and which run logged it.

A model is named by a bare run id (that run's Keras model), `runs:/ID/model`,
`models:/NAME/VERSION`, `models:/NAME@ALIAS`, an MLflow 3 logged-model id
(`m-...`) or a local folder. `evaluate` turns any of them into a URI and the
run behind it (its config says what data the model was trained on); the
packaged model wraps its run's Keras model; `promote` registers the packaged
model a run logged.

>>> model_uri_for("0123456789abcdef0123456789abcdef")
'runs:/0123456789abcdef0123456789abcdef/model'
>>> source_run_id(client, "models:/galaxyzoo-cnn@champion")      # doctest: +SKIP
"""

from __future__ import annotations

import re

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking import names

RUN_ID = re.compile(r"[0-9a-f]{32}")  # how MLflow spells a run id


def keras_model_uri(run_id: str) -> str:
    """`runs:/<run_id>/model`: the Keras model the training run logged."""
    return f"runs:/{run_id}/{names.MODEL_NAME}"


def model_uri_for(model: str) -> str:
    """A bare run id means that run's logged model; anything else is an MLflow model URI or path."""
    return keras_model_uri(model) if RUN_ID.fullmatch(model) else model


def source_run_id(client, uri: str) -> str | None:
    """The run that logged the model at `uri`: runs:/ID/..., models:/NAME/VERSION or models:/NAME@ALIAS."""
    from mlflow.exceptions import MlflowException

    try:
        if uri.startswith("runs:/"):
            return uri.removeprefix("runs:/").split("/", 1)[0]
        if uri.startswith("models:/"):
            name, _, rest = uri.removeprefix("models:/").partition("@")
            if rest:
                return client.get_model_version_by_alias(name, rest).run_id
            name, _, version = uri.removeprefix("models:/").rpartition("/")
            return client.get_model_version(name, version).run_id
        if uri.startswith("m-"):  # an MLflow 3 logged-model id
            return client.get_logged_model(uri).source_run_id
    except MlflowException as exc:
        raise GalaxyZooError(f"--model {uri}: {exc.message}") from None
    return None


def check_run_exists(client, run_id: str, model: str) -> None:
    """Refuse `--model model` when its run `run_id` is not in the store (a typo, or another store)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        raise GalaxyZooError(f"--model {model}: no such run {run_id} in {client.tracking_uri}") from None


def find_packaged_model(client, run, packaged_class: str) -> str | None:
    """`models:/<id>` of the latest packaged model `run` logged in full whose pickle names
    `packaged_class`, or None (an older run, or one packaged by an earlier layout of galaxyzoo)."""
    from mlflow.entities import LoggedModelStatus

    found = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"name = '{names.PACKAGED_MODEL_NAME}' AND source_run_id = '{run.info.run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    # Status is checked here: the SQL store does not filter on it by name. A killed training's
    # half-logged one (PENDING) is passed over.
    ready = [m for m in found if m.status == LoggedModelStatus.READY
             and m.tags.get(names.TAG_PACKAGED_CLASS) == packaged_class]
    return f"models:/{ready[0].model_id}" if ready else None
