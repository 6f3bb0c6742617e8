"""Where a study lives: the storage a config names, passwords kept out of everything tuneflow writes,
and the test harness's promise that CI never silently skips the PostgreSQL tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuneflow.deploy import local_cluster
from tuneflow.errors import ConfigError
from tuneflow.storage import urls as backends

POSTGRES = {"kind": "postgres", "host": "db", "port": "5433", "user": "ann", "database": "optuna",
            "driver": "postgresql+psycopg2", "url": None}


@pytest.mark.parametrize(
    ("node", "url"),
    [
        (None, "sqlite:///ROOT/optuna.db"),
        ({"kind": "sqlite", "url": None}, "sqlite:///ROOT/optuna.db"),
        ({"kind": "sqlite", "url": "sqlite:///other.db"}, "sqlite:///other.db"),
        (POSTGRES, "postgresql+psycopg2://ann@db:5433/optuna"),
        ({**POSTGRES, "url": "postgresql://bob@h/x"}, "postgresql://bob@h/x"),
        ("postgresql://bob@h/x", "postgresql://bob@h/x"),
    ],
    ids=["default", "sqlite", "sqlite url", "postgres", "url wins", "plain string"],
)
def test_the_storage_a_config_names(node: Any, url: str, tmp_path: Path) -> None:
    assert backends.storage_url(node, tmp_path) == url.replace("ROOT", str(tmp_path.resolve()))


def test_a_postgres_url_never_holds_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "s3cret")
    url = backends.storage_url(POSTGRES, "mlruns")
    assert "s3cret" not in url and not backends.has_password(url)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://ann:s3cret@db:5432/optuna", "postgresql://ann:***@db:5432/optuna"),
        ("x=http://me:pw@host:5000 and mysql+pymysql://u:p@h/d", "x=http://me:***@host:5000 and mysql+pymysql://u:***@h/d"),
        ("postgresql://ann@db:5432/optuna", "postgresql://ann@db:5432/optuna"),
        ("http://host:5000/path", "http://host:5000/path"),
    ],
)
def test_passwords_are_masked_wherever_a_url_is_shown(text: str, shown: str) -> None:
    assert backends.redact(text) == shown
    assert backends.has_password(text) == (text != shown)


def test_an_override_with_a_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as error:
        backends.refuse_passwords_in_arguments(["+arch=mlp", "hydra.sweeper.storage.url=postgresql://a:s3cret@h/d"])
    assert str(error.value).startswith("hydra.sweeper.storage.url: the URL contains a password")
    assert "s3cret" not in str(error.value)


def test_the_postgres_config_reads_libpq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """hydra/sweeper/storage=postgres: $PGHOST etc. when set, else local defaults; never a password."""
    from omegaconf import OmegaConf

    from hydra_plugins.tuneflow_sweeper.config import PostgresStorageConfig

    for key in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(key, raising=False)
    default = OmegaConf.to_container(OmegaConf.structured(PostgresStorageConfig), resolve=True)
    assert backends.storage_url(default, "mlruns") == "postgresql+psycopg2://tuneflow@127.0.0.1:5432/optuna"
    monkeypatch.setenv("PGHOST", "db.example")
    monkeypatch.setenv("PGPORT", "6543")
    from_env = OmegaConf.to_container(OmegaConf.structured(PostgresStorageConfig), resolve=True)
    assert backends.storage_url(from_env, "mlruns") == "postgresql+psycopg2://tuneflow@db.example:6543/optuna"
    assert "password" not in default


def test_the_cluster_settings_file_keeps_no_password(tmp_path: Path) -> None:
    cluster = local_cluster.LocalCluster(tmp_path / "c", password="s3cret")
    cluster.save()
    assert "s3cret" not in (tmp_path / "c" / "cluster.json").read_text()
    assert local_cluster.LocalCluster.load(tmp_path / "c").password is None
    assert cluster.worker_env()["PGPASSWORD"] == "s3cret"
    assert "s3cret" not in cluster.database_url("optuna")


def test_a_cluster_command_without_a_cluster_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert local_cluster.main(["work", "--dir", str(tmp_path), "-n", "2", "--", "+arch=quadratic", "-m"]) == 2
    assert capsys.readouterr().err == (
        f"tuneflow: error: no cluster in {tmp_path}: start one with `python -m tuneflow.deploy.local_cluster up`\n"
    )


@pytest.mark.parametrize(("ci", "outcome"), [("1", pytest.fail.Exception), (None, pytest.skip.Exception)])
def test_without_postgres_ci_fails_where_a_laptop_skips(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type[BaseException]
) -> None:
    from topology import CI_MARKER
    from topology import local_cluster as start

    def no_postgres(self: Any) -> None:
        raise local_cluster.ClusterError("initdb not found: install PostgreSQL")

    monkeypatch.setattr(local_cluster.LocalCluster, "up", no_postgres)
    monkeypatch.setattr(local_cluster.LocalCluster, "down", lambda self: None)
    if ci:
        monkeypatch.setenv(CI_MARKER, ci)
    else:
        monkeypatch.delenv(CI_MARKER, raising=False)
    with pytest.raises(outcome, match="initdb not found"):
        with start():
            pass
