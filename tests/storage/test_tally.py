"""The incremental tally (``tuneflow.storage.tally``) says what going over every trial says
(``count_states``, ``best_of``, ``region_failures``, ``worst_values``), read after read, while trials are asked,
finish, fail, are retried by a heartbeat callback, are surplus, and when the study is deleted and made again."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuneflow.search.failure_aware import FailureTally, region_failures, worst_values
from tuneflow.storage.study import ERROR_ATTR, OVERRIDES_ATTR, SURPLUS_ATTR, best_of, count_states, open_storage
from tuneflow.storage.tally import StudyTally


def agree(tally: StudyTally, failures: FailureTally, study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    tally.update(trials)
    failures.update(trials)
    assert tally.counts() == count_states(trials)
    expected = best_of(trials, study.direction)
    assert (tally.best() is None) == (expected is None)
    if expected is not None:
        assert tally.best().number == expected.number  # type: ignore[union-attr]
    assert [t.number for t in failures.failures()] == [t.number for t in region_failures(trials)]
    assert failures.worst() == worst_values(trials, study.directions)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_tally_agrees_with_a_full_count_after_every_step(tmp_path: Path, direction: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=storage, direction=direction)
    tally, failures = StudyTally(study.direction), FailureTally(study.directions)
    rng = random.Random(0)
    running: list[optuna.trial.Trial] = []
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    for _ in range(60):
        if running and rng.random() < 0.6:
            trial = running.pop(rng.randrange(len(running)))
            outcome = rng.choice(["complete", "complete", "tie", "fail", "error", "surplus", "pruned", "dead"])
            if outcome in ("complete", "tie"):
                study.tell(trial, 0.5 if outcome == "tie" else rng.random())
            elif outcome == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
            elif outcome == "surplus":
                trial.set_user_attr(SURPLUS_ATTR, True)
                study.tell(trial, state=TrialState.FAIL)
            elif outcome == "error":
                trial.set_user_attr(OVERRIDES_ATTR, ["+arch=x"])
                trial.set_user_attr(ERROR_ATTR, "RuntimeError: out of memory")
                study.tell(trial, state=TrialState.FAIL)
            else:
                # A failed trial; "dead" ones are retried, as the heartbeat callback retries a dead worker's.
                frozen = study.tell(trial, state=TrialState.FAIL)
                if outcome == "dead":
                    retry(study, frozen)
        else:
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            running.append(trial)
        agree(tally, failures, study)
    # A study deleted and made again under the same name: the same numbers are other trials.
    optuna.delete_study(study_name="s", storage=storage)
    study = optuna.create_study(study_name="s", storage=storage, direction=direction)
    agree(tally, failures, study)
    for value in (0.9, 0.1):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
        agree(tally, failures, study)


def test_a_finished_trial_is_folded_in_once(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    folded: list[int] = []

    class Recording(StudyTally):
        def fold(self, trial: optuna.trial.FrozenTrial) -> None:
            folded.append(trial.number)
            super().fold(trial)

    tally = Recording(study.direction)
    for _ in range(3):
        tally.update(study.get_trials(deepcopy=False))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    tally.update(study.get_trials(deepcopy=False))
    # A copy of a finished trial (a storage that copies on every read) is not folded in again either.
    tally.update(study.get_trials(deepcopy=True))
    assert folded == [0, 1, 2, 3, 4, 5]
    assert tally.counts()["finished"] == 6


def test_a_study_of_two_objectives_is_counted_and_has_no_single_best() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1 - trial.params["x"]), n_trials=3)
    study.enqueue_trial({"x": 0.5})
    study.ask()
    tally = StudyTally(None)
    tally.update(study.get_trials(deepcopy=False))
    assert tally.counts() == count_states(study.get_trials(deepcopy=False)) == {
        "finished": 3, "running": 1, "waiting": 0, "failed": 0}
    assert tally.best() is None
