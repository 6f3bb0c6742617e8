"""Per-trial overhead of a no-op objective, every variant side by side in one run.

Each trial: 2 float params (x, y), 20 per-epoch values reported to Optuna (no pruning), a final value.
Each variant runs in a fresh temporary folder, N trials, R repeats; the table shows the median total.

  optuna-memory        Optuna alone, in-memory storage, TPE: the floor.
  optuna-sqlite        The same on the SQLite file storage tuneflow uses by default, built with
                       tuneflow.study.open_storage (WAL, same settings): storage-only.
  naive-mlflow         The script users write: optuna-sqlite + mlflow.start_run() per trial, one MLflow
                       call per value (2 log_param, 20 step log_metric, 1 final log_metric), tracking URI
                       sqlite:///<tmp>/mlflow.db.
  tuneflow             `python -m tuneflow +arch=quadratic -m hydra.sweeper.n_trials=N
                       hydra/sweeper/pruner=none` as a subprocess. "(process)": wall time of the whole
                       process (interpreter start, imports, Hydra, study set-up, summary). "(in-study)":
                       first trial's datetime_start to last trial's datetime_complete, read from the
                       Optuna storage afterwards (start-up and imports excluded).
  tuneflow-no-model    The same with tracking.log_model=false (no model artifact per trial).

The Optuna variants are timed in-process around study.optimize (study creation excluded) after one
warm-up run of each variant with a few trials (imports, first-use costs); tuneflow also gets one warm-up
process (bytecode and file caches). Repeats are interleaved (repeat 1 of every variant, then repeat 2...)
so a change of machine load hits every variant alike.

Usage: python benchmarks/overhead.py [--trials 200] [--repeats 2] [--quick]
(defaults: 6-9 minutes on 2 cores; one repeat of every variant at 200 trials is 3-4 minutes)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import optuna

STEPS = 20
WARMUP_TRIALS = 3
TUNEFLOW_COMMAND = ["-m", "tuneflow", "+arch=quadratic", "-m", "hydra/sweeper/pruner=none",
                    "hydra.sweeper.sampler.seed=0"]


def sampler() -> optuna.samplers.TPESampler:
    # tuneflow's default TPE settings (hydra_plugins/tuneflow_sweeper/config.py), so every variant
    # pays the same sampling cost.
    return optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)


def curve(x: float, y: float, step: int) -> float:
    """The quadratic arch's learning curve (tuneflow.models.synthetic)."""
    return (x - 2.0) ** 2 + (y + 1.0) ** 2 + 10.0 / step


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", -5.0, 5.0)
    value = 0.0
    for step in range(1, STEPS + 1):
        value = curve(x, y, step)
        trial.report(value, step)
    return value


