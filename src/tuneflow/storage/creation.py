"""Creating the embedded SQLite stores (``mlruns/mlflow.db``; ``mlruns/optuna.db`` with
``hydra/sweeper/storage=sqlite``) so that a kill or a full disk
at any moment leaves either no store or a whole one, and checking a store before it is read.

Optuna and MLflow create their tables (and MLflow runs ~100 schema migrations, ~1 s) in the database
file itself: a process killed meanwhile leaves a half-made file that every later run or reader fails on
(``table _alembic_tmp_experiments already exists``). Here each store is built in a temporary file beside
it and linked into place only once complete (a hard link never replaces a file another process put
there first). A half-made file left by an older version, or by MLflow's own tools, is recognised
cheaply and rebuilt when it holds nothing: MLflow inserts its Default experiment only after its last
migration, Optuna its ``version_info`` row only after creating every table.

SQLite-specific by nature (single-file stores); a server database creates its schema in transactions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tuneflow.errors import ConfigError

_SUFFIX = ".creating"
_SIDE_FILES = ("-journal", "-wal", "-shm")


def create_atomically(path: Path, build: Callable[[Path], None]) -> bool:
    """Build a store with ``build(temporary_path)`` and move it to ``path`` only once complete; False when
    ``path`` already exists (nothing is built). Backend-agnostic: ``build`` makes any single-file store."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}{_SUFFIX}")
    try:
        build(temporary)
        try:
            os.link(temporary, path)  # fails if another process put a store there meanwhile: theirs stays
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: a rename (the caller holds the creation lock)
            if path.exists():
                return False
            os.replace(temporary, path)
        return True
    except Exception as error:  # noqa: BLE001 - sqlite3, SQLAlchemy and the OS raise many types
        raise ConfigError(f"cannot create {path}: {_reason(error)}{disk_hint(error)}") from None
    finally:
        _remove(temporary)


def _remove_abandoned(path: Path) -> None:
    """Temporary stores of processes killed while they built one (their process is gone)."""
    for leftover in path.parent.glob(f".{path.name}.*{_SUFFIX}*"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    for name in (path.name, *(path.name + side for side in _SIDE_FILES)):
        with contextlib.suppress(OSError):
            (path.parent / name).unlink()


def disk_hint(error: BaseException) -> str:
    """What SQLite's terse disk errors ("disk I/O error", "attempt to write a readonly database") mean."""
    text = str(getattr(error, "orig", None) or error).lower()
    if any(word in text for word in ("disk", "readonly", "read-only", "unable to open", "file too large",
                                     "no space", "not a directory", "permission denied")):
        return " (is the disk full, or the folder read-only?)"
    return ""


#: OS errors that mean the disk or the folder, not tuneflow: no space, a read-only or unwritable folder, a
#: file size limit, a quota.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EDQUOT,
                          errno.ENOTDIR})


def store_failure(error: BaseException) -> str | None:
    """The database's or the disk's own line when ``error`` (or an error it wraps: Optuna's
    StorageInternalError, SQLAlchemy's, MLflow's) comes from a store that cannot be written; else None."""
    import sqlalchemy.exc

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (sqlite3.OperationalError, sqlite3.DatabaseError, sqlalchemy.exc.OperationalError)):
            return f"{_reason(seen)}{disk_hint(seen)}"
        if isinstance(seen, OSError) and seen.errno in _DISK_ERRNOS:
            return f"{seen.strerror}: {seen.filename}{disk_hint(seen)}" if seen.filename else str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


# --- what a store file holds --------------------------------------------------------------------------

#: Per store kind: the query that finds the row written last when the store is created (None or no row:
#: half-made), and the query that counts what a user would lose.
_COMPLETE = {
    "optuna": ("version_info", "SELECT count(*) FROM version_info"),
    "mlflow": ("experiments", "SELECT count(*) FROM experiments"),
}
_HOLDS = {
    "optuna": [("studies", "SELECT count(*) FROM studies")],
    # The Default experiment (id 0) is MLflow's own; any other experiment or any run is the user's.
    "mlflow": [("runs", "SELECT count(*) FROM runs"),
               ("experiments", "SELECT count(*) FROM experiments WHERE experiment_id != 0")],
}
FIX = "move it away to start a new store (or restore it from a backup)"


