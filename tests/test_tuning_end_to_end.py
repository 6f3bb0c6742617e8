"""A user tunes the MLP on digits with one command and finds every trial in Optuna, MLflow and a CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import (
    load_logged_model,
    load_study,
    mlflow_client,
    run_tuneflow,
    study_runs,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    project = tmp_path_factory.mktemp("mlp_project")
    result = run_tuneflow(
        project, "+arch=mlp", "-m", "hydra.sweeper.n_trials=3", "params.epochs=3",
        "hydra.sweeper.params.lr=tag(log, interval(1e-3, 1e-2))",
    )
    assert result.returncode == 0, result.output
    return project, result


def test_every_trial_is_an_optuna_trial_with_per_epoch_values(mlp_study) -> None:  # type: ignore[no-untyped-def]
    project, _ = mlp_study
    study = load_study(project, "mlp")
    assert study.metric_names == ["val_accuracy"], "dashboards show the objective by its name"
    assert len(study.trials) == 3
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    for trial in study.trials:
        assert 1e-3 <= trial.params["lr"] <= 1e-2  # the command-line space replaced the default range
        assert trial.params["batch_size"] in (16, 32, 64, 128)
        assert trial.intermediate_values, "the training loop reported per-epoch values"


def test_every_trial_is_one_mlflow_run_under_the_study_parent(mlp_study) -> None:  # type: ignore[no-untyped-def]
    project, _ = mlp_study
    client = mlflow_client(project)
    study = load_study(project, "mlp")
    (parent,) = study_runs(project, "mlp", role="study")
    runs = study_runs(project, "mlp")
    assert len(runs) == 3
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    by_number = {int(r.data.tags["tuneflow.trial_number"]): r for r in runs}
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["tuneflow.state"] == trial.state.name
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
        assert run.data.params["batch_size"] == str(trial.params["batch_size"])
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "config.yaml" in artifacts
        if trial.state.name == "COMPLETE":
            assert "model" in artifacts
            assert run.data.metrics["objective"] == pytest.approx(trial.value)
            assert run.data.metrics["train_seconds"] > 0


def test_the_best_model_loads_with_mlflow_pyfunc_and_predicts(mlp_study) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    project, _ = mlp_study
    study = load_study(project, "mlp")
    model = load_logged_model(project, study.best_trial.user_attrs["mlflow_run_id"])
    predictions = model.predict(np.zeros((2, 64), dtype=np.float32))
    assert np.asarray(predictions).shape == (2, 10)


def test_results_csv_has_a_row_per_trial_with_run_ids(mlp_study) -> None:  # type: ignore[no-untyped-def]
    project, result = mlp_study
    path = project / "mlruns" / "studies" / "mlp" / "trials.csv"
    rows = list(csv.DictReader(path.open()))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert all(r["mlflow_run_id"] and r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    # The final metrics are the trial run's in MLflow: the best epoch's as best_<name>, and the objective.
    assert {"lr", "batch_size", "best_val_accuracy", "objective", "duration_s"} <= set(rows[0])
    study = load_study(project, "mlp")
    parent_artifacts = {a.path for a in mlflow_client(project).list_artifacts(study.user_attrs["mlflow_parent_run_id"])}
    assert "trials.csv" in parent_artifacts


def test_progress_lines_and_a_final_summary_are_printed(mlp_study) -> None:  # type: ignore[no-untyped-def]
    _, result = mlp_study
    assert "[1/3] trial 0" in result.output and "[3/3] trial 2" in result.output
    assert "best trial #" in result.output
    assert "MLflow parent run:" in result.output
    assert "results CSV: mlruns/studies/mlp/trials.csv" in result.output


def test_lightgbm_tunes_on_breast_cancer_and_logs_its_model(project: Path) -> None:
    result = run_tuneflow(project, "+arch=lightgbm", "-m", "hydra.sweeper.n_trials=2", "params.n_rounds=40")
    assert result.returncode == 0, result.output
    runs = study_runs(project, "lightgbm")
    assert len(runs) == 2
    completed = [r for r in runs if r.info.status == "FINISHED"]
    assert completed
    artifacts = {a.path for a in mlflow_client(project).list_artifacts(completed[0].info.run_id, "model")}
    assert "model/MLmodel" in artifacts


def test_a_run_without_multirun_trains_once_with_the_default_params(project: Path) -> None:
    result = run_tuneflow(project, "+arch=quadratic")
    assert result.returncode == 0, result.output
    assert "trained quadratic: val_loss=" in result.output
    runs = study_runs(project, "quadratic", role="single")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
