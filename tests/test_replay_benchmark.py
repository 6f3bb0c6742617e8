"""The replay benchmark's pieces (benchmarks/replay.py) on a hand-made table: a replayed trial charges the
clock for exactly the epochs it reports, stops where the pruner says, and each proposal becomes the nearest
recorded configuration not tried yet."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def replay() -> Any:
    sys.path.insert(0, str(BENCHMARKS))  # replay.py imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("replay", BENCHMARKS / "replay.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["replay"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.modules.pop("replay", None)


def small_table(replay: Any) -> Any:
    """Three configurations of lr (log scale): 1e-4 and 1e-3 learn, 1e-2 fails after 2 epochs."""
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                     "schedule": optuna.distributions.CategoricalDistribution(["constant", "step"])}
    configs = [{"lr": 1e-4, "schedule": "constant"}, {"lr": 1e-3, "schedule": "constant"},
               {"lr": 1e-2, "schedule": "step"}]
    curves = [replay.Curve([1, 2, 3, 4], [0.8, 0.9, 0.7, 0.6], [1.0, 1.0, 1.0, 1.0], 0.6),
              replay.Curve([1, 2, 3], [0.5, 0.4, 0.3], [2.0, 2.0, 2.0], 0.3),
              replay.Curve([1, 2], [0.95, 0.99], [0.5, 0.5], math.nan)]
    return replay.Table("toy/full", "toy", "minimize", "val_loss", distributions, configs, curves,
                        replay.encode(configs, distributions))


def test_a_proposal_becomes_the_nearest_recorded_configuration_not_tried_yet(replay: Any) -> None:
    table = small_table(replay)
    assert table.nearest({"lr": 2e-3, "schedule": "constant"}) == 1
    assert table.nearest({"lr": 2e-3, "schedule": "constant"}, {1}) == 0
    # A categorical mismatch counts: lr 5e-3 is nearer 1e-2 on the log scale, but 1e-2 has the other schedule.
    assert table.nearest({"lr": 5e-3, "schedule": "constant"}) == 1
    assert table.nearest({"lr": 2e-3, "schedule": "constant"}, {0, 1, 2}) == 1  # pool used up: reuse
    assert table.best == 0.3 and table.full_training == 4


def test_a_replayed_trial_reports_the_curve_and_is_charged_only_the_epochs_it_ran(replay: Any) -> None:
    table = small_table(replay)
    task = replay.ReplayTask(table, budget_epochs=100)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.85))
    study.enqueue_trial({"lr": 1e-4, "schedule": "constant"})  # pruned at epoch 2 (0.9 > 0.85)
    study.enqueue_trial({"lr": 1e-3, "schedule": "constant"})  # completes with 0.3
    study.enqueue_trial({"lr": 1e-2, "schedule": "step"})  # 0.95 > 0.85: pruned at epoch 1
    study.optimize(task.objective, n_trials=3, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE,
                      optuna.trial.TrialState.PRUNED]
    assert study.trials[0].intermediate_values == {1: 0.8, 2: 0.9}
    assert (task.epochs, task.seconds, task.pruned) == (2 + 3 + 1, 2.0 + 6.0 + 0.5, 2)
    assert [(c.epochs, c.value) for c in task.completed] == [(5, 0.3)]


def test_the_clock_stops_the_search_at_the_budget(replay: Any) -> None:
    table = small_table(replay)
    random_search = replay.STRATEGIES["random (no pruning)"]
    task = replay.replay(table, random_search, seed=0, budget_epochs=5, tables={})
    assert task.epochs == 5 and task.trials >= 2  # no curve is 5 epochs long: a second trial was cut
    assert all(c.epochs <= 5 for c in task.completed)
    run = replay.measure(task, target=0.3)
    on_target = [c.epochs for c in task.completed if c.value <= 0.3]
    assert run.epochs_to_target == (on_target[0] if on_target else math.inf)


def test_ratios_to_random_are_flagged_as_bounds_when_random_never_got_there(replay: Any) -> None:
    point, low, high, flag = replay.ratio_interval([math.inf] * 5, [10.0] * 5, random.Random(0), cap=100)
    assert (point, low, high, flag) == (10.0, 10.0, 10.0, ">=")
    point, _, _, flag = replay.ratio_interval([40.0, 60.0, 50.0], [10.0, 10.0, 10.0], random.Random(0), cap=100)
    assert (point, flag) == (5.0, "")


@pytest.mark.parametrize("name", ["staged", "zones"])
def test_a_packaged_strategy_is_a_row_charged_for_every_epoch_its_stage_trials_report(replay: Any, name: str) -> None:
    table = replay.load_table("quadratic/full", limit=40)  # 40 recorded configurations, 20 epochs each
    budget_epochs = 8 * table.full_training
    plan = replay.scaled_to_budget(replay._packaged(name), replay.ReplayTask(table, budget_epochs))
    repeat = next(stage for stage in plan["stages"] if stage["kind"] == "repeat")
    assert (repeat["top"], repeat["seeds"]) == (3, 2)
    searching = [s for s in plan["stages"] if s["kind"] in ("search", "zones") and s["name"] != "lr"]
    # quadratic has neither the lr group nor the decay schemes' parameters: the search stages share the
    # 8 trainings left after the repeat's 6 (rounding: at least 2 trials each), a fast-mode trial counted
    # at 4 of the 20 epochs.
    fast = {s["name"]: 4 / 20 if "mode=fast" in (s.get("overrides") or []) else 1.0 for s in searching}
    assert sum(s["n_trials"] * fast[s["name"]] for s in searching) <= 8 - 6 + 2 * len(searching)

    calls: list[tuple[int, int, bool]] = []  # (epochs charged, epochs reported to the trial, pruned)
    score = replay.ReplayTask.score

    def counted(task: Any, params: Any, overrides: Any, seed: int, trial: Any = None) -> float:
        before, reports = task.epochs, []
        if trial is not None:
            report = trial.report
            trial.report = lambda value, step: (reports.append(step), report(value, step))
        try:
            value = float(score(task, params, overrides, seed, trial))
        except optuna.TrialPruned:
            calls.append((task.epochs - before, len(reports), True))
            raise
        except replay.BudgetSpent:
            calls.append((task.epochs - before, -1, False))
            raise
        calls.append((task.epochs - before, len(reports) if trial is not None else task.epochs - before, False))
        return value

    replay.ReplayTask.score = counted
    try:
        task = replay.replay(table, replay.STRATEGIES[f"strategy: {name}"], seed=0, budget_epochs=budget_epochs,
                             tables={table.name: table})
    finally:
        replay.ReplayTask.score = score
    # Every stage trial went through task.score, reported its epochs to its stage study's trial and was
    # charged for those only, on the one clock, up to the budget; the stages' pruner (ASHA) stopped some.
    finished = [c for c in calls if c[0] == c[1]]
    assert len(calls) - len(finished) <= 1  # the last one, cut by the clock
    assert sum(c[0] for c in calls) == task.epochs <= budget_epochs
    assert task.epochs > budget_epochs - table.full_training
    pruned = [c for c in calls if c[2]]
    assert pruned and len(pruned) == task.pruned and all(c[0] < table.full_training for c in pruned)
    assert task.completed and all(c.epochs <= budget_epochs for c in task.completed)
    run = replay.measure(task, table.target)
    assert run.regrets[5] >= run.regrets[20] >= 0


def test_a_fast_mode_trial_of_an_arch_without_a_fast_table_is_its_curve_s_first_fast_epochs(replay: Any) -> None:
    table = replay.load_table("quadratic/full", limit=40)  # quadratic's mode=fast: 4 epochs of 20
    task = replay.ReplayTask(table, budget_epochs=100)
    point = dict(table.configs[0])
    value = task.score(point, ["mode=fast"], 0)
    curve = table.curves[task.assigned[("quadratic/full@fast", next(iter(task.assigned))[1])]]
    assert task.epochs == 4 and value == curve.values[3] > curve.final
    assert task.completed[-1].value == value  # a fast model counts as any completed trial does
    task.score(point, [], 0)  # the same point in full mode: a pool of its own, the whole curve
    assert task.epochs == 4 + 20


def test_a_point_scored_again_is_the_same_recorded_curve_charged_again(replay: Any) -> None:
    table = small_table(replay)
    task = replay.ReplayTask(table, budget_epochs=100)
    point = {"lr": 2e-3, "schedule": "constant"}
    first = task.score(point, [], 0)
    assert task.score(point, [], 1) == first == 0.3  # a repeat with a new seed: the one recorded seed again
    assert task.epochs == 6
    assert task.score({"lr": 2.1e-3, "schedule": "constant"}, [], 0) == 0.6  # a new point: the next neighbour


def test_every_searched_pruner_setting_runs_within_the_budget_and_the_asha_config_prunes(replay: Any) -> None:
    table = replay.load_table("quadratic/full", limit=40)  # 40 recorded configurations, 20 epochs each
    budget_epochs = 3 * table.full_training
    for name, strategy in replay.VARIANTS.items():
        task = replay.replay(table, strategy, seed=0, budget_epochs=budget_epochs, tables={})
        assert task.epochs == budget_epochs, name  # every row spends the same budget: the clock stops it
        assert all(c.epochs <= budget_epochs for c in task.completed), name
    # tuneflow's named asha pruner (first rung at epoch 1, 1 in 4 promoted): most trials stop at epoch 1, so
    # the budget buys many more trials than whole trainings.
    task = replay.replay(table, replay.STRATEGIES["tpe + asha (r=4)"], seed=0, budget_epochs=budget_epochs, tables={})
    assert task.pruned >= 10 and task.trials > 3 * 3


@pytest.mark.slow
def test_the_quick_summary_run_prints_each_tables_line_with_its_ceiling_and_the_summary() -> None:
    import subprocess

    done = subprocess.run([sys.executable, str(BENCHMARKS / "replay.py"), "--quick", "--summary-only"], cwd=BENCHMARKS,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("quadratic/full", "lstm_attention/fast"):
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"**{name}**"))
        assert "The ceiling of pruning after random search" in line
    assert "| strategy |" not in done.stdout  # no per-table rows: the summaries only
    assert "| **tables with >= 5x** |" in done.stdout


def test_every_searched_sampler_runs_within_the_budget(replay: Any) -> None:
    table = replay.load_table("quadratic/full", limit=40)
    budget_epochs = 2 * table.full_training
    cheap = {n: s for n, s in {**replay.SAMPLER_VARIANTS, **replay.SAMPLER_CHECKS}.items() if not n.startswith("gp")}
    for name, strategy in cheap.items():
        task = replay.replay(table, strategy, seed=0, budget_epochs=budget_epochs, tables={})
        assert task.epochs == budget_epochs, name
    assert set(replay.GROUPS["samplers"]) <= set(replay.STRATEGIES)
