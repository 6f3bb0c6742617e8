"""Failure-aware search: a failed trial teaches the sampler that its region fails.

Optuna's samplers read only COMPLETE, PRUNED (and, with the constant liar, RUNNING) trials. A trial that
raised (out of memory at a large batch size) or diverged (NaN at a large learning rate) is FAIL and
invisible to them: the failing region stays unexplored in the sampler's eyes and TPE goes back to it again
and again (issue 18: after the start-up trials, 48 of 50 TPE trials failed on a space where 20% fails).

``FailureAwareSampler`` wraps any sampler and does two things:

1. **The view.** When it samples, it shows the sampler a view of the study in which each failed trial
   appears as a COMPLETE but **infeasible** trial: constraint ``tuneflow_failed`` = 1 (every other complete
   trial gets 0), value = the worst value observed so far. Optuna 5's samplers read feasibility from the
   trials themselves (``FrozenTrial.constraints``), no ``constraints_func`` needed:

   - GP fits a second Gaussian process to the constraint and multiplies its expected improvement by the
     probability of being feasible (the value only shapes the objective's GP: the worst observed is a
     cautious guess for a point that produced none); that alone keeps it out of failing regions;
   - TPE ranks infeasible trials after every complete and pruned one: failures join its "bad" density, so
     it treats a failing region as it treats its worst trials. That stops the 90% failure rate, but not
     more: next to a good region TPE still samples a failing one as often as random search does;
   - random search reads nothing, so wrapping it changes nothing.

2. **A second look** at a joint (relative) suggestion: if the finished trial nearest to it (in the search
   space scaled to [0, 1] per parameter, log scale for log parameters, 1 for a different choice) failed,
   the sampler draws again, up to ``redraws`` times, and the last draw stands. A nearest-neighbour guess
   of the failing region, as fine as the trials are dense; it brings TPE's share of failures below random
   search's (benchmarks/failures.py).

The stored trials are not touched: they stay FAIL in Optuna, in MLflow and in the CSV. Only the sampler's
reads see the view. While no trial has failed, or no trial has completed yet (nothing to rank failures
against), the sampler sees the study as it is, so it suggests exactly what it would unwrapped.

Not every FAIL trial says something about its region (``region_failures``): a trial whose worker stopped
heartbeating (retried by ``RetryHeartbeatStaleTrialCallback``), a surplus trial that lost a race for the
last places, and a trial of tuneflow's sweeper that failed without an error of its own (interrupted, its
worker or launcher died) are left out.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Container, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneflow.storage.study import ERROR_ATTR, OVERRIDES_ATTR, SURPLUS_ATTR
from tuneflow.storage.tally import FinishedTrialFold, retried_numbers

__all__ = ["FAILED_CONSTRAINT", "FailureAwareSampler", "FailureTally", "describe_failures", "region_failures", "wrap"]

#: The constraint failed trials violate in the sampler's view (``FrozenTrial.constraints``).
FAILED_CONSTRAINT = "tuneflow_failed"
#: Draws of a joint suggestion that lands next to a failure, after the first (see benchmarks/failures.py).
DEFAULT_REDRAWS = 8


# --- which failures count -------------------------------------------------------------------------


def region_failures(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The FAIL trials of ``trials`` whose failure says their region fails.

    Left out: surplus trials (``tuneflow_surplus``), trials a heartbeat retry names in its
    ``retry_history`` (their worker died, the retry runs the same params again), and trials asked by
    tuneflow's sweeper (they carry ``tuneflow_overrides``) that failed without an ``error`` of their own:
    the sweeper records the error of every trial that raised or diverged, so one without was stopped from
    outside (Ctrl-C, SIGTERM, a dead worker whose retries ran out, a launcher failure). A FAIL trial of a
    plain Optuna study (no tuneflow attributes) counts: ``study.optimize`` fails a trial only when its
    objective raised or returned NaN.
    """
    retried = {number for trial in trials for number in retried_numbers(trial)}
    return [trial for trial in trials if _says_region_fails(trial) and trial.number not in retried]


def _says_region_fails(trial: FrozenTrial) -> bool:
    """``region_failures``' test of one trial, all but the retries (which other trials record)."""
    return (
        trial.state == TrialState.FAIL
        and not trial.user_attrs.get(SURPLUS_ATTR)
        and (OVERRIDES_ATTR not in trial.user_attrs or bool(trial.user_attrs.get(ERROR_ATTR)))
    )


