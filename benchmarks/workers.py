"""Trials per minute with 1, 2 and 4 workers on one study: the embedded default (the journal file, one
machine) and the local cluster (PostgreSQL + an MLflow server, ``tuneflow.deploy.local_cluster``).

Every worker is the same command, ``python -m tuneflow +arch=quadratic -m hydra.sweeper.n_trials=N
hydra/sweeper/pruner=none params.seconds_per_epoch=S`` (started together, each in the same project
folder), with the defaults otherwise (TPE, a model artifact per trial). Workloads:

  instant   S=0: the trial itself costs nothing, so this measures tuneflow + storage + tracking alone,
            and how well workers share the cores and the databases.
  short     S=0.025: 20 epochs = 0.5 s per trial that uses no CPU (a trial waiting on a GPU or I/O).
  long      S=0.1: 2 s per trial that uses no CPU: whether workers add throughput when the trial, not
            the machinery, takes the time.

trials/min = N / (last trial's datetime_complete - first trial's datetime_start), read from Optuna:
start-up (imports, Hydra, connecting) is excluded; "wall s" is the whole run, first start to last exit.
Each configuration runs on a fresh study (and, for the embedded default, a fresh project folder).

Usage: python benchmarks/workers.py [--trials 40] [--workers 1,2,4] [--workloads instant,long] [--storages embedded,postgres] [--quick]
(defaults: ~20 minutes on 2 busy cores; PostgreSQL needs `apt-get install -y postgresql`)

Engines (``--engines``, instead of the table above): one study (``+arch=quadratic``, 2 s trials of 20 epochs
of 0.1 s, the default median pruner, so trials end at different times) run by one command per row, with
tuneflow's asynchronous workers (``hydra.sweeper.workers.engine=local|ray``: N workers submitted once, each
asking for its next trial as soon as its last one ends) beside Hydra's batch launchers (joblib,
submitit_local, ray: ``hydra.sweeper.n_jobs=2`` trials per batch, a new batch when both ended). Times are the
trials' MLflow runs (started in the job once its process is up): "in-study s" = first run start to last run
end, "idle slot s" = slots x in-study s - the runs' summed durations: the time a slot ran no trial (waiting
for a batch-mate, or a fresh process starting). A second table splits it: a slot's first trial starting after
the first slot's, the gaps between a slot's trials (run end to Optuna's tell, tell to the next ask, ask to
the next run's start), and the tail (nothing left to run while the last trials end); and the wall time
outside the study (start-up, wind-down).

  python benchmarks/workers.py --engines all [--trials 12]
  (needs pip install 'tuneflow[slurm,ray]' hydra-submitit-launcher hydra-ray-launcher; rows whose launcher
  is missing say so)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
from _common import load_default_study

WORKLOADS = {"instant": 0.0, "short": 0.025, "long": 0.1}


@dataclass
class Row:
    storage: str
    workload: str
    workers: int
    trials: int
    in_study_s: float
    wall_s: float
    #: Median of each trial's own time, datetime_start to datetime_complete (the job, as Optuna sees it).
    median_trial_s: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.trials / self.in_study_s


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_", "PG"))}
    return {**env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def tuneflow_args(trials: int, seconds: float, study: str) -> list[str]:
    return ["+arch=quadratic", "-m", f"hydra.sweeper.n_trials={trials}", "hydra/sweeper/pruner=none",
            f"params.seconds_per_epoch={seconds}", f"hydra.sweeper.study_name={study}"]


def run_workers(start: Any, n_workers: int, folder: Path) -> float:
    """Start ``n_workers`` with ``start(log)``, wait for all; the wall time. Fails loudly on an error."""
    began = time.perf_counter()
    logs = [folder / f"worker-{i}.log" for i in range(n_workers)]
    processes = [start(log) for log in logs]
    codes = [p.wait(timeout=1800) for p in processes]
    wall = time.perf_counter() - began
    if any(codes):
        raise SystemExit(f"a worker failed ({codes}); see {folder}: " + logs[codes.index(next(c for c in codes if c))].read_text()[-2000:])
    return wall


def timings(study: optuna.Study, trials: int) -> tuple[float, float]:
    """The in-study span (first start to last completion) and the median trial duration, in seconds."""
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(done) != trials or len(study.trials) != trials:
        raise SystemExit(f"study {study.study_name}: {len(done)} complete of {len(study.trials)} trials, expected {trials}")
    first = min(t.datetime_start for t in done if t.datetime_start is not None)
    last = max(t.datetime_complete for t in done if t.datetime_complete is not None)
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done
                 if t.datetime_start is not None and t.datetime_complete is not None]
    return (last - first).total_seconds(), statistics.median(durations)


def embedded(n_workers: int, trials: int, seconds: float, workload: str) -> Row:
    with tempfile.TemporaryDirectory(prefix="tuneflow-bench-") as tmp:
        folder = Path(tmp)
        study_name = f"bench-{workload}-{n_workers}"

        def start(log: Path) -> subprocess.Popen[bytes]:
            with log.open("w") as out:
                return subprocess.Popen([sys.executable, "-m", "tuneflow", *tuneflow_args(trials, seconds, study_name)],
                                        cwd=folder, env=worker_env(), stdout=out, stderr=subprocess.STDOUT)

        wall = run_workers(start, n_workers, folder)
        study = load_default_study(study_name, folder / "mlruns")
        span, median = timings(study, trials)
        return Row("embedded (journal)", workload, n_workers, trials, span, wall, median)


def on_cluster(cluster: Any, n_workers: int, trials: int, seconds: float, workload: str) -> Row:
    folder = Path(tempfile.mkdtemp(prefix="tuneflow-bench-"))
    try:
        study_name = f"bench-{workload}-{n_workers}-{secrets.token_hex(3)}"

        def start(log: Path) -> subprocess.Popen[str]:
            return cluster.start_worker(tuneflow_args(trials, seconds, study_name), log=log, cwd=folder,
                                        env={"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})

        wall = run_workers(start, n_workers, folder)
        storage = optuna.storages.RDBStorage(cluster.database_url("optuna"),
                                             engine_kwargs={"connect_args": {"password": cluster.password}})
        study = optuna.load_study(study_name=study_name, storage=storage)
        span, median = timings(study, trials)
        return Row("PostgreSQL + MLflow server", workload, n_workers, trials, span, wall, median)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_cluster() -> tuple[Any, Path]:
    from tuneflow.deploy.local_cluster import LocalCluster, free_port

    directory = Path(tempfile.mkdtemp(prefix="tuneflow-bench-cluster-"))
    directory.chmod(0o711)  # PostgreSQL runs as the postgres user
    cluster = LocalCluster(directory / "cluster", pg_port=free_port(), mlflow_port=free_port(),
                           password=secrets.token_hex(16))
    cluster.up()
    return cluster, directory


def table(rows: list[Row]) -> str:
    lines = ["| storage | workload | workers | trials | in-study s | trials/min | vs 1 worker | median trial s | wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        base = next(r for r in rows if r.storage == row.storage and r.workload == row.workload and r.workers == 1)
        lines.append(f"| {row.storage} | {row.workload} | {row.workers} | {row.trials} | {row.in_study_s:.1f} | "
                     f"{row.per_minute:.0f} | {row.per_minute / base.per_minute:.2f}x | {row.median_trial_s:.2f} | "
                     f"{row.wall_s:.1f} |")
    return "\n".join(lines)


#: name -> (slots, the command's extra arguments). Hydra's launchers get the same study in batches of 2.
ENGINES: dict[str, tuple[int, list[str]]] = {
    "tuneflow in-process, 1 slot": (1, []),
    "tuneflow workers, local (submitit), 1": (1, ["hydra.sweeper.workers.engine=local", "hydra.sweeper.workers.n=1"]),
    "tuneflow workers, local (submitit), 2": (2, ["hydra.sweeper.workers.engine=local", "hydra.sweeper.workers.n=2"]),
    "tuneflow workers, Ray (local), 1": (1, ["hydra.sweeper.workers.engine=ray", "hydra.sweeper.workers.n=1"]),
    "tuneflow workers, Ray (local), 2": (2, ["hydra.sweeper.workers.engine=ray", "hydra.sweeper.workers.n=2"]),
    "Hydra joblib launcher, batches of 2": (2, ["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2",
                                               "hydra.launcher.n_jobs=2"]),
    "Hydra submitit_local launcher, batches of 2": (2, ["hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2"]),
    "Hydra Ray launcher, batches of 2": (2, ["hydra/launcher=ray", "hydra.sweeper.n_jobs=2"]),
}


@dataclass
class IdleParts:
    """Where a row's idle slot time falls (the parts add up to it)."""

    #: Slots whose first trial started after the first slot's did (a worker starting later).
    start_s: float = 0.0
    #: Between a trial's end and the next trial's start in the same slot, split at the Optuna trial's tell
    #: (``datetime_complete``) and the next one's ask (``datetime_start``).
    run_end_to_tell_s: float = 0.0
    tell_to_ask_s: float = 0.0
    ask_to_run_s: float = 0.0
    #: Slots with nothing left to run while the last trials ran (n_trials reached; trials end at different times).
    tail_s: float = 0.0

    @property
    def between_s(self) -> float:
        return self.run_end_to_tell_s + self.tell_to_ask_s + self.ask_to_run_s


