"""SQLite settings of tuneflow's embedded SQLite stores (``mlruns/mlflow.db``; ``mlruns/optuna.db`` with
``hydra/sweeper/storage=sqlite``).

- WAL journal (a property of the database file, set once): readers (dashboards, other workers) do not
  wait for a writer, and a commit appends to the log instead of rewriting the file with a rollback
  journal: ~2.6 ms per commit instead of ~14.5 ms on this project's VM disk.
- ``synchronous=NORMAL`` (a property of each connection) on the Optuna storage's and the MLflow store's
  connections (tuneflow's ``mlflow.db`` only: MLflow's engine for it, ``synchronous_normal``): in WAL
  mode a commit then no longer waits for the disk (fsync) at all; the log is synced at checkpoints
  (~0.07 ms per commit). The database stays consistent after any crash. What it trades: an OS crash or
  power loss (not a crash of tuneflow or of a worker) can lose the last commits before the checkpoint:
  the intermediate values and states of the trials that were running, which a resumed study runs again
  (and those trials' last MLflow writes).
  A server database (PostgreSQL) keeps its own settings.

Both are scoped to tuneflow's own database files and connections: nothing here changes SQLite or
SQLAlchemy globally, so another library's SQLite connections in the same process keep their settings.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

#: Seconds a connection waits for another worker's write lock before "database is locked".
LOCK_TIMEOUT_S = 120


def enable_wal(db_path: str | Path) -> bool:
    """Switch the database file to WAL (creating the file if needed); WAL is remembered by the file.

    Switching needs a moment without other connections; if another program holds the file past the
    lock timeout, it stays in its current mode (slower, equally correct) and False is returned.
    """
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(db_path, timeout=LOCK_TIMEOUT_S)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
    return bool(mode and str(mode[0]).lower() == "wal")


class SynchronousNormalConnection(sqlite3.Connection):
    """A ``sqlite3`` connection with ``PRAGMA synchronous=NORMAL``; given to SQLAlchemy as
    ``connect_args={"factory": ...}``, it applies to that one engine's connections only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


def synchronous_normal(engine: Any) -> None:
    """``PRAGMA synchronous=NORMAL`` on every connection of one SQLAlchemy ``engine`` (one opened by
    another library, MLflow's tracking store): a listener on that engine only, and its pooled
    connections closed so that the next ones get it."""
    from sqlalchemy import event

    if getattr(engine, "_tuneflow_synchronous_normal", False) or engine.dialect.name != "sqlite":
        return

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", on_connect)
    engine._tuneflow_synchronous_normal = True
    engine.dispose()


def unsynchronized(engine: Any) -> None:
    """No disk waits on one SQLAlchemy ``engine``'s connections (``synchronous=OFF``, rollback journal
    in memory): for an engine that builds a store in a temporary file no one else opens, which is
    discarded if the build stops half-way and synced once, whole, before it is used (``fsync_file``).
    A listener on that engine only."""
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA journal_mode=MEMORY")

    event.listen(engine, "connect", on_connect)
    engine.dispose()


def fsync_file(path: str | Path) -> None:
    """Wait until the file's content is on the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def db_path_of(url: str) -> Path | None:
    """The file behind ``sqlite:///path`` (None for other URLs and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        return None
    return Path(url[len(prefix):])
