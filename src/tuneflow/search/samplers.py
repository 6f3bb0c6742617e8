"""Optuna samplers as tuneflow uses them: the default sampler for Python code, and samplers adapted to a
sweeper that asks and tells (rather than calling ``study.optimize``). Failure-aware sampling (a failed
trial teaches the sampler that its region fails) lives in ``tuneflow.search.failure_aware``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

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


class QmcThenTpeSampler(optuna.samplers.BaseSampler):
    """Scrambled quasi-random points (Optuna's QMCSampler) for the first ``n_startup_trials`` trials, then
    Optuna's TPESampler modelling from them (``hydra/sweeper/sampler=qmc_tpe``).

    Optuna's TPESampler draws its start-up trials from its own RandomSampler and takes no other start-up
    sampler, so the two are chained here by trial number: one sampler answers a whole trial (the trials a
    Sobol sequence spreads evenly, rather than random draws that clump, are what TPE first models). Measured
    in benchmarks/replay.py's sampler search (benchmarks/README.md)."""

    def __init__(
        self,
        seed: int | None = None,
        n_startup_trials: int = 5,
        qmc_type: str = "sobol",
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        group: bool = False,
        constant_liar: bool = True,
    ) -> None:
        self._n_startup_trials = n_startup_trials
        self._qmc = optuna.samplers.QMCSampler(qmc_type=qmc_type, scramble=True, seed=seed,
                                               warn_asynchronous_seeding=False, warn_independent_sampling=False)
        self._tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, n_ei_candidates=n_ei_candidates,
                                               multivariate=multivariate, group=group,
                                               constant_liar=constant_liar)

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._qmc if trial.number < self._n_startup_trials else self._tpe

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, optuna.distributions.BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._qmc.reseed_rng()
        self._tpe.reseed_rng()


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
