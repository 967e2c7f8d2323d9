"""Embed image files with a packaged model: the features its head reads, one row per file.

```python
summary = embed_files("models:/galaxyzoo-cnn@champion", ["images/"], "embeddings.parquet")
index, features = read_embeddings("embeddings.parquet")   # [file, error], (rows, n) float32
```

Each image gets `predict`'s crop and scaling (`packaged.embed_images`), then the
network up to its head (`model.network.embedding_model`). Files are found,
read in chunks and written atomically by `predict`'s helpers, so rows come in
`collect_images` order; a file that cannot be read or decoded keeps its row,
with NaN features and the reason in `error`, as in predict's CSV.

Two formats, by the suffix of `out`:

- `.parquet`: columns `file`, `error`, then `e0` ... `e{n-1}` (float32);
- `.npy`: the float32 matrix alone, with `<out>.index.csv` (`file`, `error`) naming its rows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.model.network import embedding_model
from galaxyzoo.registry.packaged import embed_images, load_packaged
from galaxyzoo.registry.predict import CHUNK, atomic_output, check_out, collect_images, read_chunks
from galaxyzoo.tracking import mlflow_runs

FORMATS = (".parquet", ".npy")
INDEX_COLUMNS = ["file", "error"]


@dataclass(frozen=True)
class EmbedSummary:
    total: int
    failed: list[tuple[str, str]]  # (file, why)
    out: Path
    index: Path | None  # the .npy's index CSV
    dims: int  # features per row


def index_path(out: Path) -> Path:
    """`emb.npy` -> `emb.npy.index.csv`: the CSV naming the rows of a `.npy` matrix."""
    return out.with_name(out.name + ".index.csv")


def feature_columns(dims: int) -> list[str]:
    return [f"e{i}" for i in range(dims)]


def _format(path: Path, option: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GalaxyZooError(f"{option} {path}: expected a {' or '.join(FORMATS)} file, got {suffix or 'no suffix'!r}")
    return suffix


def embed_files(model_uri: str, inputs: list[str | Path], out: str | Path, progress: bool = True,
                overwrite: bool = False, tracking_uri: str | None = None, chunk: int = CHUNK) -> EmbedSummary:
    """Embed every image into `out` (`.parquet`, or `.npy` plus its index CSV), all rows at once.

    As in `predict.predict_files`, every output is checked and its temporary
    file created before the store is opened and the model loaded.
    """
    files = collect_images(inputs)
    out = Path(out)
    fmt = _format(out, "--out")
    targets = [out] + ([index_path(out)] if fmt == ".npy" else [])
    for target in targets:
        check_out(target, files, overwrite)
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_output(target)) for target in targets]
        if tracking_uri:
            mlflow_runs.connect(tracking_uri)
        model = load_packaged(model_uri).unwrap_python_model()
        encoder = embedding_model(model.network)
        names, errors, parts = [], [], []
        for part, contents, unreadable in read_chunks(files, chunk, progress, "embed"):
            features, why = embed_images(encoder, contents, model.size, model.channels, unreadable)
            names += [str(p) for p in part]
            errors += why
            parts.append(features)
        features = np.concatenate(parts)
        index = pd.DataFrame({"file": names, "error": errors})
        if fmt == ".parquet":
            table = pd.concat([index, pd.DataFrame(features, columns=feature_columns(features.shape[1]))], axis=1)
            table.to_parquet(tmps[0], index=False)
        else:
            with open(tmps[0], "wb") as f:  # a path would get ".npy" appended to the temporary name
                np.save(f, features)
            index.to_csv(tmps[1], index=False)
    failed = [(f, e) for f, e in zip(names, errors) if e]
    return EmbedSummary(len(names), failed, out, targets[1] if fmt == ".npy" else None, features.shape[1])


def read_embeddings(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """An embeddings file back: (its rows' `file` and `error`, the float32 features, NaN where it failed)."""
    path = Path(path)
    fmt = _format(path, "--embeddings")
    index_file = index_path(path) if fmt == ".npy" else path
    for needed in {path, index_file}:
        if not needed.is_file():
            raise GalaxyZooError(f"--embeddings {path}: no such file {needed}")
    try:
        if fmt == ".parquet":
            table = pd.read_parquet(path)
            features = table[[c for c in table.columns if c not in INDEX_COLUMNS]].to_numpy(np.float32)
            index = table.reindex(columns=INDEX_COLUMNS)
        else:
            features = np.load(path, allow_pickle=False)
            index = pd.read_csv(index_file, keep_default_na=False, dtype=str)
    except (OSError, ValueError) as exc:  # pyarrow's and numpy's format errors are ValueErrors
        raise GalaxyZooError(f"--embeddings {path}: not a readable {fmt} embeddings file ({exc})") from None
    if list(index.columns) != INDEX_COLUMNS or index["file"].isna().any():
        raise GalaxyZooError(f"--embeddings {index_file}: expected columns {', '.join(INDEX_COLUMNS)} first "
                             "(written by `galaxyzoo embed`)")
    if features.ndim != 2 or len(features) != len(index):
        raise GalaxyZooError(f"--embeddings {path}: {features.shape} features for the {len(index)} rows "
                             f"of {index_file}")
    return index.fillna({"error": ""}), features.astype(np.float32, copy=False)
