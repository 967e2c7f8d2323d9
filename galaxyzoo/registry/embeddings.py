"""The embeddings file `galaxyzoo embed` writes and `galaxyzoo similar` reads, in one of two formats.

Chosen by the file's suffix:

- `.parquet`: columns `file`, `error`, then `e0` ... `e{n-1}` (float32);
- `.npy`: the float32 matrix alone, with `<file>.index.csv` (`file`, `error`) naming its rows.

A row whose image failed has NaN features and the reason in `error`. Only
numpy, pandas and pyarrow: reading one needs neither TensorFlow nor MLflow.

```python
index, features = read_embeddings("embeddings.parquet")   # DataFrame [file, error], (rows, n) float32
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxyzoo.errors import GalaxyZooError

FORMATS = (".parquet", ".npy")
INDEX_COLUMNS = ["file", "error"]


def index_path(path: Path) -> Path:
    """`emb.npy` -> `emb.npy.index.csv`: the CSV naming the rows of a `.npy` matrix."""
    return path.with_name(path.name + ".index.csv")


def embeddings_format(path: Path, option: str) -> str:
    """`.parquet` or `.npy`, from the suffix of `path` (named by `option` in the error)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GalaxyZooError(f"{option} {path}: expected a {' or '.join(FORMATS)} file, got {suffix or 'no suffix'!r}")
    return suffix


def files_of(path: Path, option: str) -> list[Path]:
    """The files an embeddings file is: [path], or [path, its index CSV] for `.npy`."""
    return [path] + ([index_path(path)] if embeddings_format(path, option) == ".npy" else [])


def write_embeddings(targets: list[Path], fmt: str, index: pd.DataFrame, features: np.ndarray) -> None:
    """Write `index` (`file`, `error`) and `features` in `fmt` to `targets` (`files_of`'s order)."""
    if fmt == ".parquet":
        columns = pd.DataFrame(features, columns=[f"e{i}" for i in range(features.shape[1])])
        pd.concat([index, columns], axis=1).to_parquet(targets[0], index=False)
    else:
        with open(targets[0], "wb") as f:  # a path would get ".npy" appended to a temporary name
            np.save(f, features)
        index.to_csv(targets[1], index=False)


def read_embeddings(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """An embeddings file back: (its rows' `file` and `error`, the float32 features, NaN where it failed)."""
    path = Path(path)
    files = files_of(path, "--embeddings")
    fmt = path.suffix.lower()
    for needed in files:
        if not needed.is_file():
            raise GalaxyZooError(f"--embeddings {path}: no such file {needed}")
    try:
        if fmt == ".parquet":
            table = pd.read_parquet(path)
            index = table.reindex(columns=INDEX_COLUMNS)
            columns = list(table.columns[len(INDEX_COLUMNS):]) if list(table.columns[:2]) == INDEX_COLUMNS else []
            # Exactly embed's columns: a column joined in (a label, a redshift) would silently move every distance.
            if columns != [f"e{i}" for i in range(len(columns))]:
                raise GalaxyZooError(f"--embeddings {path}: after {', '.join(INDEX_COLUMNS)} expected only the "
                                     f"features e0, e1, ... in order, found {_shown(columns)}")
            features = table[columns].to_numpy(np.float32)
        else:
            features = np.load(path, allow_pickle=False)
            if features.dtype.kind not in "biuf":  # complex would lose its imaginary part, dates would pass as numbers
                raise ValueError(f"its values are {features.dtype}, not real numbers")
            features = features.astype(np.float32, copy=False)
            index = pd.read_csv(files[1], keep_default_na=False, dtype=str)
    except (OSError, ValueError) as exc:  # pyarrow's and numpy's format errors are ValueErrors
        raise GalaxyZooError(f"--embeddings {path}: not a readable {fmt} embeddings file ({exc})") from None
    if (list(index.columns) != INDEX_COLUMNS or not index["file"].map(lambda f: isinstance(f, str)).all()
            or not index["error"].map(lambda e: e is None or isinstance(e, str)).all()):
        raise GalaxyZooError(f"--embeddings {files[-1]}: expected text columns {', '.join(INDEX_COLUMNS)} first "
                             "(written by `galaxyzoo embed`)")
    if features.ndim != 2 or len(features) != len(index) or features.shape[1] == 0:
        raise GalaxyZooError(f"--embeddings {path}: {features.shape} features for the {len(index)} rows "
                             f"of {files[-1]} (expected one row of at least one feature for each)")
    return index.fillna({"error": ""}), features.astype(np.float32, copy=False)


def _shown(columns: list) -> str:
    """A few column names, for an error message."""
    return ", ".join(map(repr, columns[:5])) + (", ..." if len(columns) > 5 else "") if columns else "none"
