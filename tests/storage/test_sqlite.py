"""tuneflow's SQLite settings apply to its own stores and connections, and to nothing else in the process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy

from tuneflow.storage import sqlite
from tuneflow.storage.study import open_storage

FULL, NORMAL = 2, 1  # PRAGMA synchronous values


def synchronous_of(engine: sqlalchemy.engine.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_the_optuna_storage_commits_without_waiting_for_the_disk_in_wal_mode(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert synchronous_of(storage.engine) == NORMAL
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"


def test_other_sqlite_connections_in_the_same_process_keep_their_defaults(tmp_path: Path) -> None:
    open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    # Another library's engine, on tuneflow's file or its own, and plain sqlite3: SQLite's default.
    assert synchronous_of(sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'optuna.db'}")) == FULL
    assert synchronous_of(sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")) == FULL
    with sqlite3.connect(tmp_path / "plain.db") as connection:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == FULL


def test_the_mlflow_store_is_switched_to_wal(tmp_path: Path) -> None:
    from tuneflow.tracking import runs as tracking

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = tracking.client_for(uri)
    client.search_experiments()
    with sqlite3.connect(tmp_path / "mlruns" / "mlflow.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_mlflow_stores_connections_commit_without_waiting_for_the_disk(tmp_path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from tuneflow.tracking import runs as tracking

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = tracking.client_for(uri)
    run = client.create_run(client.create_experiment("e"))
    client.log_param(run.info.run_id, "p", 1)
    engine = SqlAlchemyStore._engine_map[uri]  # MLflow's engine for the URI, which its client uses
    assert synchronous_of(engine) == NORMAL
    # Another engine on the same file (another library, a reader) keeps SQLite's default.
    assert synchronous_of(sqlalchemy.create_engine(uri)) == FULL


def test_a_database_another_program_holds_stays_in_its_mode_and_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "held.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(sqlite, "LOCK_TIMEOUT_S", 0.1)
    assert sqlite.enable_wal(db) is False
    holder.execute("COMMIT")
    assert holder.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sqlite.enable_wal(db) is True
    holder.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [("sqlite:///mlruns/optuna.db", Path("mlruns/optuna.db")), ("sqlite:////abs/x.db", Path("/abs/x.db")),
     ("sqlite:///:memory:", None), ("sqlite://", None), ("postgresql://u@h/db", None)],
)
def test_which_urls_are_database_files(url: str, path: Path | None) -> None:
    assert sqlite.db_path_of(url) == path
