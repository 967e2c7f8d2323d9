"""Write a synthetic GZ2 sample: parallel, deterministic and all-or-nothing.

Every galaxy gets its own random stream, derived from the seed and its index
alone (`numpy.random.SeedSequence(seed, spawn_key=(1, i))`), so a worker can
simulate galaxy i without knowing about any other. Workers sample the
morphology, render and save the JPEG, simulate the volunteers, and send back
only the small row data; the parent assembles the tables in index order. The
files are therefore byte-identical for one seed whatever the number of workers.

Everything is written into a temporary sibling folder (`DIR.tmp-XXXX`) that is
renamed to `DIR` at the end, so an error or Ctrl-C never leaves a half-written
sample behind. A killed run's leftover is removed by the next run into `DIR`
(see galaxyzoo.system.tempdirs), after that run took over the galaxies it had
finished when it was asked the same (`synth.checkpoints`), and its workers end
with it (galaxyzoo.system.workers).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from galaxyzoo.data.crop import choose_branch, decode_image, galaxy_box
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.folders import writable_folder
from galaxyzoo.system.locks import writer_lock
from galaxyzoo.system.tempdirs import OwnedFolder, remove_stale
from galaxyzoo.system.workers import check_workers, process_map
from galaxyzoo.data.synth import catalogue
from galaxyzoo.data.synth import checkpoints
from galaxyzoo.data.synth.gz2class import gz2_class
from galaxyzoo.data.synth.morphology import sample_morphology
from galaxyzoo.data.synth.render import render
from galaxyzoo.data.synth.volunteers import answer_columns, simulate_votes, true_probabilities, visibility

logger = logging.getLogger(__name__)

JPEG_QUALITY = 75
SAMPLE_FILES = ("gz2_hart16.csv", "gz2_filename_mapping.csv", "truth.csv")  # what marks a folder as a sample
MAX_N = 200_000  # asset ids below 295306 must cover galaxies, orphans and mapping-only rows

_MAIN_GUARD = (
    'a script that calls galaxyzoo.data.synth.generate must do so under `if __name__ == "__main__":`, '
    "since worker processes re-import the main module"
)

# spawn_key roots: the catalogue plan and the galaxies draw from separate streams.
_CATALOGUE_STREAM = 0
_GALAXY_STREAM = 1


@dataclass(frozen=True)
class GalaxyResult:
    """What a worker sends back for one galaxy (the image is already on disk)."""

    answers: dict[str, np.ndarray]  # hart16 suffix -> (37,) values
    total_classifications: int
    total_votes: int
    gz2_class: str
    morphology: dict  # Morphology.to_record()
    visibility: float
    true_probabilities: np.ndarray  # (37,)
    crop_branch: str  # which branch of the original crop this image takes
    crop_radius: float  # half-side of the centred square holding the crop's galaxy box (see crop_geometry)


def generate(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
    wait: bool = False,
) -> Path:
    """Write a synthetic GZ2 sample of `n` catalogue galaxies into `out_dir`.

    Writes `gz2_hart16.csv`, `gz2_filename_mapping.csv`, `images/{asset_id}.jpg`
    and `truth.csv`, with the real release's quirks (see docs/synthetic.md).
    The same `seed` gives byte-identical files for any `workers` (default: one
    per CPU). A non-empty `out_dir` is replaced only with `overwrite=True`. Another
    `generate` into `out_dir` makes this refuse, or with `wait` wait for it and
    return the sample found in `out_dir` then, unchecked against `n` and `seed`: for
    callers whose folder names its request (the training build's
    `synthetic-n{n}-seed{seed}`, where two trainings share one new sample).
    Scripts must call it under `if __name__ == "__main__":` (the workers
    re-import the main module, as with any non-fork multiprocessing).

    >>> generate("data/synth", n=1000, seed=0)  # doctest: +SKIP
    PosixPath('data/synth')
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(_MAIN_GUARD)  # a worker re-importing an unguarded script: stop before writing
    out = Path(out_dir).expanduser().resolve()  # through a link: write its target, keep the link
    workers = check_arguments(n, seed, workers)
    waited_for = wait and not overwrite  # another run's sample, published before or while we wait, is ours
    # Checked before the lock too, so that a request refused at once leaves no lock file beside `out`.
    if waited_for and is_sample(out):
        return out
    check_folder(out, overwrite)
    asked = checkpoints.request(n, seed)
    with writer_lock(out, wait):
        if waited_for and is_sample(out):
            return out
        check_folder(out, overwrite)  # again under the lock: another run may have published
        _write_and_publish(out, asked, n, seed, workers, progress)
    return out


