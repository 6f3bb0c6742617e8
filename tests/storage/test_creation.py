"""The embedded stores are created whole or not at all (a kill or a full disk at any moment), a half-made
store left by a killed process is rebuilt when it holds nothing, and a file that is no store is one line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tuneflow.errors import ConfigError
from tuneflow.storage import creation


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh Python process (with this checkout's tuneflow first on the path)."""
    import tuneflow

    src = str(Path(tuneflow.__file__).parent.parent)
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {src!r})\n{textwrap.dedent(code)}"],
                          capture_output=True, text=True, timeout=120)


def tables_build(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE studies (id INTEGER)")
        connection.execute("CREATE TABLE version_info (id INTEGER)")
        connection.execute("INSERT INTO version_info VALUES (1)")


def test_a_store_whose_creator_is_killed_midway_is_not_there_and_is_created_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    child = run_child(f"""
        import os, signal, sqlite3
        from pathlib import Path
        from tuneflow.storage import creation
        def build(temporary):
            sqlite3.connect(temporary).execute("CREATE TABLE studies (id INTEGER)")
            os.kill(os.getpid(), signal.SIGKILL)  # between two tables of the schema
        creation.create_atomically(Path({str(path)!r}), build)
    """)
    assert child.returncode == -9
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".creating")]  # its temporary file
    assert creation.create_atomically(path, tables_build)
    assert creation.state_of(path, "optuna") == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]  # the dead process's leftover went


def test_a_full_disk_while_creating_is_one_line_and_leaves_no_store(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"

    def build(temporary: Path) -> None:
        with sqlite3.connect(temporary) as connection:
            connection.execute("PRAGMA max_page_count=2")  # SQLite's own "disk full" at the third page
            for index in range(10):
                connection.execute(f"CREATE TABLE t{index} (id INTEGER)")

    with pytest.raises(ConfigError, match=r"^cannot create .*mlflow\.db: database or disk is full"):
        creation.create_atomically(path, build)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_store_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    tables_build(path)
    before = path.read_bytes()
    assert not creation.create_atomically(path, lambda temporary: pytest.fail("built again"))
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"not a database at all" * 300, b"SQLite format 3\x00" + b"\x07" * 5000])
def test_a_file_that_is_no_store_is_one_line_naming_it_and_left_as_it_is(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "optuna.db"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"optuna\.db is not an Optuna SQLite store \(.*\); move it away"):
        creation.prepare(path, "optuna", tables_build)
    with pytest.raises(ConfigError, match=r"optuna\.db is not an Optuna SQLite store"):
        creation.check_readable(path, "optuna")
    assert path.read_bytes() == content


def test_an_empty_file_is_a_half_made_store_and_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    path.touch()
    assert creation.state_of(path, "optuna") == "half-made"
    with pytest.raises(ConfigError, match="incomplete optuna store .*run the study again"):
        creation.check_readable(path, "optuna")
    creation.prepare(path, "optuna", creation.build_optuna_db)
    assert creation.state_of(path, "optuna") == "complete"


def test_a_half_made_optuna_store_is_one_line_for_readers_and_rebuilt_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    # Optuna itself, killed after creating its tables and before recording its version (its last step).
    child = run_child(f"""
        import os, signal, optuna
        optuna.storages._rdb.storage._VersionManager.__init__ = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        optuna.storages.RDBStorage("sqlite:///{path}")
    """)
    assert child.returncode == -9 and path.exists()
    assert creation.state_of(path, "optuna") == "half-made"
    from tuneflow.storage.readers import StudyLocation, load_study

    location = StudyLocation("s", tmp_path, f"sqlite:///{path}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(ConfigError, match="optuna.db is an incomplete optuna store"):
        load_study(location)
    creation.prepare(path, "optuna", creation.build_optuna_db)
    import optuna

    optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    assert creation.state_of(path, "optuna") == "complete"


def test_an_incomplete_store_that_holds_records_is_refused_and_kept(tmp_path: Path) -> None:
    import optuna

    path = tmp_path / "optuna.db"
    optuna.create_study(study_name="kept", storage=f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM version_info")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="incomplete optuna store that holds records; move it away"):
        creation.prepare(path, "optuna", creation.build_optuna_db)
    assert path.read_bytes() == before


@pytest.mark.slow
def test_mlflow_killed_in_its_migrations_leaves_a_store_tuneflow_rebuilds(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    # MLflow creating its own store, killed at its first column migration (as a SIGKILL ~2.4 s in did).
    child = run_child(f"""
        import os, signal
        import alembic.ddl.impl
        alembic.ddl.impl.DefaultImpl.add_column = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        from mlflow import MlflowClient
        MlflowClient(tracking_uri="sqlite:///{path}").search_experiments()
    """)
    assert child.returncode == -9
    assert creation.state_of(path, "mlflow") == "half-made"
    creation.prepare_embedded_stores(f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{path}")
    assert creation.state_of(path, "mlflow") == "complete"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    experiment = client.create_experiment("after")
    assert client.create_run(experiment).info.status == "RUNNING"
    assert creation.state_of(tmp_path / "optuna.db", "optuna") == "complete"


@pytest.mark.slow  # MLflow's migrations, twice
def test_the_mlflow_store_built_without_disk_waits_is_the_one_mlflow_builds(tmp_path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    def schema(path: Path) -> list[tuple[str, ...]]:
        with sqlite3.connect(path) as connection:
            # A table's constraints as a set: MLflow's own migrations order them by Python's string hashes.
            rows = [(kind, name, *sorted(str(sql).split(", \n\t")))
                    for kind, name, sql in connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")]
            rows += connection.execute("SELECT version_num FROM alembic_version").fetchall()
            rows += connection.execute("SELECT experiment_id, name, lifecycle_stage FROM experiments").fetchall()
        return rows

    SqlAlchemyStore(f"sqlite:///{tmp_path / 'mlflow_own.db'}", (tmp_path / "a").as_uri()).engine.dispose()
    assert creation.create_atomically(tmp_path / "mlflow.db",
                                      lambda temporary: creation.build_mlflow_db(temporary, (tmp_path / "a").as_uri()))
    assert creation.state_of(tmp_path / "mlflow.db", "mlflow") == "complete"
    assert schema(tmp_path / "mlflow.db") == schema(tmp_path / "mlflow_own.db")
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:  # the in-memory journal was the build's only
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
