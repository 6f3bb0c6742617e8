"""A user runs a whole strategy with one command: stages of studies, each its own Optuna study and MLflow
run nested under the strategy's run, finalists handed on through files; a stopped strategy resumes in
the stage it stopped in. On arch=twin_quadratic: a bowl at (2, -1) reaching 0 and a shallower one at
(-3, 3) reaching 0.5, where a coarse grid's best point lies in the shallower bowl."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, mlflow_client, run_tuneflow, tuneflow_env

from tuneflow.strategy import handoff as files

pytestmark = pytest.mark.slow

MINE = """\
# A user's own stage list, in the project's conf/strategy/.
name: mine
stages:
  - {name: coarse, kind: search, sampler: grid, grid_steps: 4, n_trials: 25, top_k: 5, pruner: none}
  - {name: apart, kind: zones, threshold: 0.2, sampler: tpe, n_trials: 16, top_k: 1, pruner: none}
  - {name: final, kind: repeat, top: 2, seeds: 2}
"""


def test_a_stage_list_from_the_project_runs_nested_and_the_deeper_zone_wins(project: Path, capsys: Any,
                                                                           monkeypatch: Any) -> None:
    (project / "conf" / "strategy").mkdir(parents=True)
    (project / "conf" / "strategy" / "mine.yaml").write_text(MINE)
    result = run_tuneflow(project, "+arch=twin_quadratic", "-m", "+strategy=mine", "params.epochs=2", timeout=600)
    assert result.returncode == 0, result.output
    folder = project / "mlruns" / "studies" / "twin_quadratic"
    coarse, apart, final = (files.read(folder / f"{stage}.yaml") for stage in ("coarse", "apart", "final"))
    assert coarse.best is not None and coarse.best["params"]["x"] < 0  # the grid points at the shallow bowl
    assert len(apart.zones) == 2
    assert {round(z["best"]["params"]["x"]) > 0 for z in apart.zones} == {True, False}  # one zone per bowl
    assert final.best is not None and final.best["params"]["x"] > 0  # the repeats choose the deeper bowl
    best_config = (project / "conf" / "best" / "twin_quadratic.yaml").read_text()
    assert f"x: {final.best['params']['x']}" in best_config
    # One study per stage (and per zone), each with its MLflow parent run under the strategy's run.
    studies = ["twin_quadratic/coarse", "twin_quadratic/apart/zone-0", "twin_quadratic/apart/zone-1",
               "twin_quadratic/final"]
    assert len(load_study(project, studies[0]).trials) == 25
    zone_trials = [t for name in studies[1:3] for t in load_study(project, name).trials]
    # 16 trained; the coarse grid's finalists inside each zone were scored at the same fidelity: added with
    # their values, not trained again.
    assert sum("tuneflow_known_from" not in t.user_attrs for t in zone_trials) == 16
    assert sum("tuneflow_known_from" in t.user_attrs for t in zone_trials) == 5
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("twin_quadratic")
    strategy_runs = client.search_runs([experiment.experiment_id], "tags.`tuneflow.role` = 'strategy'")
    assert len(strategy_runs) == 1 and strategy_runs[0].info.status == "FINISHED"
    for name in studies:
        parent = client.get_run(load_study(project, name).user_attrs["mlflow_parent_run_id"])
        assert parent.data.tags["mlflow.parentRunId"] == strategy_runs[0].info.run_id, name
    artifacts = {a.path for a in client.list_artifacts(strategy_runs[0].info.run_id, "stages")}
    assert artifacts == {"stages/coarse.yaml", "stages/apart.yaml", "stages/final.yaml"}
    # tuneflow report STUDY shows the strategy's stages and zones.
    from tuneflow.analysis import report

    monkeypatch.chdir(project)
    capsys.readouterr()
    assert report.main(["twin_quadratic"]) == 0
    shown = capsys.readouterr().out
    for zone in apart.zones:
        assert f"zone {zone['zone']} ({zone['study']}): inputs twin_quadratic/coarse#" in shown
    rows = (folder / "report" / "zones.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("stage,zone,study,input_trials,bounds,best_value,best_params")
    # The zones' parallel-coordinates plot.
    assert "parallel coordinates coloured by zone: mlruns/studies/twin_quadratic/report/zones_apart.html" in shown
    assert "parcoords" in (folder / "report" / "zones_apart.html").read_text()


def test_a_strategy_killed_in_its_middle_stage_goes_on_there(project: Path) -> None:
    command = ["+arch=twin_quadratic", "-m", "+strategy=zones", "params.epochs=3", "strategy.stages.0.n_trials=25",
               "strategy.stages.1.n_trials=12", "strategy.stages.3.seeds=2"]
    folder = project / "mlruns" / "studies" / "twin_quadratic"
    process = subprocess.Popen([sys.executable, "-m", "tuneflow", *command, "params.seconds_per_epoch=0.2"],
                               cwd=project, env=tuneflow_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    assert process.stdout is not None
    seen = []
    in_refine = False
    for line in process.stdout:  # the sweeper's progress lines, as they come
        seen.append(line)
        in_refine = in_refine or "stage refine (zones)" in line
        if in_refine and re.search(r"\[3/\d+\] trial", line):
            # In the refine stage, its first zone study 2 trials in (after the zone's best grid point, known).
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + rest
    assert not (folder / "refine.yaml").exists()
    grid_file = (folder / "grid.yaml").read_bytes()
    again = run_tuneflow(project, *command, "params.seconds_per_epoch=0.2", timeout=600)
    assert again.returncode == 0, again.output
    assert "stage grid: finished earlier" in again.output
    assert (folder / "grid.yaml").read_bytes() == grid_file
    assert len(load_study(project, "twin_quadratic/grid").trials) == 25  # not run again
    refine = files.read(folder / "refine.yaml")
    # Trained trials only: a zone's best grid point, measured at the same fidelity, is added with its value.
    states = [t.state.name for z in refine.zones for t in load_study(project, z["study"]).trials
              if "tuneflow_known_from" not in t.user_attrs]
    # The stopped zone study went on to its budget (12 over both zones), no further. The trial Ctrl-C stopped
    # is FAIL; whether it used up its grid point depends on when the signal came (seen both).
    assert "RUNNING" not in states and states.count("FAIL") <= 1
    # (The refine stage prunes with ASHA: a trial that ran to its budget is COMPLETE or PRUNED.)
    assert 11 <= states.count("COMPLETE") + states.count("PRUNED") <= 12 and len(states) in (12, 13)
    assert states.count("COMPLETE") >= 1
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("twin_quadratic")
    strategy_runs = client.search_runs([experiment.experiment_id], "tags.`tuneflow.role` = 'strategy'")
    assert len(strategy_runs) == 1 and strategy_runs[0].info.status == "FINISHED"


@pytest.mark.parametrize(("override", "message"), [
    ("strategy.stages.0.sampler=bogus", "strategy: sampler 'bogus' is unknown; one of tpe, random"),
    ("+strategy.stages.0.trials=3", "strategy.stages[0]: unknown key 'trials'"),
    ("strategy.stages.0.overrides=[params.nope=1]", "params.nope"),
])
def test_a_bad_strategy_is_one_line_and_creates_nothing(project: Path, override: str, message: str) -> None:
    result = run_tuneflow(project, "+arch=twin_quadratic", "-m", "+strategy=zones", override)
    assert result.returncode == 2, result.output
    assert result.stderr.startswith("tuneflow: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project / "mlruns").exists()