def _write_and_publish(out: Path, asked: dict, n: int, seed: int, workers: int, progress: bool) -> None:
    """Simulate into a temporary sibling of `out`, then publish it as `out`."""
    owned = make_temp_sibling(out, asked)
    with owned as tmp:
        try:
            write_sample(tmp, n, seed, workers, progress)
        except (KeyboardInterrupt, OSError) as exc:
            # Ctrl-C or a full disk: the finished galaxies stay for the next run to take over, as after a kill.
            owned.abandon()
            if isinstance(exc, OSError):
                raise GalaxyZooError(f"cannot write the sample beside {out}: {exc.strerror or exc}; its finished "
                                     "galaxies are kept for the next run") from None
            raise
        publish(tmp, out)


def is_sample(folder: Path) -> bool:
    """Whether `folder` holds a published synthetic sample (its three CSVs)."""
    return all((folder / name).is_file() for name in SAMPLE_FILES)


def check_arguments(n, seed, workers) -> int:
    """Refuse a bad `n`, `seed` or `workers` before any work starts; return the number of worker processes."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not catalogue.MIN_ROWS <= n <= MAX_N:
        raise GalaxyZooError(
            f"--n must be a whole number of galaxies from {catalogue.MIN_ROWS} (so that every real quirk fits) "
            f"to {MAX_N}, got {n!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GalaxyZooError(f"--seed must be a non-negative whole number, got {seed!r}")
    return check_workers(workers)


def check_folder(out: Path, overwrite: bool) -> None:
    """Refuse an `out` that is a file, not empty (without `overwrite`), not a sample, or not writable."""
    if out.exists() and not out.is_dir():
        raise GalaxyZooError(f"output folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GalaxyZooError(f"output folder {out} is not empty; pass --overwrite to replace it")
    if out.is_dir() and any(out.iterdir()) and not is_sample(out):
        raise GalaxyZooError(f"output folder {out} is not a synthetic sample (it lacks {', '.join(SAMPLE_FILES)}); "
                             "--overwrite replaces only a sample, so choose an empty or new folder")
    if out.is_dir() and not os.access(out, os.W_OK):
        raise GalaxyZooError(f"output folder {out} is not writable")


def make_temp_sibling(out: Path, asked: dict) -> OwnedFolder:
    """Create the `DIR.tmp-XXXX` folder beside `out` (same file system, so rename is atomic).

    Then removes the `DIR.tmp-*` and `DIR.old-*` folders of killed runs, taking over
    first the finished galaxies of one that was `asked` the same (`synth.checkpoints`).
    """
    writable_folder(out.parent, f"output folder {out}")
    try:
        owned = OwnedFolder(out, "tmp")
        try:
            checkpoints.start(owned.path, asked)
            remove_stale(out, "tmp", "old", salvage=partial(checkpoints.adopt, into=owned.path, asked=asked))
        except BaseException:
            owned.close()
            raise
        return owned
    except OSError as exc:
        raise GalaxyZooError(f"cannot write the output folder {out}: {exc.strerror or exc}") from None


def publish(tmp: Path, out: Path) -> None:
    """Move the finished sample into place; an existing `out` is swapped out, then deleted."""
    if not out.exists():
        os.rename(tmp, out)
        return
    with OwnedFolder(out, "old") as old:
        os.rename(out, old / "previous")
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(old / "previous", out)
            raise


def write_sample(folder: Path, n: int, seed: int, workers: int, progress: bool) -> None:
    """Simulate every galaxy (images written by the workers) and write the three CSVs."""
    plan_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CATALOGUE_STREAM,)))
    plan = catalogue.plan_catalogue(n, plan_rng)
    images = folder / "images"
    images.mkdir(exist_ok=True)  # a killed run's, taken over, holds its finished galaxies' images
    chunk = checkpoints.chunk_size(plan.n_galaxies)
    results = checkpoints.load_done(folder, chunk, plan.n_galaxies)
    if results:
        logger.info("resuming: %d of %d galaxies were finished by a killed run", len(results), plan.n_galaxies)
    tasks = list(zip(range(plan.n_galaxies), plan.asset_id.tolist(), plan.has_image.tolist()))[len(results):]
    work = partial(simulate_galaxy, seed=seed, images_dir=str(images))
    for result in run_tasks(work, tasks, workers, progress, done=len(results)):
        results.append(result)
        checkpoints.save_chunk(folder, results, chunk, plan.n_galaxies)
    catalogue.write_csv(catalogue.hart16_table(plan, results), folder / "gz2_hart16.csv")
    catalogue.write_csv(catalogue.mapping_table(plan), folder / "gz2_filename_mapping.csv")
    catalogue.write_csv(catalogue.truth_table(plan, results), folder / "truth.csv")
    checkpoints.finish(folder)


def run_tasks(work, tasks: list, workers: int, progress: bool, done: int = 0):
    """Run `work` over `tasks` in worker processes; yields the results in task order, with a progress bar
    that counts `done` galaxies finished before."""
    if not tasks:
        return
    workers = max(1, min(workers, len(tasks)))
    chunksize = max(1, min(32, len(tasks) // (workers * 8)))
    yield from tqdm(process_map(work, tasks, workers, preload=__name__, what="synth", ordered=True,
                                chunksize=chunksize, hint=_MAIN_GUARD),
                    total=done + len(tasks), initial=done, desc="synth", unit="galaxy", disable=not progress,
                    smoothing=0.1)


def galaxy_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Galaxy `index`'s three independent streams: morphology, rendering, votes.

    Separate streams keep the votes the same whether or not the image is drawn.
    """
    root = np.random.SeedSequence(seed, spawn_key=(_GALAXY_STREAM, index))
    return tuple(np.random.default_rng(s) for s in root.spawn(3))


