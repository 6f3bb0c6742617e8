"""The thin public face Hydra discovers; the work lives in tuneflow.sweeper.sweep, imported lazily
so that plugin discovery (which imports every module here) stays cheap."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

# Registers the sweeper, sampler and pruner configs in Hydra's ConfigStore.
from hydra_plugins.tuneflow_sweeper import config as _config  # noqa: F401


class TuneflowSweeper(Sweeper):
    def __init__(self, **sweeper_cfg: Any) -> None:
        from tuneflow.sweeper.sweep import StudySweeper

        self._impl = StudySweeper(**sweeper_cfg)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        """Runs the study. Returns nothing, as Hydra's Optuna sweeper: the results are the study, the
        MLflow runs, the CSV and optimization_results.yaml."""
        from tuneflow.console import one_line_errors, terminate_like_interrupt

        terminate_like_interrupt()
        with one_line_errors():  # in any app: one line and status 2, as in tuneflow's own
            from tuneflow.strategy.sweeper_backend import is_strategy, sweep_strategy

            if is_strategy(self._impl.config):  # +strategy=NAME: stages of studies, each swept by the same sweeper
                sweep_strategy(self._impl, arguments)
                return
            self._impl.sweep(arguments)
