"""How a trial's model and texts are saved: straight into a local run's artifact folder, with the requirements
tuneflow pins itself not checked again by MLflow, and still loadable by ``mlflow.pyfunc.load_model``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneflow.models.synthetic import QuadraticModel
from tuneflow.tracking import runs as tracking


def _counting_check(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the requirements MLflow's mismatch check looks at."""
    import mlflow.utils.requirements_utils as requirements_utils

    seen: list[str] = []
    original = requirements_utils._check_requirement_satisfied

    def counting(requirement: str) -> Any:
        seen.append(requirement)
        return original(requirement)

    monkeypatch.setattr(requirements_utils, "_check_requirement_satisfied", counting)
    return seen


def test_pinned_requirements_skip_mlflows_check_and_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    seen = _counting_check(monkeypatch)
    tracking.save_model(QuadraticModel(1.5), None, tmp_path / "pinned")
    assert seen == []
    pins = (tmp_path / "pinned" / "requirements.txt").read_text().splitlines()
    assert f"cloudpickle=={tracking.installed_version('cloudpickle')}" in pins
    assert {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"} <= {
        p.name for p in (tmp_path / "pinned").iterdir()}
    assert list(mlflow.pyfunc.load_model(str(tmp_path / "pinned")).predict(np.zeros((2, 1)))) == [1.5, 1.5]

    # Requirements the caller names are checked by MLflow as before.
    tracking.save_model(QuadraticModel(1.5), None, tmp_path / "theirs", pip_requirements=["numpy"])
    assert "numpy" in seen


class _Unpicklable:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def predict(self, x: Any) -> Any:
        return x


def test_a_model_saved_into_a_local_store_leaves_nothing_when_saving_fails(tmp_path: Path) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    store = LocalArtifactRepository(str(tmp_path / "artifacts"))
    tracking.log_model(store, QuadraticModel(0.5), None)
    assert (tmp_path / "artifacts" / "model" / "MLmodel").is_file()
    with pytest.raises(Exception, match="serialize"):
        tracking.log_model(store, _Unpicklable(), None, name="broken")
    assert not (tmp_path / "artifacts" / "broken").exists()


def test_text_written_into_a_local_store_is_the_runs_artifact(tmp_path: Path) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    store = LocalArtifactRepository(str(tmp_path / "artifacts"))
    tracking.log_text(store, "a: 1\n", "config.yaml")
    tracking.log_text(store, "a: 2\n", "config.yaml")  # an existing artifact is replaced, as MLflow does
    assert [info.path for info in store.list_artifacts()] == ["config.yaml"]
    assert (tmp_path / "artifacts" / "config.yaml").read_text() == "a: 2\n"
