"""Bad trials stop early: the pruner reads each epoch's metric, in every way a study can run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_study, mlflow_client, run_tuneflow, start_tuneflow, study_runs

pytestmark = pytest.mark.slow

# The synthetic learning curves make a bad configuration visibly bad after a few epochs.
BASE = ["+arch=quadratic", "-m", "hydra.sweeper.sampler.seed=0", "hydra.sweeper.sampler.n_startup_trials=3"]
QUICK = [*BASE, "hydra.sweeper.pruner.n_startup_trials=3"]


def assert_pruned_trials_are_killed_runs(project: Path, study_name: str = "quadratic") -> int:
    study = load_study(project, study_name)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    runs = {r.info.run_id: r for r in study_runs(project, study_name)}
    for trial in pruned:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "KILLED"
        last_step = max(trial.intermediate_values)
        assert run.data.tags["tuneflow.pruned_at_step"] == str(last_step)
        assert last_step < 20, "a pruned trial stopped before its last epoch"
        steps = [m.step for m in mlflow_client(project).get_metric_history(run.info.run_id, "val_loss")]
        assert max(steps) == last_step
    assert all(r.info.status != "RUNNING" for r in runs.values())
    return len(pruned)


def test_median_pruner_stops_trials_in_a_sequential_sweep(project: Path) -> None:
    result = run_tuneflow(project, *QUICK, "hydra.sweeper.n_trials=15")
    assert result.returncode == 0, result.output
    assert assert_pruned_trials_are_killed_runs(project) > 0
    assert "PRUNED at step" in result.output


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_other_pruners_stop_trials_too(project: Path, pruner: str) -> None:
    result = run_tuneflow(project, *BASE, f"hydra/sweeper/pruner={pruner}", "hydra.sweeper.n_trials=15")
    assert result.returncode == 0, result.output
    assert assert_pruned_trials_are_killed_runs(project) > 0


def test_pruning_works_with_the_parallel_joblib_launcher(project: Path) -> None:
    result = run_tuneflow(
        project, *QUICK, "hydra.sweeper.n_trials=16", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
    )
    assert result.returncode == 0, result.output
    assert len(load_study(project, "quadratic").trials) == 16
    assert assert_pruned_trials_are_killed_runs(project) > 0


def test_two_worker_processes_share_one_study_and_run_exactly_n_trials(project: Path) -> None:
    workers = [start_tuneflow(project, *QUICK[:2], "hydra.sweeper.n_trials=24") for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = load_study(project, "quadratic")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 24
    assert all(t.state.name in ("COMPLETE", "PRUNED") or t.user_attrs.get("tuneflow_surplus") for t in study.trials)
    # Both workers did part of the work, and every trial has exactly one run under one parent.
    assert all("] trial " in out for out, _ in outputs)
    assert len(study_runs(project, "quadratic", role="study")) == 1
    runs = study_runs(project, "quadratic")
    assert sorted(int(r.data.tags["tuneflow.trial_number"]) for r in runs) == sorted(t.number for t in finished)
    # The shared pruner stopped some of them, across both workers.
    assert any(t.state.name == "PRUNED" for t in finished)
    assert_pruned_trials_are_killed_runs(project)
