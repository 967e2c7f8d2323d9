"""Image files to the crops a packaged model's network reads, chunk by chunk, cropped ahead of it.

```python
for paths, crops in crop_files(files, size=106, channels=1, chunk=256, workers=2):
    crops.scaled        # (len(crops.good), 106, 106, 1) float32 in [0, 1], for the network
    crops.good          # which of `paths` were cropped; the others say why in crops.errors
```

`predict` and `embed` spend their time in two places: decoding and cropping
each JPEG (OpenCV, one core per image) and the network (TensorFlow). Done one
after the other, each waits for the other. With `workers` > 1 the chunks are
read and cropped in a pool of worker processes (`system.workers`, the pool
`prepare` uses: its workers end with the caller, even a killed one) while the
caller runs the network on the chunk before, so the slower of the two sets the
pace. The chunks still come back in order, and at most `2 * workers` of them
wait ahead of the caller, which bounds their memory. This module imports no
TensorFlow or MLflow, so the workers start light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from galaxyzoo.data.crop import crop_image, image_problem, to_unit
from galaxyzoo.system.workers import process_map

# The network in the caller already keeps every core busy when it is the slower side; crop workers
# competing with it as equals stall its multi-threaded steps. At a lower priority they crop in the
# time it leaves, and take the cores whenever it waits for them.
CROP_NICENESS = 10


@dataclass(frozen=True)
class Crops:
    """One chunk of images, cropped: the network's input, and what each image's row reports."""

    scaled: np.ndarray  # (len(good), size, size, channels) float32 in [0, 1]
    good: list[int]  # the indices of the images cropped
    branches: list[str]  # every image's crop branch ("" where it failed)
    errors: list[str]  # every image's error ("" where it was cropped)


def preprocess(data: bytes, size: int, channels: int) -> tuple[np.ndarray, str]:
    """Image file bytes -> ((size, size, channels) float32 in [0, 1], crop branch), as in training.

    Raises ValueError when the bytes are not a readable image.
    """
    image, problem = image_problem(data, channels)
    if image is None:
        raise ValueError(f"not a readable image ({problem})")
    crop, branch = crop_image(image, size, channels)
    return to_unit(crop), branch


def crop_all(images: list[bytes | None], size: int, channels: int, errors: list[str] | None = None) -> Crops:
    """`preprocess` each image not already failed (a non-empty `errors` entry, e.g. an unreadable file)."""
    errors = list(errors) if errors is not None else [""] * len(images)
    crops, branches, good = [], [""] * len(images), []
    for i, data in enumerate(images):
        if errors[i]:
            continue
        try:
            crop, branches[i] = preprocess(data, size, channels)
        except ValueError as exc:
            errors[i] = str(exc)
            continue
        crops.append(crop)
        good.append(i)
    scaled = np.stack(crops) if crops else np.zeros((0, size, size, channels), np.float32)
    return Crops(scaled, good, branches, errors)


def read_and_crop(task: tuple[list[Path], int, int]) -> Crops:
    """Read the files of one chunk and `crop_all` them; a file that cannot be read says why."""
    paths, size, channels = task
    contents, errors = [], []
    for path in paths:
        try:
            contents.append(path.read_bytes())
            errors.append("")
        except OSError as exc:
            contents.append(None)
            errors.append(f"cannot read the file ({exc.strerror or exc})")
    return crop_all(contents, size, channels, errors)


def crop_files(files: list[Path], size: int, channels: int, chunk: int, workers: int, progress: bool = False,
               desc: str = "crop") -> Iterator[tuple[list[Path], Crops]]:
    """`files`, `chunk` at a time and in order: (those paths, their `Crops`).

    `workers` > 1 crops in that many processes ahead of the caller (see the
    module docstring); 1 crops each chunk in this process when the caller asks
    for it. A progress bar labelled `desc` counts the chunks the caller is done
    with (on stderr, unless not `progress`).
    """
    from tqdm import tqdm

    tasks = [(files[start : start + chunk], size, channels) for start in range(0, len(files), chunk)]
    if workers <= 1 or len(tasks) <= 1:  # one chunk has nothing to overlap with
        results = map(read_and_crop, tasks)
    else:
        results = process_map(read_and_crop, tasks, min(workers, len(tasks)), preload=__name__, what=desc,
                              ordered=True, ahead=2 * workers, niceness=CROP_NICENESS)
    with tqdm(total=len(files), unit="img", disable=not progress, desc=desc) as bar:
        for crops, (paths, _, _) in zip(results, tasks):  # results first: their end closes the pool
            yield paths, crops
            bar.update(len(paths))
