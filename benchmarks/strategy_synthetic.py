"""Strategies against single searches on a synthetic objective with two separated optima, in seconds.

The objective is arch=twin_quadratic's learning curve (``tuneflow.models.synthetic``): a bowl at (2, -1)
reaching 0 and a shallower one at (-3, 3) reaching 0.5, where a coarse grid's best point lies in the
shallower bowl. A trial costs its epochs: 20 in full mode, 4 in ``mode=fast`` (whose score ranks
configurations as full mode does here: the curve's offset is the same for all; a real model's fast mode
ranks only roughly, see ``python -m tuneflow fidelity``). Every row runs through
``tuneflow.strategy.runner.run_with_objective``: the same stage code ``+strategy=NAME`` runs, on plain Optuna
studies without Hydra or MLflow, so only the search differs.

Measured per seed: epochs until the first full-mode trial within ``--tolerance`` of the optimum (0), and the
final regret: the true loss of the configuration the run ends with (a strategy: its repeat stage's winner;
a single search: its best trial). Medians over seeds; ratios are random's (or TPE's) median over the row's.

Usage: python benchmarks/strategy_synthetic.py [--seeds 10] [--budget 60] [--tolerance 0.05]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import optuna
import yaml
from _common import censored_median, fmt, markdown_table, progress

from tuneflow.models.synthetic import final_loss
from tuneflow.strategy.runner import run_with_objective

SPACE = {"x": "interval(-5.0, 5.0)", "y": "interval(-5.0, 5.0)"}
SECOND = [-3.0, 3.0, 0.5]
FULL_EPOCHS, FAST_EPOCHS = 20, 4


def objective(params: Mapping[str, Any], overrides: Sequence[str], seed: int) -> float:
    epochs = FAST_EPOCHS if "mode=fast" in overrides else FULL_EPOCHS
    return final_loss({**params, "second_optimum": SECOND}) + 10.0 / epochs


def single(sampler: str, budget: int, **extra: Any) -> dict[str, Any]:
    return {"name": sampler, "stages": [{"name": "search", "kind": "search", "sampler": sampler,
                                         "n_trials": budget, "pruner": "none", **extra}]}


def packaged(name: str, budgets: Mapping[int, int]) -> dict[str, Any]:
    node = yaml.safe_load(files("tuneflow").joinpath(f"conf/strategy/{name}.yaml").read_text())
    node = copy.deepcopy(node)
    for index, n_trials in budgets.items():
        node["stages"][index]["n_trials"] = n_trials
    return node


def rows_of(budget: int) -> dict[str, dict[str, Any]]:
    """The same number of Optuna trials (``budget``) for every row; repeats come on top for strategies."""
    return {
        "random": single("random", budget),
        "tpe": single("tpe", budget),
        "grid (7 parts per range)": single("grid", budget, grid_steps=7),
        # staged: screen 20 fast, lr skipped (no lr here), rest 20, zones 20; decay skipped; repeat.
        "strategy: staged": packaged("staged", {0: budget // 3, 2: budget // 3, 3: budget - 2 * (budget // 3)}),
        # zones: a 5x5 grid (25), the rest shared by the zones.
        "strategy: zones": packaged("zones", {0: 25, 1: budget - 25}),
    }


def measure(strategy: dict[str, Any], seed: int, tolerance: float) -> tuple[float, float, int]:
    """(epochs to the target or inf, final regret, epochs in all)."""
    with tempfile.TemporaryDirectory(prefix="strategy-synthetic-") as folder:
        result, backend = run_with_objective(objective, {**strategy, "seed": seed}, SPACE, Path(folder))
    spent, reached = 0, math.inf
    for _, params, overrides, _ in backend.calls:
        fast = "mode=fast" in overrides
        spent += FAST_EPOCHS if fast else FULL_EPOCHS
        if math.isinf(reached) and not fast and final_loss({**params, "second_optimum": SECOND}) <= tolerance:
            reached = spent
    best = result.best
    regret = final_loss({**best["params"], "second_optimum": SECOND}) if best else math.inf
    return reached, regret, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=60, help="Optuna trials per run (60)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="good = true loss <= this (0.05)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, list[tuple[float, float, int]]] = {}
    for name, strategy in rows_of(args.budget).items():
        results[name] = [measure(strategy, seed, args.tolerance) for seed in range(args.seeds)]
        progress(f"{name}: done")
    epochs = {name: censored_median([r[0] for r in runs]) for name, runs in results.items()}

    def ratio(base: str, name: str) -> str:
        ours, theirs = epochs[name], epochs[base]
        if math.isinf(ours):
            return "-"
        return f">{fmt(max(r[2] for r in results[base]) / ours)}x" if math.isinf(theirs) else f"{theirs / ours:.2g}x"

    rows = [[name, f"{sum(not math.isinf(r[0]) for r in runs)}/{len(runs)}", fmt(epochs[name]),
             ratio("random", name), ratio("tpe", name), fmt(statistics.median(r[1] for r in runs)),
             fmt(statistics.median(r[2] for r in runs))] for name, runs in results.items()]
    print(f"twin quadratic, good = true loss <= {args.tolerance}; {args.budget} Optuna trials per run, "
          f"{args.seeds} seeds; medians.\n")
    print(markdown_table(["search", "reached", "epochs to good", "vs random", "vs tpe", "final regret",
                          "epochs in all"], rows))


if __name__ == "__main__":
    main()
