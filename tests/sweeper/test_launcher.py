"""tuneflow's launcher (the default) runs a multirun's jobs exactly as Hydra's basic launcher does:
same job configs, same Hydra job settings during the job, same output folders; Hydra's launchers stay
selectable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

SWEEP = ["hydra/sweeper=basic", "hydra.sweeper.params=null", "+arch=quadratic", "params.x=0.5,1.5", "params.epochs=2,3", "seed=7",
         "hydra.sweep.subdir=${hydra.job.num}"]


def what_a_job_sees(cfg: DictConfig) -> dict[str, Any]:
    hydra = HydraConfig.get()
    logging_file = OmegaConf.select(hydra, "job_logging.handlers.file.filename")
    return {
        "config": OmegaConf.to_yaml(cfg),
        "num": hydra.job.num,
        "id": hydra.job.id,
        "override_dirname": hydra.job.override_dirname,
        "overrides": list(hydra.overrides.task),
        "choices": {group: choice for group, choice in hydra.runtime.choices.items() if group != "hydra/launcher"},
        "output_dir": Path(hydra.runtime.output_dir).name,
        "log_file": Path(logging_file).name,
        "mode": str(hydra.mode),
        "hydra_config_keys": list(HydraConfig.instance().cfg),  # type: ignore[arg-type]
        "hydra_is_read_only": OmegaConf.is_readonly(hydra),
    }


def run_sweep(hydra_sweep_runner: Any, launcher: str, folder: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    seen: list[dict[str, Any]] = []

    def task(cfg: DictConfig) -> int:
        seen.append(what_a_job_sees(cfg))
        return int(cfg.params.epochs)

    sweep = hydra_sweep_runner(
        calling_file=None, calling_module="tuneflow.cli.app", task_function=task, config_path="pkg://tuneflow.conf",
        config_name="config", overrides=[*SWEEP, f"hydra/launcher={launcher}"], temp_dir=folder,
    )
    with sweep:
        returns = [job for batch in sweep.returns for job in batch]
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        written = {name: (folder / name).read_text() for name in files if name.endswith((".yaml", ".log"))}
    return seen, [returns, files, written]


def test_tuneflow_launcher_runs_jobs_as_the_basic_launcher_does(
    hydra_sweep_runner: Any, hydra_restore_singletons: Any, tmp_path: Path
) -> None:
    basic_seen, (basic_returns, basic_files, basic_written) = run_sweep(hydra_sweep_runner, "basic", tmp_path / "b")
    ours_seen, (our_returns, our_files, our_written) = run_sweep(hydra_sweep_runner, "tuneflow", tmp_path / "t")

    assert len(ours_seen) == 4
    assert ours_seen == basic_seen
    assert [r.return_value for r in our_returns] == [r.return_value for r in basic_returns] == [2, 3, 2, 3]
    assert [r.overrides for r in our_returns] == [r.overrides for r in basic_returns]
    assert [OmegaConf.to_yaml(r.cfg) for r in our_returns] == [OmegaConf.to_yaml(r.cfg) for r in basic_returns]
    assert [r.hydra_cfg.hydra.job.num for r in our_returns] == [0, 1, 2, 3]
    # The same files, with the same content: each job's folder holds its config, overrides and log file;
    # Hydra's own settings (hydra.yaml) are written once per multirun instead of once per job.
    assert set(our_files) - {".hydra/hydra.yaml"} == set(basic_files) - {f"{job}/.hydra/hydra.yaml" for job in range(4)}
    assert {"0/.hydra/config.yaml", "0/.hydra/overrides.yaml", "0/tuneflow.log", ".hydra/hydra.yaml"} <= set(our_files)
    for name in set(our_files) - {".hydra/hydra.yaml", "multirun.yaml"}:  # multirun.yaml names the launcher
        assert our_written.get(name) == basic_written.get(name), name
    assert OmegaConf.create(our_written[".hydra/hydra.yaml"]).hydra.launcher._target_.endswith("TuneflowLauncher")

def compose_launcher(*overrides: str) -> str:
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+arch=quadratic", *overrides], return_hydra_config=True)
    return str(cfg.hydra.launcher._target_)


@pytest.mark.parametrize(
    ("choice", "target"),
    [
        ((), "hydra_plugins.tuneflow_sweeper.tuneflow_launcher.TuneflowLauncher"),
        (("hydra/launcher=basic",), "hydra._internal.core_plugins.basic_launcher.BasicLauncher"),
        (("hydra/launcher=joblib",), "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ],
)
def test_tuneflow_launcher_is_the_default_and_hydras_stay_selectable(choice: tuple[str, ...], target: str) -> None:
    assert compose_launcher(*choice) == target

