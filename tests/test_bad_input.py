"""Bad input gets one line that names what to fix, a non-zero exit, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_study, run_tuneflow, study_runs

BAD_INPUT = {
    "unknown architecture": (["+arch=transformer", "-m"], "unknown arch 'transformer': choose one of"),
    "unknown sampler": (["+arch=mlp", "-m", "hydra/sweeper/sampler=tpee"], "unknown hydra/sweeper/sampler 'tpee'"),
    "unknown pruner": (["+arch=mlp", "-m", "hydra/sweeper/pruner=medain"], "unknown hydra/sweeper/pruner 'medain'"),
    "low > high": (["+arch=mlp", "-m", "hydra.sweeper.params.lr=interval(0.1, 0.01)"], "params.lr: interval(0.1, 0.01) has low > high"),
    "log with low <= 0": (["+arch=mlp", "-m", "hydra.sweeper.params.lr=tag(log, interval(0, 0.1))"], "log scale needs low > 0"),
    "empty choice": (["+arch=mlp", "-m", "hydra.sweeper.params.batch_size=choice()"], "empty choice is not legal"),
    "empty range": (["+arch=mlp", "-m", "hydra.sweeper.params.n_layers=range(3, 1)"], "range(3, 1) is empty"),
    "parameter the arch lacks": (["+arch=mlp", "-m", "hydra.sweeper.params.lrr=interval(0.1, 0.2)"], "'lrr' is not a parameter of arch mlp"),
    "sweep on a parameter the arch lacks": (["+arch=mlp", "-m", "params.lrr=interval(0.1, 0.2)"], "'lrr' is not a parameter of arch mlp"),
    "typo in a fixed override": (["+arch=mlp", "-m", "params.epochz=3"], "Could not override 'params.epochz'"),
    "text choices for a number": (["+arch=mlp", "-m", "hydra.sweeper.params.hidden_size=choice(a, b)"], "params.hidden_size is a number"),
    "no architecture": (["-m"], "the search space is empty: pick an architecture with +arch=NAME"),
    "no architecture, single run": ([], "no architecture chosen: add +arch=NAME"),
    "zero trials": (["+arch=mlp", "-m", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials is 0"),
    "bad direction": (["+arch=mlp", "-m", "hydra.sweeper.direction=up"], "hydra.sweeper.direction is 'up'"),
    "grid over an interval": (["+arch=mlp", "-m", "hydra/sweeper/sampler=grid"], "grid sampler cannot enumerate"),
    "bad failure rate": (["+arch=mlp", "-m", "hydra.sweeper.max_failure_rate=2"], "max_failure_rate is 2.0"),
    "date range that ends before it starts": (
        ["+arch=lstm_attention", "-m", "data.date_ranges=[[2014-04-01,2014-01-01]]"], "ends on or before it starts"),
    "date range outside the data": (
        ["+arch=lstm_attention", "-m", "data.date_ranges=[[2019-01-01,2019-04-01]]"], "lies outside the data"),
    "window longer than a date range": (
        ["+arch=lstm_attention", "-m", "data.date_ranges=[[2014-01-01,2014-01-10]]"],
        "params.window is 28 days, but date range 2014-01-01..2014-01-10 holds only 9 days"),
    "zoom in on a study that does not exist": (
        ["+arch=quadratic", "-m", "hydra.sweeper.zoom.study=screen"], "hydra.sweeper.zoom.study: no study 'screen'"),
    "a GPU this machine lacks": (["+arch=mlp", "-m", "device=cuda:7"], "device is 'cuda:7'"),
    "not a device": (["+arch=mlp", "-m", "device=gpu"], "device is 'gpu', but must be auto, cpu, cuda or cuda:N"),
    "unknown way to combine ranges": (
        ["+arch=lstm_attention", "-m", "data.objective_over_ranges=max"], "data.objective_over_ranges is 'max'"),
    "zero torch threads": (["+arch=mlp", "-m", "torch_threads=0"], "torch_threads is 0, but must be"),
    "torch threads as text, single run": (["+arch=mlp", "torch_threads=two"], "torch_threads is 'two', but must be"),
}


@pytest.mark.parametrize(("args", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_creates_nothing(project: Path, args: list[str], message: str) -> None:
    result = run_tuneflow(project, *args)
    assert result.returncode == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tuneflow: error: ")
    assert message in lines[0]
    assert not (project / "mlruns").exists(), "bad input must not create any store"


def test_bad_input_leaves_an_existing_study_as_it_was(project: Path) -> None:
    ok = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=2")
    assert ok.returncode == 0, ok.output
    before = [(t.number, t.state, t.value) for t in load_study(project, "quadratic").trials]
    bad = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=4", "hydra.sweeper.params.x=interval(3, 1)")
    assert bad.returncode == 2
    assert [(t.number, t.state, t.value) for t in load_study(project, "quadratic").trials] == before
    assert len(study_runs(project, "quadratic")) == 2
    assert all(r.info.status == "FINISHED" for r in study_runs(project, "quadratic", role="study"))
