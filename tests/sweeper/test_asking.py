"""The cross-worker protocol's invariants (tuneflow.sweeper.asking), one worker's side at a time, on a
real SQLite storage: never more than n_trials, no orphan RUNNING trial, retries are not failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tuneflow.errors import TooManyFailures
from tuneflow.storage.study import (
    SURPLUS_ATTR,
    StudySettings,
    count_states,
    open_storage,
)
from tuneflow.sweeper.asking import BatchRead, TrialAsker
from tuneflow.sweeper.plan import SweepPlan

SPACE = {"x": FloatDistribution(-5.0, 5.0)}


def plan_for(tmp_path: Path, n_trials: int, *, n_jobs: int = 1, max_failures: int = 10,
             heartbeat: int | None = None) -> SweepPlan:
    settings = StudySettings(name="s", storage_url=f"sqlite:///{tmp_path / 'optuna.db'}", direction="minimize",
                             objective=None, n_trials=n_trials, root_dir=str(tmp_path), heartbeat_interval=heartbeat)
    return SweepPlan(settings=settings, distributions=dict(SPACE), fixed_overrides=["y=1"],
                     sampler=optuna.samplers.RandomSampler(seed=0), n_jobs=n_jobs, max_failures=max_failures)


def worker(plan: SweepPlan, heartbeat: int | None = None) -> TrialAsker:
    """One worker: its own storage connection and study object, on the shared database."""
    storage = open_storage(plan.settings.storage_url, heartbeat_interval=heartbeat,
                           on_stale_trial=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
                           if heartbeat else None)
    study = optuna.create_study(study_name="s", storage=storage, sampler=plan.sampler, load_if_exists=True)
    return TrialAsker(study, storage, plan)


def wait_until_stale(asker: TrialAsker, number: int, timeout: float = 20.0) -> BatchRead:
    """Read (and ask) until trial ``number`` is no longer RUNNING: its heartbeat is more than the grace
    period (2 heartbeats) old. Polled, not slept for: a loaded machine takes longer to get there."""
    deadline = time.monotonic() + timeout
    while True:
        read = asker.read_and_ask(0)
        if read.trials[number].state != TrialState.RUNNING or time.monotonic() > deadline:
            return read
        time.sleep(0.5)


def test_workers_never_ask_for_more_than_n_trials_and_a_late_ask_is_surplus(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, n_trials=3, n_jobs=2)
    first, second = worker(plan), worker(plan)
    assert len(first.read_and_ask(0).asked) == 2
    read = second.read_and_ask(0)
    # One place left (two running elsewhere): the second worker asks for one, not for its batch of two.
    assert (read.remaining, len(read.asked)) == (1, 1)
    assert first.read_and_ask(0).asked == []  # nothing left while three run
    # Without the lock (another storage, an old worker), a fourth trial would be surplus: failed at once.
    assert first.ask(1) == []
    trials = first.study.get_trials(deepcopy=False)
    assert [t.user_attrs.get(SURPLUS_ATTR, False) for t in trials] == [False, False, False, True]
    assert trials[-1].state == TrialState.FAIL
    assert count_states(trials) == {"finished": 0, "running": 3, "waiting": 0, "failed": 0}


def test_every_asked_trial_records_its_overrides_and_is_asked_in_number_order(tmp_path: Path) -> None:
    asked = worker(plan_for(tmp_path, n_trials=5, n_jobs=3)).read_and_ask(0).asked
    assert [t.number for t in asked] == [0, 1, 2]
    assert all(t.user_attrs["tuneflow_overrides"] == ["y=1"] for t in asked)


def test_a_trial_gets_its_first_heartbeat_when_asked_and_a_dead_workers_trial_is_retried(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, n_trials=1, heartbeat=1)
    dead = worker(plan, heartbeat=1)
    [trial] = dead.read_and_ask(0).asked  # beaten once under the lock, then its worker dies
    survivor = worker(plan, heartbeat=1)
    read = wait_until_stale(survivor, trial.number)  # fails the stale trial and asks its retry
    assert read.trials[trial.number].state == TrialState.FAIL
    [retry] = read.asked
    assert retry.params == trial.params
    # The dead worker's trial is not a failure: the retry stands for it.
    assert read.counts == {"finished": 0, "running": 0, "waiting": 1, "failed": 0}


def test_a_worker_adopts_trials_running_elsewhere_so_a_trial_without_heartbeats_goes_stale(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, n_trials=1, heartbeat=1)
    silent = worker(plan_for(tmp_path, n_trials=1, heartbeat=None))  # a worker that never beats
    [orphan] = silent.read_and_ask(0).asked
    waiting = worker(plan, heartbeat=1)
    read = waiting.read_and_ask(0)
    assert read.remaining == 0 and read.counts["running"] == 1
    waiting.adopt_running_trials(read.trials)  # one beat: from now on its staleness is measured
    retried = wait_until_stale(waiting, orphan.number)
    assert retried.trials[orphan.number].state == TrialState.FAIL
    assert [t.params for t in retried.asked] == [orphan.params]


def test_the_failure_cap_counts_this_runs_failures_only(tmp_path: Path) -> None:
    asker = worker(plan_for(tmp_path, n_trials=10, max_failures=1))
    for _ in range(3):
        asker.study.tell(asker.study.ask(SPACE), state=TrialState.FAIL)
    # Two of the three failures were an earlier run's (since fixed by the user): at the cap, not above it.
    assert len(asker.read_and_ask(failed_before=2).asked) == 1
    with pytest.raises(TooManyFailures, match="2 trials failed, more than max_failure_rate x n_trials = 1"):
        asker.read_and_ask(failed_before=1)


def test_an_error_while_asking_leaves_no_trial_running(tmp_path: Path) -> None:
    """The user's space extender (or the storage, or Ctrl-C) raising on the second trial of a batch: both
    trials asked so far end FAIL, none stays RUNNING (a storage without heartbeats would never retry it)."""
    calls = []

    def extend(config: object, trial: optuna.trial.Trial) -> None:
        calls.append(trial.number)
        if len(calls) == 2:
            raise RuntimeError("the extender broke")

    plan = plan_for(tmp_path, n_trials=5, n_jobs=3)
    plan.extend_space = extend
    asker = worker(plan)
    with pytest.raises(RuntimeError, match="the extender broke"):
        asker.read_and_ask(0)
    assert [t.state for t in asker.study.get_trials(deepcopy=False)] == [TrialState.FAIL, TrialState.FAIL]


def test_a_waiting_worker_goes_back_when_the_trial_it_waits_for_ends_not_a_whole_interval_later(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, n_trials=1, heartbeat=60)
    running = worker(plan, heartbeat=60)
    [trial] = running.read_and_ask(0).asked
    waiting = worker(plan, heartbeat=60)
    read = waiting.read_and_ask(0)
    assert (read.remaining, read.counts["running"]) == (0, 1)
    began = time.monotonic()
    waiting.wait_for_running(read.counts["running"], seconds=0.6)
    assert time.monotonic() - began >= 0.6, "while the trial runs, the worker waits the whole interval"
    ender = threading.Timer(0.3, lambda: running.study.tell(trial, 1.0))
    ender.start()
    began = time.monotonic()
    waiting.wait_for_running(read.counts["running"], seconds=60)
    ender.join()
    assert time.monotonic() - began < 30, "back once the last running trial ended, not 60 s later"
    assert waiting.read_and_ask(0).counts == {"finished": 1, "running": 0, "waiting": 0, "failed": 0}