def optuna_memory(folder: Path, trials: int) -> float:
    study = optuna.create_study(sampler=sampler())
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def optuna_sqlite(folder: Path, trials: int) -> float:
    from tuneflow.study import open_storage

    storage = open_storage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(storage=storage, sampler=sampler())
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def naive_mlflow(folder: Path, trials: int) -> float:
    import mlflow

    from tuneflow.study import open_storage

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("naive")
    storage = open_storage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(storage=storage, sampler=sampler())

    def tracked(trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            x = trial.suggest_float("x", -5.0, 5.0)
            y = trial.suggest_float("y", -5.0, 5.0)
            mlflow.log_param("x", x)
            mlflow.log_param("y", y)
            value = 0.0
            for step in range(1, STEPS + 1):
                value = curve(x, y, step)
                trial.report(value, step)
                mlflow.log_metric("val_loss", value, step=step)
            mlflow.log_metric("objective", value)
            return value

    start = time.perf_counter()
    study.optimize(tracked, n_trials=trials)
    elapsed = time.perf_counter() - start
    mlflow.set_tracking_uri("")  # forget the temporary store before its folder is deleted
    return elapsed


def run_tuneflow(folder: Path, trials: int, *extra: str) -> tuple[float, float]:
    """(process wall time, in-study time) of one tuneflow process in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, *TUNEFLOW_COMMAND, f"hydra.sweeper.n_trials={trials}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"tuneflow failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    study = optuna.load_study(study_name="quadratic", storage=f"sqlite:///{folder / 'mlruns' / 'optuna.db'}")
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # Every trial must have run in full, or the comparison is not like for like.
    if len(finished) != trials or any(len(t.intermediate_values) != STEPS for t in finished):
        sys.exit(f"tuneflow: expected {trials} complete trials of {STEPS} steps, got "
                 f"{sorted({len(t.intermediate_values) for t in finished})} steps in {len(finished)} trials")
    first = min(t.datetime_start for t in finished)
    last = max(t.datetime_complete for t in finished)
    return wall, (last - first).total_seconds()


def in_fresh_folder(measure: Callable[[Path], object]) -> object:
    with tempfile.TemporaryDirectory(prefix="tuneflow-bench-") as tmp:
        return measure(Path(tmp))


def environment() -> str:
    versions = ", ".join(f"{name} {version(name)}" for name in ("optuna", "mlflow", "hydra-core", "sqlalchemy"))
    return (f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {versions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200, help="trials per variant and repeat (200)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="repeats; the median is reported (2: 3 can take 10-13 min on 2 cores)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 trials, 1 repeat")
    args = parser.parse_args()
    n, r = (20, 1) if args.quick else (args.trials, args.repeats)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    began = time.perf_counter()

    in_process: dict[str, Callable[[Path, int], float]] = {
        "optuna-memory": optuna_memory,
        "optuna-sqlite": optuna_sqlite,
        "naive-mlflow": naive_mlflow,
    }
    processes: dict[str, tuple[str, ...]] = {
        "tuneflow": (),
        "tuneflow-no-model": ("tracking.log_model=false",),
    }

    # Warm-up, untimed: imports, first-use costs, bytecode and file caches.
    for run in in_process.values():
        in_fresh_folder(lambda d, run=run: run(d, WARMUP_TRIALS))
    in_fresh_folder(lambda d: run_tuneflow(d, WARMUP_TRIALS))

    samples: dict[str, list[float]] = {}
    for repeat in range(1, r + 1):
        for name, run in in_process.items():
            total = in_fresh_folder(lambda d, run=run: run(d, n))
            samples.setdefault(name, []).append(total)  # type: ignore[arg-type]
            print(f"repeat {repeat}/{r}: {name} {total:.2f} s", file=sys.stderr, flush=True)
        for name, extra in processes.items():
            wall, in_study = in_fresh_folder(lambda d, extra=extra: run_tuneflow(d, n, *extra))  # type: ignore[misc]
            samples.setdefault(f"{name} (process)", []).append(wall)
            samples.setdefault(f"{name} (in-study)", []).append(in_study)
            print(f"repeat {repeat}/{r}: {name} {wall:.2f} s process, {in_study:.2f} s in-study",
                  file=sys.stderr, flush=True)

    totals = {name: statistics.median(values) for name, values in samples.items()}
    floor, storage, naive = totals["optuna-memory"], totals["optuna-sqlite"], totals["naive-mlflow"]
    print(environment())
    print(f"{n} trials x {STEPS} reported values + 2 params, median of {r} repeat(s); "
          f"benchmark took {time.perf_counter() - began:.0f} s\n")
    print("| variant | total s | ms per trial | ratio to floor | ratio to storage-only | ratio to naive |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, total in totals.items():
        print(f"| {name} | {total:.2f} | {1000 * total / n:.1f} | {total / floor:.1f} | "
              f"{total / storage:.2f} | {total / naive:.2f} |")
    if r > 1:
        print("\nper repeat (s): " + "; ".join(
            f"{name}: {', '.join(f'{v:.2f}' for v in values)}" for name, values in samples.items()))


if __name__ == "__main__":
    main()