def simulate_galaxy(task: tuple[int, int, bool], seed: int, images_dir: str) -> GalaxyResult:
    """Simulate galaxy `index`: morphology, image (saved as `{asset_id}.jpg` if wanted), votes."""
    index, asset_id, write_image = task
    rng_morphology, rng_render, rng_votes = galaxy_rngs(seed, index)
    m = sample_morphology(rng_morphology)
    jpeg = encode_jpeg(render(m, rng_render))
    if write_image:
        (Path(images_dir) / f"{asset_id}.jpg").write_bytes(jpeg)
    votes = simulate_votes(m, rng_votes)
    answers = {"count": votes.count, "weight": votes.weight, **answer_columns(votes, m)}
    branch, radius = crop_geometry(jpeg)
    return GalaxyResult(
        answers=answers,
        total_classifications=int(votes.total_classifications),
        total_votes=int(votes.total_votes),
        gz2_class=gz2_class(answers["debiased"], votes.count),
        morphology=m.to_record(),
        visibility=float(visibility(m)),
        true_probabilities=np.asarray(true_probabilities(m), dtype=np.float64),
        crop_branch=branch,
        crop_radius=radius,
    )


def encode_jpeg(image_bgr: np.ndarray) -> bytes:
    """Encode like the real images: a 424x424 three-channel JPEG at a fixed quality."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def crop_geometry(jpeg: bytes) -> tuple[str, float]:
    """The crop branch of the saved JPEG, and the radius that decides it.

    The radius is the half-side of the smallest centred square that holds the
    crop's galaxy box: <= 53 px takes the central 106 square, <= 106 px the
    central 212 square, larger the full frame; NaN when no galaxy is found.
    """
    gray = decode_image(jpeg)
    box = galaxy_box(gray)
    branch = choose_branch(box, *gray.shape)
    if box is None:
        return branch, float("nan")
    x, y, w, h = box
    cx, cy = gray.shape[1] / 2, gray.shape[0] / 2
    return branch, float(max(cx - x, x + w - cx, cy - y, y + h - cy))


