"""tuneflow works from a wheel, not only from this checkout: configs and the Hydra plugin ship inside."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import tuneflow_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (built,) = out.glob("tuneflow-*.whl")
    return built


def test_the_wheel_carries_every_config_group_and_the_plugin(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_configs = {p.relative_to(REPO / "src").as_posix() for p in (REPO / "src/tuneflow/conf").rglob("*.yaml")}
    assert shipped_configs and shipped_configs <= names
    assert "hydra_plugins/tuneflow_sweeper/tuneflow_sweeper.py" in names
    assert "hydra_plugins/__init__.py" not in names, "hydra_plugins must stay a namespace package"


def test_a_study_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    project = tmp_path / "project"
    project.mkdir()
    env = {**tuneflow_env(), "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import tuneflow, hydra_plugins.tuneflow_sweeper as p; print(tuneflow.__file__, p.__file__)"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert where.count(str(site)) == 2, where
    result = subprocess.run(
        [sys.executable, "-m", "tuneflow", "+arch=quadratic", "-m", "hydra.sweeper.n_trials=2"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[2/2] trial 1" in result.stdout + result.stderr
    assert os.path.exists(project / "mlruns" / "optuna.journal")
