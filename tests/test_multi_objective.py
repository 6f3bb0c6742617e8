"""Several objectives: a user trades validation loss against training time on a built-in architecture,
or tunes their own app returning a dict; the study keeps the Pareto set, the report draws its front,
and any Pareto trial (the knee by default) is exported for ``+best``. Hydra's Optuna sweeper's own
multi-objective example (a task returning a tuple) runs in tests/hydra_optuna_sweeper."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Result, load_study, run_tuneflow, study_runs, tuneflow_env
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow

TWO_OBJECTIVES = ["hydra.sweeper.objective=[val_loss,train_seconds]", "hydra.sweeper.direction=[minimize,minimize]"]
QUADRATIC = ["+arch=quadratic", "-m", "hydra.sweeper.n_trials=6", "params.epochs=2", "tracking.log_model=false"]


def test_loss_against_training_time_on_a_built_in_architecture(project: Path) -> None:
    result = run_tuneflow(project, *QUADRATIC, *TWO_OBJECTIVES)
    assert result.returncode == 0, result.output

    study = load_study(project, "quadratic")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_loss", "train_seconds"]
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    # Each objective, by name, in MLflow: the trial's run holds exactly the values Optuna was told.
    runs = {int(r.data.tags["tuneflow.trial_number"]): r for r in study_runs(project, "quadratic")}
    for trial in complete:
        metrics = runs[trial.number].data.metrics
        assert [metrics["val_loss"], metrics["train_seconds"]] == trial.values
        assert trial.values[1] > 0
    # The CSV: a column per objective.
    import pandas as pd

    table = pd.read_csv(project / "mlruns" / "studies" / "quadratic" / "trials.csv").set_index("number")
    for trial in complete:
        assert [table.loc[trial.number, "val_loss"], table.loc[trial.number, "train_seconds"]] == trial.values
    # The console and optimization_results.yaml give the Pareto set, as Hydra's Optuna sweeper writes it.
    pareto = sorted(study.best_trials, key=lambda t: t.number)
    assert f"Pareto set: {len(pareto)} trial(s) (val_loss minimized, train_seconds minimized)" in result.output
    [path] = project.glob("multirun/*/*/optimization_results.yaml")
    written = OmegaConf.to_container(OmegaConf.load(path))
    assert written["name"] == "optuna"
    assert [(s["number"], s["params"], s["values"]) for s in written["solutions"]] == [
        (t.number, t.params, t.values) for t in pareto]
    assert written["knee_trial"] in [t.number for t in pareto]

    # The report draws the front and lists the Pareto-optimal trials; one of them is exported by number.
    chosen = pareto[-1]
    report = run_tuneflow(project, "report", "quadratic", "--trial", str(chosen.number))
    assert report.returncode == 0, report.output
    out = project / "mlruns" / "studies" / "quadratic" / "report"
    assert (out / "pareto_front.png").stat().st_size > 10_000
    assert "Pareto-front Plot" in (out / "report.html").read_text()
    listed = pd.read_csv(out / "pareto_trials.csv")
    assert list(listed["trial"]) == [t.number for t in pareto]
    for trial in pareto:
        assert f"  #{trial.number}: val_loss={trial.values[0]:.6g}" in report.stdout
    assert f"best config: conf/best/quadratic.yaml (trial {chosen.number};" in report.stdout
    exported = OmegaConf.load(project / "conf" / "best" / "quadratic.yaml")
    assert (exported.params.x, exported.params.y) == (chosen.params["x"], chosen.params["y"])

    # +best retrains that trial: the same val_loss (the quadratic is deterministic without noise).
    retrain = run_tuneflow(project, "+best=quadratic", "tracking.log_model=false")
    assert retrain.returncode == 0, retrain.output
    assert f"trained quadratic: val_loss={chosen.values[0]:.6g}" in retrain.output

    # A trial off the Pareto set is refused with the ones to choose from.
    off = next((t for t in complete if t.number not in {p.number for p in pareto}), None)
    if off is not None:
        refused = run_tuneflow(project, "report", "quadratic", "--trial", str(off.number), "--no-mlflow")
        assert refused.returncode == 2
        assert refused.stderr.strip() == (f"tuneflow: error: --trial {off.number} is not Pareto-optimal; choose one "
                                          f"of {', '.join(str(t.number) for t in pareto)}")


def test_pruning_several_objectives_is_refused_before_anything_exists(project: Path) -> None:
    result = run_tuneflow(project, *QUADRATIC, *TWO_OBJECTIVES, "hydra/sweeper/pruner=median")
    assert result.returncode == 2
    assert result.stderr.strip() == ("tuneflow: error: hydra.sweeper.pruner: Optuna cannot prune a study with 2 "
                                     "objectives; add hydra/sweeper/pruner=none")
    assert not (project / "mlruns").exists()


def test_a_users_app_returning_a_dict_that_names_its_objectives(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(Path(__file__).parent / "apps", app)
    process = subprocess.run([sys.executable, "accuracy_vs_size.py", "--multirun", "hydra.job.chdir=False"],
                             cwd=app, env=tuneflow_env(), capture_output=True, text=True, timeout=300)
    result = Result(process.returncode, process.stdout, process.stderr)
    assert result.returncode == 0, result.output
    study = load_study(app, "accuracy_vs_size")
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 8
    for trial in complete:
        width, lr = trial.params["width"], trial.params["lr"]
        assert trial.values == [1.0 / width + (lr - 0.1) ** 2, float(width * width)]
    # Both objectives and the other metric are the trial's MLflow metrics.
    for run in study_runs(app, "accuracy_vs_size"):
        trial = study.trials[int(run.data.tags["tuneflow.trial_number"])]
        assert run.data.metrics["error"] == trial.values[0] and run.data.metrics["size"] == trial.values[1]
        assert run.data.metrics["lr_used"] == trial.params["lr"]
