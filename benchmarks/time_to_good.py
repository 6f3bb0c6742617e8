"""Time to a good model on real training: how much wall time and how many epochs each search strategy
needs before one of its trials is within a stated tolerance of the best reachable validation score.

Architectures (each with its default search space, conf/search_space/):
  quadratic       +arch=quadratic: the synthetic bowl, val_loss (minimise), 20 epochs, no training (cheap:
                  for comparing whole strategies' trial and epoch counts).
  mlp             +arch=mlp: MLP on scikit-learn's digits, val_accuracy (maximise), up to 20 epochs.
  lstm_attention  +arch=lstm_attention mode=fast: LSTM + self-attention on Seattle weather, one 30-day
                  validation range, val_mae in degrees C (minimise), up to 4 epochs.

Strategies, each run as the product runs (``python -m tuneflow +arch=... -m`` in a fresh folder, so every
trial is a Hydra job with its MLflow run, on SQLite: hydra/sweeper/storage=sqlite):
  grid              hydra/sweeper/sampler=grid, no pruning; the search space with each interval cut to
                    3-5 values (what a hand-written grid does), visited in the sampler's random order.
  random            hydra/sweeper/sampler=random, no pruning.
  tpe (hydra-optuna) TPE without pruning, as Hydra's Optuna sweeper configures it (multivariate=False;
                    that sweeper cannot prune).
  tuneflow          tuneflow's defaults: no sampler or pruner override at all.
  (more with --strategies: tuneflow's sampler with other pruners, for choosing the default; the whole
  strategies "strategy: staged" and "strategy: zones", ``+strategy=...``, counted over all their stage studies)

Every run gets ``hydra.sweeper.sampler.seed=SEED`` and ``torch_threads=1`` (the machine is shared; see
parallel.py), and at most ``--max-trials`` trials. The benchmark watches the study's storage and stops
the run (Ctrl-C, which tuneflow handles: the running trial is failed, everything else kept) as soon as
a completed trial reaches the target; a run that never does is "not reached" (censored; it counts as
slower than any run that got there when taking medians).

Measured per run, from the Optuna storage afterwards: trials up to and including the first one on target;
epochs = the per-epoch values those trials reported (Optuna intermediate values: what each trial really
trained, pruned or early-stopped; checked against MLflow's ``epochs_run`` of the completed trials);
wall time = first trial's start to the on-target trial's end (the process's start-up excluded).

The target: the best reachable score minus the tolerance. The best reachable score is established once
with a large budget (``--reference``): in-process searches, no pruning, full epochs, calling the same
``train_folds`` the trials call (the same trainer, data and seed, so a configuration scores there exactly
what it scores as a trial), without the tracking around them: a TPE search with tuneflow's default sampler
and a random sample; the best of all of them, saved in results/time_to_good_reference.json.

Usage: python benchmarks/time_to_good.py --arch mlp [--seeds 5] [--max-trials 60]
       python benchmarks/time_to_good.py --arch mlp --reference [--reference-trials 100]
       python benchmarks/time_to_good.py --arch mlp --reference --reference-sampler random --reference-trials 150
       python benchmarks/time_to_good.py --arch mlp --check-replay 3   # replay.py's table vs real training
       python benchmarks/time_to_good.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from _common import censored_median, fmt, markdown_table, progress

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_FILE = RESULTS / "time_to_good_reference.json"
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Arch:
    overrides: tuple[str, ...]
    objective: str
    direction: str
    #: How far from the best reachable score a model may be and still count as good.
    tolerance: float
    tolerance_text: str
    #: The grid strategy's space: the default space with each interval cut into a few values.
    grid: dict[str, str]

    def target(self, best: float) -> float:
        return best - self.tolerance if self.direction == "maximize" else best + self.tolerance

    def reaches(self, value: float | None, target: float) -> bool:
        if value is None or math.isnan(value):
            return False
        return value >= target - 1e-9 if self.direction == "maximize" else value <= target + 1e-9


ARCHS = {
    # The synthetic bowl (tuneflow.models.synthetic): val_loss = (x-2)^2 + (y+1)^2 + 10/epoch, 20 epochs, so
    # 0.5 at best. Cheap (no training): compares the search strategies' trial and epoch counts in minutes.
    "quadratic": Arch(
        overrides=("+arch=quadratic",),
        objective="val_loss",
        direction="minimize",
        # Within 1 of the optimum's loss: the disc of radius 1 around (2, -1), 3.1% of the 10 x 10 box.
        tolerance=1.0,
        tolerance_text="1.0 above the best (within distance 1 of the optimum)",
        grid={"x": "choice(-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)",
              "y": "choice(-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)"},
    ),
    "mlp": Arch(
        overrides=("+arch=mlp",),
        objective="val_accuracy",
        direction="maximize",
        # 450 validation images: 3 of them.
        tolerance=3 / 450,
        tolerance_text="3 validation images (0.67 points of accuracy) below the best",
        grid={
            "lr": "choice(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03)",
            "lr_decay": "choice(0.1, 0.5, 0.9)",
            "dropout": "choice(0.0, 0.25, 0.5)",
        },
    ),
    "lstm_attention": Arch(
        overrides=("+arch=lstm_attention", "mode=fast"),
        objective="val_mae",
        direction="minimize",
        tolerance=0.05,
        tolerance_text="0.05 degrees C of MAE above the best",
        grid={
            "attention_regularization": "choice(0.001, 0.01, 0.1)",
            "dropout": "choice(0.0, 0.25, 0.5)",
            "lr": "choice(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03)",
            "lr_decay": "choice(0.1, 0.5, 0.9)",
        },
    ),
}

NO_PRUNING = ("hydra/sweeper/pruner=none",)
STRATEGIES: dict[str, tuple[str, ...]] = {
    "grid": ("hydra/sweeper/sampler=grid", *NO_PRUNING),
    "random": ("hydra/sweeper/sampler=random", *NO_PRUNING),
    "tpe (hydra-optuna)": ("hydra.sweeper.sampler.multivariate=false", *NO_PRUNING),
    "tuneflow": (),
    # Alternatives for tuneflow's default pruner (same sampler as "tuneflow").
    "tuneflow + median(startup 10)": ("hydra.sweeper.pruner.n_startup_trials=10",),
    "tuneflow + median(warmup 1)": ("hydra.sweeper.pruner.n_warmup_steps=1",),
    "tuneflow + hyperband": ("hydra/sweeper/pruner=hyperband",),
    "tuneflow + asha": ("hydra/sweeper/pruner=successive_halving",),
    "tuneflow + asha(min 1, rf 3)": ("hydra/sweeper/pruner=successive_halving",
                                     "hydra.sweeper.pruner.min_resource=1", "hydra.sweeper.pruner.reduction_factor=3"),
    "tpe, no pruning": NO_PRUNING,
    # Issue 17's sampler search: tuneflow's named asha pruner (min_resource 1, reduction factor 4) after the
    # default sampler and after hydra/sweeper/sampler=qmc_tpe (5 Sobol trials, then TPE).
    "tuneflow + asha (r=4)": ("hydra/sweeper/pruner=asha",),
    "qmc_tpe + asha (r=4)": ("hydra/sweeper/sampler=qmc_tpe", "hydra/sweeper/pruner=asha"),
    # Whole strategies (tuneflow.strategy; README "strategies"), each stage's budget cut so that the Optuna
    # trials add up to about 60, the default --max-trials (the repeats come on top, after the target is
    # usually reached). Their trials are counted over all stage studies, in the order they completed.
    "strategy: staged": ("+strategy=staged", "strategy.stages.0.n_trials=20", "strategy.stages.1.n_trials=10",
                         "strategy.stages.2.n_trials=15", "strategy.stages.3.n_trials=8"),
    "strategy: zones": ("+strategy=zones", "strategy.stages.0.n_trials=36", "strategy.stages.1.n_trials=16"),
}
DEFAULT_STRATEGIES = ("grid", "random", "tpe (hydra-optuna)", "tuneflow")


@dataclass
class RunResult:
    strategy: str
    seed: int
    reached: bool
    #: Up to the on-target trial, or over the whole run when the target was not reached.
    trials: int
    epochs: int
    seconds: float
    best: float | None
    pruned: int
    epochs_checked: int = 0
    epochs_mismatched: int = 0
    process_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# --- the reference: the best reachable score ------------------------------------------------


REFERENCE_SAMPLERS = {"tpe": 0, "random": 123}  # sampler -> its seed


def run_reference(arch_name: str, trials: int, sampler_name: str, save: Any) -> dict[str, Any]:
    """A large in-process search, no pruning, full epochs: the same trainer and data as the trials
    (``tuneflow.trial.arch_task.train_folds``), without the tracking around them. ``save(summary)`` every
    10 trials, so a run cut short still leaves its reference."""
    import torch
    from omegaconf import OmegaConf

    from tuneflow.analysis.recompose import compose
    from tuneflow.search.samplers import default_sampler
    from tuneflow.search.space import PARAMS_NODE, parse_search_space, to_overrides
    from tuneflow.trial.arch_task import train_folds

    torch.set_num_threads(1)
    arch = ARCHS[arch_name]
    base = compose(list(arch.overrides), with_hydra=True)
    distributions, fixed = parse_search_space(OmegaConf.to_container(base.hydra.sweeper.params, resolve=True), PARAMS_NODE)
    fixed_overrides = [f"{path}={value}" for path, value in fixed.items()]
    seed = REFERENCE_SAMPLERS[sampler_name]
    sampler = default_sampler(seed=seed) if sampler_name == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction=arch.direction)
    started = time.perf_counter()
    for number in range(trials):
        trial = study.ask(distributions)
        cfg = compose([*arch.overrides, *fixed_overrides, *to_overrides(trial.params, PARAMS_NODE)])
        try:
            results = train_folds(cfg)
            study.tell(trial, sum(results.values) / len(results.values))
        except Exception as error:  # noqa: BLE001 - a diverging configuration is a failed trial, not a crash
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            progress(f"reference {arch_name} trial {number} failed: {error}")
        if number % 10 == 9 or number == trials - 1:
            progress(f"reference {arch_name}: {number + 1}/{trials} trials, best {study.best_value:.6g}")
            save(reference_summary(study, arch, sampler_name, time.perf_counter() - started))
    return reference_summary(study, arch, sampler_name, time.perf_counter() - started)


def reference_summary(study: optuna.Study, arch: Arch, sampler_name: str, seconds: float) -> dict[str, Any]:
    seed = REFERENCE_SAMPLERS[sampler_name]
    how = (f"tuneflow.search.samplers.default_sampler(seed={seed})" if sampler_name == "tpe"
           else f"optuna.samplers.RandomSampler(seed={seed})")
    values = sorted((t.value for t in study.trials if t.value is not None), reverse=arch.direction == "maximize")
    return {
        "best_value": study.best_value,
        "best_params": study.best_params,
        "trials": len(study.trials),
        "how": f"in-process {how}, no pruning, full epochs, train_folds as in the trials",
        "top_10_values": values[:10],
        "seconds": round(seconds, 1),
        "date": datetime.date.today().isoformat(),
    }


def save_reference(arch_name: str, sampler_name: str, summary: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    saved = json.loads(REFERENCE_FILE.read_text()) if REFERENCE_FILE.exists() else {}
    saved.setdefault(arch_name, {})[sampler_name] = summary
    REFERENCE_FILE.write_text(json.dumps(saved, indent=2) + "\n")


def load_reference(arch_name: str) -> dict[str, Any]:
    """The best score of every reference search of ``arch_name``, and how many trials they ran in all."""
    saved = json.loads(REFERENCE_FILE.read_text()) if REFERENCE_FILE.exists() else {}
    searches = saved.get(arch_name)
    if not searches:
        sys.exit(f"time_to_good: error: no reference for {arch_name}; run with --arch {arch_name} --reference first")
    pick = max if ARCHS[arch_name].direction == "maximize" else min
    best = pick(search["best_value"] for search in searches.values())
    found_by = [name for name, search in searches.items() if search["best_value"] == best]
    return {"best_value": best, "trials": sum(s["trials"] for s in searches.values()),
            "found_by": " and ".join(found_by),
            "searches": ", ".join(f"{name} {s['trials']} trials" for name, s in searches.items())}


# --- one strategy, one seed -----------------------------------------------------------------


def tuneflow_command(arch: Arch, strategy: str, seed: int, max_trials: int, extra: list[str]) -> list[str]:
    grid = [f"hydra.sweeper.params.{name}={space}" for name, space in arch.grid.items()] if strategy == "grid" else []
    seeded = [f"strategy.seed={seed}"] if is_strategy(strategy) else []
    return [sys.executable, "-m", "tuneflow", *arch.overrides, "-m", *STRATEGIES[strategy], *grid, *seeded,
            f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweeper.n_trials={max_trials}", "torch_threads=1",
            # SQLite, not the journal default: the watcher reads the file read-only with sqlite3 while the run
            # writes it, and the recorded runs were made on it (epoch counts do not depend on the storage).
            "hydra/sweeper/storage=sqlite", *extra]


def is_strategy(strategy: str) -> bool:
    return strategy.startswith("strategy: ")


def storage_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns' / 'optuna.db'}"


def reached_target(folder: Path, arch: Arch, target: float) -> bool:
    """Whether a completed trial is on target, read from the storage file read-only. Not through Optuna:
    opening an RDBStorage writes (table creation, alembic's version stamp), and a reader doing so while the
    sweeper creates the same database crashes the sweeper ("table ... already exists", "UNIQUE constraint
    failed: alembic_version.version_num"; seen both)."""
    path = folder / "mlruns" / "optuna.db"
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            values = connection.execute(
                "SELECT v.value FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id WHERE t.state = 'COMPLETE'"
            ).fetchall()
    except sqlite3.Error:  # not created yet
        return False
    return any(arch.reaches(value, target) for (value,) in values)


def run_strategy(arch_name: str, strategy: str, seed: int, max_trials: int, target: float,
                 extra: list[str], keep: Path | None) -> RunResult:
    arch = ARCHS[arch_name]
    folder = Path(tempfile.mkdtemp(prefix=f"ttg-{arch_name}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    command = tuneflow_command(arch, strategy, seed, max_trials, extra)
    started = time.perf_counter()
    log = (folder / "tuneflow.log").open("w")
    # A process started in the background by a shell inherits SIGINT ignored, and so would tuneflow: give
    # it the default, so that Ctrl-C (stop) works.
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stopped = False
    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        if reached_target(folder, arch, target):
            stop(process)
            stopped = True
    log.close()
    result = measure(folder, arch_name, arch, strategy, seed, target)
    result.process_seconds = time.perf_counter() - started
    if stopped and process.returncode not in (0, 130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
        # The run was stopped here once on target, and what is measured is in the storage already; a
        # Ctrl-C that lands while a stage study ends its MLflow parent run can end tuneflow with exit 2
        # ("cannot end the parent run: This transaction is closed"): said, not fatal to the benchmark.
        progress(f"tuneflow exited {process.returncode} after the stop on target; see {folder / 'tuneflow.log'}")
    elif process.returncode not in (0, 130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
        sys.exit(f"time_to_good: error: tuneflow exited {process.returncode}; see {folder / 'tuneflow.log'}")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{arch_name}-{strategy.replace(' ', '_')}-{seed}.log").write_text((folder / "tuneflow.log").read_text())
    return result


def stop(process: subprocess.Popen[bytes]) -> None:
    """tuneflow's Ctrl-C: fails the running trial, keeps the rest; terminated if it does not stop."""
    # Patient: on a loaded machine the clean-up after Ctrl-C (CSV, parent run) can take a minute.
    for sig in (signal.SIGINT, signal.SIGTERM):
        process.send_signal(sig)
        try:
            process.wait(timeout=180)
            return
        except subprocess.TimeoutExpired:
            progress(f"tuneflow still running 180 s after {sig.name}")
    process.kill()
    process.wait()


def measure(folder: Path, study_name: str, arch: Arch, strategy: str, seed: int, target: float) -> RunResult:
    if is_strategy(strategy):
        # Every stage study of the strategy (<arch>/<stage>, <arch>/<stage>/zone-<k>), in completion order.
        storage = storage_url(folder)
        # A trial a stage added with a value an earlier stage measured (tuneflow_known_from) trained nothing.
        trials = [t for name in optuna.get_all_study_names(storage)
                  for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
                  if "tuneflow_known_from" not in t.user_attrs]
        finished = [t for t in trials if t.state.is_finished() and t.datetime_complete]
        finished.sort(key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]
        hit = next((t for t in finished if t.state == optuna.trial.TrialState.COMPLETE
                    and arch.reaches(t.value, target)), None)
        counted = finished[: finished.index(hit) + 1] if hit is not None else finished
        return counted_result(folder, arch, strategy, seed, finished, hit, counted)
    study = optuna.load_study(study_name=study_name, storage=storage_url(folder))
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.datetime_complete]
    finished.sort(key=lambda t: t.number)
    hit = next((t for t in finished if t.state == optuna.trial.TrialState.COMPLETE and arch.reaches(t.value, target)), None)
    counted = [t for t in finished if hit is None or t.number <= hit.number]
    return counted_result(folder, arch, strategy, seed, finished, hit, counted)


def counted_result(folder: Path, arch: Arch, strategy: str, seed: int, finished: list[optuna.trial.FrozenTrial],
                   hit: optuna.trial.FrozenTrial | None, counted: list[optuna.trial.FrozenTrial]) -> RunResult:
    counted = [t for t in counted if t.state != optuna.trial.TrialState.FAIL]  # the one stopped by Ctrl-C
    first_start = min(t.datetime_start for t in finished if t.datetime_start)
    end = hit.datetime_complete if hit is not None else max(t.datetime_complete for t in counted)
    values = [t.value for t in counted if t.value is not None]
    best = (max(values) if arch.direction == "maximize" else min(values)) if values else None
    result = RunResult(
        strategy=strategy,
        seed=seed,
        reached=hit is not None,
        trials=len(counted),
        epochs=sum(len(t.intermediate_values) for t in counted),
        seconds=(end - first_start).total_seconds(),
        best=best,
        pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in counted),
    )
    check_epochs_against_mlflow(folder, counted, result)
    return result


def check_epochs_against_mlflow(folder: Path, trials: list[optuna.trial.FrozenTrial], result: RunResult) -> None:
    """Each completed trial's MLflow ``epochs_run`` must equal the epochs it reported to Optuna."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.state != optuna.trial.TrialState.COMPLETE or not run_id:
            continue
        epochs_run = client.get_run(run_id).data.metrics.get("epochs_run")
        result.epochs_checked += 1
        result.epochs_mismatched += epochs_run != len(trial.intermediate_values)


# --- the table ------------------------------------------------------------------------------


#: The ratios' second baseline: plain TPE, as Hydra's Optuna sweeper runs it.
PLAIN_TPE = "tpe (hydra-optuna)"


def summary_rows(results: list[RunResult], strategies: list[str], max_trials: int, best: float) -> list[list[str]]:
    def median_of(strategy: str, key: str) -> float:
        runs = [r for r in results if r.strategy == strategy]
        return censored_median([getattr(r, key) if r.reached else math.inf for r in runs])

    def lower_bound(strategy: str, key: str) -> float:
        """The median if censored runs had reached the target at the very end of their budget."""
        runs = [r for r in results if r.strategy == strategy]
        return censored_median([float(getattr(r, key)) for r in runs])

    def ratio(base: str, strategy: str, key: str) -> str:
        ours, theirs = median_of(strategy, key), median_of(base, key)
        if base not in strategies or math.isinf(ours):
            return "-"
        if math.isinf(theirs):
            return f">{lower_bound(base, key) / ours:.2g}x"
        return f"{theirs / ours:.2g}x"

    rows = []
    for strategy in strategies:
        runs = [r for r in results if r.strategy == strategy]
        cells = [strategy, f"{sum(r.reached for r in runs)}/{len(runs)}"]
        for key in ("trials", "epochs", "seconds"):
            cells.append(fmt(median_of(strategy, key), censored_as=f">{fmt(lower_bound(strategy, key))}"))
        cells += [ratio("random", strategy, "epochs"), ratio(PLAIN_TPE, strategy, "epochs"),
                  ratio("random", strategy, "seconds")]
        regrets = [abs(r.best - best) for r in runs if r.best is not None]
        cells.append(fmt(censored_median(regrets)) if regrets else "-")
        epochs_per_trial = sum(r.epochs for r in runs) / max(1, sum(r.trials for r in runs))
        cells.append(f"{epochs_per_trial:.1f}")
        cells.append(f"{sum(r.pruned for r in runs) / max(1, sum(r.trials for r in runs)):.0%}")
        rows.append(cells)
    return rows


def print_table(arch_name: str, reference: dict[str, Any], target: float, results: list[RunResult],
                strategies: list[str], seeds: int, max_trials: int) -> None:
    arch = ARCHS[arch_name]
    checked = sum(r.epochs_checked for r in results)
    mismatched = sum(r.epochs_mismatched for r in results)
    print(f"**{arch_name}** (`{' '.join(arch.overrides)}`), {arch.objective} ({arch.direction}): best reachable "
          f"{reference['best_value']:.4g} (reference searches: {reference['searches']}; found by {reference['found_by']}), "
          f"good = within "
          f"{arch.tolerance_text}: {arch.objective} {'>=' if arch.direction == 'maximize' else '<='} {target:.4g}. "
          f"{seeds} seeds per strategy, at most {max_trials} trials per run. Medians over seeds; ratios = the baseline's "
          f"median (random; plain TPE) / the strategy's (higher is better); final regret = median |best seen - best reachable| when the "
          f"run stopped (on target, or at the end of its budget). Epochs checked against MLflow epochs_run: "
          f"{checked - mismatched}/{checked} completed trials agree.\n")
    header = ["strategy", "reached", "trials to good", "epochs to good", "seconds to good",
              "epochs vs random", "epochs vs tpe", "time vs random", "final regret", "epochs per trial", "pruned"]
    print(markdown_table(header, summary_rows(results, strategies, max_trials, reference["best_value"])))
    best_seen = [r.best for r in results if r.best is not None]
    if best_seen:
        better = max(best_seen) if arch.direction == "maximize" else min(best_seen)
        print(f"\nBest {arch.objective} any run saw: {better:.4g} (reference: {reference['best_value']:.4g}).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="mlp")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per strategy (5)")
    parser.add_argument("--max-trials", type=int, default=60, help="trials per run at most (60)")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                        help=f"comma-separated, of: {', '.join(STRATEGIES)}")
    parser.add_argument("--reference", action="store_true", help="establish the best reachable score and save it")
    parser.add_argument("--reference-trials", type=int, default=100)
    parser.add_argument("--reference-sampler", choices=sorted(REFERENCE_SAMPLERS), default="tpe")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy each run's tuneflow output here")
    parser.add_argument("--json", type=Path, default=None, help="append every run's measurements here (JSON lines)")
    parser.add_argument("--resume", action="store_true", help="skip the runs already in --json")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1 (0)")
    parser.add_argument("--table-from", type=Path, nargs="+", default=None,
                        help="print the table of runs saved by --json (several processes' files together)")
    parser.add_argument("--check-replay", type=int, default=0, metavar="N",
                        help="retrain the first N configurations of the arch's replay table (replay.py) and "
                             "compare them with it: does the replay tell the truth?")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: mlp, 1 epoch, 1 seed, 2 trials, a loose target; checks the plumbing only")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.reference:
        reference = run_reference(args.arch, args.reference_trials, args.reference_sampler,
                                  save=lambda summary: save_reference(args.arch, args.reference_sampler, summary))
        save_reference(args.arch, args.reference_sampler, reference)
        print(f"{args.arch}: best reachable {reference['best_value']:.6g} after {args.reference_trials} trials "
              f"({reference['seconds']} s); saved to {REFERENCE_FILE}")
        return

    if args.check_replay:
        import replay

        table = f"{ARCHS[args.arch].overrides[0].removeprefix('+arch=')}/" + (
            "fast" if "mode=fast" in ARCHS[args.arch].overrides else "full")
        print(replay.markdown_table(replay.CHECK_HEADER, replay.check(table, args.check_replay)))
        return

    strategies = args.strategies.split(",")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if "random" not in strategies:
        parser.error("the ratios are to random: include random in --strategies")
    extra: list[str] = []
    if args.quick:
        args.arch, args.seeds, args.max_trials, extra = "mlp", 1, 2, ["params.epochs=1", "tracking.log_model=false"]
        # A loose target (accuracy 0.5), to check the plumbing only.
        reference = {"best_value": 0.5 + ARCHS["mlp"].tolerance, "trials": 0, "found_by": "-", "searches": "none"}
    else:
        reference = load_reference(args.arch)
    target = ARCHS[args.arch].target(reference["best_value"])
    results: list[RunResult] = []
    done: dict[tuple[str, int], RunResult] = {}
    if args.table_from:
        saved = [RunResult(**json.loads(line)) for path in args.table_from for line in path.read_text().splitlines()]
        # Only seeds every strategy finished: the strategies are compared on the same seeds.
        complete = sorted(seed for seed in {r.seed for r in saved}
                          if {r.strategy for r in saved if r.seed == seed} >= set(strategies))
        results = [r for r in saved if r.seed in complete and r.strategy in strategies]
        print_table(args.arch, reference, target, results, strategies, len(complete), args.max_trials)
        left_out = len([r for r in saved if r.seed not in complete])
        if left_out:
            print(f"\nSeeds in the table: {', '.join(map(str, complete))}; {left_out} run(s) of seeds not every "
                  "strategy finished are left out.")
        return
    if args.resume and args.json and args.json.exists():
        for line in args.json.read_text().splitlines():
            record = RunResult(**json.loads(line))
            done[(record.strategy, record.seed)] = record
    elif args.json:
        args.json.write_text("")
    # Seeds outermost: a change of machine load during the run hits every strategy alike.
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for strategy in strategies:
            if (strategy, seed) in done:
                results.append(done[(strategy, seed)])
                continue
            result = run_strategy(args.arch, strategy, seed, args.max_trials, target, extra, args.keep_logs)
            results.append(result)
            if args.json:
                with args.json.open("a") as handle:
                    handle.write(json.dumps(asdict(result)) + "\n")
            progress(f"{args.arch} seed {seed} {strategy}: {'reached' if result.reached else 'NOT reached'} "
                     f"after {result.trials} trials, {result.epochs} epochs, {result.seconds:.1f}s "
                     f"(best {result.best}, process {result.process_seconds:.0f}s)")
    print_table(args.arch, reference, target, results, strategies, args.seeds, args.max_trials)


if __name__ == "__main__":
    main()
