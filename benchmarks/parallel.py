"""Parallel: trials per minute with 1 and 2 worker processes on CPU-bound trials.

A worker is ``python -m tuneflow +arch=mlp -m ...`` as a user starts it; two workers are the same command
started twice at once in the same folder: they share the study on the default SQLite storage, and
together run exactly ``n_trials`` trials (see the README's "Pruning" paragraph). Every trial does the same
amount of work: an MLP of 3 x 256 units, batch size 32, --epochs epochs (10), no early stopping, no pruning; only the
learning rate and dropout are searched (random sampler), which do not change the cost.

Each worker count runs with PyTorch's default threads (one per core: 2 here, so two workers run 4 threads
on 2 cores) and with ``torch_threads=1``. Variants are interleaved, repeat by repeat, so a change in the
machine's load hits every variant alike; the table shows medians over repeats.

Throughput = completed trials / (last trial's end - first trial's start), read from the Optuna storage
afterwards (start-up excluded; the process column includes it). Speed-up = 2 workers' throughput over
1 worker's with the same thread setting, and over the best 1-worker row.

Usage: python benchmarks/parallel.py [--trials 16] [--repeats 2] [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from _common import load_default_study, markdown_table, progress

WORKLOAD = ("+arch=mlp", "-m", "hydra/sweeper/sampler=random", "hydra/sweeper/pruner=none",
            "hydra.sweeper.params.batch_size=choice(32)", "hydra.sweeper.params.hidden_size=choice(256)",
            "hydra.sweeper.params.n_layers=choice(3)", "hydra.sweeper.params.patience=choice(100)",
            "hydra.sweeper.params.lr_schedule=choice(constant)")
COMPLETE_LINE = re.compile(r"trial \d+ COMPLETE")


@dataclass(frozen=True)
class Variant:
    workers: int
    torch_threads: int | None

    @property
    def name(self) -> str:
        threads = "PyTorch default threads" if self.torch_threads is None else f"torch_threads={self.torch_threads}"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {threads}"


@dataclass
class Measurement:
    trials: int
    in_study_seconds: float
    process_seconds: float
    trials_per_worker: list[int]

    @property
    def per_minute(self) -> float:
        return 60 * self.trials / self.in_study_seconds


def run_variant(variant: Variant, trials: int, extra: list[str]) -> Measurement:
    folder = Path(tempfile.mkdtemp(prefix="tuneflow-parallel-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_", "OMP_", "MKL_"))}
    threads = [] if variant.torch_threads is None else [f"torch_threads={variant.torch_threads}"]
    command = [sys.executable, "-m", "tuneflow", *WORKLOAD, f"hydra.sweeper.n_trials={trials}", *threads, *extra]
    started = time.perf_counter()
    logs = [(folder / f"worker{index}.log").open("w") for index in range(variant.workers)]
    processes = [subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    codes = [process.wait() for process in processes]
    process_seconds = time.perf_counter() - started
    for log in logs:
        log.close()
    if any(codes):
        sys.exit(f"parallel: error: a worker exited {codes}; see {folder}/worker*.log")
    study = load_default_study("mlp", folder / "mlruns")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    span = max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)
    per_worker = [len(COMPLETE_LINE.findall((folder / f"worker{i}.log").read_text())) for i in range(variant.workers)]
    return Measurement(len(complete), span.total_seconds(), process_seconds, per_worker)


def speedup_cells(variant: Variant, medians: dict[Variant, float]) -> list[str]:
    if variant.workers == 1:
        return ["1.00x", "-"]
    same_threads = medians.get(Variant(1, variant.torch_threads))
    best_single = max(v for k, v in medians.items() if k.workers == 1)
    mine = medians[variant]
    return [f"{mine / same_threads:.2f}x" if same_threads else "-", f"{mine / best_single:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16, help="trials per study, shared by the workers (16)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every variant (2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs every trial trains (10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 trials of 1 epoch, torch_threads=1 only")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    variants = [Variant(1, None), Variant(1, 1), Variant(2, None), Variant(2, 1)]
    extra = [f"params.epochs={args.epochs}"]
    if args.quick:
        variants, args.trials, args.repeats = [Variant(1, 1), Variant(2, 1)], 2, 1
        extra = ["params.epochs=1", "tracking.log_model=false"]
    runs: dict[Variant, list[Measurement]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            measurement = run_variant(variant, args.trials, extra)
            runs[variant].append(measurement)
            progress(f"repeat {repeat + 1} {variant.name}: {measurement.trials} trials in "
                     f"{measurement.in_study_seconds:.1f}s ({measurement.per_minute:.1f}/min), per worker "
                     f"{measurement.trials_per_worker}, process {measurement.process_seconds:.1f}s")
    medians = {v: statistics.median(m.per_minute for m in ms) for v, ms in runs.items()}
    rows = []
    for variant in variants:
        measurements = runs[variant]
        rows.append([
            variant.name,
            f"{medians[variant]:.1f}",
            ", ".join(f"{m.per_minute:.1f}" for m in measurements),
            f"{statistics.median(m.in_study_seconds for m in measurements) / args.trials:.2f}",
            f"{statistics.median(m.process_seconds for m in measurements):.0f}",
            " / ".join("+".join(str(n) for n in m.trials_per_worker) for m in measurements),
            *speedup_cells(variant, medians),
        ])
    print(f"{args.trials} trials per study (`{' '.join(w for w in (*WORKLOAD, *extra) if w != '-m')}`), "
          f"median of {args.repeats} interleaved repeat(s); {os.cpu_count()} cores (shared).\n")
    print(markdown_table(["variant", "trials/min", "per repeat", "s per trial", "process s",
                          "trials per worker", "speed-up vs 1 worker (same threads)", "vs best 1 worker"], rows))


if __name__ == "__main__":
    main()