class FailureTally(FinishedTrialFold):
    """``region_failures`` and ``worst_values`` of a study, each finished trial folded in once
    (``tuneflow.storage.tally``): the sampler reads them on every suggestion, and going over every trial
    took ~15 ms of CPU per suggestion at 10,000 trials."""

    def __init__(self, directions: Sequence[StudyDirection] = (StudyDirection.MINIMIZE,)) -> None:
        super().__init__()
        self.directions = list(directions)
        self.reset()

    def reset(self) -> None:
        self._failed: dict[int, FrozenTrial] = {}
        self._retried: set[int] = set()
        self._unfinished_retry: set[int] = set()
        self._worst: list[float] | None = None

    def fold(self, trial: FrozenTrial) -> None:
        self._retried.update(retried_numbers(trial))
        if _says_region_fails(trial):
            self._failed[trial.number] = trial
        if trial.state == TrialState.COMPLETE and trial.values is not None and all(math.isfinite(v) for v in trial.values):
            if self._worst is None:
                self._worst = list(trial.values)
            else:
                self._worst = [
                    (max if direction == StudyDirection.MINIMIZE else min)(worst, value)
                    for worst, value, direction in zip(self._worst, trial.values, self.directions)
                ]

    def look(self, unfinished: Sequence[FrozenTrial]) -> None:
        self._unfinished_retry = {number for trial in unfinished for number in retried_numbers(trial)}

    def failures(self) -> list[FrozenTrial]:
        """As ``region_failures`` of the trials last given to ``update``."""
        return [
            trial for number, trial in sorted(self._failed.items())
            if number not in self._retried and number not in self._unfinished_retry
        ]

    def worst(self) -> list[float] | None:
        """As ``worst_values`` of the trials last given to ``update``."""
        return None if self._worst is None else list(self._worst)


# --- the sampler ------------------------------------------------------------------------------------


