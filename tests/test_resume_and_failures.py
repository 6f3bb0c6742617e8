"""Running the same command again resumes the study; failing trials are recorded and the study goes on."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import pytest
from conftest import load_study, run_tuneflow, start_tuneflow, study_runs
from topology import wait_until

pytestmark = pytest.mark.slow

QUAD = ["+arch=quadratic", "-m", "hydra/sweeper/pruner=none"]


def test_the_same_command_resumes_and_n_trials_is_the_study_total(project: Path) -> None:
    assert run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=3").returncode == 0
    second = run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=5")
    assert second.returncode == 0, second.output
    assert "[4/5] trial 3" in second.output and "[5/5] trial 4" in second.output
    study = load_study(project, "quadratic")
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert len(study_runs(project, "quadratic", role="study")) == 1, "one parent run across both runs"

    done = run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=5")
    assert done.returncode == 0
    assert "already has 5 of 5 trials finished" in done.output
    assert len(load_study(project, "quadratic").trials) == 5


def test_a_named_study_is_separate(project: Path) -> None:
    assert run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=first").returncode == 0
    assert run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=second").returncode == 0
    assert len(load_study(project, "first").trials) == 2
    assert len(load_study(project, "second").trials) == 1


def test_failing_and_diverging_trials_fail_while_the_study_goes_on(project: Path) -> None:
    # x > 3 raises, 1.5 < x <= 3 turns NaN; the grid visits each x once.
    result = run_tuneflow(
        project, *QUAD, "hydra/sweeper/sampler=grid", "hydra.sweeper.params.x=choice(0.0, 1.0, 2.0, 3.5)",
        "hydra.sweeper.params.y=choice(0.0)", "params.fail_above=3.0", "params.nan_above=1.5",
        "hydra.sweeper.max_failure_rate=0.5",
    )
    assert result.returncode == 0, result.output
    study = load_study(project, "quadratic")
    states = {t.params["x"]: t.state.name for t in study.trials}
    assert states == {0.0: "COMPLETE", 1.0: "COMPLETE", 2.0: "FAIL", 3.5: "FAIL"}
    errors = {t.params["x"]: t.user_attrs["error"] for t in study.trials if t.state.name == "FAIL"}
    assert "val_loss is NaN" in errors[2.0]
    assert "synthetic failure" in errors[3.5]
    runs = {r.info.run_id: r for r in study_runs(project, "quadratic")}
    for trial in study.trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == ("FAILED" if trial.state.name == "FAIL" else "FINISHED")
    rows = list(csv.DictReader((project / "mlruns" / "studies" / "quadratic" / "trials.csv").open()))
    assert sorted(r["state"] for r in rows) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]


def test_too_many_failures_stop_with_an_error_and_keep_what_was_recorded(project: Path) -> None:
    assert run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=2").returncode == 0
    result = run_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=10", "params.fail_above=-100")
    assert result.returncode != 0
    assert "trials failed, more than max_failure_rate" in result.stderr
    study = load_study(project, "quadratic")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert sum(t.state.name == "FAIL" for t in study.trials) == 3  # 10 x 0.25 = 2 allowed, the 3rd stops it
    parent = study_runs(project, "quadratic", role="study")[0]
    assert parent.info.status == "FAILED"
    assert all(r.info.status != "RUNNING" for r in study_runs(project, "quadratic"))


def test_the_grid_sampler_runs_every_combination_exactly_once(project: Path) -> None:
    result = run_tuneflow(
        project, "+arch=quadratic", "-m", "hydra/sweeper/sampler=grid", "hydra/sweeper/pruner=none",
        "hydra.sweeper.params.x=choice(0.0, 1.0, 2.0)", "hydra.sweeper.params.y=range(-2, 1)",
        "hydra.sweeper.n_trials=100",
    )
    assert result.returncode == 0, result.output
    study = load_study(project, "quadratic")
    combos = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert sorted(combos) == sorted((x, y) for x in (0.0, 1.0, 2.0) for y in (-2, -1, 0))
    assert len(combos) == 9


@pytest.mark.parametrize(("signum", "exit_status", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                              (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_mid_trial_ends_everything_cleanly_and_keeps_what_finished(
    project: Path, signum: int, exit_status: int, word: str
) -> None:
    """Ctrl-C, or the SIGTERM a scheduler or `docker stop` sends, stops the study at once: the running
    trial is FAIL and its MLflow run KILLED, the parent run KILLED, nothing stays RUNNING until a
    heartbeat goes stale, finished trials and the CSV are kept, and the same command goes on."""
    # 20 epochs of 0.2 s: the trial seen in training is still training seconds later, when the signal
    # arrives (at 0.05 s per epoch a loaded machine could finish it between the check and the signal).
    worker = start_tuneflow(project, *QUAD, "hydra.sweeper.n_trials=30", "params.seconds_per_epoch=0.2",
                            "tracking.log_model=false")
    wait_until(lambda: sum(t.state.name == "COMPLETE" for t in load_study(project, "quadratic").trials) >= 1
               and any(t.state.name == "RUNNING" and len(t.intermediate_values) >= 2
                       for t in load_study(project, "quadratic").trials),
               "a finished trial and one mid-training", timeout=120)
    worker.send_signal(signum)
    _, stderr = worker.communicate(timeout=120)

    assert worker.returncode == exit_status, stderr[-2000:]
    assert f"tuneflow: {word}; finished trials are kept" in stderr
    study = load_study(project, "quadratic")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and states.count("FAIL") == 1, states
    runs = {r.data.tags["tuneflow.trial_number"]: r for r in study_runs(project, "quadratic")}
    (stopped,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert runs[str(stopped.number)].info.status == "KILLED"
    assert all(runs[str(t.number)].info.status == "FINISHED" for t in study.trials if t.state.name == "COMPLETE")
    (parent,) = study_runs(project, "quadratic", role="study")
    assert parent.info.status == "KILLED"
    with (project / "mlruns" / "studies" / "quadratic" / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["state"] for row in rows] == states

    again = run_tuneflow(project, *QUAD, f"hydra.sweeper.n_trials={states.count('COMPLETE') + 1}",
                         "tracking.log_model=false")
    assert again.returncode == 0, again.output
    assert [t.state.name for t in load_study(project, "quadratic").trials].count("COMPLETE") == states.count("COMPLETE") + 1
