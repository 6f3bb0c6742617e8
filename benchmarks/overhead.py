"""Per-trial overhead of a no-op objective, side by side in one run.

Variants (each in a fresh temporary folder, N trials, 20 per-epoch values + 2 params per trial):
  optuna-memory   Optuna alone, in-memory storage: the floor.
  optuna-sqlite   Optuna alone on the SQLite storage tuneflow uses by default (WAL, same settings).
  naive-mlflow    The script users write: Optuna on that storage + one MLflow run per trial, every value
                  logged by its own call (log_param / log_metric).
  tuneflow        `python -m tuneflow +arch=quadratic -m` end to end (Hydra job, Optuna storage, MLflow run
                  with params, 20 step metrics, config and a small model artifact). "in-study" excludes
                  process start-up (imports): first trial start to last trial end, from the Optuna storage.

Usage: python benchmarks/overhead.py [--trials 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import optuna

STEPS = 20


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_float("y", -5, 5)
    for step in range(1, STEPS + 1):
        trial.report((x - 2) ** 2 + (y + 1) ** 2 + 10 / step, step)
    return (x - 2) ** 2 + (y + 1) ** 2


def optuna_memory(folder: Path, trials: int) -> float:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def optuna_sqlite(folder: Path, trials: int) -> float:
    from tuneflow.study import open_storage

    storage = open_storage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def naive_mlflow(folder: Path, trials: int) -> float:
    import mlflow

    from tuneflow.study import open_storage

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("naive")
    storage = open_storage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))

    def tracked(trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            x = trial.suggest_float("x", -5, 5)
            y = trial.suggest_float("y", -5, 5)
            mlflow.log_param("x", x)
            mlflow.log_param("y", y)
            value = 0.0
            for step in range(1, STEPS + 1):
                value = (x - 2) ** 2 + (y + 1) ** 2 + 10 / step
                trial.report(value, step)
                mlflow.log_metric("val_loss", value, step=step)
            mlflow.log_metric("objective", value)
            return value

    start = time.perf_counter()
    study.optimize(tracked, n_trials=trials)
    return time.perf_counter() - start


def run_tuneflow(folder: Path, trials: int, *extra: str) -> tuple[float, float]:
    """(process wall time, in-study time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tuneflow", "+arch=quadratic", "-m", f"hydra.sweeper.n_trials={trials}",
         "hydra/sweeper/pruner=none", "hydra.sweeper.sampler.seed=0", *extra],
        cwd=folder, env=env, check=True, capture_output=True,
    )
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name="quadratic", storage=f"sqlite:///{folder / 'mlruns' / 'optuna.db'}")
    first = min(t.datetime_start for t in study.trials)
    last = max(t.datetime_complete for t in study.trials)
    return wall, (last - first).total_seconds()


def median_of(repeats: int, measure: Callable[[Path], float]) -> float:
    values = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="tuneflow-bench-") as tmp:
            values.append(measure(Path(tmp)))
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n, r = args.trials, args.repeats

    # Warm-up: imports and first-use costs are paid before anything is timed.
    with tempfile.TemporaryDirectory() as tmp:
        naive_mlflow(Path(tmp), 3)

    totals = {
        "optuna-memory": median_of(r, lambda d: optuna_memory(d, n)),
        "optuna-sqlite": median_of(r, lambda d: optuna_sqlite(d, n)),
        "naive-mlflow": median_of(r, lambda d: naive_mlflow(d, n)),
    }
    for label, extra in (("tuneflow", ()), ("tuneflow, no model artifact", ("tracking.log_model=false",))):
        walls, studies = [], []
        for _ in range(r):
            with tempfile.TemporaryDirectory(prefix="tuneflow-bench-") as tmp:
                wall, in_study = run_tuneflow(Path(tmp), n, *extra)
                walls.append(wall)
                studies.append(in_study)
        totals[f"{label} (process)"] = statistics.median(walls)
        totals[f"{label} (in-study)"] = statistics.median(studies)

    floor, storage, naive = totals["optuna-memory"], totals["optuna-sqlite"], totals["naive-mlflow"]
    print(f"{n} trials, {STEPS} reported values each, median of {r} repeats\n")
    print("| variant | total s | ms per trial | x floor | x storage-only | x naive |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, total in totals.items():
        print(f"| {name} | {total:.2f} | {1000 * total / n:.1f} | {total / floor:.1f} | "
              f"{total / storage:.2f} | {total / naive:.2f} |")


if __name__ == "__main__":
    main()
