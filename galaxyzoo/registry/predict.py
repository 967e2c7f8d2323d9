"""Predict image files with a packaged model into one CSV: a row per file, written all at once.

```python
summary = predict_files("models:/galaxyzoo-cnn@champion", ["images/"], "predictions.csv")
summary.total, summary.failed       # failed: [(file, why), ...]; their rows say why in `error`
```

The packaged model (`packaged.PackagedModel`) crops, scales and predicts;
this module finds the images, reads them in chunks and writes the CSV
atomically, so a crash or a full disk never leaves half a file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.registry.packaged import INPUT_COLUMN, TTA_PARAM, load_packaged, takes_tta
from galaxyzoo.tracking import mlflow_runs

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Files read, encoded and predicted at a time: bounds the memory their bytes take, and paces the progress bar.
CHUNK = 256


@dataclass(frozen=True)
class PredictSummary:
    total: int
    failed: list[tuple[str, str]]  # (file, why)
    out: Path


def collect_images(inputs: list[str | Path]) -> list[Path]:
    """Files named, plus the images (by suffix, sorted) directly inside named folders; each once.

    A dangling symlink in a folder is kept, so it gets a row saying it cannot be read.
    """
    files, seen = [], set()
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or not p.exists()))
            if not found:
                raise GalaxyZooError(f"{item}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
        else:
            found = [item]  # a missing file is reported in its row, like a corrupt one
        for path in found:
            key = os.path.realpath(path)  # `dir dir/a.jpg` names a.jpg twice: one row for it
            if key not in seen:
                seen.add(key)
                files.append(path)
    if not files:
        raise GalaxyZooError("no images given")
    return files


def check_out(out: Path, files: list[Path], overwrite: bool) -> None:
    """Refuse an --out that is a folder, one of the inputs, or (without `overwrite`) an existing file."""
    if out.is_dir():
        raise GalaxyZooError(f"--out {out}: is a folder; name the file to write")
    target = os.path.realpath(out)
    for path in files:
        if os.path.realpath(path) == target or (out.exists() and path.exists() and os.path.samefile(path, out)):
            raise GalaxyZooError(f"--out {out}: is one of the input images; write the output elsewhere")
    if out.exists() and not overwrite:
        raise GalaxyZooError(f"--out {out}: the file exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A new temporary file beside `out`, renamed onto `out` if the block succeeds, else removed.

    It is created on entry, so an unwritable folder fails before any work; a
    crash leaves `out` as it was (at worst a hidden `.<name>.<hex>.tmp` beside it).
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
        tmp.open("x").close()  # not mkstemp: its 0600 mode would become the output's
    except OSError as exc:
        raise GalaxyZooError(f"--out {out}: cannot write in {out.parent} ({exc.strerror or exc})") from None
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def read_chunks(files: list[Path], chunk: int, progress: bool, desc: str
                ) -> Iterator[tuple[list[Path], list[bytes | None], list[str]]]:
    """`files`, `chunk` at a time: (paths, their bytes or None, why each None could not be read).

    A progress bar labelled `desc` counts them (on stderr, unless not `progress`).
    """
    from tqdm import tqdm

    with tqdm(total=len(files), unit="img", disable=not progress, desc=desc) as bar:
        for start in range(0, len(files), chunk):
            part = files[start : start + chunk]
            contents, errors = [], []
            for path in part:
                try:
                    contents.append(path.read_bytes())
                    errors.append("")
                except OSError as exc:
                    contents.append(None)
                    errors.append(f"cannot read the file ({exc.strerror or exc})")
            yield part, contents, errors
            bar.update(len(part))


def predict_files(model_uri: str, inputs: list[str | Path], out: str | Path, progress: bool = True,
                  overwrite: bool = False, tracking_uri: str | None = None, chunk: int = CHUNK,
                  tta: bool = False) -> PredictSummary:
    """Predict every image and write one CSV row per file (`file` first, then `packaged.OUTPUT_COLUMNS`,
    with the 5th and 95th percentile columns `packaged.INTERVAL_COLUMNS` after the answers for a model
    with the Dirichlet head).

    `out` is checked (`check_out`) and its temporary file created before the
    tracking store (`tracking_uri`, if given) is opened and the model loaded;
    the CSV appears complete or not at all. The model gets `chunk` files per call,
    with its `tta` param (the mean over 8 rotations and flips) when `tta` is true.
    """
    files = collect_images(inputs)
    out = Path(out)
    check_out(out, files, overwrite)
    with atomic_output(out) as tmp:
        if tracking_uri:
            mlflow_runs.connect(tracking_uri)
        model = load_packaged(model_uri)
        if tta and not takes_tta(model):
            raise GalaxyZooError(f"--tta: {model_uri} was packaged before test-time augmentation existed (its "
                                 "signature has no tta param); predict it without --tta")
        params = {TTA_PARAM: True} if tta else None  # none for a model packaged before the param existed
        frames = []
        for part, contents, errors in read_chunks(files, chunk, progress, "predict"):
            encoded = ["" if data is None else base64.b64encode(data).decode("ascii") for data in contents]
            frame = model.predict(pd.DataFrame({INPUT_COLUMN: encoded}), params=params)
            for i, why in enumerate(errors):
                if why:
                    frame.loc[i, "error"] = why
            frame.insert(0, "file", [str(p) for p in part])
            frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        table.to_csv(tmp, index=False)
    failed = [(f, e) for f, e in zip(table["file"], table["error"]) if e]
    return PredictSummary(len(table), failed, out)
