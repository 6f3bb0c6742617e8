"""Failing regions: how often does each sampler run a trial that fails, and what does it find?

Real search spaces hold regions where training fails: batch sizes that run out of memory, learning rates that
diverge. Optuna's samplers never see a FAIL trial, so they never learn where those are (issue 18: TPE ran 48
failures in the 50 trials after its start-up on a space where 20% fails). tuneflow's default sampler wraps
TPE in ``tuneflow.search.failure_aware.FailureAwareSampler``. Three synthetic shapes, each with its optimum feasible
and close to the failing region (as the largest batch that still fits usually is):

  half-space   x, y in [-5, 5], loss (x - 2)^2 + (y + 1)^2; raises when x > 3 (20% of the space).
  corner       batch_size and width, integers on a log scale in [16, 1024], lr in [1e-4, 1] (log); loss
               (log10 lr + 2.5)^2 + ((log2 width - 9)^2 + (log2 batch_size - 7)^2) / 4; out of memory (raises)
               when batch_size x width > 2^16, the corner of large batches and wide layers (~22% of the space);
               the optimum (128, 512) sits on the edge.
  nan-lr       lr in [1e-5, 1] (log), dropout in [0, 0.5]; loss (log10 lr - log10 0.03)^2 + 4 (dropout - 0.2)^2;
               the loss is NaN (diverged) when lr > 0.1 (20% of the space), which Optuna records as FAIL.

Each sampler runs the same ask-and-tell study per shape and seed (--trials 60, 20 seeds), once per worker count
(--workers 1 4): with N workers it asks N trials, suggests all of their params, then evaluates and tells the N
(what N workers sharing a study do; the constant liar sees the other N-1 as running). The table shows, over the seeds: the mean share of
failed trials after the 10 start-up trials (and in the two halves of the rest: it should fall as the study
learns), and the median regret (best loss found in the first n trials; the optimum is 0; noise-free) at
several budgets. Rows: random search, Optuna's default ``TPESampler(seed=s)``, tuneflow's default sampler
(``tuneflow.search.samplers.default_sampler``: the same TPE, failure-aware), and Optuna's TPE on the same loss with
the failing region switched off ("optuna-tpe-no-failures": the regret to match). Verdicts per shape, over the seeds
(two-sided Mann-Whitney U, 5%): tuneflow's failed share against random's, its regret at the largest budget
against Optuna's TPE.

Usage: python benchmarks/failures.py [--seeds 20] [--trials 60] [--workers 1 4] [--quick]
       python benchmarks/failures.py --samplers tuneflow,random,optuna-tpe,view-only,gp,gp-failure-aware
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from _common import fmt, markdown_table, progress
from optuna.trial import TrialState
from scipy.stats import mannwhitneyu

from tuneflow.search.failure_aware import FailureAwareSampler
from tuneflow.search.samplers import default_sampler

STARTUP = 10
ALPHA = 0.05
NO_FAILURES = "optuna-tpe-no-failures"

#: Samplers by name; "optuna-tpe-no-failures" runs Optuna's TPE on the shape with its failure switched off.
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tuneflow": lambda seed: default_sampler(seed=seed),
    NO_FAILURES: lambda seed: optuna.samplers.TPESampler(seed=seed),
    # Alternatives, for --samplers: the view alone (no second look), more or fewer redraws, GP.
    "view-only": lambda seed: FailureAwareSampler(optuna.samplers.TPESampler(seed=seed), redraws=0),
    "redraws-4": lambda seed: FailureAwareSampler(optuna.samplers.TPESampler(seed=seed), redraws=4),
    "redraws-16": lambda seed: FailureAwareSampler(optuna.samplers.TPESampler(seed=seed), redraws=16),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "gp-failure-aware": lambda seed: FailureAwareSampler(optuna.samplers.GPSampler(seed=seed)),
}


class Failed(RuntimeError):
    """The synthetic training run failed (out of memory)."""


@dataclass(frozen=True)
class Shape:
    name: str
    suggest: Callable[[optuna.Trial], dict[str, Any]]
    loss: Callable[[dict[str, Any]], float]
    #: Whether these params fail: "raise" (an error) or "nan" (the loss diverges) in the failing region.
    fails: Callable[[dict[str, Any]], bool]
    how: str

    def evaluate(self, params: dict[str, Any], failures: bool) -> float:
        if failures and self.fails(params):
            if self.how == "raise":
                raise Failed(f"out of memory at {params}")
            return math.nan
        return self.loss(params)


SHAPES = (
    Shape(
        "half-space",
        lambda t: {"x": t.suggest_float("x", -5, 5), "y": t.suggest_float("y", -5, 5)},
        lambda p: (p["x"] - 2) ** 2 + (p["y"] + 1) ** 2,
        lambda p: p["x"] > 3,
        "raise",
    ),
    Shape(
        "corner",
        lambda t: {"batch_size": t.suggest_int("batch_size", 16, 1024, log=True),
                   "width": t.suggest_int("width", 16, 1024, log=True),
                   "lr": t.suggest_float("lr", 1e-4, 1.0, log=True)},
        lambda p: ((math.log10(p["lr"]) + 2.5) ** 2
                   + ((math.log2(p["width"]) - 9) ** 2 + (math.log2(p["batch_size"]) - 7) ** 2) / 4),
        lambda p: p["batch_size"] * p["width"] > 2**16,
        "raise",
    ),
    Shape(
        "nan-lr",
        lambda t: {"lr": t.suggest_float("lr", 1e-5, 1.0, log=True), "dropout": t.suggest_float("dropout", 0.0, 0.5)},
        lambda p: (math.log10(p["lr"]) - math.log10(0.03)) ** 2 + 4 * (p["dropout"] - 0.2) ** 2,
        lambda p: p["lr"] > 0.1,
        "nan",
    ),
)


@dataclass
class Run:
    """One sampler on one shape with one seed."""

    failed: list[bool] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def failed_share(self, start: int, end: int) -> float:
        window = self.failed[start:end]
        return sum(window) / len(window) if window else math.nan

    def regret(self, budget: int) -> float:
        """Best loss in the first ``budget`` trials (the optimum is 0); inf if none completed."""
        done = [loss for loss in self.losses[:budget] if not math.isnan(loss)]
        return min(done) if done else math.inf


def run_study(shape: Shape, sampler_name: str, seed: int, trials: int, workers: int) -> Run:
    study = optuna.create_study(sampler=SAMPLERS[sampler_name](seed), direction="minimize")
    failures = sampler_name != NO_FAILURES
    run = Run()
    started = time.perf_counter()
    while len(run.failed) < trials:
        batch = [study.ask() for _ in range(min(workers, trials - len(run.failed)))]
        suggested = [shape.suggest(trial) for trial in batch]  # all asked before any is told
        for trial, params in zip(batch, suggested):
            try:
                loss = shape.evaluate(params, failures)
            except Failed:
                loss = math.nan
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, loss)  # NaN: Optuna records the trial as FAIL
            run.failed.append(failures and shape.fails(params))
            run.losses.append(loss)
    run.seconds = time.perf_counter() - started
    return run


def verdict(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """lower / tie / higher of ``ours`` by a two-sided Mann-Whitney U test at ALPHA."""
    if list(ours) == list(theirs):
        return "tie"
    finite = [v if math.isfinite(v) else 1e300 for v in [*ours, *theirs]]
    p_value = mannwhitneyu(finite[:len(ours)], finite[len(ours):], alternative="two-sided").pvalue
    if math.isnan(p_value) or p_value >= ALPHA:
        return "tie"
    return "lower" if statistics.median(ours) < statistics.median(theirs) else "higher"


def results_table(results: dict[str, dict[str, list[Run]]], trials: int, budgets: Sequence[int]) -> str:
    middle = STARTUP + (trials - STARTUP) // 2
    header = ["shape", "sampler", f"failed {STARTUP + 1}-{trials}", f"failed {STARTUP + 1}-{middle}",
              f"failed {middle + 1}-{trials}", *[f"regret@{b}" for b in budgets], "s per study"]
    rows = []
    for shape_name, by_sampler in results.items():
        for sampler, runs in by_sampler.items():
            shares = [[run.failed_share(a, b) for run in runs] for a, b in
                      ((STARTUP, trials), (STARTUP, middle), (middle, trials))]
            share_cells = (["-"] * 3 if sampler == NO_FAILURES
                           else [f"{statistics.mean(s):.1%}" for s in shares])
            regrets = [fmt(statistics.median(run.regret(b) for run in runs), censored_as="none complete")
                       for b in budgets]
            seconds = statistics.median(run.seconds for run in runs)
            rows.append([shape_name, sampler, *share_cells, *regrets, f"{seconds:.2f}"])
    return markdown_table(header, rows, align="ll" + "r" * (len(header) - 2))


def verdict_table(results: dict[str, dict[str, list[Run]]], trials: int, budget: int) -> str:
    header = ["shape", "failed share: tuneflow vs random", f"regret@{budget}: tuneflow vs optuna-tpe",
              f"regret@{budget}: tuneflow vs {NO_FAILURES}", "goal met"]
    rows = []
    for shape_name, by_sampler in results.items():
        ours = by_sampler["tuneflow"]
        share = verdict([r.failed_share(STARTUP, trials) for r in ours],
                        [r.failed_share(STARTUP, trials) for r in by_sampler["random"]])
        regret = verdict([r.regret(budget) for r in ours], [r.regret(budget) for r in by_sampler["optuna-tpe"]])
        reference = (verdict([r.regret(budget) for r in ours], [r.regret(budget) for r in by_sampler[NO_FAILURES]])
                     if NO_FAILURES in by_sampler else "-")
        mean_ours = statistics.mean(r.failed_share(STARTUP, trials) for r in ours)
        mean_random = statistics.mean(r.failed_share(STARTUP, trials) for r in by_sampler["random"])
        met = mean_ours <= mean_random and share != "higher" and regret != "higher"
        rows.append([shape_name, share, regret, reference, "yes" if met else "no"])
    return markdown_table(header, rows, align="lllll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per sampler and shape (20)")
    parser.add_argument("--trials", type=int, default=60, help="trials per study (60)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4],
                        help="trials asked together, as by N workers; one table per count (1 4)")
    parser.add_argument("--shapes", default=",".join(s.name for s in SHAPES), help="failing-region shapes")
    parser.add_argument("--samplers", default=f"random,optuna-tpe,tuneflow,{NO_FAILURES}",
                        help=f"comma-separated, of {', '.join(SAMPLERS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 30 trials, 1 and 2 workers")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.trials, args.workers = 2, 30, [1, 2]
    if args.trials <= STARTUP + 1 or args.seeds < 1 or min(args.workers) < 1:
        parser.error(f"--trials must exceed {STARTUP + 1}; --seeds and --workers must be at least 1")
    samplers = args.samplers.split(",")
    unknown = [s for s in samplers if s not in SAMPLERS]
    shapes = [s for s in SHAPES if s.name in args.shapes.split(",")]
    if unknown or not {"random", "optuna-tpe", "tuneflow"} <= set(samplers):
        parser.error(f"--samplers must include random, optuna-tpe and tuneflow, of {', '.join(SAMPLERS)}")
    budgets = sorted({b for b in (20, 40, args.trials) if b <= args.trials})
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", message="The value nan is not acceptable")  # what Optuna says of a NaN loss

    print(f"Failing regions, {args.seeds} seeds, {args.trials} trials per study; failed = mean share of failed "
          f"trials after the {STARTUP} start-up trials; regret = median best loss in the first n trials (optimum 0, "
          f"lower is better). Verdicts over the seeds (two-sided Mann-Whitney U, {ALPHA:.0%}): lower / tie / higher "
          f"is tuneflow's; goal: failed share <= random's (mean, and not significantly higher), regret not "
          f"significantly higher than Optuna's TPE.")
    for workers in args.workers:
        results: dict[str, dict[str, list[Run]]] = {}
        for shape in shapes:
            results[shape.name] = {s: [] for s in samplers}
            for seed in range(args.seeds):
                for sampler in samplers:
                    results[shape.name][sampler].append(run_study(shape, sampler, seed, args.trials, workers))
                progress(f"{workers} worker(s), {shape.name} seed {seed}: " + ", ".join(
                    f"{s} {sum(results[shape.name][s][-1].failed[STARTUP:])} failed" for s in samplers))
        print(f"\n**{workers} worker{'s' if workers > 1 else ''}** "
              f"({'trials asked one at a time' if workers == 1 else f'{workers} trials asked together'}):\n")
        print(results_table(results, args.trials, budgets))
        print()
        print(verdict_table(results, args.trials, budgets[-1]))


if __name__ == "__main__":
    main()
