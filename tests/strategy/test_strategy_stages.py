"""Strategies on a Python objective (``run_with_objective``): the stage logic the sweeper runs, in
milliseconds. The objective is the twin_quadratic architecture's: a bowl at (2, -1) reaching 0 and a
second bowl at (-3, 3) reaching 0.5."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest

from tuneflow.errors import ConfigError
from tuneflow.models.synthetic import final_loss
from tuneflow.strategy import handoff as files
from tuneflow.strategy.config import strategy_config
from tuneflow.strategy.runner import run_with_objective

SPACE = {"x": "interval(-5.0, 5.0)", "y": "interval(-5.0, 5.0)"}
SECOND = [-3.0, 3.0, 0.5]


def twin(params: Mapping[str, Any], overrides: Sequence[str], seed: int) -> float:
    return final_loss({**params, "second_optimum": SECOND})


HABR = {
    "name": "zones",
    "stages": [
        # A 5x5 grid: its best point (-2.5, 2.5) lies in the shallower bowl (1.0 against 1.25 at (2.5, 0)).
        {"name": "grid", "kind": "search", "sampler": "grid", "grid_steps": 4, "n_trials": 25, "top_k": 5},
        {"name": "refine", "kind": "zones", "threshold": 0.2, "sampler": "tpe", "n_trials": 40, "top_k": 1},
        {"name": "repeat", "kind": "repeat", "top": 2, "seeds": 2},
    ],
}


def inside(params: Mapping[str, float], bounds: Mapping[str, str]) -> bool:
    from tuneflow.strategy import spaces

    space = spaces.parse(bounds)
    return all(spaces.contains(space[name], params[name]) for name in space)


def test_both_zones_are_refined_separately_and_the_deeper_one_wins(tmp_path: Path) -> None:
    result, backend = run_with_objective(twin, HABR, SPACE, tmp_path, study="twin")
    grid = files.read(tmp_path / "grid.yaml")
    assert grid.best is not None and grid.best["params"] == {"x": -2.5, "y": 2.5}  # the coarse grid is misled
    refine = files.read(tmp_path / "refine.yaml")
    assert len(refine.zones) == 2
    deep, shallow = sorted(refine.zones, key=lambda z: abs(z["best"]["params"]["x"] - 2.0))
    assert inside({"x": 2.0, "y": -1.0}, deep["bounds"]) and not inside({"x": -3.0, "y": 3.0}, deep["bounds"])
    assert inside({"x": -3.0, "y": 3.0}, shallow["bounds"]) and not inside({"x": 2.0, "y": -1.0}, shallow["bounds"])
    # Refined separately: every trial of a zone's study lies in that zone's box, and each found its bowl.
    for zone in (deep, shallow):
        study = optuna.load_study(study_name=zone["study"], storage=backend.storage)
        assert study.trials and all(inside(t.params, zone["bounds"]) for t in study.trials)
    assert deep["best"]["value"] < 0.3
    assert 0.5 <= shallow["best"]["value"] < 0.8
    # The budget was shared: 40 refine trials in all.
    assert sum(1 for name, *_ in backend.calls if name.startswith("twin/refine/")) == 40
    # The repeats pick the deeper zone, against the grid's first impression.
    assert result.best is not None and result.best["zone"] == deep["zone"]
    assert result.best["params"] == deep["best"]["params"]
    assert "better than #2" in result.note


def test_a_strategy_stopped_in_its_middle_stage_resumes_there(tmp_path: Path) -> None:
    from tuneflow.storage.study import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")  # tuneflow's: WAL, as the sweeper's
    calls = {"n": 0}

    def stops_in_refine(params: Mapping[str, Any], overrides: Sequence[str], seed: int) -> float:
        calls["n"] += 1
        if calls["n"] == 25 + 12:  # the 12th refine trial
            raise KeyboardInterrupt
        return twin(params, overrides, seed)

    with pytest.raises(KeyboardInterrupt):
        run_with_objective(stops_in_refine, HABR, SPACE, tmp_path, study="twin", storage=storage)
    assert (tmp_path / "grid.yaml").is_file() and not (tmp_path / "refine.yaml").exists()
    grid_file = (tmp_path / "grid.yaml").read_bytes()
    result, backend = run_with_objective(twin, HABR, SPACE, tmp_path, study="twin", storage=storage)
    stages = [name.split("/")[1] for name, *_ in backend.calls]
    assert "grid" not in stages  # finished stages are not run again
    assert stages.count("refine") == 40 - 11  # the refine stage goes on from its 11 finished trials
    assert (tmp_path / "grid.yaml").read_bytes() == grid_file
    refine_trials = [t for z in files.read(tmp_path / "refine.yaml").zones
                     for t in optuna.load_study(study_name=z["study"], storage=storage).trials]
    # The grid's 5 finalists were measured at the same fidelity: added with their values (once, not again on
    # resume), not trained again.
    known = [t for t in refine_trials if "tuneflow_known_from" in t.user_attrs]
    assert len(known) == 5 and all(t.value is not None and not t.intermediate_values for t in known)
    assert len(refine_trials) == 40 + 1 + 5  # 40 trained, the interrupted one (FAIL), the 5 known
    assert result.best is not None and result.best["value"] < 0.3


def test_a_stage_starts_from_a_finalists_file_alone(tmp_path: Path) -> None:
    handmade = tmp_path / "mine.yaml"
    handmade.write_text("finalists:\n- params: {x: 1.5, y: -0.5}\n- params: {x: -2.0, y: 2.0}\n"
                        "searched: [x, y]\nspace:\n  x: interval(-5.0, 5.0)\n  y: interval(-5.0, 5.0)\n")
    strategy = {**HABR, "start_at": "refine", "inputs": str(handmade)}
    result, backend = run_with_objective(twin, strategy, SPACE, tmp_path / "run", study="twin")
    assert {name.split("/")[1] for name, *_ in backend.calls} == {"refine", "repeat"}
    refine = files.read(tmp_path / "run" / "refine.yaml")
    assert len(refine.zones) == 2  # the two hand-written points are far apart
    assert result.best is not None and result.best["value"] < 0.5


def test_each_input_is_trained_with_each_decay_scheme_once(tmp_path: Path) -> None:
    schemes = {"none": {"lr_schedule": "constant"},
               "halve_every_7": {"lr_schedule": "step", "lr_decay": 0.5, "lr_step_epochs": 7},
               "halve_after_3_flat": {"lr_schedule": "plateau", "lr_decay": 0.5, "lr_plateau_patience": 3}}
    bonus = {"constant": 0.0, "step": -0.2, "plateau": -0.1}

    def schedule_matters(params: Mapping[str, Any], overrides: Sequence[str], seed: int) -> float:
        return twin(params, overrides, seed) + bonus[params["lr_schedule"]]

    strategy = {"name": "d", "stages": [
        {"name": "search", "kind": "search", "sampler": "random", "n_trials": 6, "top_k": 2},
        {"name": "decay", "kind": "decay", "schemes": schemes}]}
    defaults = {"lr_schedule": "constant", "lr_decay": 0.5, "lr_step_epochs": 5, "lr_plateau_patience": 2}
    result, backend = run_with_objective(schedule_matters, strategy, SPACE, tmp_path, defaults=defaults)
    searched = files.read(tmp_path / "search.yaml").finalists
    decay_calls = [params for name, params, *_ in backend.calls if name.endswith("/decay")]
    assert len(decay_calls) == 2 * 3
    for candidate in searched:
        tried = [p for p in decay_calls if (p["x"], p["y"]) == (candidate["params"]["x"], candidate["params"]["y"])]
        assert sorted(p["lr_schedule"] for p in tried) == ["constant", "plateau", "step"]
        # What a scheme does not set stays at the default: halving every 7 epochs keeps the plateau patience.
        step = next(p for p in tried if p["lr_schedule"] == "step")
        assert (step["lr_step_epochs"], step["lr_plateau_patience"]) == (7, 2)
    assert [f["scheme"] for f in result.finalists] == ["halve_every_7", "halve_every_7"]


def test_a_stage_list_with_a_mistake_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"strategy.stages\[0\]: unknown key 'trials'"):
        strategy_config({"stages": [{"name": "a", "kind": "search", "trials": 3}]})
    with pytest.raises(ConfigError, match="kind is 'zone', but must be one of"):
        strategy_config({"stages": [{"name": "a", "kind": "zone"}]})
    with pytest.raises(ConfigError, match="two stages are named 'a'"):
        strategy_config({"stages": [{"name": "a", "kind": "search"}, {"name": "a", "kind": "zones"}]})


def test_the_learning_rate_group_first_then_the_rest_with_it_fixed(tmp_path: Path) -> None:
    strategy = {"name": "staged", "stages": [
        {"name": "screen", "kind": "search", "sampler": "random", "n_trials": 8, "overrides": ["mode=fast"]},
        {"name": "group", "kind": "search", "params": ["x", "not_in_the_space"], "others": "defaults",
         "sampler": "random", "n_trials": 6, "top_k": 2},
        {"name": "rest", "kind": "search", "params": "rest", "others": "best", "sampler": "random", "n_trials": 6}]}
    result, backend = run_with_objective(twin, strategy, SPACE, tmp_path, defaults={"x": 0.0, "y": 0.0})
    calls = {stage: [(params, overrides) for name, params, overrides, _ in backend.calls if name.endswith("/" + stage)]
             for stage in ("screen", "group", "rest")}
    assert all(overrides == ["mode=fast"] for _, overrides in calls["screen"])
    assert {params["y"] for params, _ in calls["group"]} == {0.0}  # the rest at its default
    group_best = files.read(tmp_path / "group.yaml").best
    assert group_best is not None and set(group_best["params"]) == {"x"}
    assert {params["x"] for params, _ in calls["rest"]} == {group_best["params"]["x"]}  # the group fixed
    assert len({params["y"] for params, _ in calls["rest"]}) == 6  # the rest searched
    assert result.best is not None and set(result.best["params"]) == {"x", "y"}


def test_a_grid_larger_than_its_budget_is_not_listed(tmp_path: Path, monkeypatch: Any) -> None:
    # 12 parameters split into 4 parts: 5**12 (244 million) grid points, of which the stage runs 10. Optuna's
    # GridSampler would list every point; only a grid the budget covers whole may be built.
    built: list[int] = []
    original = optuna.samplers.GridSampler.__init__

    def counted(self: Any, search_space: Mapping[str, Sequence[Any]], *args: Any, **kwargs: Any) -> None:
        size = 1
        for values in search_space.values():
            size *= len(values)
        built.append(size)
        original(self, search_space, *args, **kwargs)

    monkeypatch.setattr(optuna.samplers.GridSampler, "__init__", counted)
    space = {f"p{i}": "interval(0.0, 1.0)" for i in range(12)}
    strategy = {"name": "big", "stages": [
        {"name": "grid", "kind": "search", "sampler": "grid", "grid_steps": 4, "n_trials": 10, "top_k": 3},
        {"name": "small", "kind": "search", "params": ["p0"], "others": "best", "sampler": "grid", "grid_steps": 4,
         "n_trials": 10}]}
    _, backend = run_with_objective(lambda p, o, s: sum((p[f"p{i}"] - 0.5) ** 2 for i in range(12)), strategy, space,
                                    tmp_path, study="big")
    grid_calls = [params for name, params, *_ in backend.calls if name == "big/grid"]
    assert len(grid_calls) == 10  # the budget, no more
    points = {tuple(sorted(params.items())) for params in grid_calls}
    assert len(points) == 10  # distinct points, each of the grid
    assert all(value in (0.0, 0.25, 0.5, 0.75, 1.0) for params in grid_calls for value in params.values())
    # The second stage's grid (5 points of p0, budget 10) is run whole by Optuna's GridSampler: the only one built.
    assert built == [5]
    assert sum(name == "big/small" for name, *_ in backend.calls) == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_grid_points_of_a_small_budget_are_spread_over_the_grid(seed: int) -> None:
    from tuneflow.strategy.stages import spread_points

    # 8 of 64 points: one in each eighth of the range (a random draw of 8 leaves some eighth empty 99% of
    # the time), different points for different seeds.
    points = spread_points({"a": list(range(64))}, 8, seed)
    assert sorted(p["a"] // 8 for p in points) == list(range(8))
    assert points != spread_points({"a": list(range(64))}, 8, seed + 10)


def test_a_reporting_objective_is_pruned_by_each_stage_s_own_pruner(tmp_path: Path) -> None:
    # The synthetic curve (final loss + 10/epoch over 20 epochs), reported epoch by epoch as a tuneflow trial
    # reports it: the stage with the median pruner stops bad configurations early, the one without none.
    epochs: dict[str, list[int]] = {}

    def curve(params: Mapping[str, Any], overrides: Sequence[str], seed: int, trial: optuna.Trial | None) -> float:
        final = final_loss({**params, "second_optimum": SECOND})
        reported = epochs.setdefault(trial.study.study_name if trial is not None else "none", [])
        reported.append(0)
        for epoch in range(1, 21):
            reported[-1] = epoch
            if trial is not None:
                trial.report(final + 10.0 / epoch, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned
        return final

    strategy = {"name": "pruned", "stages": [
        {"name": "open", "kind": "search", "sampler": "random", "pruner": "none", "n_trials": 12, "top_k": 4},
        {"name": "pruned", "kind": "search", "sampler": "random", "pruner": "asha", "n_trials": 12, "top_k": 2}]}
    result, backend = run_with_objective(curve, strategy, SPACE, tmp_path, study="s", reports=True)
    assert epochs["s/open"] == [20] * 12
    assert len(epochs["s/pruned"]) == 12 and min(epochs["s/pruned"]) < 20  # pruned trials trained less
    study = optuna.load_study(study_name="s/pruned", storage=backend.storage)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == sum(e < 20 for e in epochs["s/pruned"]) > 0
    # (The open stage's finalists were added with their values, Optuna's add_trial: they trained nothing.)
    trained = [t for t in study.trials if "tuneflow_known_from" not in t.user_attrs]
    assert len(trained) == 12 and [len(t.intermediate_values) for t in trained] == epochs["s/pruned"]
    # Only completed trials are handed on: a pruned trial's last report is no final value.
    best = files.read(tmp_path / "pruned.yaml")
    assert {c["trial"] for c in best.finalists} <= {t.number for t in study.trials
                                                     if t.state == optuna.trial.TrialState.COMPLETE}
