"""Per-trial overhead of a no-op objective, every variant side by side in one run.

Each trial: 2 float params (x, y), 20 per-epoch values reported to Optuna (no pruning), a final value.
TPE with tuneflow's default settings everywhere (multivariate, constant liar, seed 0), so sampling costs
the same in every row. Every variant runs in its own Python process (nothing one variant imports or
configures, tuneflow's storage settings included, can reach another) and in a fresh temporary folder.

  optuna-memory        Optuna alone, in-memory storage: the floor.
  optuna-sqlite        Optuna on SQLite as a user writes it, optuna.create_study(storage="sqlite:///...")
                       with Optuna's defaults: storage-only.
  optuna-sqlite-tuned  The same study on tuneflow's SQLite storage (hydra/sweeper/storage=sqlite;
                       tuneflow.storage.study.open_storage: WAL journal, synchronous=NORMAL).
  optuna-journal       The same study on tuneflow's default storage (Optuna's journal file,
                       tuneflow.storage.journal: file heartbeats, appends not fsync'ed): what the storage
                       tuneflow uses costs on its own.
  naive-mlflow         The script users write: optuna-sqlite + `with mlflow.start_run():` per trial, one
                       MLflow call per value (2 log_param, 20 step log_metric, 1 final log_metric),
                       tracking URI sqlite:///<tmp>/mlflow.db.
  tuneflow             `python -m tuneflow +arch=quadratic -m hydra.sweeper.n_trials=N hydra/sweeper/pruner=none
                       hydra.sweeper.sampler.seed=0` as a subprocess, on the default storage (Optuna's
                       journal file under mlruns/): a Hydra job per trial, MLflow run
                       with params, config.yaml, 20 step metrics, final metrics, a pickled model.
                       "(process)": wall time of the whole process (interpreter start, imports, Hydra,
                       store creation, summary). "(in-study)": first trial's datetime_start to last
                       trial's datetime_complete, read from the Optuna storage afterwards.
  tuneflow-no-model    The same with tracking.log_model=false.
  tuneflow-user-app    A user's own Hydra app with `override hydra/sweeper: tuneflow` (written to the
                       temporary folder): its task calls tuneflow.report 20 times and returns a float,
                       the same curve as the quadratic arch; no model, no tuneflow app around it. With
                       Hydra's basic launcher (what the app gets by default: each job composed by Hydra).
  tuneflow-user-app-launcher  The same app with `override hydra/launcher: tuneflow` in its defaults.
  tuneflow-basic-launcher  The same with hydra/launcher=basic (Hydra composes every job from scratch).
  tuneflow-sqlite, tuneflow-user-app-launcher-sqlite  tuneflow and the user app with
                       hydra/sweeper/storage=sqlite (tuneflow's SQLite storage, the default before the
                       journal) instead of the journal.
  tuneflow-before      With --baseline SRC: tuneflow from another checkout's src/ (e.g. the commit before
                       this work), run the same way; <variant>-before (tuneflow-journal-before, ...) the
                       same for each other variant.

The in-process variants are timed around study.optimize (imports and study creation excluded) after a
warm-up study of 3 trials in another folder of the same process (first-use costs). Before anything is
timed, tuneflow runs once as a 3-trial process (bytecode and file caches). Repeats are interleaved
(every variant once, then again), so a change of machine load hits every variant alike; the table shows
the median per variant and trial count.

Usage: python benchmarks/overhead.py [--trials 200 1000] [--repeats 2] [--baseline SRC] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

STEPS = 20
WARMUP_TRIALS = 3
TUNEFLOW_ARGS = ["+arch=quadratic", "-m", "hydra/sweeper/pruner=none", "hydra.sweeper.sampler.seed=0"]
IN_PROCESS = ("optuna-memory", "optuna-sqlite", "optuna-sqlite-tuned", "optuna-journal", "naive-mlflow")
TUNEFLOW_VARIANTS: dict[str, tuple[str, ...]] = {
    "tuneflow": (),
    "tuneflow-no-model": ("tracking.log_model=false",),
    "tuneflow-basic-launcher": ("hydra/launcher=basic",),
    "tuneflow-user-app": ("user-app",),
    "tuneflow-user-app-launcher": ("user-app", "tuneflow"),
    "tuneflow-sqlite": ("hydra/sweeper/storage=sqlite",),
    "tuneflow-user-app-launcher-sqlite": ("user-app", "tuneflow", "hydra/sweeper/storage=sqlite"),
}


# --- the in-process variants (each runs in a child process: `overhead.py --child NAME`) ------------


def sampler() -> Any:
    import optuna

    # tuneflow's default TPE settings (hydra_plugins/tuneflow_sweeper/config.py).
    return optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)


def curve(x: float, y: float, step: int) -> float:
    """The quadratic arch's learning curve (tuneflow.models.synthetic)."""
    return (x - 2.0) ** 2 + (y + 1.0) ** 2 + 10.0 / step


