"""Where a study lives and how its workers share it: storage URLs, the retrying database, the study lock.

```python
url = database_url("postgresql://sweeper@db/optuna")  # or default_storage(tracking_uri)
storage = open_storage(url, heartbeat_seconds=60, on_stale_trial=None, retry_seconds=120)
with study_lock(url, "quickstart") as held:
    ...  # one worker at a time; held.lost: a database restart ended the lock meanwhile
```

A study is in a database (SQLite, PostgreSQL) or in Optuna's journal file
(`journal:///PATH`). Once a worker is running, every call to the database
retries a lost connection for `retry_seconds` (`patiently`), so a database
restart costs a wait rather than the sweep; every storage error is one line
naming the storage with its password hidden.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from galaxyzoo.errors import GalaxyZooError

logger = logging.getLogger(__name__)

OPTUNA_DB = "optuna.db"
JOURNAL = "journal:///"  # + a path, as in sqlite:///: Optuna's JournalStorage over one file, no database


def default_storage(tracking_uri: str) -> str:
    """`sqlite:///<folder of the MLflow SQLite db>/optuna.db`, else `./optuna.db`."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent
    else:
        folder = Path.cwd()
    return f"sqlite:///{folder / OPTUNA_DB}"


def database_url(url: str) -> str:
    """`postgresql://` with the driver that is installed: SQLAlchemy 2.1 means psycopg 3 by
    default, while the project installs psycopg2."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def journal_path(url: str) -> Path:
    """The log file of a `journal:///PATH` storage (relative to the current folder unless PATH starts
    with `/`, as in `sqlite:///`), checked: a file path whose folder exists or can be made."""
    path = Path(url.removeprefix(JOURNAL))
    if not path.name or path.is_dir():
        raise GalaxyZooError(f"--storage {url}: expected {JOURNAL}PATH to a log file, e.g. "
                             f"{JOURNAL}optuna-journal.log; {str(path) or 'the path'} is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GalaxyZooError(f"--storage {url}: cannot make the folder {path.parent}: {exc.strerror}") from None
    return path.resolve()


def open_storage(url: str, heartbeat_seconds: int, on_stale_trial, retry_seconds: float = 0):
    """The study's storage; a database one retries a lost connection for `retry_seconds` (`patiently`)."""
    import optuna

    if url.startswith(JOURNAL):  # no heartbeats in Optuna's journal: optuna_backend.optimize judges its workers
        path = journal_path(url)
        try:
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        except OSError as exc:
            raise GalaxyZooError(storage_error(url, f"cannot open the journal {path}", exc)) from None
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return _patient_rdb_storage()(
            url,
            retry_seconds=retry_seconds,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=2 * heartbeat_seconds,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
    except Exception as exc:  # SQLAlchemy's errors name the driver problem; keep it to one line
        raise GalaxyZooError(storage_error(url, "cannot open the Optuna storage", exc)) from None


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc` and what caused it, outermost first (Optuna wraps SQLAlchemy's errors)."""
    while exc is not None:
        yield exc
        exc = exc.__cause__


def storage_error(url: str, what: str, exc: Exception) -> str:
    """One line: the storage (password hidden), what failed, and the driver's first line of why."""
    from sqlalchemy.exc import SQLAlchemyError

    # The SQLAlchemy error, when there is one: Optuna's wrapper says less.
    exc = next((c for c in _causes(exc) if isinstance(c, SQLAlchemyError)), exc)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"--storage {hide_password(url)}: {what}: {reason[0] if reason else type(exc).__name__}"


# ---------------------------------------------------------------- outlasting a database restart


def _connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it: Optuna wraps SQLAlchemy's errors) is a lost or refused
    database connection, which a retry may cure, rather than a bad query or bad data."""
    return any(map(_database_connection_error, _causes(exc)))


def _database_connection_error(error: BaseException) -> bool:
    """Whether `error` itself is SQLAlchemy's word for a lost or refused database connection."""
    from sqlalchemy import exc as db

    # PendingRollbackError: the session's connection died inside a transaction (seen when the
    # database restarts between a query and its commit); a new session is a clean retry.
    return (isinstance(error, (db.OperationalError, db.InterfaceError, db.PendingRollbackError))
            or (isinstance(error, db.DBAPIError) and error.connection_invalidated))


def services_lost(exc: BaseException) -> bool:
    """Whether `exc`, or anything that led to it, is a connection to the database or the MLflow tracking
    server that dropped or was refused: the services failed the work, not the work itself."""
    from mlflow.exceptions import MlflowException

    seen, todo = set(), [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        # OSError's ConnectionError (reset, refused, aborted) is what requests' and urllib3's wrap. MLflow says
        # "API request to URL failed with exception ..." once its own HTTP retries are spent; an answer with
        # an error code ("API request to endpoint ... failed with error code 413") is the server's refusal.
        text = str(error)
        if (isinstance(error, ConnectionError) or _database_connection_error(error)
                or (isinstance(error, MlflowException) and text.startswith("API request to")
                    and "failed with error code" not in text)):
            return True
        todo += [error.__cause__, error.__context__]
    return False


def patiently(call, url: str, what: str, retry_seconds: float):
    """`call()`, tried again after a lost database connection (a restart, a failover) with waits of
    1, 2, 4 ... at most 15 seconds, for `retry_seconds` in all; then one line naming the storage."""
    deadline, delay = time.monotonic() + retry_seconds, 1.0
    while True:
        try:
            return call()
        except Exception as exc:
            left = deadline - time.monotonic()
            if retry_seconds <= 0 or not _connection_lost(exc):  # 0: at start-up a dead database is the user's to fix
                raise
            if left <= 0:
                raise GalaxyZooError(storage_error(
                    url, f"{what}: the database did not come back within {retry_seconds:g} s "
                    "(sweep --db-retry); rerun the worker once it answers", exc)) from None
            logger.warning("%s; retrying for up to %.0f s more", storage_error(url, what, exc), left)
            time.sleep(min(delay, left))
            delay = min(2 * delay, 15.0)


# RDBStorage's calls that each run in a transaction of their own, so a retry redoes a whole one
# (Optuna's cache calls the underscored ones).
_STORAGE_CALLS = (
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "set_study_user_attr", "set_study_system_attr", "get_trial_user_attrs",
    "get_trial_system_attrs", "_create_new_trial", "_set_trial_param", "get_trial_param",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "_get_trials", "_get_best_trial_id",
    "record_heartbeat", "_get_stale_trial_ids",
)


@functools.cache
def _patient_rdb_storage():
    """Optuna's RDBStorage whose every call outlasts a short database outage (`patiently`);
    made on first use, so importing this module does not import Optuna."""
    import optuna

    rdb = optuna.storages.RDBStorage

    def patient(name):
        method = getattr(rdb, name)

        @functools.wraps(method)
        def call(self, *args, **kwargs):
            return patiently(functools.partial(method, self, *args, **kwargs), self.url, name,
                             self.retry_seconds)
        return call

    class PatientRDBStorage(rdb):
        def __init__(self, url: str, *, retry_seconds: float, **kwargs):
            self.retry_seconds = retry_seconds
            super().__init__(url, **kwargs)

        def set_trial_state_values(self, trial_id, state, values=None):
            """A tell whose commit went through but whose answer was lost finds its trial finished
            when retried: that is success, not an error."""
            tries = 0

            def tell():
                nonlocal tries
                tries += 1
                try:
                    return rdb.set_trial_state_values(self, trial_id, state, values)
                except optuna.exceptions.UpdateFinishedTrialError:
                    if tries > 1 and rdb.get_trial(self, trial_id).state == state:
                        return True
                    raise
            return patiently(tell, self.url, "set_trial_state_values", self.retry_seconds)

    for name in _STORAGE_CALLS:
        setattr(PatientRDBStorage, name, patient(name))
    return PatientRDBStorage


# ---------------------------------------------------------------- one worker at a time


@dataclass
class Held:
    """What `study_lock` yields: `lost` turns true when the lock's database session died while the
    block ran (a PostgreSQL restart ends it, and with it the advisory lock)."""

    lost: bool = False


def _lock_file(path: Path, storage: str) -> Path:
    """`path`, created (with its folder) so that a waiting `FileLock` can take it.

    Where it cannot be (`/proc`, a read-only folder), filelock would retry for ever without a word.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        raise GalaxyZooError(f"--storage {hide_password(storage)}: cannot create its lock file {path} "
                             f"({exc.strerror or exc})") from None
    return path


@contextlib.contextmanager
def study_lock(storage: str, study_name: str, *, retry_seconds: float = 0) -> Iterator[Held]:
    """A lock all workers of one study share: a PostgreSQL advisory lock, or a file lock for SQLite,
    the journal (both: one machine, or a file system whose locks hold across machines) and
    keras-tuner's project folder.

    Taking the PostgreSQL lock retries a lost connection for `retry_seconds` (`patiently`).
    Other databases get no lock (two workers may then overshoot n_trials by one).
    """
    from filelock import FileLock

    held = Held()
    if storage.startswith("sqlite:///"):
        db = Path(storage.removeprefix("sqlite:///")).resolve()
        with FileLock(_lock_file(db.with_name(db.name + ".lock"), storage)):
            yield held
    elif storage.startswith(JOURNAL):  # not <log>.lock: Optuna's journal takes that name for its own lock
        log = journal_path(storage)
        with FileLock(_lock_file(log.with_name(log.name + ".sweep.lock"), storage)):
            yield held
    elif "://" not in storage:  # keras-tuner's project folder
        with FileLock(_lock_file(Path(storage) / ".sweep.lock", storage)):
            yield held
    elif storage.startswith("postgresql"):
        import sqlalchemy

        key = zlib.crc32(f"galaxyzoo-sweep:{study_name}".encode())
        engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)

        def lock():
            connection = engine.connect()
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            except BaseException:
                connection.close()
                raise
            return connection

        try:
            try:
                connection = patiently(lock, storage, "cannot connect", retry_seconds)
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise GalaxyZooError(storage_error(storage, "cannot connect", exc)) from None
            try:
                yield held
            finally:
                try:  # false, or an error, when the session (and so the lock) ended while the block ran
                    held.lost = not connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                                       {"k": key}).scalar()
                except sqlalchemy.exc.SQLAlchemyError:
                    held.lost = True
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    connection.close()
        finally:
            engine.dispose()
    else:
        yield held
