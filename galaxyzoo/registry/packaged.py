"""Raw galaxy images in, 37 vote fractions and the most likely path through the tree out.

A trained network expects crops scaled to [0, 1]; a user has 424x424 GZ2 JPEGs.
`PackagedModel` closes that gap: an MLflow pyfunc model holding the Keras
network, the experiment config it was trained with (crop size and channels)
and the crop code, so every way of loading it — `galaxyzoo predict`,
`mlflow.pyfunc.load_model`, `mlflow models serve` — runs the same
decode -> crop -> scale -> network steps as training did (`prepare` and
`data.stream.GalaxySequence`).

The pyfunc input is a DataFrame with one column, `image`: the image file's
bytes, base64-encoded (JSON-safe, so the REST server takes it too). The output
has one row per input row: the 37 answer fractions (columns named by answer,
`t01_smooth_or_features_a01_smooth`, ...), for a model with the Dirichlet head
the 5th and 95th percentiles of each (`<answer>_p05` for all 37, then
`<answer>_p95`: `INTERVAL_COLUMNS`, from `model.dirichlet.intervals`),
`most_likely_path` (answer stems joined by " > "), `crop_branch` and `error`. A row whose image cannot be
decoded gets NaN fractions (null in the REST server's JSON) and the reason in
`error`; the other rows are unaffected. The model takes one parameter, `tta`
(default false): true averages each image's prediction over the 8 rotations
and flips of its crop (`model.tta`), e.g. `model.predict(frame, params={"tta":
True})`, or `"params": {"tta": true}` beside the served JSON's data.

The crop and scaling are `registry.crops`'s; `predict` and `embed` crop files
there in worker processes and hand each chunk to `predict_crops`, or to
`embed_crops` (the network cut before its head, `galaxyzoo embed`).

Training logs one beside its Keras model (`log_packaged_model`), `promote`
registers it, and `load_packaged` loads one back, refusing a bare Keras model.
`EnsembleModel` is the same pyfunc over the mean of several networks
(`galaxyzoo ensemble` logs one with `log_ensemble_model`).

>>> model = mlflow.pyfunc.load_model("models:/galaxyzoo-cnn@champion")
>>> model.predict(pd.DataFrame({"image": [base64.b64encode(open("100008.jpg", "rb").read()).decode()]}))
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import shutil
import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
# Set by MLflow's scoring server (`mlflow models serve`), which MLflow itself reads the same way.
from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT

from galaxyzoo import schema
from galaxyzoo.config.experiment import CONCENTRATION_HEAD, load_experiment, model_kwargs
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model import dirichlet
from galaxyzoo.model.ensemble import MeanOfModels
from galaxyzoo.model.network import answer_fractions, outputs_concentrations
from galaxyzoo.model.precision import machine_precision, recast
from galaxyzoo.model.tta import average_over_views
from galaxyzoo.registry.crops import Crops, crop_all
from galaxyzoo.system.tempdirs import scratch, tempfiles_in_scratch
from galaxyzoo.tracking import mlflow_runs, names
from galaxyzoo.tracking.model_uri import keras_model_uri, load_keras
from galaxyzoo.tracking.run_config import download_run_config

INPUT_COLUMN = "image"
ANSWER_COLUMNS = [a.stem for a in schema.ANSWERS]
# The Dirichlet head's 90 % interval of each answer's probability (`model.dirichlet.LEVEL`).
INTERVAL_COLUMNS = [f"{c}_p05" for c in ANSWER_COLUMNS] + [f"{c}_p95" for c in ANSWER_COLUMNS]
OUTPUT_COLUMNS = [*ANSWER_COLUMNS, "most_likely_path", "crop_branch", "error"]  # INTERVAL_COLUMNS after the answers
TTA_PARAM = "tta"  # the pyfunc param that turns on test-time augmentation
BATCH_SIZE = 64  # crops per network step in `predict_crops` by default; the pyfunc model's `predict` uses it


def predict_images(network, images: list[bytes | None], size: int, channels: int, errors: list[str] | None = None,
                   batch_size: int = BATCH_SIZE, tta: bool = False):
    """The output DataFrame for a list of image file contents (None = unreadable, see `errors`)."""
    return predict_crops(network, crop_all(images, size, channels, errors), batch_size, tta)


def predict_crops(network, crops: Crops, batch_size: int = BATCH_SIZE, tta: bool = False) -> pd.DataFrame:
    """The output DataFrame for one chunk of `crops.Crops`: a row per image, cropped or not.

    The crops go through `network` `batch_size` at a time; with `tta`, each of
    their 8 rotations and flips does, and the outputs are the mean (for the
    Dirichlet head the mean concentrations, so a surer view weighs more, and a
    mixture's mean weights too). A network with the Dirichlet head also fills
    `INTERVAL_COLUMNS`.
    """
    good = crops.good
    width = network.output_shape[-1] if outputs_concentrations(network) else schema.N_ANSWERS
    outputs = np.full((len(crops.errors), width), np.nan)
    if good:
        run = functools.partial(network.predict, batch_size=batch_size, verbose=0)
        outputs[good] = average_over_views(run, crops.scaled) if tta else run(crops.scaled)
    fractions = answer_fractions(network, outputs)
    paths = [""] * len(crops.errors)
    for i, path in zip(good, schema.most_likely_path(fractions[good]) if good else []):
        paths[i] = " > ".join(path)
    frame = pd.DataFrame(fractions, columns=ANSWER_COLUMNS)
    if outputs_concentrations(network):
        frame[INTERVAL_COLUMNS] = np.concatenate(dirichlet.intervals(outputs), axis=1)
    frame["most_likely_path"], frame["crop_branch"], frame["error"] = paths, crops.branches, crops.errors
    return frame


def embed_crops(encoder, crops: Crops, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """float32 features of one chunk of `crops.Crops`, a row per image, NaN where it failed.

    `encoder` is the network cut before its head (`model.network.embedding_model`).
    """
    features = np.full((len(crops.errors), encoder.output_shape[-1]), np.nan, dtype=np.float32)
    if crops.good:
        features[crops.good] = encoder.predict(crops.scaled, batch_size=batch_size, verbose=0)
    return features


def _decode_column(values) -> tuple[list[bytes | None], list[str]]:
    """The `image` column (base64 text, or raw bytes) as bytes, with a per-row error."""
    images, errors = [], []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):  # JSON null, or a missing key
            images.append(None)
            errors.append(f"no {INPUT_COLUMN} in this row (null)")
            continue
        try:
            if isinstance(value, str):  # without the line breaks `base64 FILE` and MIME put in it
                images.append(base64.b64decode("".join(value.split()), validate=True))
            elif isinstance(value, (bytes, bytearray)):
                images.append(bytes(value))
            else:
                raise ValueError(f"expected base64 text, got {type(value).__name__}")
            errors.append("")
        except (binascii.Error, ValueError) as exc:
            images.append(None)
            errors.append(f"the {INPUT_COLUMN} value is not base64-encoded image bytes ({exc})")
    return images, errors


def load_network(keras_uri: str, cfg, origin: str):
    """The Keras network at `keras_uri` (uncompiled), checked against `cfg`'s crops and computing in
    the precision this machine would train `cfg` in (`model.precision`); `origin` names it in errors."""
    network = load_keras(keras_uri)  # the custom head layers are registered by importing model.network, above
    expected = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    if tuple(network.input_shape[1:]) != expected:
        raise ValueError(f"{origin}: network input {network.input_shape[1:]} does not match the config's "
                         f"crops {expected}")
    return recast(network, machine_precision(cfg.train.precision).policy, model_kwargs(cfg), origin)


class PackagedModel(mlflow.pyfunc.PythonModel):
    """Crop + scaling + Keras network as one MLflow pyfunc model (see the module docstring)."""

    def load_context(self, context):
        cfg = load_experiment(context.artifacts[names.PACKAGED_CONFIG_ARTIFACT])
        self.size, self.channels = cfg.data.image_size, cfg.data.channels
        self.network = self._network(context.artifacts, cfg)

    def _network(self, artifacts: dict[str, str], cfg):
        keras_path = artifacts[names.PACKAGED_KERAS_ARTIFACT]
        return load_network(keras_path, cfg, keras_path)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if INPUT_COLUMN not in model_input.columns:
            raise ValueError(f"expected a DataFrame with a column {INPUT_COLUMN!r} of base64 image bytes")
        images, errors = _decode_column(model_input[INPUT_COLUMN].tolist())
        # MLflow fills in the signature's defaults; a model packaged before `tta` existed gets no params.
        tta = bool((params or {}).get(TTA_PARAM, False))
        frame = predict_images(self.network, images, self.size, self.channels, errors, tta=tta)
        frame.index = model_input.index  # a row per input row, under its label: `df.join(output)` pairs them right
        if _MLFLOW_IS_IN_SERVING_ENVIRONMENT.get():
            # JSON has no NaN (JSON.parse rejects it): served, the fractions are nullable floats, so a
            # bad row's become null. Python callers keep plain float64 columns with NaN.
            numbers = [c for c in frame.columns if c in ANSWER_COLUMNS or c in INTERVAL_COLUMNS]
            frame[numbers] = frame[numbers].astype("Float64")
        return frame


class EnsembleModel(PackagedModel):
    """A `PackagedModel` whose network is the mean of several (`model.ensemble.MeanOfModels`).

    Each member keeps its own Keras model and config (`names.member_artifact`),
    so each is recast by its own config; the crops are the ensemble's config's,
    which every member shares (`galaxyzoo ensemble` checks it).
    """

    def __init__(self, n_members: int):
        super().__init__()
        self.n_members = n_members

    def _network(self, artifacts: dict[str, str], cfg):
        members = []
        for i in range(self.n_members):
            keras_path = artifacts[names.member_artifact(i, names.PACKAGED_KERAS_ARTIFACT)]
            member_cfg = load_experiment(artifacts[names.member_artifact(i, names.PACKAGED_CONFIG_ARTIFACT)])
            members.append(load_network(keras_path, member_cfg, keras_path))
        return MeanOfModels(members)




def signature(intervals: bool = False):
    """The pyfunc signature: base64 images in, `OUTPUT_COLUMNS` out (with `INTERVAL_COLUMNS` when `intervals`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    numbers = ANSWER_COLUMNS + (INTERVAL_COLUMNS if intervals else [])
    outputs = [ColSpec("double", c) for c in numbers] + [
        ColSpec("string", c) for c in ("most_likely_path", "crop_branch", "error")
    ]
    return ModelSignature(inputs=Schema([ColSpec("string", INPUT_COLUMN)]), outputs=Schema(outputs),
                          params=ParamSchema([ParamSpec(TTA_PARAM, "boolean", False)]))


def takes_tta(model) -> bool:
    """Whether a loaded pyfunc model's signature has the `tta` param (models packaged before it do not,
    and MLflow drops a param its signature lacks)."""
    params = model.metadata.get_params_schema()
    return params is not None and TTA_PARAM in {p.name for p in params.params}


def log_packaged_model(client, run_id: str, step: int = 0) -> str:
    """Log the run's Keras model with its config and the crop code as a pyfunc; return its URI.

    The packaged model is a second logged model of the same run, so the
    registry version links back to the training run; it carries the run's
    params, and MLflow links it to the run's metrics at `step` (the last epoch's).
    """
    with scratch() as tmp:
        artifacts = _run_artifacts(client, run_id, Path(tmp))
        intervals = load_experiment(artifacts[names.PACKAGED_CONFIG_ARTIFACT]).model.head == CONCENTRATION_HEAD
        return _log_pyfunc(client, run_id, PackagedModel(), artifacts, Path(tmp), step, intervals=intervals)


def log_ensemble_model(client, run_id: str, member_ids: list[str], step: int = 0) -> str:
    """Log, in ensemble run `run_id`, an `EnsembleModel` of the members' Keras models and configs; its URI.

    The crop config is run `run_id`'s own `config.yaml` (a copy of its best member's).
    """
    with scratch() as tmp:
        tmp = Path(tmp)
        (tmp / "ensemble").mkdir()
        artifacts = {names.PACKAGED_CONFIG_ARTIFACT: str(download_run_config(client, run_id, tmp / "ensemble"))}
        for i, member in enumerate(member_ids):
            artifacts.update({names.member_artifact(i, key): path
                              for key, path in _run_artifacts(client, member, tmp / f"member{i}").items()})
        return _log_pyfunc(client, run_id, EnsembleModel(len(member_ids)), artifacts, tmp, step)


def _run_artifacts(client, run_id: str, dst: Path) -> dict[str, str]:
    """A training run's Keras model and `config.yaml`, downloaded under `dst`: the pyfunc's artifacts."""
    import mlflow

    dst.mkdir(parents=True, exist_ok=True)
    keras_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=keras_model_uri(run_id), dst_path=str(dst / "keras"), tracking_uri=client.tracking_uri,
    )
    config_path = download_run_config(client, run_id, dst, why=", so its crop size is unknown")
    return {names.PACKAGED_KERAS_ARTIFACT: keras_dir, names.PACKAGED_CONFIG_ARTIFACT: str(config_path)}


def _log_pyfunc(client, run_id: str, python_model: PackagedModel, artifacts: dict[str, str], tmp: Path,
                step: int, intervals: bool = False) -> str:
    """Log `python_model` with `artifacts` and the crop code as run `run_id`'s packaged model; its URI.

    `intervals`: its output has `INTERVAL_COLUMNS` (one network with the Dirichlet head).
    """
    import mlflow

    run = client.get_run(run_id)
    code = _package_code(tmp / "code")
    model_class = type(python_model)
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id, name=names.PACKAGED_MODEL_NAME, source_run_id=run_id,
        params=run.data.params, tags={names.TAG_PACKAGED_CLASS: f"{model_class.__module__}.{model_class.__qualname__}"},
    )
    with warnings.catch_warnings(), tempfiles_in_scratch("galaxyzoo-log-model"):
        # The input is base64 image bytes; the signature documents it better than an example would.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = mlflow.pyfunc.log_model(
            name=names.PACKAGED_MODEL_NAME,
            python_model=python_model,
            artifacts=artifacts,
            code_paths=[str(code)],
            signature=signature(intervals=intervals),
            pip_requirements=_requirements(),
            model_id=logged.model_id,
            step=step,
        )
    return info.model_uri


