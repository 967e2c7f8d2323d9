"""The galaxies nearest to one galaxy in an embeddings file (`galaxyzoo embed`), by cosine distance.

```python
similar("embeddings.parquet", "100008", k=5)   # DataFrame: rank, file, distance
```

The query is named by its row's `file` as embed wrote it, or by that file's
name or stem (`100008.jpg`, `100008`). It comes first, rank 0 at distance 0,
then its `k` nearest other rows; rows whose image failed (NaN features) are
never neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.registry.embeddings import read_embeddings


def find_row(files: pd.Series, query: str, source: Path) -> int:
    """The one row named `query`: its exact `file`, else the file's name, else its stem."""
    paths = files.map(Path)
    for candidates in (files, paths.map(lambda p: p.name), paths.map(lambda p: p.stem)):
        rows = np.flatnonzero(candidates.to_numpy() == query)
        if len(rows) == 1:
            return int(rows[0])
        if len(rows) > 1:
            shown = ", ".join(files.iloc[rows[:3]])
            raise GalaxyZooError(f"--query {query}: names {len(rows)} rows of {source} ({shown}, ...); "
                                 "give the file as it appears there")
    raise GalaxyZooError(f"--query {query}: no row of {source} has that file, name or stem")


def similar(path: str | Path, query: str, k: int = 5) -> pd.DataFrame:
    """The query's row, then its `k` nearest embedded rows by cosine distance (fewer if there are fewer)."""
    from sklearn.neighbors import NearestNeighbors

    if k < 1:
        raise GalaxyZooError(f"-k: must be at least 1, got {k}")
    path = Path(path)
    index, features = read_embeddings(path)
    row = find_row(index["file"], query, path)
    usable = np.flatnonzero(np.isfinite(features).all(axis=1))
    if row not in usable:
        why = index.loc[row, "error"] or "NaN features"
        raise GalaxyZooError(f"--query {query}: its image has no embedding in {path} ({why})")
    search = NearestNeighbors(metric="cosine").fit(features[usable])
    distances, found = search.kneighbors(features[[row]], n_neighbors=min(k + 1, len(usable)))
    # The query is its own nearest row, except when another row is at distance 0 too: put it first.
    others = [(usable[j], d) for j, d in zip(found[0], distances[0]) if usable[j] != row][:k]
    rows = [(row, 0.0), *others]
    return pd.DataFrame({
        "rank": range(len(rows)),
        "file": [index.loc[r, "file"] for r, _ in rows],
        "distance": [max(float(d), 0.0) for _, d in rows],  # 1 - cos can round a hair below 0
    })
