"""Empty MLflow SQLite stores for tests, without paying MLflow's schema migrations each time.

MLflow creates a SQLite store by running its Alembic migrations: 4-10 s of CPU on a 2-core box,
more than a tiny training. `seeded_uri` gives a test a copy of one migrated store instead
(~0.1 s). Tests about creating a store (two processes racing to create it, refusals before any
store exists) use a plain `sqlite:///` path and let MLflow create it.
"""

import atexit
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path


@functools.cache
def _template() -> Path:
    """One migrated, empty store per test process; removed when the process exits."""
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="galaxyzoo-test-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    db = folder / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()  # creates and migrates the schema
    return db


def seeded_uri(folder: Path) -> str:
    """`sqlite:///<folder>/mlflow.db`, made a copy of the empty migrated store if no file is there yet.

    Its Default experiment keeps artifacts in `<folder>/mlruns/0`, where MLflow would put them
    had it created the store with `folder` as the working directory.
    """
    db = Path(folder) / "mlflow.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_template(), db)
        con = sqlite3.connect(db)
        with con:
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                        (str(db.parent / "mlruns" / "0"),))
        con.close()
    return f"sqlite:///{db}"