def state_of(path: Path, kind: str) -> str:
    """``missing``, ``complete``, ``half-made`` (created by a process that was killed, holding nothing)
    or ``broken`` (not complete, yet holding records). A file that is not an SQLite database at all
    (garbage, truncated) raises one line naming it."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; {FIX}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=120)
    except sqlite3.Error as error:
        raise ConfigError(f"cannot read {path}: {_reason(error)}") from None
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        complete = _count(connection, tables, *_COMPLETE[kind]) > 0
        if complete and not any(name.startswith("_alembic_tmp_") for name in tables):
            return "complete"
        holds = sum(_count(connection, tables, table, query) for table, query in _HOLDS[kind])
        return "broken" if holds else "half-made"
    except sqlite3.DatabaseError as error:
        what = "an Optuna" if kind == "optuna" else "an MLflow"
        raise ConfigError(f"{path} is not {what} SQLite store ({_reason(error)}); {FIX}") from None
    finally:
        connection.close()


def _count(connection: sqlite3.Connection, tables: set[str], table: str, query: str) -> int:
    if table not in tables:
        return 0
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0


def prepare(path: Path, kind: str, build: Callable[[Path], None]) -> None:
    """Make sure a whole store is at ``path`` before it is opened for writing: built atomically when
    missing, rebuilt when half-made (it held nothing). Call under the lock that guards its creation."""
    state = state_of(path, kind)
    if state == "half-made":
        _remove(path)
    elif state == "broken":
        raise ConfigError(f"{path} is an incomplete {kind} store that holds records; {FIX}")
    if state != "complete":
        create_atomically(path, build)


def check_readable(path: Path, kind: str) -> None:
    """For readers (reports): a store they can read, or one line saying why not. Changes nothing."""
    state = state_of(path, kind)
    if state in ("half-made", "broken"):
        raise ConfigError(
            f"{path} is an incomplete {kind} store (its creation was interrupted); run the study again "
            f"to rebuild it" + ("" if state == "half-made" else f", or {FIX}")
        )


# --- the two stores -----------------------------------------------------------------------------------


def build_optuna_db(path: Path) -> None:
    """Optuna's tables, created in ``path`` (rollback journal: everything is in the file once closed)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    storage.remove_session()
    storage.engine.dispose()


def build_mlflow_db(path: Path, artifact_root: str) -> None:
    """MLflow's schema (all migrations) and its Default experiment, created in ``path``. MLflow's store
    class is what ``MlflowClient`` builds for an SQLite URI; its engine is closed once done.

    The migrations run on an engine that does not wait for the disk after each of their ~70 commits
    (``sqlite.unsynchronized``): ``path`` is a temporary file that no one else opens and that is thrown
    away if the build stops half-way (``create_atomically``); it is synced once, whole, before it is
    linked into place. With SQLite's default (a disk wait per commit) they take 2-5 s on this
    project's VM, ~1 s without: a fixed cost of every new study's process.
    """
    import mlflow.store.db.utils as mlflow_db
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from tuneflow.storage import sqlite

    url = f"sqlite:///{path}"
    # What SqlAlchemyStore runs on an empty database (MLflow builds its engine itself, with no way to pass
    # connection settings); if a later MLflow renames it, the store below runs the migrations, as slowly.
    initialize = getattr(mlflow_db, "_initialize_tables", None)
    if initialize is not None:
        engine = mlflow_db.create_sqlalchemy_engine_with_retry(url)  # type: ignore[no-untyped-call]
        sqlite.unsynchronized(engine)
        try:
            initialize(engine)
        finally:
            engine.dispose()
    store = SqlAlchemyStore(url, artifact_root)  # type: ignore[no-untyped-call]
    store.engine.dispose()
    sqlite.fsync_file(path)


def prepare_embedded_stores(storage_url: str, tracking_uri: str) -> None:
    """The sweeper's stores that are SQLite files, whole before the study opens them."""
    prepare_tracking_store(tracking_uri)
    prepare_optuna_store(storage_url)


def prepare_optuna_store(storage_url: str) -> None:
    """Optuna's store, when it is an SQLite file (RDBStorage): whole before it is opened."""
    from tuneflow.storage.journal import check_journal, journal_path_of
    from tuneflow.storage.sqlite import db_path_of

    optuna_db = db_path_of(storage_url)
    if optuna_db is not None:
        prepare(optuna_db, "optuna", build_optuna_db)
    journal = journal_path_of(storage_url)
    if journal is not None:  # a journal needs no schema: Optuna creates the file; one that is damaged stops here
        check_journal(journal, FIX)


def prepare_tracking_store(tracking_uri: str) -> None:
    """MLflow's store, when it is an SQLite file: whole before it is opened."""
    from tuneflow.storage.sqlite import db_path_of

    mlflow_db = db_path_of(tracking_uri)
    if mlflow_db is not None:
        artifacts = (mlflow_db.resolve().parent / "artifacts").as_uri()
        prepare(mlflow_db, "mlflow", lambda temporary: build_mlflow_db(temporary, artifacts))
