"""Optuna samplers as tuneflow uses them: the default sampler for Python code, and samplers adapted to a
sweeper that asks and tells (rather than calling ``study.optimize``). Failure-aware sampling (a failed
trial teaches the sampler that its region fails) lives in ``tuneflow.search.failure_aware``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneflow.search.failure_aware import wrap


class _NoStopAfterLastPoint:
    """Optuna's enumerating samplers call ``study.stop()`` once every point was tried; ``Study.stop`` only
    works inside ``optimize``, and under ask-and-tell it raises before the trial's state is saved. The
    tuneflow sweeper counts the points of the space and stops by itself."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


class GridSampler(_NoStopAfterLastPoint, optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its ``study.stop()`` once the grid is exhausted."""


class BruteForceSampler(_NoStopAfterLastPoint, optuna.samplers.BruteForceSampler):
    """Optuna's brute-force sampler, minus its ``study.stop()`` once every point was tried."""


def default_sampler(seed: int | None = None, failure_aware: bool | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``python -m tuneflow ... -m`` uses when no sampler is chosen, seeded with ``seed``.

    Built from the same structured configs the sweeper instantiates
    (``tuneflow.search.configs.SAMPLERS[DEFAULT_SAMPLER]``, and the sweeper's ``failure_aware``
    unless ``failure_aware`` is given), so a study driven from Python (a benchmark, a notebook) searches
    exactly as the command line does:

    >>> study = optuna.create_study(sampler=default_sampler(seed=0))
    """
    from hydra.utils import instantiate

    from tuneflow.search.configs import DEFAULT_FAILURE_AWARE, DEFAULT_SAMPLER, SAMPLERS

    settings = dataclasses.asdict(SAMPLERS[DEFAULT_SAMPLER](seed=seed))
    sampler = instantiate(settings, _convert_="all")
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise TypeError(f"the default sampler config builds {type(sampler).__name__}, not an Optuna sampler")
    if failure_aware is None:
        failure_aware = DEFAULT_FAILURE_AWARE
    return wrap(sampler) if failure_aware else sampler