@dataclass
class EngineRow:
    engine: str
    slots: int
    trials: int
    in_study_s: float
    idle_s: float
    wall_s: float
    error: str = ""
    parts: IdleParts | None = None
    #: The command's start to the first trial's run start, and the last run's end to the command's exit.
    startup_s: float = 0.0
    wind_down_s: float = 0.0

    @property
    def per_minute(self) -> float:
        return 60.0 * self.trials / self.in_study_s if self.in_study_s else 0.0


def engine_row(engine: str, trials: int) -> EngineRow:
    """One command, one fresh project folder, one study; its span, idle slot time and wall time."""
    slots, extra = ENGINES[engine]
    with tempfile.TemporaryDirectory(prefix="tuneflow-bench-engine-") as tmp:
        folder = Path(tmp)
        root = folder / "mlruns"
        # An absolute root folder: Hydra's Ray launcher runs jobs in folders of their own.
        args = ["+arch=quadratic", "-m", f"hydra.sweeper.n_trials={trials}", "params.seconds_per_epoch=0.1",
                "hydra.sweeper.study_name=engines", f"hydra.sweeper.root_dir={root}", *extra]
        began, began_at = time.perf_counter(), time.time()
        done = subprocess.run([sys.executable, "-m", "tuneflow", *args], cwd=folder,
                              env={**worker_env(), "HOME": str(folder)}, capture_output=True, text=True, timeout=1800)
        wall, ended_at = time.perf_counter() - began, time.time()
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
            return EngineRow(engine, slots, 0, 0.0, 0.0, wall, error=f"exit {done.returncode}: {last}")
        study = load_default_study("engines", root)
        ended = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
        if len(ended) != trials:
            return EngineRow(engine, slots, len(ended), 0.0, 0.0, wall, error=f"{len(ended)} of {trials} trials")
        runs = trial_runs(root, "engines", study)
        span = max(run.end for run in runs) - min(run.start for run in runs)
        busy = sum(run.end - run.start for run in runs)
        return EngineRow(engine, slots, trials, span, max(0.0, slots * span - busy), wall,
                         parts=idle_parts(runs, slots), startup_s=min(run.start for run in runs) - began_at,
                         wind_down_s=ended_at - max(run.end for run in runs))


