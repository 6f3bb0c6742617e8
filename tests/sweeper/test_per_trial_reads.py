"""What the sweeper and its jobs read per trial stays small as a study grows: one read of the study per
batch for the progress lines and the CSV, a CSV at most 2 s behind, one study (and its cache) per process
for the jobs, and no read at all to rule out a surplus trial while the study is short of n_trials."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest

from tuneflow.storage.study import (
    StudySettings,
    best_of,
    count_states,
    forget_job_studies,
    is_surplus,
    load_study_for_job,
    open_storage,
    share_with_jobs,
)
from tuneflow.sweeper.outcomes import progress_lines
from tuneflow.tracking.trials_csv import ThrottledCsv
from tuneflow.trial.job import TrialOutcome


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return study


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_the_csv_is_rewritten_at_most_every_interval(study: optuna.Study, tmp_path: Path) -> None:
    path = tmp_path / "trials.csv"
    throttled = ThrottledCsv(path, every_s=3600)
    throttled.write_if_due(study.get_trials())
    assert len(rows(path)) == 3, "the first trial's CSV is written at once"
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    throttled.write_if_due(study.get_trials())
    assert len(rows(path)) == 3, "within the interval the file is not rewritten"
    ThrottledCsv(path, every_s=0).write_if_due(study.get_trials())
    assert len(rows(path)) == 4


def test_a_csv_that_takes_long_to_write_is_rewritten_less_often(study: optuna.Study, tmp_path: Path) -> None:
    path = tmp_path / "trials.csv"
    throttled = ThrottledCsv(path, every_s=0, cost_factor=1e9)
    throttled.write_if_due(study.get_trials())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    throttled.write_if_due(study.get_trials())
    assert len(rows(path)) == 3, "not before cost_factor times the last rewrite's duration has passed"
    throttled.cost_factor = 0
    throttled.write_if_due(study.get_trials())
    assert len(rows(path)) == 4


def test_progress_lines_count_each_finished_job_of_a_batch(study: optuna.Study) -> None:
    trials = study.get_trials()
    outcomes = [TrialOutcome(number=1, state="COMPLETE", value=0.5), TrialOutcome(number=2, state="FAIL", error="E"),
                TrialOutcome(number=3, state="PRUNED", pruned_at_step=4)]
    lines = progress_lines(outcomes, {"finished": 5, "running": 0, "waiting": 0, "failed": 1}, best_of(trials, study.direction), 9)
    assert [line.split(" trial")[0] for line in lines] == ["[4/9]", "[4/9]", "[5/9]"]
    best = min(trials, key=lambda t: t.value)  # type: ignore[arg-type,return-value]
    assert all(f"best={best.value:.6g} (#{best.number})" in line for line in lines)
    assert count_states(trials) == {"finished": 3, "running": 0, "waiting": 0, "failed": 0}


def test_best_of_agrees_with_optuna(study: optuna.Study) -> None:
    assert best_of(study.get_trials(), study.direction).number == study.best_trial.number  # type: ignore[union-attr]
    assert best_of([], study.direction) is None


def test_a_trial_below_n_trials_is_never_surplus_and_above_it_is_counted(study: optuna.Study) -> None:
    assert not is_surplus(study, trial_number=2, n_trials=3)
    assert is_surplus(study, trial_number=3, n_trials=3)
    assert not is_surplus(study, trial_number=3, n_trials=4)


def test_the_jobs_of_one_process_share_one_study(study: optuna.Study, tmp_path: Path) -> None:
    settings = StudySettings(name="s", storage_url=f"sqlite:///{tmp_path / 'optuna.db'}", direction="minimize",
                             objective="x", n_trials=3, root_dir=str(tmp_path), heartbeat_interval=None,
                             pruner={"_target_": "optuna.pruners.MedianPruner"})
    first, _ = load_study_for_job(settings)
    second, _ = load_study_for_job(settings)
    assert first is second
    # The next sweep in this process, on a study deleted and created again, sees the new study.
    optuna.delete_study(study_name="s", storage=settings.storage_url)
    optuna.create_study(study_name="s", storage=settings.storage_url)
    forget_job_studies()
    third, _ = load_study_for_job(settings)
    assert third is not first and third.trials == []


def test_the_jobs_in_the_sweepers_process_read_through_the_sweepers_cache(study: optuna.Study, tmp_path: Path) -> None:
    """A worker joining a large study reads every trial once (its sweeper's first ask), not a second time in
    its first job when the pruner first looks."""
    settings = StudySettings(name="s", storage_url=f"sqlite:///{tmp_path / 'optuna.db'}", direction="minimize",
                             objective="x", n_trials=9, root_dir=str(tmp_path), heartbeat_interval=None,
                             pruner={"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1})
    forget_job_studies()
    alone, _ = load_study_for_job(settings)  # before the sweeper shares: the job's own storage
    sweeper = optuna.load_study(study_name="s", storage=open_storage(settings.storage_url))
    sweeper.get_trials(deepcopy=False)  # the sweeper has read the study
    share_with_jobs(settings.storage_url, sweeper)
    job_study, storage = load_study_for_job(settings)
    assert job_study is not alone, "the job's study is loaded again through the sweeper's storage"
    assert load_study_for_job(settings)[0] is job_study
    trial = sweeper.ask()
    # The pruner's reads ask the database only for trials past the last finished one (Optuna's cache, filled
    # by the sweeper, has the rest): never every trial again.
    after: list[int] = []
    backend_read = storage._backend._get_trials

    def recording_read(*args: object, **kwargs: object) -> object:
        after.append(int(kwargs["trial_id_greater_than"]))  # type: ignore[call-overload]
        return backend_read(*args, **kwargs)

    storage._backend._get_trials = recording_read
    handle = optuna.trial.Trial(job_study, trial._trial_id)
    handle.report(0.5, 1)
    handle.should_prune()
    assert after and min(after) >= 0
    finished = [t for t in job_study.get_trials(deepcopy=False) if t.state.is_finished()]
    assert finished and all(a is b for a, b in zip(finished, sweeper.get_trials(deepcopy=False)))
    forget_job_studies()
    assert load_study_for_job(settings)[1] is not storage, "the next sweep does not inherit this one's storage"
