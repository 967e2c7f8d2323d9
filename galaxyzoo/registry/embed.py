"""Embed image files with a packaged model: the features its head reads, one row per file.

```python
summary = embed_files("models:/galaxyzoo-cnn@champion", ["images/"], "embeddings.parquet")
summary.total, summary.dims, summary.failed   # failed: [(file, why), ...]; their rows say why in `error`
```

Each image gets `predict`'s crop and scaling (`crops.crop_files`, in worker
processes while the network embeds the chunk before), then the network up to
its head (`model.network.embedding_model`, `packaged.embed_crops`). Files are
found and written atomically by `predict`'s helpers, so rows come in
`collect_images` order, as in predict's CSV; a file that cannot be read or
decoded keeps its row, with NaN features and the reason in `error`. The file
formats (`.parquet`, or `.npy` with an index CSV) are `embeddings.py`'s.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.network import embedding_model
from galaxyzoo.registry.embeddings import files_of, write_embeddings
from galaxyzoo.registry.crops import crop_files
from galaxyzoo.registry.packaged import EnsembleModel, embed_crops, load_packaged
from galaxyzoo.registry.predict import CHUNK, atomic_output, check_out, collect_images, written_path
from galaxyzoo.system.workers import check_workers
from galaxyzoo.tracking import mlflow_runs


@dataclass(frozen=True)
class EmbedSummary:
    total: int
    failed: list[tuple[str, str]]  # (file, why)
    out: Path
    index: Path | None  # the .npy's index CSV
    dims: int  # features per row


def embed_files(model_uri: str, inputs: list[str | Path], out: str | Path, progress: bool = True,
                overwrite: bool = False, tracking_uri: str | None = None, chunk: int = CHUNK,
                workers: int | None = None) -> EmbedSummary:
    """Embed every image into `out` (`.parquet`, or `.npy` plus its index CSV), all rows at once.

    As in `predict.predict_files`, every output is checked and its temporary
    file created before the store is opened and the model loaded, and the
    images are cropped in `workers` processes (default: every core).
    """
    workers = check_workers(workers)
    files = collect_images(inputs)
    out = written_path(Path(out))  # through a link: the index CSV goes beside the matrix, at the target
    targets = files_of(out, "--out")
    for target in targets:
        check_out(target, files, overwrite)
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_output(target, overwrite)) for target in targets]
        mlflow_runs.connect_for_model(model_uri, tracking_uri)
        model = load_packaged(model_uri).unwrap_python_model()
        if isinstance(model, EnsembleModel):  # each member has features of its own; their mean means nothing
            raise GalaxyZooError(f"--model {model_uri}: an ensemble has no one representation to embed; "
                                 "embed one of its members (tag ensemble.members of its run)")
        encoder = embedding_model(model.network)
        names, errors, parts = [], [], []
        for paths, crops in crop_files(files, model.size, model.channels, chunk, workers, progress, "embed"):
            names += [str(p) for p in paths]
            errors += crops.errors
            parts.append(embed_crops(encoder, crops))
        features = np.concatenate(parts)
        write_embeddings(tmps, out.suffix.lower(), pd.DataFrame({"file": names, "error": errors}), features)
    failed = [(f, e) for f, e in zip(names, errors) if e]
    return EmbedSummary(len(names), failed, out, targets[1] if len(targets) > 1 else None, features.shape[1])