class FailureAwareSampler(BaseSampler):
    """``base``, shown failed trials as complete-but-infeasible ones when it samples.

    Args:
        base: The sampler that does the sampling (TPE, GP, ...). It keeps its own state, seed and settings.
        redraws: How many times a joint suggestion whose nearest finished trial failed is drawn again
            (0: the view only).
        select_failures: Picks, from a study's trials, the failed trials to show as infeasible
            (default ``region_failures``).

    >>> def objective(trial):
    ...     x = trial.suggest_float("x", -5, 5)
    ...     if x > 3:
    ...         raise RuntimeError("out of memory")
    ...     return (x - 2) ** 2
    >>> def failed_after_startup(sampler):
    ...     study = optuna.create_study(sampler=sampler)
    ...     study.optimize(objective, n_trials=30, catch=(RuntimeError,))
    ...     return sum(t.state.name == "FAIL" for t in study.trials[10:])
    >>> plain = failed_after_startup(optuna.samplers.TPESampler(seed=0))
    >>> aware = failed_after_startup(FailureAwareSampler(optuna.samplers.TPESampler(seed=0)))
    >>> aware * 2 < plain
    True
    """

    def __init__(
        self,
        base: BaseSampler,
        *,
        redraws: int = DEFAULT_REDRAWS,
        select_failures: Callable[[Sequence[FrozenTrial]], list[FrozenTrial]] = region_failures,
    ) -> None:
        if not isinstance(base, BaseSampler):
            raise TypeError(f"The value of `base` is {type(base).__name__}, but must be an Optuna sampler.")
        if isinstance(redraws, bool) or not isinstance(redraws, int) or redraws < 0:
            raise ValueError(f"The value of `redraws` is {redraws!r}, but must be an integer >= 0.")
        self._base = base
        self._redraws = redraws
        self._select_failures = select_failures
        self._local = threading.local()  # the view of the trial being sampled (n_jobs > 1: one per thread)
        self._copies = ViewCopies()
        self._tally: FailureTally | None = None
        self._tally_lock = threading.Lock()

    @property
    def base(self) -> BaseSampler:
        """The wrapped sampler."""
        return self._base

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with its study (Optuna pickles samplers): per-thread reads and copies are not worth keeping.
        state = self.__dict__.copy()
        del state["_local"], state["_copies"], state["_tally"], state["_tally_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        self._copies = ViewCopies()
        self._tally = None
        self._tally_lock = threading.Lock()

    def __str__(self) -> str:
        return f"FailureAwareSampler({self._base})"

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        # The real study: a trial that failed before it suggested every parameter must not shrink the space.
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        view = self._view(study, trial, search_space.keys())
        params = self._base.sample_relative(view, trial, search_space)
        if view is study or not params or not self._redraws:
            return params
        _, trials, failures, _ = self._local.read
        neighbours: dict[frozenset[str], Neighbours] = {}
        for _ in range(self._redraws):
            # A genetic sampler (NSGA-II/III) returns part of the space (the rest is drawn independently):
            # the nearest trial is judged on the parameters it did return.
            names = frozenset(name for name in search_space if name in params)
            if names not in neighbours:
                space = {name: d for name, d in search_space.items() if name in names}
                neighbours[names] = Neighbours(space, trials, failures, exclude=trial.number)
            if not names or not neighbours[names].nearest_failed(params):
                break
            # The last draw stands: TPE and GP record it on the trial for other workers' constant liar.
            params = self._base.sample_relative(view, trial, search_space)
        return params

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = self._view(study, trial, (param_name,))
        return self._base.sample_independent(view, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._local.read = None  # a new trial: read the study afresh when it samples
        self._base.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def _view(self, study: optuna.Study, trial: FrozenTrial, names: Collection[str]) -> optuna.Study:
        """``study`` as the base sampler should see it while it samples ``names`` for ``trial``."""
        read = getattr(self._local, "read", None)
        if read is None or read[0] != trial.number:
            # Once per trial, like Optuna's own cache of the trials during one ``ask``.
            trials = study.get_trials(deepcopy=False)
            read = self._local.read = (trial.number, trials, *self._failures_and_worst(study, trials))
        _, trials, failures, penalty = read
        failures = [t for t in failures if all(name in t.params for name in names)]
        if not failures or penalty is None:
            return study
        return _study_view(study, infeasible_view(trials, failures, penalty, self._copies))


    def _failures_and_worst(
        self, study: optuna.Study, trials: list[FrozenTrial]
    ) -> tuple[list[FrozenTrial], list[float] | None]:
        """The failures to show and the penalty (the worst values so far) of ``trials``, the study as just read."""
        if self._select_failures is not region_failures:  # the user's choice: asked of every trial
            return self._select_failures(trials), worst_values(trials, study.directions)
        with self._tally_lock:
            if self._tally is None or self._tally.directions != list(study.directions):
                self._tally = FailureTally(study.directions)
            self._tally.update(trials)
            return self._tally.failures(), self._tally.worst()


class Neighbours:
    """The finished trials (complete, pruned, failed) that set every parameter of ``space``, as points of
    the space scaled to [0, 1] per numeric parameter (log scale for log ones); choices are 0 apart when
    equal, 1 otherwise. ``exclude``: the number of the trial being sampled."""

    def __init__(
        self, space: dict[str, BaseDistribution], trials: Sequence[FrozenTrial], failures: Sequence[FrozenTrial],
        exclude: int | None = None,
    ) -> None:
        self.space = space
        failed = {t.number for t in failures}
        finished = [
            t for t in trials
            if t.number != exclude and (t.number in failed or t.state in (TrialState.COMPLETE, TrialState.PRUNED))
            and all(name in t.params for name in space)
        ]
        self.failed = np.array([t.number in failed for t in finished], dtype=bool)
        self.numeric, self.choices = self._points([t.params for t in finished])

    def nearest_failed(self, params: dict[str, Any]) -> bool:
        """Whether the finished trial nearest to ``params`` failed (False when there is none)."""
        if not self.failed.any():
            return False
        numeric, choices = self._points([params])
        distance = ((self.numeric - numeric) ** 2).sum(axis=1) + (self.choices != choices).sum(axis=1)
        return bool(self.failed[int(np.argmin(distance))])

    def _points(self, all_params: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Numeric coordinates (one column per numeric parameter) and choice indices (one per categorical)."""
        numeric, choices = [], []
        for name, distribution in self.space.items():
            if isinstance(distribution, CategoricalDistribution):
                choices.append([distribution.to_internal_repr(params[name]) for params in all_params])
                continue
            values = np.array([params[name] for params in all_params], dtype=float)
            low, high = float(distribution.low), float(distribution.high)  # type: ignore[attr-defined]
            if getattr(distribution, "log", False):
                values, low, high = np.log(values), math.log(low), math.log(high)
            numeric.append((values - low) / (high - low) if high > low else np.zeros_like(values))
        rows = len(all_params)
        return (np.array(numeric, dtype=float).reshape(len(numeric), rows).T,
                np.array(choices, dtype=float).reshape(len(choices), rows).T)


def wrap(sampler: BaseSampler) -> BaseSampler:
    """``sampler`` wrapped in ``FailureAwareSampler``, except samplers that enumerate a grid (a failed
    point counts as visited; nothing to learn) and samplers already wrapped."""
    if isinstance(sampler, (FailureAwareSampler, optuna.samplers.GridSampler, optuna.samplers.BruteForceSampler)):
        return sampler
    return FailureAwareSampler(sampler)


def worst_values(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[float] | None:
    """Per objective, the worst finite value of the complete trials; None before any."""
    complete = [t.values for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                and all(math.isfinite(v) for v in t.values)]
    if not complete:
        return None
    return [
        (max if direction == StudyDirection.MINIMIZE else min)(values[i] for values in complete)
        for i, direction in enumerate(directions)
    ]


def infeasible_view(
    trials: Sequence[FrozenTrial],
    failures: Sequence[FrozenTrial],
    penalty: Sequence[float],
    copies: ViewCopies | None = None,
) -> list[FrozenTrial]:
    """``trials`` with each of ``failures`` as a COMPLETE trial of value ``penalty`` that violates
    ``FAILED_CONSTRAINT``, and each complete trial satisfying it (copies; the originals are untouched).

    Every trial shown complete carries the same constraint names (GPSampler requires it): a user's own
    constraints a failed trial never got to set are shown satisfied. ``copies`` keeps the complete trials'
    copies from one call to the next.
    """
    copies = copies or ViewCopies()
    failed = {t.number for t in failures}
    keys = frozenset(key for t in trials if t.state == TrialState.COMPLETE for key in copies.own_keys(t))
    shown = []
    for trial in trials:
        if trial.number in failed:
            shown.append(copies.shown(trial, keys, tuple(penalty)))
        elif trial.state == TrialState.COMPLETE:
            shown.append(copies.shown(trial, keys, None))
        else:
            shown.append(trial)
    return shown


class ViewCopies:
    """The view's copies of finished trials, kept from one suggestion to the next: a finished trial never
    changes, so each is copied once (again only if the constraint names or the penalty change), not on
    every ask (at 1,000 trials copying them all cost ~10 ms per ask)."""

    def __init__(self) -> None:
        #: number -> ((start, end): tells a trial from one of a study made again, its own constraint names,
        #: (constraint names, penalty) its copy was made with, the copy).
        self._copies: dict[int, tuple[Any, frozenset[str], Any, FrozenTrial | None]] = {}

    def own_keys(self, trial: FrozenTrial) -> frozenset[str]:
        return self._entry(trial)[1]

    def shown(self, trial: FrozenTrial, keys: frozenset[str], penalty: tuple[float, ...] | None) -> FrozenTrial:
        """``trial`` feasible (``penalty`` None) or failed: COMPLETE, infeasible, valued ``penalty``."""
        when, own, made_with, view = self._entry(trial)
        if view is None or made_with != (keys, penalty):
            view = copy.copy(trial)
            view.system_attrs = dict(trial.system_attrs)  # set_constraint writes into this dict, not the original's
            view.set_constraint(FAILED_CONSTRAINT, 0.0 if penalty is None else 1.0)
            for key in keys - own:
                view.set_constraint(key, 0.0)
            if penalty is not None:
                view.state = TrialState.COMPLETE
                view.values = list(penalty)
            self._copies[trial.number] = (when, own, (keys, penalty), view)
        return view

    def _entry(self, trial: FrozenTrial) -> tuple[Any, frozenset[str], Any, FrozenTrial | None]:
        entry = self._copies.get(trial.number)
        when = (trial.datetime_start, trial.datetime_complete)
        if entry is None or entry[0] != when:
            entry = (when, frozenset(trial.constraints), None, None)
            self._copies[trial.number] = entry
        return entry


# --- the view ---------------------------------------------------------------------------------------
#
# Nothing in Optuna shows a sampler a modified study, and samplers read trials through the study's private
# ``_get_trials`` (TPE, GP) or ``get_trials``; both end in the public storage method ``get_all_trials``.
# So the view is a real ``optuna.Study`` on a storage that answers ``get_all_trials`` with the modified
# trials and passes every other call, writes included (TPE and GP record the constant liar's relative
# params on the trial being sampled), to the study's own storage. ``study._storage`` is the one private
# attribute read here; every Optuna sampler reaches the storage through it as well.


def _study_view(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Study:
    return optuna.Study(study_name=study.study_name, storage=_TrialsView(study._storage, trials))


class _TrialsView(BaseStorage):
    """``storage`` with ``get_all_trials`` answered from ``trials``; everything else passed through."""

    def __init__(self, storage: BaseStorage, trials: list[FrozenTrial]) -> None:
        self._storage = storage
        self._trials = trials

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._storage.get_best_trial(study_id)

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._storage.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._storage.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._storage.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:
        return self._storage.get_all_studies()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._storage.create_new_trial(study_id, template_trial)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self._storage.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._storage.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._storage.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._storage.get_trial(trial_id)


# --- what the user reads ----------------------------------------------------------------------------


def describe_failures(trials: Sequence[FrozenTrial], max_params: int = 4) -> str | None:
    """One line on where trials failed, e.g. ``3 failed (RuntimeError 2, MetricIsNaN 1): x in [3.1, 4.9],
    y in [-4.2, 2]``; None when none did (``region_failures`` decides which count).

    Each parameter's range over the failed trials (choices: the values they had), the parameters whose
    failures are the most concentrated first (the failures' span against the span every trial of the study
    covered), at most ``max_params`` of them.
    """
    failures = region_failures(trials)
    if not failures:
        return None
    errors = Counter(str(t.user_attrs[ERROR_ATTR]).split(":", 1)[0] for t in failures if t.user_attrs.get(ERROR_ATTR))
    kinds = f" ({', '.join(f'{kind} {n}' for kind, n in errors.most_common())})" if errors else ""
    ranges = failure_ranges(trials, failures)
    shown = [f"{name} {text}" for name, text, _ in ranges[:max_params]]
    if len(ranges) > max_params:
        shown.append(f"{len(ranges) - max_params} more parameter(s)")
    where = ": " + ", ".join(shown) if shown else ""
    return f"{len(failures)} failed{kinds}{where}"


def failure_ranges(
    trials: Sequence[FrozenTrial], failures: Sequence[FrozenTrial]
) -> list[tuple[str, str, float]]:
    """(parameter, the failures' range as text: ``in [low, high]``, ``in {choices}`` or ``= value``, share of
    the study's span it covers), most concentrated first."""
    rows = []
    names = sorted({name for t in failures for name in t.params})
    for name in names:
        failed = [t.params[name] for t in failures if name in t.params]
        tried = [t.params[name] for t in trials if name in t.params]
        distribution = next(t.distributions[name] for t in failures if name in t.params)
        if isinstance(distribution, CategoricalDistribution) or not _all_numbers(tried):
            values = [c for c in _unique(tried) if c in failed]
            text = "in {" + ", ".join(_number(v) for v in values) + "}" if len(values) > 1 else f"= {_number(values[0])}"
            share = len(values) / max(1, len(_unique(tried)))
        else:
            low, high = min(failed), max(failed)
            text = f"in [{_number(low)}, {_number(high)}]" if high > low else f"= {_number(low)}"
            log = bool(getattr(distribution, "log", False))
            share = _span(low, high, log) / (_span(min(tried), max(tried), log) or 1.0)
        rows.append((name, text, share))
    return sorted(rows, key=lambda row: row[2])


def _span(low: float, high: float, log: bool) -> float:
    return math.log(high) - math.log(low) if log and low > 0 else float(high) - float(low)


def _all_numbers(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _unique(values: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return sorted(seen) if _all_numbers(seen) else seen


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