@dataclass
class TrialRun:
    """One trial as its MLflow run (start, end) and its Optuna trial (asked, told) saw it, in epoch seconds."""

    start: float
    end: float
    asked: float
    told: float


def trial_runs(root: Path, name: str, study: optuna.Study) -> list[TrialRun]:
    """The trials' MLflow runs. A run starts in the job, once its process is up: a process started per
    trial is idle slot time."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = {run.info.run_id: run for run in client.search_runs(
        [experiment.experiment_id], filter_string="tags.`tuneflow.role` = 'trial'", max_results=10_000)}
    rows = []
    for trial in study.trials:
        run = runs.get(trial.user_attrs.get("mlflow_run_id", ""))
        if run is None or trial.datetime_start is None or trial.datetime_complete is None:
            continue
        rows.append(TrialRun(run.info.start_time / 1000, run.info.end_time / 1000, trial.datetime_start.timestamp(),
                             trial.datetime_complete.timestamp()))
    return rows


def idle_parts(runs: list[TrialRun], slots: int) -> IdleParts:
    """Split the idle slot time by where it falls. MLflow does not record which worker ran a trial: each
    run goes to the slot that became free last before it started (a slot never runs two at once); any such
    assignment splits the same total."""
    chains: list[list[TrialRun]] = [[] for _ in range(slots)]
    for run in sorted(runs, key=lambda r: r.start):
        free = [chain for chain in chains if not chain or chain[-1].end <= run.start + 1e-3]
        used = [chain for chain in free if chain]
        chain = max(used, key=lambda c: c[-1].end) if used else (free[0] if free else min(chains, key=lambda c: c[-1].end))
        chain.append(run)
    first = min(run.start for run in runs)
    last = max(run.end for run in runs)
    parts = IdleParts()
    for chain in chains:
        if not chain:
            parts.start_s += last - first
            continue
        parts.start_s += chain[0].start - first
        parts.tail_s += last - chain[-1].end
        for before, after in zip(chain, chain[1:]):
            # Clamped at the run's edges: Optuna's and MLflow's clocks are the same machine's.
            tell = min(max(before.told, before.end), after.start)
            ask = min(max(after.asked, tell), after.start)
            parts.run_end_to_tell_s += tell - before.end
            parts.tell_to_ask_s += ask - tell
            parts.ask_to_run_s += after.start - ask
    return parts


def engines_table(rows: list[EngineRow]) -> str:
    base = next((r for r in rows if r.engine == "tuneflow in-process, 1 slot" and not r.error), None)
    lines = ["| engine | slots | trials | in-study s | trials/min | vs 1 slot | idle slot s | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.error:
            lines.append(f"| {row.engine} | {row.slots} | - | - | - | - | - | {row.wall_s:.1f} ({row.error}) |")
            continue
        family = row.engine.rsplit(",", 1)[0]
        one = next((r for r in rows if r.engine == f"{family}, 1" and not r.error), base)
        ratio = f"{row.per_minute / one.per_minute:.2f}x" if one is not None and one.per_minute else "-"
        lines.append(f"| {row.engine} | {row.slots} | {row.trials} | {row.in_study_s:.1f} | {row.per_minute:.1f} | "
                     f"{ratio} | {row.idle_s:.1f} | {row.wall_s:.1f} |")
    return "\n".join(lines)


def run_engines(names: list[str], trials: int) -> None:
    started = time.perf_counter()
    rows = []
    for name in names:
        print(f"{name}...", file=sys.stderr, flush=True)
        rows.append(engine_row(name, trials))
        print(f"  {rows[-1].per_minute:.1f} trials/min, idle {rows[-1].idle_s:.1f} s {rows[-1].error}",
              file=sys.stderr, flush=True)
    print(f"{datetime.date.today()}; {os.cpu_count()} cores ({platform.machine()}); Python {platform.python_version()}, "
          f"optuna {version('optuna')}; {trials} trials of 2 s (median pruner) per row; "
          f"run took {time.perf_counter() - started:.0f} s\n")
    print(engines_table(rows))
    print()
    print(idle_table(rows))


def idle_table(rows: list[EngineRow]) -> str:
    """Where each row's idle slot time goes (the parts add up to the idle slot s above), and the wall time
    outside the study: the command's start to the first trial, the last trial's end to the command's exit."""
    lines = ["| engine | idle slot s | later first start | between trials: run end to tell | tell to next ask | "
             "ask to run start | tail (nothing left) | start-up s | wind-down s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.parts is None:
            continue
        p = row.parts
        lines.append(f"| {row.engine} | {row.idle_s:.1f} | {p.start_s:.1f} | {p.run_end_to_tell_s:.1f} | "
                     f"{p.tell_to_ask_s:.1f} | {p.ask_to_run_s:.1f} | {p.tail_s:.1f} | {row.startup_s:.1f} | "
                     f"{row.wind_down_s:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--workloads", default="instant,long", help=f"some of {', '.join(WORKLOADS)}")
    parser.add_argument("--storages", default="embedded,postgres")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 trials, 1 and 2 workers, instant, embedded only (no PostgreSQL)")
    parser.add_argument("--engines", default="", help="'all' or names from ENGINES, separated by ;: the engines table instead")
    options = parser.parse_args()
    if options.engines:
        names = list(ENGINES) if options.engines == "all" else options.engines.split(";")
        run_engines(names, 12 if options.trials == 40 else options.trials)
        return
    if options.quick:
        options.trials, options.workers, options.workloads, options.storages = 4, "1,2", "instant", "embedded"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counts = [int(n) for n in options.workers.split(",")]
    workloads = options.workloads.split(",")
    storages = options.storages.split(",")
    started = time.perf_counter()
    rows: list[Row] = []
    cluster, directory = start_cluster() if "postgres" in storages else (None, None)
    try:
        for storage in storages:
            for workload in workloads:
                for n in counts:
                    print(f"{storage} {workload} {n} worker(s)...", file=sys.stderr, flush=True)
                    if storage == "embedded":
                        rows.append(embedded(n, options.trials, WORKLOADS[workload], workload))
                    else:
                        rows.append(on_cluster(cluster, n, options.trials, WORKLOADS[workload], workload))
                    print(f"  {rows[-1].per_minute:.0f} trials/min", file=sys.stderr, flush=True)
    finally:
        if cluster is not None:
            cluster.down()
            shutil.rmtree(directory, ignore_errors=True)
    print(f"{datetime.date.today()}; {os.cpu_count()} cores ({platform.machine()}); Python {platform.python_version()}, "
          f"optuna {version('optuna')}, mlflow {version('mlflow')}, PostgreSQL 15; {options.trials} trials per row; "
          f"run took {time.perf_counter() - started:.0f} s\n")
    print(table(rows))


if __name__ == "__main__":
    main()
