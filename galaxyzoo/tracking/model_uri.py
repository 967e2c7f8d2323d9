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
from galaxyzoo.system.tempdirs import scratch
from galaxyzoo.tracking import names

RUN_ID = re.compile(r"[0-9a-f]{32}")  # how MLflow spells a run id
LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")  # and an MLflow 3 logged model's id


def load_keras(uri: str):
    """The uncompiled Keras model at `uri`, read from a download that is removed once it is loaded.

    Left to itself MLflow downloads a model from a store into a new temporary folder
    and never removes it: one more in /tmp for every warm start and every evaluate.
    A local folder (a packaged model's own artifact, say) it reads in place, uncopied.
    """
    from urllib.parse import urlparse

    import mlflow.keras

    if not urlparse(uri).scheme:
        return mlflow.keras.load_model(uri, load_model_kwargs={"compile": False})
    with scratch("galaxyzoo-model") as dst:
        return mlflow.keras.load_model(uri, dst_path=dst, load_model_kwargs={"compile": False})


def keras_model_uri(run_id: str) -> str:
    """`runs:/<run_id>/model`: the Keras model the training run logged."""
    return f"runs:/{run_id}/{names.MODEL_NAME}"


def model_uri_for(model: str) -> str:
    """A bare run id means that run's logged model, a bare logged model id `models:/<id>`; anything
    else is an MLflow model URI or path."""
    if RUN_ID.fullmatch(model):
        return keras_model_uri(model)
    return f"models:/{model}" if LOGGED_MODEL_ID.fullmatch(model) else model


def source_run_id(client, uri: str, option: str = "--model") -> str | None:
    """The run that logged the model at `uri`: runs:/ID/..., models:/NAME/VERSION, models:/NAME@ALIAS,
    or a logged model's id (`m-...`, also as `models:/m-...`). `option` names `uri` in the error."""
    from mlflow.exceptions import MlflowException

    try:
        if uri.startswith("runs:/"):
            return uri.removeprefix("runs:/").split("/", 1)[0]
        rest = uri.removeprefix("models:/")
        if rest.startswith("m-") and not any(c in rest for c in "/@"):  # an MLflow 3 logged-model id
            return client.get_logged_model(rest).source_run_id
        if uri.startswith("models:/"):
            name, _, alias = rest.partition("@")
            if alias:
                return client.get_model_version_by_alias(name, alias).run_id
            name, _, version = rest.rpartition("/")
            return client.get_model_version(name, version).run_id
    except MlflowException as exc:
        raise GalaxyZooError(f"{option} {uri}: {exc.message}") from None
    return None


def network_uri(uri: str, run_id: str | None) -> str:
    """The Keras network behind `uri`, whose run is `run_id` (`source_run_id`).

    A `models:/` URI names a registered version or a logged model, which for a
    training run may be the packaged model (crop + network, see promote); the
    network it wraps is its run's Keras model, as for `runs:/ID/packaged_model`.
    Other URIs and paths name a Keras model themselves.
    """
    if run_id is None:
        return uri
    packaged = uri.rstrip("/") == f"runs:/{run_id}/{names.PACKAGED_MODEL_NAME}"  # a run's own packaged model
    return keras_model_uri(run_id) if uri.startswith("models:/") or packaged else uri


def check_network_run(client, run_id: str, model: str, option: str = "--model") -> None:
    """Refuse `--model model` (or `option`) when its run `run_id` is not in the store (a typo, or another
    store), or is an ensemble's, which has no Keras network of its own to evaluate or start from."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise GalaxyZooError(f"{option} {model}: no such run {run_id} in {client.tracking_uri}") from None
    if names.TAG_ENSEMBLE in run.data.tags:
        raise GalaxyZooError(f"{option} {model}: run {run_id} is an ensemble of {run.data.tags[names.TAG_ENSEMBLE]} "
                             "runs, with no network of its own; name one of its members (its tag "
                             f"{names.TAG_ENSEMBLE_MEMBERS})")


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
