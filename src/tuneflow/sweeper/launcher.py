"""tuneflow's default Hydra launcher: the jobs of a multirun, one after another in this process.

It does what Hydra's basic launcher does (same job configs, same ``hydra.job``/``hydra.runtime`` fields,
same output folder per job with ``.hydra/config.yaml`` and ``overrides.yaml``, the job's log file, the
callbacks), at a fraction of its cost per job:

- Job configs come from ``JobConfigs``: composed by Hydra once per set of group choices, copied with
  each job's values, instead of composed from scratch per job (~200 ms -> ~10 ms on 2 cores).
- ``run_job`` below is Hydra's ``hydra.core.utils.run_job`` without what only costs time: the job's
  ``hydra`` node is not copied again (Hydra: four times per job; ``hydra_view``), and
  ``.hydra/hydra.yaml`` (Hydra's own 180-line settings, ~20 ms to write per job) is written once per
  multirun, in the sweep folder, instead of once per job; the job's ``hydra.*`` values that differ from
  it are in ``overrides.yaml``.

``hydra/launcher=basic`` (or ``joblib``) selects Hydra's own launchers again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    configure_log,
    env_override,
    filter_overrides,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write

from tuneflow.sweeper.job_configs import JobConfigs

log = logging.getLogger(__name__)


class InProcessLauncher:
    """The implementation behind ``hydra_plugins.tuneflow_sweeper.tuneflow_launcher.TuneflowLauncher``."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.job_configs: JobConfigs | None = None
        self._hydra_yaml_written = False
        self._launches = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.job_configs = JobConfigs(hydra_context.config_loader, config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None and self.job_configs is not None
        setup_globals()
        if self._launches == 0:
            # Later launches find Hydra's logging as the previous launch left it, after its last job.
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # At DEBUG: the sweeper prints one line per finished trial, the trial's log file its overrides.
        log.debug(f"Launching {len(job_overrides)} jobs locally")
        runs: list[JobReturn] = []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            log.debug(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            config = self.job_configs.load(overrides)
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            if not self._hydra_yaml_written:
                save_hydra_settings(config, sweep_dir)
                self._hydra_yaml_written = True
            runs.append(run_job(self.hydra_context, self.task_function, config))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        self._launches += 1
        return runs


def save_hydra_settings(config: DictConfig, sweep_dir: Path) -> None:
    """Hydra's settings of the multirun's jobs (what each job's ``.hydra/hydra.yaml`` would repeat)."""
    if config.hydra.output_subdir is None:
        return
    target = sweep_dir / str(config.hydra.output_subdir)
    target.mkdir(parents=True, exist_ok=True)
    (target / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.masked_copy(config, "hydra")), encoding="utf-8")


def job_output_dir(config: DictConfig) -> str:
    """``hydra.sweep.dir``/``hydra.sweep.subdir``, resolved as Hydra resolves them (``${hydra:...}`` too)."""
    instance = HydraConfig.instance()
    previous = instance.cfg
    # The ${hydra:...} resolver reads HydraConfig; the job's own config answers for it while the folder
    # names resolve (Hydra sets a copy of it twice per job for this).
    instance.cfg = config  # type: ignore[assignment]
    try:
        return os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")),
                            str(OmegaConf.select(config, "hydra.sweep.subdir")))
    finally:
        instance.cfg = previous


def hydra_view(config: DictConfig) -> DictConfig:
    """What ``HydraConfig.set_config`` makes of a job's config for ``HydraConfig.get()`` (a config holding
    only the read-only ``hydra`` node, whose parent stays the job's config so that interpolations reach
    the app's values), without its deep copy of the node (~6 ms per job on 2 busy cores): the job's config is already a
    copy of its own (``JobConfigs``), which nothing changes after the job. OmegaConf's
    ``no_deepcopy_set_nodes`` flag (what ``OmegaConf.unsafe_merge`` sets) skips the copy."""
    OmegaConf.set_readonly(config.hydra, True)
    view = OmegaConf.create({})
    node = config.hydra
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view.hydra = node
    node._set_parent(config)  # as set_config does: the node is the job config's, shown through the view
    return view


def task_part(config: DictConfig) -> DictConfig:
    """The config the task function sees: everything but ``hydra``, with the root's flags."""
    task = OmegaConf.masked_copy(config, [str(key) for key in config if key != "hydra"])
    OmegaConf.set_struct(task, bool(OmegaConf.is_struct(config)))
    OmegaConf.set_readonly(task, bool(OmegaConf.is_readonly(config)))
    return task


def run_job(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> JobReturn:
    """Run one job as ``hydra.core.utils.run_job`` does, minus its redundant copies (see the module doc)."""
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    instance = HydraConfig.instance()
    previous_hydra_cfg = instance.cfg
    output_dir = job_output_dir(config)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    instance.cfg = hydra_view(config)  # type: ignore[assignment]
    chdir: bool | None = None
    try:
        ret = JobReturn()
        task_cfg = task_part(config)
        ret.cfg = task_cfg
        # The job's own read-only hydra node (its config is a copy of its own): nothing changes it after the job.
        ret.hydra_cfg = instance.cfg  # type: ignore[assignment]
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        Path(output_dir).mkdir(parents=True, exist_ok=True)

        chdir = config.hydra.job.chdir
        if chdir is None:
            # Hydra's rule: version_base 1.2 and later stay in the current folder.
            chdir = not version.base_at_least("1.2")
        if chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()

        configure_log(config.hydra.job_logging, config.hydra.verbose)

        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            hydra_output.mkdir(parents=True, exist_ok=True)
            (hydra_output / "config.yaml").write_text(OmegaConf.to_yaml(task_cfg), encoding="utf-8")
            (hydra_output / "overrides.yaml").write_text(
                OmegaConf.to_yaml(config.hydra.overrides.task), encoding="utf-8"
            )

        with env_override(dict(config.hydra.job.env_set)):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as error:  # noqa: BLE001 - Hydra hands the job's error back the same way
                ret.return_value = error
                ret.status = JobStatus.FAILED

        ret.task_name = JobRuntime.instance().get("name")
        _flush_log_handlers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        instance.cfg = previous_hydra_cfg
        if chdir:
            os.chdir(old_cwd)


def _flush_log_handlers() -> None:
    """So the job's log file is complete when the job returns (Hydra flushes every handler)."""
    loggers: list[Any] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - a broken handler must not fail the job
                pass
