"""Optuna samplers adapted to a sweeper that asks and tells (rather than calling ``study.optimize``)."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its ``study.stop()`` once the grid is exhausted.

    ``Study.stop`` only works inside ``optimize``; under ask-and-tell it raises before the trial's
    state is saved. The tuneflow sweeper stops by itself once every grid point has a finished trial.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None