def _package_code(dst: Path) -> Path:
    """A copy of the galaxyzoo package (sources only): a served model must not need it installed."""
    source = Path(__file__).resolve().parents[1]
    target = dst / "galaxyzoo"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


# What the model's code imports beyond the network's own (`mlflow_runs.pip_requirements`): an environment
# `mlflow models serve` builds from these must load it (tests/test_packaging.py derives the list).
SERVED_WITH = ("mlflow", "pandas", "opencv-python-headless", "pyyaml", "pillow", "simplejpeg", "scipy",
               "scikit-learn", "filelock", "psutil")


def _requirements() -> list[str]:
    import importlib.metadata as md

    return mlflow_runs.pip_requirements() + [f"{dist}=={md.version(dist)}" for dist in SERVED_WITH]


def load_packaged(model_uri: str):
    """Load a packaged model (`promote` registers one), refusing a bare Keras model clearly.

    Its network and config are in memory once `load_context` has run, so MLflow's download of
    the model goes into a temporary folder of ours, removed then (MLflow's own stays in /tmp).
    """
    from mlflow.exceptions import MlflowException

    try:
        with scratch("galaxyzoo-model") as dst:
            model = mlflow.pyfunc.load_model(model_uri, dst_path=dst)
    except MlflowException as exc:
        where = f" (in {mlflow.get_tracking_uri()})" if mlflow_runs.in_a_store(model_uri) else ""
        raise GalaxyZooError(f"cannot load model {model_uri!r}{where}: {exc.message}") from None
    except (ModuleNotFoundError, AttributeError) as exc:  # its pickle names a class this layout has not
        raise GalaxyZooError(
            f"cannot load model {model_uri!r}: it was packaged by an earlier galaxyzoo ({exc}); "
            "`galaxyzoo promote` packages its run again (`mlflow models serve` still serves it)"
        ) from None
    except GalaxyZooError as exc:  # its config.yaml, named by the temporary folder it was read from
        raise GalaxyZooError(f"cannot load model {model_uri!r}: its {str(exc).replace(dst, '<model>')}") from None
    except Exception as exc:  # a truncated pickle, an empty model.keras, a folder that is not a model
        first_line = (str(exc).splitlines() or [""])[0]
        raise GalaxyZooError(f"cannot load model {model_uri!r}: its files are damaged or incomplete "
                             f"({type(exc).__name__}: {first_line})") from None
    try:
        unwrapped = model.unwrap_python_model()
    except MlflowException:
        unwrapped = None
    if not isinstance(unwrapped, PackagedModel):
        raise GalaxyZooError(
            f"{model_uri} is not a galaxyzoo packaged model (it has no crop step); use the one its training "
            "run logged beside it, runs:/RUN_ID/packaged_model, or promote the run with `galaxyzoo promote` and "
            "use models:/galaxyzoo-cnn@champion"
        )
    return model
