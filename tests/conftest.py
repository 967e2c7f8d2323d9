"""Shared fixtures: tiny data, temporary output folders, the real fixtures in tests/data/real/."""

import sys
from collections import Counter
from pathlib import Path

import pytest
from stores import seeded_uri

# Real files the tests need, carried by the project (sources, credits and sizes: its README.md),
# so a clone passes its tests with nothing beside it.
REAL = Path(__file__).resolve().parent / "data" / "real"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """tests/data/real/: the 231-column list, 40 real GZ2 JPEGs, 300 real gz2_hart16 rows."""
    return REAL


@pytest.fixture(scope="session")
def real_images_dir(real_dir: Path) -> Path:
    """40 real GZ2 JPEGs: every crop branch, with the centre-212 majority of the real release."""
    return real_dir / "gz2" / "sample_images"


@pytest.fixture
def linked_raw(tmp_path, real_images_dir):
    """A factory: `linked_raw(n)` makes RAW/images with n links to the real JPEGs (asset_ids
    10..n+9: many files, no copies) and a galaxy_data DB naming them; returns (RAW, DB)."""
    import sqlite3

    def make(n: int) -> tuple[Path, Path]:
        sources = sorted(real_images_dir.glob("*.jpg"))
        images = tmp_path / "raw" / "images"
        images.mkdir(parents=True)
        for i in range(n):
            (images / f"{i + 10}.jpg").symlink_to(sources[i % len(sources)])
        db = tmp_path / "galaxy.sqlite"
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE galaxy_data (asset_id INTEGER)")
            con.executemany("INSERT INTO galaxy_data VALUES (?)", [(i + 10,) for i in range(n)])
        return tmp_path / "raw", db

    return make


def pytest_collection_modifyitems(config, items):
    """Modules with slow tests first, the most slow tests first; order within a module is kept.

    Under `make test` (xdist `--dist loadscope --no-loadscope-reorder`) each module runs on one
    worker in this order, so the long end-to-end modules start at once and the many quick ones
    fill in around them, instead of a long module starting last and running alone.
    """
    slow = Counter(item.module.__name__ for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.module.__name__])  # stable: each module stays contiguous


REPO = Path(__file__).resolve().parents[1]
TINY_N = 120  # synthetic galaxies: ~78 train / 9 val / 29 test after the split
TINY_SIZE = 32  # crop side: small enough that an epoch takes well under a second


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory) -> Path:
    """A `data.workdir` holding a built synthetic workspace of 120 galaxies, 32 px grayscale crops.

    Built once per session (synth -> ingest -> prepare -> split); a config with
    `data.workdir` set to it and the sizes of `tiny_experiment` finds it ready.
    """
    from galaxyzoo.data import workspace

    root = tmp_path_factory.mktemp("tiny-data")
    sizes = dict(synthetic_n=TINY_N, synthetic_seed=0, image_size=TINY_SIZE, channels=1)
    ws = workspace.locate("synthetic", root, **sizes)
    workspace.build(ws, **sizes, test_size=0.25, val_size=0.1, split_seed=32, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_experiment(tiny_workdir, tmp_path_factory) -> Path:
    """An experiment file: the quickstart's setup shrunk to a small CNN on `tiny_workdir`, 1 epoch.

    Tests change it further with overrides (`epochs=3`, `tracking.tracking_uri=...`).
    """
    path = tmp_path_factory.mktemp("tiny-experiment") / "tiny.yaml"
    path.write_text(
        f"base: {REPO / 'experiments' / 'quickstart.yaml'}\n"
        "name: tiny\n"
        f"data: {{synthetic_n: {TINY_N}, image_size: {TINY_SIZE}, workdir: '{tiny_workdir}'}}\n"
        "model: {conv_filters: [8, 16], dense_units: [16], dense_dropout: [0.0]}\n"
        "train: {epochs: 1, batch_size: 32}\n"
        # Figures cost ~1 s each: only the tests about them turn them on (tracking.plots=true).
        "tracking: {plots: false}\n"
    )
    return path


@pytest.fixture(scope="session")
def tiny_sweep_file(tiny_experiment, tmp_path_factory) -> Path:
    """A sweep file over `tiny_experiment`: learning rate and output head, 2 trials, median pruner."""
    path = tmp_path_factory.mktemp("tiny-sweep") / "tiny_sweep.yaml"
    path.write_text(
        f"base: {tiny_experiment}\n"
        "study: {n_trials: 2, seed: 0, pruner: median, pruner_params: {n_startup_trials: 1}}\n"
        "keras_tuner: {algorithm: random, seed: 1}\n"
        "params:\n"
        "  train.learning_rate: {low: 1e-3, high: 1e-2, log: true}\n"
        "  model.head: {choices: [sigmoid, softmax-per-question]}\n"
    )
    return path


@pytest.fixture(scope="session")
def finished_sweep(tiny_sweep_file, tmp_path_factory):
    """A finished 2-trial sweep of `tiny_sweep_file` in its own MLflow store: (folder, SweepResult).

    Its trials are FINISHED runs with logged models, for compare, promote and predict.
    """
    from galaxyzoo.sweep.worker import run_sweep

    folder = tmp_path_factory.mktemp("finished-sweep")
    result = run_sweep(tiny_sweep_file, overrides=[f"tracking.tracking_uri={seeded_uri(folder)}"],
                       progress=False)
    return folder, result


@pytest.fixture(scope="session")
def promoted_champion(finished_sweep):
    """The finished sweep's best trial, promoted as `models:/predict-test@champion`: (tracking URI, run id)."""
    import mlflow

    from galaxyzoo.registry import promote

    folder, result = finished_sweep
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    promoted = promote.promote(mlflow.MlflowClient(uri), sweep_run=result.parent_run_id, model_name="predict-test")
    return uri, promoted.run_id


@pytest.fixture
def champion(promoted_champion):
    """`promoted_champion`, with its store as MLflow's current one for this test only (so a bare
    `models:/predict-test@champion` resolves); `_own_tracking_uri` unsets it after."""
    import mlflow

    mlflow.set_tracking_uri(promoted_champion[0])
    return promoted_champion


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch) -> Path:
    """An empty folder that Python's `tempfile` uses for this test instead of /tmp.

    MLflow downloads a model or artifact it loads into a new `tempfile.mkdtemp()` folder; a test
    that checks this folder is still empty afterwards checks that nothing was left behind.
    """
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _own_tracking_uri():
    """Unset MLflow's process-wide tracking URI after each test.

    `mlflow.set_tracking_uri`, and galaxyzoo's `mlflow_runs.connect` (which calls it so that
    `mlflow.keras.log_model` logs where the run is), set it for the whole process, in tests and in
    the session and module fixtures they set up: without this, a later test on the same xdist
    worker that resolves `models:/...` or `runs:/...` would quietly read an earlier store. MLflow
    has no public way to unset it.
    """
    yield
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._tracking_uri = None
