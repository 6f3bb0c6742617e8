"""A user tunes, reports, repeats the finalists with new seeds, reads the verdict and retrains the winner.

The study is built so the answer is known: a grid over three configurations of the synthetic quadratic
arch whose true losses are 0 (x=2.0), 0.01 (x=2.1) and 4 (x=4.0), each training run adding seed noise
of standard deviation 0.5. Repeats must call the 0-vs-4 gap real and the 0-vs-0.01 gap noise.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Result,
    load_study,
    mlflow_client,
    run_tuneflow,
    study_runs,
    tuneflow_env,
)

pytestmark = pytest.mark.slow

TRUE_LOSS = {2.0: 0.0, 2.1: 0.01, 4.0: 4.0}
#: The synthetic learning curve still adds 10/epoch at the last of 3 epochs.
CURVE_AT_EPOCH_3 = 10 / 3


def tuneflow_command(project: Path, *args: str, timeout: float = 300) -> Result:
    """``tuneflow SUBCOMMAND ...`` through the console script's entry point, in a new process."""
    process = subprocess.run(
        [sys.executable, "-c", "from tuneflow.cli.app import main; main()", *args],
        cwd=project, env=tuneflow_env(), capture_output=True, text=True, timeout=timeout,
    )
    return Result(process.returncode, process.stdout, process.stderr)


def in_process(project: Path, command: str, *args: str, capsys: Any, monkeypatch: Any) -> Result:
    """``python -m tuneflow COMMAND ...`` run in the test's process (its imports are paid once)."""
    import importlib

    monkeypatch.chdir(project)
    capsys.readouterr()
    from tuneflow.cli.app import SUBCOMMANDS

    code = importlib.import_module(SUBCOMMANDS[command]).main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report_project")
    tuned = run_tuneflow(
        folder, "+arch=quadratic", "-m", "hydra/sweeper/sampler=grid", "hydra/sweeper/pruner=none",
        "hydra.sweeper.n_trials=3", "hydra.sweeper.params.x=choice(2.0, 2.1, 4.0)",
        "hydra.sweeper.params.y=choice(-1.0)", "params.noise=0.5", "params.epochs=3",
    )
    assert tuned.returncode == 0, tuned.output
    # The study as tuning left it, before any test reports or repeats in `folder`.
    shutil.copytree(folder, folder.with_name(folder.name + "-tuned"))
    return folder


@pytest.fixture
def just_tuned(project: Path, tmp_path: Path) -> Path:
    """A copy of the project as tuning left it (no repeats yet, whatever other tests did to `project`)."""
    return Path(shutil.copytree(project.with_name(project.name + "-tuned"), tmp_path / "project"))


@pytest.fixture(scope="module")
def repeated(project: Path) -> Result:
    """The finalists repeated once, 4 new seeds each: what the tests that read repeats start from (each test
    asks for what it needs, so none depends on another having run first)."""
    result = tuneflow_command(project, "repeat", "quadratic", "--top", "3", "--seeds", "4")
    assert result.returncode == 0, result.output
    return result


def trial_with_x(study: Any, x: float) -> Any:
    return next(t for t in study.trials if t.params["x"] == x)


def test_trials_record_the_overrides_that_recompose_them(project: Path) -> None:
    for trial in load_study(project, "quadratic").trials:
        assert trial.user_attrs["tuneflow_overrides"] == ["+arch=quadratic", "params.noise=0.5", "params.epochs=3"]


def test_report_writes_tables_plots_and_the_best_config_and_logs_them(just_tuned: Path, capsys: Any,
                                                                     monkeypatch: Any) -> None:
    project = just_tuned
    result = in_process(project, "report", "quadratic", "--top", "2", capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0, result.output
    study = load_study(project, "quadratic")
    folder = project / "mlruns" / "studies" / "quadratic" / "report"
    rows = list(csv.DictReader((folder / "top_trials.csv").open()))
    best_two = sorted(study.trials, key=lambda t: t.value)[:2]
    assert [int(r["trial"]) for r in rows] == [t.number for t in best_two]
    assert float(rows[0]["val_loss"]) == pytest.approx(best_two[0].value)
    # Only x varies (y is one choice), so x holds all the importance.
    importances = {r["param"]: float(r["importance"]) for r in csv.DictReader((folder / "importances.csv").open())}
    assert importances == {"x": pytest.approx(1.0), "y": pytest.approx(0.0)}
    for name in ("optimization_history", "intermediate_values", "parallel_coordinate", "param_importances"):
        assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "report.html").read_text()
    assert page.count("plotly-graph-div") >= 4 and "Plotly" in page  # plotly.js embedded: works offline
    client = mlflow_client(project)
    parent = study.user_attrs["mlflow_parent_run_id"]
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/report.html", "report/top_trials.csv", "report/param_importances.png"} <= logged
    exported = (project / "conf" / "best" / "quadratic.yaml").read_text()
    assert f"x: {best_two[0].params['x']}" in exported and "chosen as the study's best trial" in exported


def test_report_of_a_running_study_uses_only_finished_trials(project: Path, tmp_path: Path, capsys: Any,
                                                             monkeypatch: Any) -> None:
    import optuna

    # On a copy of the project: the extra trial must not reach the other tests' study.
    project = Path(shutil.copytree(project, tmp_path / "copy"))
    study = load_study(project, "quadratic")
    running = study.ask()  # another worker's trial, still running
    try:
        result = in_process(project, "report", "quadratic", "--out", "running-report", "--no-export", "--no-mlflow",
                            capsys=capsys, monkeypatch=monkeypatch)
        assert result.returncode == 0, result.output
        assert "3 finished trials (3 complete)" in result.stdout
        rows = list(csv.DictReader((project / "running-report" / "top_trials.csv").open()))
        assert running.number not in {int(r["trial"]) for r in rows}
    finally:
        study.tell(running, state=optuna.trial.TrialState.FAIL)


