"""The driver's side of the asynchronous workers (tuneflow.sweeper.workers), in process: settings checked,
the stores every worker gets resolved to absolute form once, a relative SQLite file refused on an engine
whose workers may run on other machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneflow.errors import ConfigError
from tuneflow.storage.study import study_settings
from tuneflow.sweeper.workers import absolute_stores, workers_settings


def test_no_engine_means_the_launcher_runs_batches() -> None:
    assert workers_settings(None, 1) is None
    assert workers_settings({"engine": None, "n": 4}, 4) is None


def test_engine_options_are_kept_per_engine() -> None:
    slurm = workers_settings({"engine": "slurm", "n": 8, "slurm": {"slurm_partition": "gpu"}, "local": {"x": 1}}, 1)
    assert slurm is not None and slurm.submitit == {"slurm_partition": "gpu"} and slurm.multi_node
    ray = workers_settings({"engine": "ray", "n": 2, "ray": {"address": None, "num_cpus": 1, "num_gpus": 0}}, 1)
    assert ray is not None and not ray.multi_node and ray.ray_options == {"num_cpus": 1, "num_gpus": 0}
    remote = workers_settings({"engine": "ray", "n": 2, "ray": {"address": "ray://head:10001"}}, 1)
    assert remote is not None and remote.multi_node


def test_every_worker_gets_the_drivers_stores_in_absolute_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = {"root_dir": "mlruns", "storage": {"kind": "sqlite", "url": None}, "tracking_uri": None}
    local = workers_settings({"engine": "local", "n": 2}, 1)
    assert local is not None
    resolved = absolute_stores(cfg, study_settings(cfg), local)
    assert resolved["root_dir"] == str(tmp_path / "mlruns")
    assert resolved["storage"] == f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    assert resolved["tracking_uri"] == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.mark.parametrize("storage", [{"kind": "sqlite", "url": None}, {"kind": "sqlite", "url": "sqlite:///db/optuna.db"}])
def test_a_relative_sqlite_file_is_refused_where_workers_run_on_other_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: dict[str, object]) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = {"root_dir": "mlruns", "storage": storage}
    slurm = workers_settings({"engine": "slurm", "n": 2}, 1)
    assert slurm is not None
    with pytest.raises(ConfigError, match="SQLite at a relative path .* use hydra/sweeper/storage=postgres"):
        absolute_stores(cfg, study_settings(cfg), slurm)
    # An absolute path (a shared file system) is the user's call.
    shared = {"root_dir": str(tmp_path / "shared"), "storage": {"kind": "sqlite", "url": None}}
    assert absolute_stores(shared, study_settings(shared), slurm)["storage"].startswith(f"sqlite:///{tmp_path}")


@pytest.mark.parametrize("storage", [{"kind": "journal", "url": None}, {"kind": "journal", "url": "journal://db/optuna.journal"}])
def test_a_relative_journal_file_is_refused_where_workers_run_on_other_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: dict[str, object]) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = {"root_dir": "mlruns", "storage": storage}
    slurm = workers_settings({"engine": "slurm", "n": 2}, 1)
    assert slurm is not None
    with pytest.raises(ConfigError, match="a journal file at a relative path .* use hydra/sweeper/storage=postgres"):
        absolute_stores(cfg, study_settings(cfg), slurm)
    local = workers_settings({"engine": "local", "n": 2}, 1)
    assert local is not None
    expected = storage["url"] or "journal://mlruns/optuna.journal"
    assert absolute_stores(cfg, study_settings(cfg), local)["storage"] == \
        f"journal://{tmp_path / str(expected)[len('journal://'):]}"
