"""docker/: no Docker engine runs on our machines, so the compose file and the Dockerfile are checked as
files: the services are there, ports bind 127.0.0.1, no password is written in them, and they describe
the same topology as tuneflow.deploy.local_cluster (which the other tests really start)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuneflow.deploy import local_cluster
from tuneflow.storage.urls import has_password

DOCKER = Path(__file__).resolve().parents[1] / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_services_are_postgres_mlflow_dashboard_and_scalable_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "dashboard", "worker"}
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs both absent"
    assert {name for name, rule in worker["depends_on"].items() if rule["condition"] == "service_healthy"} == {
        "postgres", "mlflow"}
    assert all("healthcheck" in services[name] for name in ("postgres", "mlflow"))


def test_every_published_port_binds_127_0_0_1(compose: dict[str, Any]) -> None:
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert len(published) == 3
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_no_password_is_written_in_the_files(compose: dict[str, Any]) -> None:
    for path in DOCKER.rglob("*"):
        if path.is_file():
            assert not has_password(path.read_text()), path
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if "PASSWORD" in key:
                assert re.fullmatch(r"\$\{TUNEFLOW_DB_PASSWORD:\?[^}]+\}", value), (name, key, value)
    assert "docker/.env" in (DOCKER.parent / ".gitignore").read_text().splitlines()


def test_the_topology_is_the_one_the_local_cluster_starts(compose: dict[str, Any]) -> None:
    """Same role, same two databases, same settings handed to workers, same worker command."""
    services = compose["services"]
    postgres_env = _environment(services["postgres"])
    assert postgres_env["POSTGRES_USER"] == local_cluster.DB_USER
    assert postgres_env["POSTGRES_DB"] == local_cluster.OPTUNA_DB
    assert f"CREATE DATABASE {local_cluster.MLFLOW_DB} OWNER {local_cluster.DB_USER}" in (
        DOCKER / "initdb" / "10-mlflow-database.sql").read_text()

    mlflow_args = dict(a.lstrip("-").split("=", 1) for a in services["mlflow"]["command"])
    assert mlflow_args["backend-store-uri"] == (
        f"postgresql+psycopg2://{local_cluster.DB_USER}@postgres:5432/{local_cluster.MLFLOW_DB}")

    worker_env = _environment(services["worker"])
    cluster_env = local_cluster.LocalCluster(Path("/x"), password="p").worker_env()
    assert set(worker_env) == set(cluster_env)
    assert worker_env["PGDATABASE"] == cluster_env["PGDATABASE"] and worker_env["PGUSER"] == cluster_env["PGUSER"]
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    command = shlex.split(re.sub(r"\$\{TUNEFLOW_ARGS:-([^}]*)\}", r"\1", services["worker"]["command"]))
    assert "-m" in command and "hydra/sweeper/storage=postgres" in command


def test_the_image_installs_cpu_torch_pinned_by_the_constraints() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    install = next(line for line in dockerfile.splitlines() if line.startswith("RUN pip install"))
    assert "-c constraints.txt" in install and "download.pytorch.org/whl/cpu" in install
    assert "'.[postgres,dashboard]'" in install
    assert "USER tuneflow" in dockerfile, "the image does not run as root"
    assert "torch==" in (DOCKER.parent / "constraints.txt").read_text()
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignored and "!src/" in ignored, "only what the image needs enters the build context"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with the `<<: *anchor` merges resolved (yaml.safe_load does that)."""
    return {str(k): str(v) for k, v in (service.get("environment") or {}).items()}