def objective(trial: Any) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    y = trial.suggest_float("y", -5.0, 5.0)
    value = 0.0
    for step in range(1, STEPS + 1):
        value = curve(x, y, step)
        trial.report(value, step)
    return value


def timed_optimize(study: Any, function: Callable[[Any], float], trials: int) -> float:
    start = time.perf_counter()
    study.optimize(function, n_trials=trials)
    return time.perf_counter() - start


def optuna_memory(folder: Path, trials: int) -> float:
    import optuna

    return timed_optimize(optuna.create_study(sampler=sampler()), objective, trials)


def optuna_sqlite(folder: Path, trials: int) -> float:
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", sampler=sampler())
    return timed_optimize(study, objective, trials)


def optuna_sqlite_tuned(folder: Path, trials: int) -> float:
    import optuna

    from tuneflow.storage.study import open_storage

    study = optuna.create_study(storage=open_storage(f"sqlite:///{folder / 'optuna.db'}"), sampler=sampler())
    return timed_optimize(study, objective, trials)


def optuna_journal(folder: Path, trials: int) -> float:
    import optuna

    from tuneflow.storage.journal import HeartbeatJournalStorage

    # As the sweeper opens it: heartbeats on (Optuna's own heartbeat thread beats once per trial here).
    storage = HeartbeatJournalStorage(folder / "optuna.journal", heartbeat_interval=60)
    study = optuna.create_study(storage=storage, sampler=sampler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna's note that heartbeats are meant for optimize: they are
        return timed_optimize(study, objective, trials)


def naive_mlflow(folder: Path, trials: int) -> float:
    import mlflow
    import optuna

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("naive")
    study = optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", sampler=sampler())

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

    return timed_optimize(study, tracked, trials)


CHILD_VARIANTS: dict[str, Callable[[Path, int], float]] = {
    "optuna-memory": optuna_memory,
    "optuna-sqlite": optuna_sqlite,
    "optuna-sqlite-tuned": optuna_sqlite_tuned,
    "optuna-journal": optuna_journal,
    "naive-mlflow": naive_mlflow,
}


def child(name: str, folder: Path, trials: int) -> None:
    """Run one variant in this (fresh) process: a warm-up study elsewhere, then the timed one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = CHILD_VARIANTS[name]
    warmup = folder / "warmup"
    warmup.mkdir()
    run(warmup, WARMUP_TRIALS)
    timed = folder / "timed"
    timed.mkdir()
    seconds = run(timed, trials)
    leaked = sorted(m for m in sys.modules if m == "tuneflow" or m.startswith("tuneflow."))
    print(json.dumps({"seconds": seconds, "tuneflow_imported": bool(leaked)}))


def run_child(name: str, folder: Path, trials: int) -> float:
    command = [sys.executable, __file__, "--child", name, "--folder", str(folder), "--trials", str(trials)]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env())
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Only the variants on tuneflow's storages may import tuneflow: the others are what a user runs without it.
    if result["tuneflow_imported"] != (name in ("optuna-sqlite-tuned", "optuna-journal")):
        sys.exit(f"{name}: tuneflow imported = {result['tuneflow_imported']}, which this variant must not")
    return float(result["seconds"])


# --- tuneflow, as a user runs it -------------------------------------------------------------------


#: This checkout's tuneflow: what "tuneflow" rows run (not whichever copy the venv installed).
THIS_SRC = str(Path(__file__).resolve().parents[1] / "src")


def clean_env(pythonpath: str | None = THIS_SRC) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_", "PYTHONPATH"))}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


USER_APP = """
import hydra
import tuneflow


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def task(cfg) -> float:
    value = 0.0
    for step in range(1, 21):
        value = (cfg.x - 2.0) ** 2 + (cfg.y + 1.0) ** 2 + 10.0 / step
        tuneflow.report(step, {"val_loss": value})
    return value


if __name__ == "__main__":
    task()
"""
USER_APP_CONFIG = """
defaults:
  - override hydra/sweeper: tuneflow
  - override hydra/sweeper/pruner: none
hydra:
  sweeper:
    study_name: quadratic
    objective: val_loss
    sampler: {seed: 0}
    params:
      x: interval(-5.0, 5.0)
      y: interval(-5.0, 5.0)
x: 0.0
y: 0.0
"""


def user_app_command(folder: Path, launcher: str | None = None) -> list[str]:
    """``python app.py -m``: a user's app, written to ``folder`` (with ``launcher`` as its Hydra launcher)."""
    (folder / "conf").mkdir(exist_ok=True)
    (folder / "app.py").write_text(USER_APP)
    config = USER_APP_CONFIG
    if launcher:
        config = config.replace("defaults:\n", f"defaults:\n  - override hydra/launcher: {launcher}\n", 1)
    (folder / "conf" / "app.yaml").write_text(config)
    return [sys.executable, "app.py", "-m"]


def run_tuneflow(folder: Path, trials: int, extra: tuple[str, ...], src: str = THIS_SRC) -> tuple[float, float]:
    """(process wall time, in-study time) of one tuneflow process in ``folder``."""
    import optuna

    if extra[:1] == ("user-app",):
        launcher = [item for item in extra[1:] if "=" not in item]
        overrides = [item for item in extra[1:] if "=" in item]
        command = [*user_app_command(folder, *launcher), f"hydra.sweeper.n_trials={trials}", *overrides]
    else:
        command = [sys.executable, "-m", "tuneflow", *TUNEFLOW_ARGS, f"hydra.sweeper.n_trials={trials}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=clean_env(src), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"tuneflow failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    journal = folder / "mlruns" / "optuna.journal"
    if journal.is_file():
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        storage: Any = JournalStorage(JournalFileBackend(str(journal), lock_obj=JournalFileOpenLock(str(journal))))
    else:
        storage = f"sqlite:///{folder / 'mlruns' / 'optuna.db'}"
    study = optuna.load_study(study_name="quadratic", storage=storage)
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # Every trial must have run in full, or the comparison is not like for like.
    if len(finished) != trials or any(len(t.intermediate_values) != STEPS for t in finished):
        sys.exit(f"tuneflow: expected {trials} complete trials of {STEPS} steps, got "
                 f"{sorted({len(t.intermediate_values) for t in finished})} steps in {len(finished)} trials")
    first = min(t.datetime_start for t in finished if t.datetime_start is not None)
    last = max(t.datetime_complete for t in finished if t.datetime_complete is not None)
    return wall, (last - first).total_seconds()


def check_baseline(src: str) -> None:
    """The baseline checkout's tuneflow must be the one imported, or its rows mean nothing."""
    probe = subprocess.run([sys.executable, "-c", "import tuneflow; print(tuneflow.__file__)"],
                           capture_output=True, text=True, env=clean_env(src))
    if not probe.stdout.strip().startswith(str(Path(src).resolve())):
        sys.exit(f"--baseline {src}: python imports tuneflow from {probe.stdout.strip() or probe.stderr[-500:]}")


def in_fresh_folder(measure: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory(prefix="tuneflow-bench-") as tmp:
        return measure(Path(tmp))


# --- the table -------------------------------------------------------------------------------------


def environment() -> str:
    names = ("optuna", "mlflow", "hydra-core", "sqlalchemy")
    versions = ", ".join(f"{name} {version(name)}" for name in names)
    return (f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {versions}")


REFERENCES = {"floor": "optuna-memory", "storage-only": "optuna-sqlite", "tuned storage": "optuna-sqlite-tuned",
              "naive": "naive-mlflow"}


def table(samples: dict[str, dict[int, list[float]]], trial_counts: list[int]) -> list[str]:
    lines = ["| variant | trials | total s | ms per trial | "
             + " | ".join(f"ratio to {ref}" for ref in REFERENCES) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(REFERENCES)]
    for n in trial_counts:
        medians = {name: statistics.median(by_n[n]) for name, by_n in samples.items() if n in by_n}
        for name, total in medians.items():
            ratios = [f"{total / medians[ref]:.2f}" if ref in medians else "-" for ref in REFERENCES.values()]
            lines.append(f"| {name} | {n} | {total:.2f} | {1000 * total / n:.1f} | " + " | ".join(ratios) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[200, 1000], help="trial counts (200 1000)")
    parser.add_argument("--repeats", type=int, default=2, help="repeats per trial count; the median is reported")
    parser.add_argument("--baseline", metavar="SRC", help="another checkout's src/ to run as tuneflow-before")
    parser.add_argument("--only", nargs="+", metavar="VARIANT",
                        help="run only these variants (ratios to references not run show as -)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 trials, 1 repeat")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.folder), args.trials[0])
        return
    trial_counts, repeats = ([20], 1) if args.quick else (args.trials, args.repeats)
    tuneflow_variants: dict[str, tuple[tuple[str, ...], str]] = {
        name: (extra, THIS_SRC) for name, extra in TUNEFLOW_VARIANTS.items()
    }
    if args.baseline:
        check_baseline(args.baseline)
        tuneflow_variants["tuneflow-before"] = ((), args.baseline)
        # Every other variant's twin on the baseline's code (with --only: the ones named).
        tuneflow_variants.update({f"{name}-before": (extra, args.baseline)
                                  for name, extra in TUNEFLOW_VARIANTS.items() if name != "tuneflow"})
    wanted = set(args.only or [*IN_PROCESS, *tuneflow_variants])
    began = time.perf_counter()

    # Warm-up, untimed: bytecode and file caches of every tuneflow checkout.
    for src in {src for name, (_, src) in tuneflow_variants.items() if name in wanted}:
        in_fresh_folder(lambda d, src=src: run_tuneflow(d, WARMUP_TRIALS, (), src))

    samples: dict[str, dict[int, list[float]]] = {}

    def record(name: str, n: int, seconds: float) -> None:
        samples.setdefault(name, {}).setdefault(n, []).append(seconds)

    for repeat in range(1, repeats + 1):
        for n in trial_counts:
            for name in IN_PROCESS:
                if name in wanted:
                    seconds = in_fresh_folder(lambda d, name=name: run_child(name, d, n))
                    record(name, n, seconds)
                    print(f"repeat {repeat}/{repeats}, {n} trials: {name} {seconds:.2f} s", file=sys.stderr, flush=True)
            for name, (extra, src) in tuneflow_variants.items():
                if name not in wanted:
                    continue
                wall, in_study = in_fresh_folder(lambda d, extra=extra, src=src: run_tuneflow(d, n, extra, src))
                record(f"{name} (process)", n, wall)
                record(f"{name} (in-study)", n, in_study)
                print(f"repeat {repeat}/{repeats}, {n} trials: {name} {wall:.2f} s process, "
                      f"{in_study:.2f} s in-study", file=sys.stderr, flush=True)

    print(environment())
    print(f"{' and '.join(map(str, trial_counts))} trials x {STEPS} reported values + 2 params, median of "
          f"{repeats} repeat(s); benchmark took {time.perf_counter() - began:.0f} s\n")
    print("\n".join(table(samples, trial_counts)))
    if repeats > 1:
        print("\nper repeat (s): " + "; ".join(
            f"{name} @{n}: {', '.join(f'{v:.2f}' for v in values)}"
            for name, by_n in samples.items() for n, values in by_n.items()))


if __name__ == "__main__":
    main()
