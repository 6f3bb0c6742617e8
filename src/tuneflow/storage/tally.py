"""What a worker reads from its study on every ask (counts, the best trial so far, the worst value), kept
up to date by folding in each finished trial once, instead of going over every trial of the study again.

Why this is safe: Optuna never changes a finished trial (every storage refuses writes to one), and its cached
RDB storage, like the journal storage, returns the same ``FrozenTrial`` object for a finished trial on every
read. So a finished trial seen before (the same object, or one with the same start and end) needs no second
look; only new trials and unfinished ones (a handful: the running batch) are looked at. A study deleted and
created again under the same name shows other trials under the same numbers: then everything is folded anew.

Measured at 10,000 trials (benchmarks/scale.py): going over every trial for the counts took ~13 ms of CPU per
ask, mostly ``retry_history`` of every trial; folding takes a dictionary look-up per trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneflow.storage.study import FINISHED_STATES, SURPLUS_ATTR

__all__ = ["FinishedTrialFold", "StudyTally", "retried_numbers"]


def retried_numbers(trial: FrozenTrial) -> list[int]:
    """The trials ``trial`` retries (Optuna's ``RetryHeartbeatStaleTrialCallback`` records them on the retry)."""
    with warnings.catch_warnings():  # retry_history is marked experimental; it has been stable since 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)


class FinishedTrialFold:
    """Base of a summary of a study's trials: ``fold`` is called once per finished trial, ``look`` on every
    update with the unfinished trials (as they stand now), ``reset`` when the study's trials changed under
    the same numbers. Subclasses keep their summary in their own attributes."""

    def __init__(self) -> None:
        #: Finished trials folded in so far, by number.
        self._folded: dict[int, FrozenTrial] = {}

    def update(self, trials: Sequence[FrozenTrial]) -> None:
        """Bring the summary up to date with ``trials`` (all of the study's, as just read)."""
        folded = self._folded
        fresh: list[FrozenTrial] = []
        unfinished: list[FrozenTrial] = []
        for trial in trials:
            seen = folded.get(trial.number)
            if seen is trial:
                continue
            if seen is not None and not _same_trial(seen, trial):
                # The study was deleted and created again (or its trials are not what was folded): start over.
                self._folded = {}
                self.reset()
                self.update(trials)
                return
            if seen is not None:
                folded[trial.number] = trial  # a copy of a finished trial already folded: nothing to add
            elif trial.state.is_finished():
                fresh.append(trial)
            else:
                unfinished.append(trial)
        if len(trials) < len(folded):  # trials folded before are gone: the study was made again
            self._folded = {}
            self.reset()
            self.update(trials)
            return
        for trial in fresh:
            folded[trial.number] = trial
            self.fold(trial)
        self.look(unfinished)

    def reset(self) -> None:
        """Forget everything folded so far."""

    def fold(self, trial: FrozenTrial) -> None:
        """Add one finished trial to the summary (called once per trial)."""

    def look(self, unfinished: Sequence[FrozenTrial]) -> None:
        """The study's unfinished trials now (replaces what the last update saw)."""


def _same_trial(seen: FrozenTrial, trial: FrozenTrial) -> bool:
    return (
        trial.state == seen.state
        and trial.datetime_start == seen.datetime_start
        and trial.datetime_complete == seen.datetime_complete
    )


class StudyTally(FinishedTrialFold):
    """``count_states`` and ``best_of`` of a study, folded in trial by trial (see the module's docstring).

    >>> study = optuna.create_study()
    >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    >>> tally = StudyTally(study.direction)
    >>> tally.update(study.get_trials(deepcopy=False))
    >>> tally.counts()["finished"], tally.best() is not None
    (3, True)
    """

    def __init__(self, direction: StudyDirection | None = None) -> None:
        super().__init__()
        self.direction = direction
        self.reset()

    def reset(self) -> None:
        self._finished = 0
        self._failed: set[int] = set()  # FAIL trials (not surplus), before retries are taken out
        self._retried: set[int] = set()  # trials a finished trial retries
        self._best: FrozenTrial | None = None
        self._unfinished: list[FrozenTrial] = []

    def fold(self, trial: FrozenTrial) -> None:
        self._retried.update(retried_numbers(trial))
        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        if trial.state in FINISHED_STATES:
            self._finished += 1
        elif trial.state == TrialState.FAIL:
            self._failed.add(trial.number)
        # No direction: several objectives, where a trial has no single ``value`` (Optuna raises) and no best.
        if self.direction is not None and trial.state == TrialState.COMPLETE and trial.value is not None:
            self._best = _better(self._best, trial, self.direction)

    def look(self, unfinished: Sequence[FrozenTrial]) -> None:
        self._unfinished = list(unfinished)

    def counts(self) -> dict[str, int]:
        """As ``tuneflow.storage.study.count_states`` of the trials last given to ``update``."""
        retried = self._retried.union(*(retried_numbers(t) for t in self._unfinished))
        live = [t for t in self._unfinished if not t.user_attrs.get(SURPLUS_ATTR)]
        return {
            "finished": self._finished,
            "running": sum(t.state == TrialState.RUNNING for t in live),
            "waiting": sum(t.state == TrialState.WAITING for t in live),
            "failed": len(self._failed - retried),
        }

    def best(self) -> FrozenTrial | None:
        """As ``tuneflow.storage.study.best_of``: the best complete trial, the earliest of equal ones."""
        return self._best


def _better(best: FrozenTrial | None, trial: FrozenTrial, direction: StudyDirection) -> FrozenTrial:
    """The better of two complete trials; of equal values, the one numbered first (as ``best_of``)."""
    if best is None:
        return trial
    assert best.value is not None and trial.value is not None
    if trial.value == best.value:
        return trial if trial.number < best.number else best
    better = trial.value > best.value if direction == StudyDirection.MAXIMIZE else trial.value < best.value
    return trial if better else best