def test_repeat_tells_a_real_gap_from_noise(project: Path, repeated: Result) -> None:
    result = repeated
    study = load_study(project, "quadratic")
    far = trial_with_x(study, 4.0).number
    rows = list(csv.DictReader((project / "mlruns" / "studies" / "quadratic" / "significance.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    assert int(rows[2]["trial"]) == far, "x=4.0 (true loss 4) is last"
    assert {int(rows[0]["trial"]), int(rows[1]["trial"])} == {trial_with_x(study, 2.0).number,
                                                            trial_with_x(study, 2.1).number}
    assert rows[0]["verdict"] == "not distinguishable from #2"
    assert rows[2]["verdict"] == "worse than #1 at 95%"
    assert "better than #3" in result.stdout and "not distinguishable from #2" in result.stdout
    for row in rows:  # each mean lies in its interval, within 4 standard errors (0.25) of the expected loss
        expected = TRUE_LOSS[study.trials[int(row["trial"])].params["x"]] + CURVE_AT_EPOCH_3
        assert float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"])
        assert abs(float(row["mean"]) - expected) < 1.0


def test_each_repeat_is_an_mlflow_run_linked_to_its_trial(project: Path, repeated: Result) -> None:
    study = load_study(project, "quadratic")
    parent = study.user_attrs["mlflow_parent_run_id"]
    repeats = study_runs(project, "quadratic", role="repeat")
    assert len(repeats) == 12
    by_trial: dict[int, set[int]] = {}
    for run in repeats:
        tags = run.data.tags
        trial = study.trials[int(tags["tuneflow.repeat_of_trial"])]
        assert tags["tuneflow.repeat_of_run"] == trial.user_attrs["mlflow_run_id"]
        assert tags["mlflow.parentRunId"] == parent
        assert run.info.status == "FINISHED"
        assert run.data.params["x"] == str(trial.params["x"]) and run.data.params["seed"] == tags["tuneflow.repeat_seed"]
        by_trial.setdefault(trial.number, set()).add(int(tags["tuneflow.repeat_seed"]))
    assert by_trial == {t.number: {1, 2, 3, 4} for t in study.trials if t.state.name == "COMPLETE"}
    assert "verdict" not in mlflow_client(project).get_run(parent).data.tags  # the tag is tuneflow.verdict
    assert "better than #3" in mlflow_client(project).get_run(parent).data.tags["tuneflow.verdict"]


def test_repeat_again_reuses_the_finished_repeats_and_exports_the_winner(project: Path, repeated: Result,
                                                                         capsys: Any, monkeypatch: Any) -> None:
    result = in_process(project, "repeat", "quadratic", "--top", "3", "--seeds", "4", capsys=capsys,
                        monkeypatch=monkeypatch)
    assert result.returncode == 0, result.output
    assert "(12 already done)" in result.stdout
    assert len(study_runs(project, "quadratic", role="repeat")) == 12
    exported = (project / "conf" / "best" / "quadratic.yaml").read_text()
    assert "chosen by its repeats" in exported


def test_best_config_retrains_the_winner_in_one_run_with_its_model(project: Path, repeated: Result, capsys: Any,
                                                                   monkeypatch: Any) -> None:
    # The export is the repeats' winner (a report run since would have replaced it with the best trial).
    exported = in_process(project, "repeat", "quadratic", "--top", "3", "--seeds", "4", capsys=capsys,
                          monkeypatch=monkeypatch)
    assert exported.returncode == 0, exported.output
    study = load_study(project, "quadratic")
    leader = int(next(csv.DictReader((project / "mlruns" / "studies" / "quadratic" / "significance.csv").open()))["trial"])
    result = run_tuneflow(project, "+best=quadratic")
    assert result.returncode == 0, result.output
    runs = study_runs(project, "quadratic", role="single")
    assert len(runs) == 1
    run = runs[0]
    client = mlflow_client(project)
    assert "model" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.params["x"] == str(study.trials[leader].params["x"])
    # Same config, same seed as the trial: the synthetic arch reproduces the trial's value exactly.
    assert run.data.metrics["objective"] == pytest.approx(study.trials[leader].value)


def test_bad_input_is_one_line_with_status_2(project: Path, repeated: Result, capsys: Any, monkeypatch: Any) -> None:
    # `repeated` exported conf/best/quadratic.yaml: the project has a best config group to name a wrong one of.
    unknown = tuneflow_command(project, "report", "nope")  # through the console script's dispatch
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (f"tuneflow: error: no study 'nope' in journal://{project / 'mlruns' / 'optuna.journal'}; "
                                      "studies there: quadratic")
    with pytest.raises(SystemExit) as exit_status:
        in_process(project, "repeat", "quadratic", "--top", "1", capsys=capsys, monkeypatch=monkeypatch)
    too_few = Result(int(exit_status.value.code or 0), "", capsys.readouterr().err)
    assert too_few.returncode == 2 and too_few.stderr.count("\n") == 1
    assert "--top is 1, but comparing needs at least 2 finalists" in too_few.stderr
    elsewhere = in_process(project, "ui", "quadratic", "--root-dir", "missing", capsys=capsys, monkeypatch=monkeypatch)
    assert elsewhere.returncode == 2 and "no Optuna storage at" in elsewhere.stderr
    no_best = run_tuneflow(project, "+best=nope")
    assert no_best.returncode == 2 and "tuneflow: error: unknown best 'nope'" in no_best.stderr
