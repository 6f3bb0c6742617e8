"""The cross-worker protocol: any number of workers (processes, machines) share one study and together
run exactly ``n_trials`` trials. Its invariants, each tested in tests/sweeper/test_asking.py:

1. **Never more than n_trials.** A worker counts and asks under the study's lock (``locks.study_lock``);
   a trial asked past the count anyway (two workers on a storage without a shared lock) is marked
   surplus and failed at once (``is_surplus``), and counts for nothing.
2. **No orphan RUNNING trial.** A trial gets its first heartbeat the moment it is asked, under the lock;
   the worker beats for its batch while it runs; a worker with nothing left to ask beats once for
   trials running elsewhere (``adopt_running_trials``), so even one whose worker died before its first
   beat goes stale, is failed by ``fail_stale_trials`` and retried with the same params.
3. **Retries are not failures.** A trial failed because its worker stopped heartbeating is retried; it
   does not count towards the failure cap (``count_states``), and the cap counts this run's failures.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuneflow.errors import ConfigError, TooManyFailures
from tuneflow.storage import locks
from tuneflow.storage.study import (
    OVERRIDES_ATTR,
    SURPLUS_ATTR,
    Heartbeat,
    is_surplus,
)
from tuneflow.storage.tally import StudyTally
from tuneflow.sweeper.outcomes import last_error
from tuneflow.sweeper.plan import SweepPlan


@dataclass
class BatchRead:
    """One locked read of the study: what it holds now and the trials this worker asked for."""

    trials: list[FrozenTrial]
    counts: dict[str, int]
    #: The best complete trial so far (None before one, and in a multi-objective study).
    best: FrozenTrial | None
    #: Trials still to start (n_trials, or the grid's size, minus finished and running ones).
    remaining: int
    asked: list[optuna.trial.Trial]


class TrialAsker:
    """This worker's side of the protocol on one study and storage."""

    def __init__(self, study: optuna.Study, storage: Any, plan: SweepPlan, config: Any = None) -> None:
        self.study = study
        self.storage = storage
        self.plan = plan
        self.config = config
        #: Trials running elsewhere that this worker has beaten for once (see ``adopt_running_trials``).
        self.adopted: set[int] = set()
        self._study_id: int | None = None
        #: The highest trial number this worker has seen (under the lock): trials past it are its own asks.
        self.last_number = -1
        settings = plan.settings
        self.target = settings.n_trials if plan.grid_size is None else min(settings.n_trials, plan.grid_size)
        #: Counts and best trial, each finished trial folded in once (a 10,000-trial study is not gone
        #: over again on every ask: ``tuneflow.storage.tally``).
        self.tally = StudyTally(None if len(study.directions) > 1 else study.direction)

    def read_and_ask(self, failed_before: int) -> BatchRead:
        """Count and ask under the study's lock: workers racing for the last places would ask for more
        than n_trials. One read of the study per batch serves the progress lines, the CSV, the failure
        cap and what is left to run."""
        plan, study, settings = self.plan, self.study, self.plan.settings
        with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "ask"):
            optuna.storages.fail_stale_trials(study)
            now = study.get_trials(deepcopy=False)
            # Optuna returns the trials in number order (its samplers rely on it).
            self.last_number = now[-1].number if now else -1
            self.tally.update(now)
            counts, best = self.tally.counts(), self.tally.best()
            failed_now = counts["failed"] - failed_before
            if plan.failures_never_stop and failed_now >= plan.max_failures > 0:
                # max_failure_rate=1: failures are no error (as in Hydra's Optuna sweeper), but failed
                # trials are replaced, so n_trials of them end the study instead of an endless run.
                return BatchRead(now, counts, best, 0, [])
            if failed_now > plan.max_failures:
                raise TooManyFailures(
                    f"study {settings.name!r}: {failed_now} trials failed, more than "
                    f"max_failure_rate x n_trials = {plan.max_failures}; last error: {last_error(study)}"
                )
            # A grid visits each point once: a failed point is not retried, so it counts as done.
            done = counts["finished"] + (counts["failed"] if plan.grid_size is not None else 0)
            # Waiting trials are not subtracted: this worker's next ask takes them first.
            remaining = self.target - done - counts["running"]
            asked = self.ask(min(plan.n_jobs, remaining)) if remaining > 0 else []
        return BatchRead(now, counts, best, remaining, asked)

    def ask(self, count: int) -> list[optuna.trial.Trial]:
        """Ask ``count`` trials; one that lost a race with another worker for the last places is
        marked surplus and failed at once, so the study never exceeds ``n_trials``."""
        study = self.study
        asked: list[optuna.trial.Trial] = []
        for _ in range(count):
            trial = None
            try:
                trial = self.ask_one()
                if not self.prepare(trial):
                    continue
            except BaseException:
                # The storage or Ctrl-C after an ask (``ask_one`` fails its own trial): no trial asked
                # here may stay RUNNING (a storage without heartbeats, Optuna's gRPC proxy, never retries it).
                for started in [*asked, *([trial] if trial is not None else [])]:
                    study.tell(started, state=TrialState.FAIL, skip_if_finished=True)
                raise
            asked.append(trial)
        # In trial-number order, as ``launch`` numbers the jobs.
        return sorted(asked, key=lambda trial: trial.number)

    def ask_one(self) -> optuna.trial.Trial:
        """One new trial with its parameters. Whatever fails while it is asked (the sampler, a
        distribution Optuna refuses, the user's ``custom_search_space``) fails the trial at once: a trial
        left RUNNING would hold up every later run until its heartbeat went stale."""
        study, plan = self.study, self.plan
        try:
            trial = study.ask(plan.distributions)
            if plan.extend_space is not None:
                # The user's define-by-run parameters (conditional spaces), through Optuna's public suggest API.
                plan.extend_space(self.config, trial)
        except Exception as error:
            # Asked under the study's lock: a RUNNING trial numbered past those read before is this ask's.
            for stray in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if stray.number > self.last_number:
                    study.tell(stray.number, state=TrialState.FAIL, skip_if_finished=True)
            if isinstance(error, (ValueError, OverflowError)):  # Optuna's word on the space: the user can fix it
                raise ConfigError(f"study {plan.settings.name!r}: cannot ask Optuna for a trial: {error}") from None
            raise
        self.last_number = max(self.last_number, trial.number)
        return trial

    def prepare(self, trial: optuna.trial.Trial) -> bool:
        """A trial just asked, made ready to launch; False when it lost the race for the last places
        (then marked surplus and failed)."""
        study, plan = self.study, self.plan
        if is_surplus(study, trial.number, plan.settings.n_trials):
            trial.set_user_attr(SURPLUS_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            return False
        trial.set_user_attr(OVERRIDES_ATTR, plan.fixed_overrides)
        if plan.settings.heartbeat_interval:
            self.first_heartbeat(trial.number)
        return True

    def trial_id(self, number: int) -> int:
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return int(self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number))

    def first_heartbeat(self, number: int) -> None:
        """Beat once as soon as the trial is asked (under the study's lock): a worker killed before its
        heartbeat thread starts then leaves a trial that goes stale and is retried, not one RUNNING forever."""
        self.storage.record_heartbeat(self.trial_id(number))

    def adopt_running_trials(self, trials: Sequence[FrozenTrial]) -> None:
        """Beat once for each trial running elsewhere (of ``trials``, the study as just read). A trial
        asked by an older worker that died before its first heartbeat has none at all, and Optuna never
        finds it stale; after this one beat it goes stale like any other. A live worker's own beats
        carry on regardless."""
        for trial in trials:
            if trial.state == TrialState.RUNNING and trial.number not in self.adopted:
                self.adopted.add(trial.number)
                self.storage.record_heartbeat(self.trial_id(trial.number))

    #: Seconds between a waiting worker's looks at how many trials still run (one read, without the lock).
    WAIT_POLL_S = 0.5

    def wait_for_running(self, running: int, seconds: float) -> None:
        """A worker with nothing left to ask waits ``seconds`` before its next locked read (which fails
        stale trials), but goes back at once when fewer than ``running`` trials run: the study's last
        trial ended (so the worker ends within half a second of it, not up to ``seconds`` later), or one
        went back to the queue."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.WAIT_POLL_S, left))
            if len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) < running:
                return

    def heartbeats(self, trials: Sequence[optuna.trial.Trial]) -> contextlib.ExitStack:
        """The worker beats for its trials from the moment it asked for them (a job in another process beats
        too, once it has started): a worker killed in between is noticed as well. The first beat was
        recorded at ask (``first_heartbeat``), so the thread's first comes one interval later."""
        stack = contextlib.ExitStack()
        interval = self.plan.settings.heartbeat_interval
        if interval:
            for trial in trials:
                stack.enter_context(Heartbeat(self.storage, self.trial_id(trial.number), interval, beat_now=False))
        return stack
