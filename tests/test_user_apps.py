"""A user's own Hydra app, tuned with `override hydra/sweeper: tuneflow` and nothing else of tuneflow.

The apps live in tests/apps/: plain Hydra apps as users of Hydra's Optuna sweeper write them (sphere,
custom search space; only their configs name tuneflow's sweeper), and apps whose training loops call tuneflow's public API
(`tuneflow.report`, `tuneflow.current_trial`, `tuneflow.log_model`). Each runs as a user runs it: a
subprocess in a project folder of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Result,
    load_logged_model,
    load_study,
    mlflow_client,
    study_runs,
    tuneflow_env,
)
from omegaconf import OmegaConf

APPS = Path(__file__).parent / "apps"

pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the apps folder: a user's project with its own `conf/`."""
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder)
    return folder


def run_app(folder: Path, script: str, *args: str, timeout: float = 300) -> Result:
    process = subprocess.run([sys.executable, script, *args], cwd=folder, env=tuneflow_env(),
                             capture_output=True, text=True, timeout=timeout)
    return Result(process.returncode, process.stdout, process.stderr)


def results_of(folder: Path) -> dict:
    [path] = folder.glob("multirun/*/*/optimization_results.yaml")
    return OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[return-value]


def test_hydras_sphere_example_runs_with_only_the_sweeper_name_changed(app: Path) -> None:
    result = run_app(app, "sphere.py", "--multirun", "hydra.sweeper.n_trials=6", "hydra.job.chdir=False")
    assert result.returncode == 0, result.output
    # Library warnings are quieted in a user's app as in tuneflow's own; MLflow's table set-up is not shown.
    assert "Warning" not in result.output and "Creating initial MLflow database tables" not in result.output

    study = load_study(app, "sphere")
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state.name == "COMPLETE" and t.value == t.params["x"] ** 2 + t.params["y"] ** 2 for t in trials)
    # What Hydra's Optuna sweeper writes, and what its tests read.
    returns = results_of(app)
    assert returns["name"] == "optuna"
    assert returns["best_value"] == study.best_value
    assert returns["best_params"] == study.best_params
    # The grid: x on range(-5.5, 5.5, step=0.5) (end excluded), y one of the choices, each point once.
    assert {t.params["y"] for t in trials} <= {-5, 0, 5}
    assert all(-5.5 <= t.params["x"] <= 5.0 and (t.params["x"] * 2).is_integer() for t in trials)
    assert len({(t.params["x"], t.params["y"]) for t in trials}) == 6
    # Hydra job number = Optuna trial number: output folders and overrides name the trial's values.
    sweep_dir = next(app.glob("multirun/*/*"))
    for trial in trials:
        overrides = OmegaConf.load(sweep_dir / str(trial.number) / ".hydra" / "overrides.yaml")
        assert sorted(overrides) == sorted([f"x={trial.params['x']!r}", f"y={trial.params['y']}"])
    # MLflow: one parent run for the study, one run per trial with its params and its value.
    runs = {int(r.data.tags["tuneflow.trial_number"]): r for r in study_runs(app, "sphere")}
    assert sorted(runs) == list(range(6))
    for trial in trials:
        run = runs[trial.number]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["x"]) == trial.params["x"]
        assert run.data.metrics["objective"] == pytest.approx(trial.value)
        assert run.data.tags["mlflow.parentRunId"] == study.user_attrs["mlflow_parent_run_id"]
    assert (app / "mlruns" / "studies" / "sphere" / "trials.csv").is_file()


def test_hydras_sphere_example_with_tpe_finds_what_its_own_test_asks(app: Path) -> None:
    """Hydra's Optuna sweeper test: TPE, seed 123, 20 trials of x, y on the sphere; best <= 2.27."""
    result = run_app(app, "sphere.py", "--multirun", "hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=123",
                     "hydra.sweeper.n_trials=20", "x=range(-5.5, 5.5, step=0.5)", "y=choice(-5, 0, 5)")
    assert result.returncode == 0, result.output
    assert results_of(app)["best_value"] <= 2.27


