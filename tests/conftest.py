"""Shared helpers: run tuneflow as a user does (a subprocess in a fresh project folder) and read
back what it recorded in Optuna and MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def tuneflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    env["PYTHONUNBUFFERED"] = "1"
    # One thread per process: tests run several trainers at once on a 2-core machine.
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_tuneflow(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuneflow", *args],
        cwd=project,
        env=tuneflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_tuneflow(project: Path, *args: str, timeout: float = 300) -> Result:
    process = start_tuneflow(project, *args)
    stdout, stderr = process.communicate(timeout=timeout)
    return Result(process.returncode, stdout, stderr)


@pytest.fixture(autouse=True)
def tuneflow_resolvers() -> None:
    """``${tuneflow.study_day:}`` resolves in every test: tuneflow registers it when imported, and Hydra's
    own test fixtures (hydra_restore_singletons) restore OmegaConf's resolvers to what they were before."""
    from tuneflow.trial.api import register_resolvers

    register_resolvers()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty folder a user runs tuneflow in."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def load_study(project: Path, name: str) -> Any:
    import optuna

    from tuneflow.storage.study import open_storage
    from tuneflow.storage.urls import default_storage_url, embedded_file

    # The store the sweeper's default put there (the journal, or an earlier tuneflow's SQLite file).
    if not embedded_file(project / "mlruns").is_file():  # opening it would create it: reading must not
        raise FileNotFoundError(embedded_file(project / "mlruns"))
    return optuna.load_study(study_name=name, storage=open_storage(default_storage_url(project / "mlruns")))


def mlflow_client(project: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")


def load_logged_model(project: Path, run_id: str, name: str = "model") -> Any:
    """A run's logged model as ``mlflow.pyfunc`` loads it, from the project's store (no global
    tracking URI is set, so later tests see MLflow as they would in a fresh process)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=name, tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    )
    return mlflow.pyfunc.load_model(local)


def study_runs(project: Path, study: str, role: str = "trial") -> list[Any]:
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no MLflow experiment {study!r}"
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`tuneflow.role` = '{role}'",
        max_results=10_000,
    )


@pytest.fixture(scope="session")
def cluster() -> Any:
    """PostgreSQL + an MLflow server from tuneflow.deploy.local_cluster, shared by the tests of a session
    (each test uses its own study). Skipped where PostgreSQL is missing, except in CI (.ci/run)."""
    from topology import local_cluster

    with local_cluster() as running:
        yield running
