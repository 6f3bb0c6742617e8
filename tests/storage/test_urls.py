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
        (None, "journal://ROOT/optuna.journal"),
        ({"kind": "journal", "url": None}, "journal://ROOT/optuna.journal"),
        ({"kind": "sqlite", "url": None}, "sqlite:///ROOT/optuna.db"),
        ({"kind": "sqlite", "url": "sqlite:///other.db"}, "sqlite:///other.db"),
        (POSTGRES, "postgresql+psycopg2://ann@db:5433/optuna"),
        ({**POSTGRES, "url": "postgresql+psycopg2://bob@h/x"}, "postgresql+psycopg2://bob@h/x"),
        ("mysql+pymysql://bob@h/x", "mysql+pymysql://bob@h/x"),
    ],
    ids=["default", "journal", "sqlite", "sqlite url", "postgres", "url wins", "plain string"],
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


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@h/db",
        "postgresql+psycopg2://u@h/db?password=hunter2",
        "postgresql://u@h/db?sslmode=require&password=hunter2",
        "postgresql://u@h/db?PASSWORD=hunter2",
        "postgresql://u@h/db?sslpassword=hunter2",
        "http://me:hunter2@127.0.0.1:5000",
    ],
)
def test_a_password_in_userinfo_or_query_is_found_and_masked(url: str) -> None:
    assert backends.has_password(url)
    assert "hunter2" not in backends.redact(f"cannot connect to {url}: refused")
    with pytest.raises(ConfigError, match="the URL contains a password") as refused:
        backends.refuse_password(url, "hydra.sweeper.storage")
    assert "hunter2" not in str(refused.value)


def test_a_url_without_a_password_is_left_alone() -> None:
    url = "postgresql+psycopg2://tuneflow@127.0.0.1:5432/optuna?sslmode=require"
    assert not backends.has_password(url)
    assert backends.redact(url) == url


def test_a_user_field_that_carries_a_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="contains ':'") as refused:
        backends.storage_url({**POSTGRES, "user": "ann:hunter2"}, "mlruns")
    assert "hunter2" not in str(refused.value)


def test_postgresql_without_a_driver_uses_the_installed_psycopg2() -> None:
    import importlib.util

    mapped = backends.with_installed_driver("postgresql://ann@db/optuna")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        assert mapped == "postgresql+psycopg2://ann@db/optuna"
    else:
        assert mapped == "postgresql://ann@db/optuna"
    assert backends.with_installed_driver("postgresql+psycopg://ann@db/optuna") == "postgresql+psycopg://ann@db/optuna"
    assert backends.with_installed_driver("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("name", ["..", ".", "a/../../b", "/abs", "a//b", "a/", "a\\b", "it's", 'say "hi"', "a`b", "a\nb", " ", "s" * 101])
def test_a_study_name_is_plain_folder_names_that_stay_inside_the_root(name: str) -> None:
    from tuneflow.storage.study import check_study_name

    with pytest.raises(ConfigError, match="hydra.sweeper.study_name is"):
        check_study_name(name)


@pytest.mark.parametrize("name", ["quadratic", "bakery v2", "mlp-zoom_2", "s" * 100, "twin/coarse/zone-1"])
def test_plain_study_names_pass(name: str) -> None:
    from tuneflow.storage.study import check_study_name

    check_study_name(name)


def test_every_value_in_an_mlflow_filter_is_quoted_so_that_a_quote_finds_its_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from tuneflow.tracking.runs import filter_value

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    for value in ("it's", 'say "hi"', "plain"):
        client.create_run(experiment, tags={"tuneflow.study": value})
    for value in ("it's", 'say "hi"', "plain"):
        runs = client.search_runs([experiment], filter_string=f"tags.`tuneflow.study` = {filter_value(value)}")
        assert [r.data.tags["tuneflow.study"] for r in runs] == [value]
    with pytest.raises(ConfigError, match="both kinds of quote"):
        filter_value("""it's "x" """)