def test_fixed_values_only_run_n_trials_of_them_and_a_delete_reaches_every_job(app: Path) -> None:
    """As with Hydra's Optuna sweeper: x=1 y=2 on the command line take x and y out of the search space
    (sphere.yaml searches both), nothing is left to search, and the study runs n_trials trials of the
    fixed values; ~z goes to every job as a delete."""
    result = run_app(app, "sphere.py", "--multirun", "x=1", "y=2", "~z", "hydra/sweeper/sampler=random",
                     "hydra.sweeper.n_trials=3", "hydra.job.chdir=False")
    assert result.returncode == 0, result.output
    trials = load_study(app, "sphere").get_trials()
    assert [(t.state.name, t.value, t.params) for t in trials] == [("COMPLETE", 5.0, {})] * 3
    sweep_dir = next(app.glob("multirun/*/*"))
    for trial in trials:
        job = sweep_dir / str(trial.number) / ".hydra"
        assert list(OmegaConf.load(job / "overrides.yaml")) == ["x=1", "y=2", "~z"]
        config = OmegaConf.load(job / "config.yaml")
        assert (config.x, config.y, "z" in config) == (1, 2, False)


def test_an_empty_grid_is_one_point_and_brute_force_tries_each_point_once(app: Path) -> None:
    result = run_app(app, "sphere.py", "--multirun", "x=1", "y=2", "hydra.sweeper.study_name=grid",
                     "hydra.job.chdir=False")
    assert result.returncode == 0, result.output
    assert [t.value for t in load_study(app, "grid").get_trials()] == [5.0]  # the peer: min(n_trials, 1)
    result = run_app(app, "sphere.py", "--multirun", "x=choice(1, 2)", "hydra/sweeper/sampler=bruteforce",
                     "hydra.sweeper.study_name=brute", "hydra.sweeper.n_trials=20", "hydra.job.chdir=False")
    assert result.returncode == 0, result.output
    trials = load_study(app, "brute").get_trials()
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == [(x, y) for x in (1, 2) for y in (-5, 0, 5)]


def test_hydras_custom_search_space_example_adds_define_by_run_parameters(app: Path) -> None:
    result = run_app(app, "custom_space.py", "--multirun", "hydra.sweeper.n_trials=8", "hydra/sweeper/sampler=random",
                     "hydra.sweeper.sampler.seed=123", "max_z_difference_from_x=0.3")
    assert result.returncode == 0, result.output
    returns = results_of(app)
    assert abs(returns["best_params"]["x"] - returns["best_params"]["z"]) <= 0.3
    assert 0 <= returns["best_params"]["w"] <= 1
    trials = load_study(app, "custom-search-space").get_trials()
    assert len(trials) == 8 and all(set(t.params) == {"x", "y", "z", "w"} for t in trials)


def test_a_user_training_loop_reports_per_epoch_and_bad_trials_are_pruned(app: Path) -> None:
    result = run_app(app, "curves.py", "--multirun")
    assert result.returncode == 0, result.output

    study = load_study(app, "curves")
    states = [t.state.name for t in study.get_trials()]
    assert len(states) == 12 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "PRUNED" in states
    client = mlflow_client(app)
    runs = {int(r.data.tags["tuneflow.trial_number"]): r for r in study_runs(app, "curves")}
    for trial in study.get_trials():
        run = runs[trial.number]
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == sorted(trial.intermediate_values)
        if trial.state.name == "PRUNED":
            assert run.info.status == "KILLED"
            assert run.data.tags["tuneflow.state"] == "PRUNED"
            assert len(trial.intermediate_values) < 10
        else:
            assert run.info.status == "FINISHED"
            # The dict the task returned: the objective by the name the sweeper was given, and the
            # trial number the task read from tuneflow.current_trial().
            assert trial.value == run.data.metrics["val_loss"]
            assert run.data.metrics["trial_seen"] == trial.number


