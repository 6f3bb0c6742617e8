"""The thin public face of tuneflow's launcher (``hydra/launcher=tuneflow``, the default in tuneflow's
config); the work lives in tuneflow.sweeper.launcher, imported lazily so that plugin discovery stays cheap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

# Registers the launcher's config in Hydra's ConfigStore (hydra/launcher=tuneflow).
from hydra_plugins.tuneflow_sweeper import config as _config  # noqa: F401


class TuneflowLauncher(Launcher):
    def __init__(self, **_: Any) -> None:
        from tuneflow.sweeper.launcher import InProcessLauncher

        self._impl = InProcessLauncher()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self._impl.launch(job_overrides, initial_job_idx)
