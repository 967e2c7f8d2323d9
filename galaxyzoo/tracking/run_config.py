"""The experiment config a training run logged, read back from its `config.yaml` artifact.

`evaluate` scores a model on the data its run trained on, the packaged model
crops as its run did, and `promote` shows the config on the version page: all
three read the artifact here, so a run without one fails the same way for each.

>>> path = download_run_config(client, run_id)      # doctest: +SKIP
>>> cfg = load_experiment(path)
"""

from __future__ import annotations

from pathlib import Path

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.tracking import names


def download_run_config(client, run_id: str, dst: str | Path | None = None, why: str = "") -> Path:
    """The path of run `run_id`'s `config.yaml`, downloaded into folder `dst` (without: a temporary one).

    Raises `GalaxyZooError` naming the run and the artifact when the run has
    none, or the artifact store cannot give it; `why` (", so ...") says what the caller needed it for.
    """
    from mlflow.exceptions import MlflowException

    try:
        return Path(client.download_artifacts(run_id, names.CONFIG_ARTIFACT, None if dst is None else str(dst)))
    except (MlflowException, OSError) as exc:  # which one depends on the artifact store
        raise GalaxyZooError(f"run {run_id} has no {names.CONFIG_ARTIFACT} artifact{why} ({exc})") from None