def test_the_same_app_runs_without_a_sweep(app: Path) -> None:
    result = run_app(app, "curves.py", "lr=0.2")
    assert result.returncode == 0, result.output
    assert not (app / "mlruns").exists()  # no study, nothing tracked: report() only checks the values


def test_a_failing_or_exiting_task_is_a_failed_trial_and_the_study_goes_on(app: Path) -> None:
    result = run_app(app, "curves.py", "--multirun", "hydra.sweeper.n_trials=8", "fail_above=1.0",
                     "hydra.sweeper.max_failure_rate=1.0",
                     "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0")
    assert result.returncode == 0, result.output
    trials = load_study(app, "curves").get_trials()
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all(t.params["lr"] > 1.0 and "diverged" in t.user_attrs["error"] for t in failed)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 8

    exiting = run_app(app, "curves.py", "--multirun", "hydra.sweeper.n_trials=2", "exit_code=3",
                      "hydra.sweeper.study_name=exits", "hydra.sweeper.max_failure_rate=1.0")
    # max_failure_rate=1: failures never stop the study with an error (as in Hydra's Optuna sweeper, whose
    # test_failure_rate asserts it); n_trials failed trials end it. The task's own exit status is not the process's.
    assert exiting.returncode == 0, exiting.output
    assert "study 'exits': 0 finished, 2 failed" in exiting.output
    errors = {t.user_attrs.get("error") for t in load_study(app, "exits").get_trials()}
    assert errors == {"SystemExit: the task called sys.exit(3)"}


def test_a_task_that_never_gives_the_objective_stops_the_study_with_one_line(app: Path) -> None:
    result = run_app(app, "curves.py", "--multirun", "hydra.sweeper.objective=val_acc",
                     "hydra.sweeper.study_name=no-objective")
    assert result.returncode == 2, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("tuneflow: error:")]
    assert "without the objective 'val_acc'" in line and "set hydra.sweeper.objective" in line
    assert "Traceback" not in result.output
    assert [t.state.name for t in load_study(app, "no-objective").get_trials()] == ["FAIL"]


def test_a_search_space_name_the_app_lacks_is_one_line_and_creates_nothing(app: Path) -> None:
    result = run_app(app, "sphere.py", "--multirun", "q=interval(0, 1)")
    assert result.returncode != 0
    assert "Traceback" not in result.output
    assert "search space: not in the app's config: 'q' (no q)" in result.stderr
    assert not (app / "mlruns").exists()


def test_an_optuna_integration_pruning_callback_works_inside_a_trial(app: Path) -> None:
    result = run_app(app, "lgbm_app.py", "--multirun")
    assert result.returncode == 0, result.output
    study = load_study(app, "lgbm_app")
    states = [t.state.name for t in study.get_trials()]
    assert len(states) == 8 and "PRUNED" in states
    pruned = [t for t in study.get_trials() if t.state.name == "PRUNED"]
    runs = {int(r.data.tags["tuneflow.trial_number"]): r for r in study_runs(app, "lgbm_app")}
    for trial in pruned:
        assert runs[trial.number].info.status == "KILLED"
        assert runs[trial.number].data.tags["tuneflow.pruned_at_step"] == str(trial.last_step)
    complete = next(t for t in study.get_trials() if t.state.name == "COMPLETE")
    # tuneflow.log_model picked MLflow's LightGBM flavor from the booster's type.
    model = load_logged_model(app, runs[complete.number].info.run_id)
    assert model.metadata.flavors.keys() >= {"lightgbm", "python_function"}


def test_mlflow_autologging_records_into_the_trials_run(app: Path) -> None:
    result = run_app(app, "sklearn_app.py", "--multirun")
    assert result.returncode == 0, result.output
    runs = study_runs(app, "sklearn_app")
    assert len(runs) == 2
    for run in runs:
        assert "training_score" in run.data.metrics  # logged by mlflow.sklearn's autologging
        assert run.data.params["C"] and "max_iter" in run.data.params
        assert run.info.status == "FINISHED" and "objective" in run.data.metrics
