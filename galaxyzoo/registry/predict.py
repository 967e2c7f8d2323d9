"""Predict image files with a packaged model into one CSV: a row per file, written all at once.

```python
summary = predict_files("models:/galaxyzoo-cnn@champion", ["images/"], "predictions.csv")
summary.total, summary.failed       # failed: [(file, why), ...]; their rows say why in `error`
```

The packaged model (`packaged.PackagedModel`) holds the network and its crop
size; this module finds the images, crops them in chunks in worker processes
while the network predicts the chunk before (`crops.crop_files`: the slower of
the two sets the pace), and writes the CSV atomically, so a crash or a full
disk never leaves half a file. The rows are the pyfunc model's, in file order.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import pandas as pd

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.registry.crops import crop_files
from galaxyzoo.registry.packaged import load_packaged, predict_crops, takes_tta
from galaxyzoo.system.folders import folder_for, storable_name
from galaxyzoo.system.tempdirs import OwnedFolder, remove_stale
from galaxyzoo.system.workers import check_workers
from galaxyzoo.tracking import mlflow_runs

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz")  # pandas compresses by the last suffix
# Files read, cropped and predicted at a time: bounds the memory their crops take, and paces the progress bar.
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
    if any(str(item) == "" for item in inputs):  # Path("") is the current folder: "$DIR" with DIR unset
        raise GalaxyZooError("an image argument is empty (an unset variable?); name the files or folders")
    files, seen = [], set()
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or not p.exists()))
            if not found:
                raise GalaxyZooError(f"{item}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
        elif item.exists() and not item.is_file():  # a pipe would be read for ever
            raise GalaxyZooError(f"{item}: is not a regular file or folder (a device, pipe or socket)")
        else:
            found = [item]  # a missing file is reported in its row, like a corrupt one
        for path in map(partial(storable_name, what="image"), found):
            # `dir dir/a.jpg` names a.jpg twice: one row for it. Not by realpath: links of other names
            # to one file (a DVC or git-annex cache, a farm of symlinks) are galaxies of their own.
            key = os.path.abspath(path)
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
    if out.exists() and not out.is_file():  # /dev/stdout, a pipe: the rename would replace the node itself
        raise GalaxyZooError(f"--out {out}: is not a regular file (a device, pipe or socket); name a file to write")
    target = os.path.realpath(out)
    for path in files:
        if os.path.realpath(path) == target or (out.exists() and path.exists() and os.path.samefile(path, out)):
            raise GalaxyZooError(f"--out {out}: is one of the input images; write the output elsewhere")
    if out.exists() and not overwrite:
        raise GalaxyZooError(f"--out {out}: the file exists; pass --overwrite to replace it")


def written_path(out: Path) -> Path:
    """The file an `--out` names: itself, or through a symlink its target (the link is kept)."""
    return Path(os.path.realpath(out)) if out.is_symlink() else out


@contextlib.contextmanager
def atomic_output(out: Path, overwrite: bool = True) -> Iterator[Path]:
    """A new temporary file, renamed onto `out` if the block succeeds, else removed.

    The file is `out.name` inside a folder `out.tmp-XXXXXXXX` beside `out`, held
    by this process (`tempdirs.OwnedFolder`); the folders of killed runs are swept
    first (`remove_stale`), so a SIGKILL leaves nothing the next run keeps. It is
    created on entry, so an unwritable folder fails before any work, and a crash
    leaves `out` as it was. Through a symlink the link's target is written, and the link kept.
    Without `overwrite` a file another process put at `out` meanwhile is kept, and this one refused.
    """
    out = written_path(out)
    with folder_for(out.parent, f"--out {out}"):
        try:
            remove_stale(out, "tmp")
            owned = OwnedFolder(out, "tmp")
        except OSError as exc:
            raise GalaxyZooError(f"--out {out}: cannot write in {out.parent} ({exc.strerror or exc})") from None
        with owned as folder:
            tmp = folder / out.name
            tmp.touch()  # not mkstemp: its 0600 mode would become the output's
            yield tmp
            _publish(tmp, out, overwrite)


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move `tmp` onto `out`; without `overwrite` only if no file is there, checked in the same step (a hard
    link fails on an existing name), as `check_out` checked only before the work."""
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise GalaxyZooError(f"--out {out}: another process wrote this file while this one worked; pass "
                             "--overwrite to replace it") from None
    except OSError:  # a file system without hard links: the check before the work has to do
        os.replace(tmp, out)


def predict_files(model_uri: str, inputs: list[str | Path], out: str | Path, progress: bool = True,
                  overwrite: bool = False, tracking_uri: str | None = None, chunk: int = CHUNK,
                  tta: bool = False, workers: int | None = None) -> PredictSummary:
    """Predict every image and write one CSV row per file (`file` first, then `packaged.OUTPUT_COLUMNS`,
    with the 5th and 95th percentile columns `packaged.INTERVAL_COLUMNS` after the answers for a model
    with the Dirichlet head).

    `out` is checked (`check_out`) and its temporary file created before the
    model's tracking store (`mlflow_runs.connect_for_model`) is opened and the model loaded;
    the CSV appears complete or not at all. The images are cropped in `workers`
    processes (default: every core; `check_workers`) while the network predicts,
    `chunk` files at a time (`predict_paths`), with the model's `tta` param
    (the mean over 8 rotations and flips) when `tta` is true.
    """
    workers = check_workers(workers)
    files = collect_images(inputs)
    out = Path(out)
    check_out(out, files, overwrite)
    if not out.name.lower().endswith(CSV_SUFFIXES):  # pandas would write CSV text into `preds.parquet`
        raise GalaxyZooError(f"--out {out}: predict writes CSV; name a {', '.join(CSV_SUFFIXES)} file")
    with atomic_output(out, overwrite) as tmp:
        mlflow_runs.connect_for_model(model_uri, tracking_uri)
        model = load_packaged(model_uri)
        if tta and not takes_tta(model):
            raise GalaxyZooError(f"--tta: {model_uri} was packaged before test-time augmentation existed (its "
                                 "signature has no tta param); predict it without --tta")
        packaged = model.unwrap_python_model()
        table = predict_paths(packaged.network, files, packaged.size, packaged.channels, chunk=chunk, tta=tta,
                              workers=workers, progress=progress)
        table.to_csv(tmp, index=False)
    failed = [(f, e) for f, e in zip(table["file"], table["error"]) if e]
    return PredictSummary(len(table), failed, out)


def predict_paths(network, files: list[Path], size: int, channels: int, chunk: int = CHUNK, tta: bool = False,
                  workers: int = 1, progress: bool = False) -> pd.DataFrame:
    """The packaged model's output for `files`, a row each in order, `file` first: what predict writes.

    `network` takes (size, size, channels) crops. `workers` > 1 crops in that
    many processes while `network` predicts the chunk before
    (`crops.crop_files`); 1 crops, then predicts, one chunk after the other.
    Both give the same rows.
    """
    frames = []
    for paths, crops in crop_files(files, size, channels, chunk, workers, progress, "predict"):
        frame = predict_crops(network, crops, tta=tta)
        frame.insert(0, "file", [str(p) for p in paths])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
