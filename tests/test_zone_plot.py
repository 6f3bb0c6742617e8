"""``tuneflow report`` of a strategy draws each zones stage as a parallel-coordinates plot coloured by zone:
the zone's input trials and its own study's trials, one line each (an in-memory strategy on two bowls)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest

from tuneflow.strategy import handoff as files
from tuneflow.strategy import summary, zone_plot
from tuneflow.strategy.runner import run_with_objective

SPACE = {"x": "interval(-5.0, 5.0)", "lr": "tag(log, interval(1e-4, 1e-1))"}
STRATEGY = {"name": "two", "stages": [
    {"name": "coarse", "kind": "search", "sampler": "grid", "grid_steps": 4, "n_trials": 25, "top_k": 6, "pruner": "none"},
    {"name": "apart", "kind": "zones", "threshold": 0.2, "sampler": "random", "n_trials": 8, "top_k": 1,
     "pruner": "none", "params": "all"}]}


def two_bowls(params: Mapping[str, Any], overrides: Sequence[str], seed: int) -> float:
    """A bowl at x=2 and a shallower one at x=-3 (lr barely matters)."""
    x = float(params["x"])
    return min((x - 2) ** 2, (x + 3) ** 2 + 0.5) + 0.01 * abs(float(params["lr"]) - 1e-2)


@pytest.fixture(scope="module")
def strategy_run(tmp_path_factory: Any) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("strategy")
    _, backend = run_with_objective(two_bowls, STRATEGY, SPACE, folder, study="two")
    return folder, backend


def test_the_plot_has_a_line_per_input_and_zone_trial_coloured_by_zone(strategy_run: tuple[Path, Any],
                                                                      capsys: Any) -> None:
    folder, backend = strategy_run
    coarse, apart = files.read(folder / "coarse.yaml"), files.read(folder / "apart.yaml")
    assert len(apart.zones) == 2

    def load(name: str) -> optuna.Study:
        return optuna.load_study(study_name=name, storage=backend.storage)

    points = zone_plot.zone_points(apart, coarse, load)
    inputs = [p for p in points if p["source"] == "input"]
    trials = [p for p in points if p["source"] == "trial"]
    assert len(inputs) == sum(len(z["inputs"]) for z in apart.zones) == 6
    # The zones' trained trials (8); the inputs each zone's study took with their known values are drawn once.
    assert len(trials) == sum(sum("tuneflow_known_from" not in t.user_attrs for t in load(z["study"]).trials)
                              for z in apart.zones) == 8
    for point in points:  # each point is coloured by the zone whose bowl it lies in
        assert (point["params"]["x"] > 0) == (point["zone"] == next(
            z["zone"] for z in apart.zones if z["best"]["params"]["x"] > 0))
    figure = zone_plot.figure(points, apart.space)
    parcoords = figure.data[0]
    assert [d.label for d in parcoords.dimensions] == ["x", "log10(lr)", "value"]
    assert len(parcoords.line.color) == 14 and len(set(parcoords.line.color)) == 2
    assert list(parcoords.line.colorbar.ticktext) == [str(z["zone"]) for z in apart.zones]

    out = folder / "report"
    assert summary.print_report(folder, out, load) == 0
    assert f"parallel coordinates coloured by zone: {out / 'zones_apart.html'}" in capsys.readouterr().out
    page = (out / "zones_apart.html").read_text()
    assert "parcoords" in page and "log10(lr)" in page
    assert sorted(p.name for p in out.iterdir()) == ["zones.csv", "zones_apart.html"]  # no plot for the search stage


def test_without_the_zone_studies_the_plot_shows_the_files_points(strategy_run: tuple[Path, Any]) -> None:
    folder, _ = strategy_run
    coarse, apart = files.read(folder / "coarse.yaml"), files.read(folder / "apart.yaml")
    points = zone_plot.zone_points(apart, coarse, lambda name: None)
    assert sorted(p["source"] for p in points) == ["best"] * 2 + ["input"] * 6
