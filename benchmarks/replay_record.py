"""Record the learning curves the replay benchmark (replay.py) plays back: the tabular-benchmark method of
the HPO literature (NAS-Bench, HPOBench, LCBench): train many configurations once, keep every epoch's
validation metric and time, then compare search strategies against the table at no training cost.

For each built-in architecture and mode: ``--configs`` configurations drawn by Optuna's RandomSampler
(seed ``SEED``) from the architecture's default search space (conf/search_space/), each trained by
``tuneflow.trial.arch_task.train_folds`` (the trainer, data, date ranges and seed a trial uses), with a
reporter that records instead of reporting to a study: per date range and epoch, the objective and the
seconds since the previous report (the first includes building the model). The config is composed once
per architecture with Hydra (as ``python -m tuneflow +arch=NAME`` composes it); each configuration's
sampled values are set on a copy, which is what composing with ``params.NAME=value`` overrides gives.

Output, one gzipped CSV per architecture and mode under benchmarks/replay_tables/ (long format, one row
per (config, range, epoch); the columns ``p.NAME`` hold the configuration): see replay.py for how it is read.
Recording is resumable (configurations already in the table are skipped) and appends as it goes, so a run
cut short keeps what it recorded.

Usage: nice -n 10 python benchmarks/replay_record.py --tables mlp/full,lightgbm/full --configs 300
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from _common import progress

TABLES = Path(__file__).resolve().parent / "replay_tables"
#: The RandomSampler's seed: the same configurations every time the table is recorded.
SEED = 20261203
#: Cheapest first, so that a recording cut short by the clock loses the most expensive table.
ALL_TABLES = ("quadratic/full", "lightgbm/full", "mlp/full", "lstm_attention/fast", "cnn/full",
              "lstm_attention/full")
#: The day the tables were recorded: time-series date ranges are drawn per calendar month of data.as_of
#: (tuneflow.data.timeseries.automatic_date_ranges), so it is pinned for a re-recording or a check to
#: validate on the same ranges as the table.
AS_OF = "2026-12-03"
COLUMNS = ("config", "range", "range_name", "step", "value", "seconds", "final", "state")


def table_path(name: str) -> Path:
    arch, mode = name.split("/")
    return TABLES / f"{arch}_{mode}.csv.gz"


def configurations(base: Any, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``n`` configurations from the arch's default space, in RandomSampler(SEED)'s order."""
    from omegaconf import OmegaConf

    from tuneflow.search.space import PARAMS_NODE, parse_search_space

    distributions, fixed = parse_search_space(
        OmegaConf.to_container(base.hydra.sweeper.params, resolve=True), PARAMS_NODE)  # type: ignore[arg-type]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    return [study.ask(distributions).params for _ in range(n)], fixed


def recorder_class() -> type:
    from tuneflow.trial.arch_task import FoldReporter

    class Recorder(FoldReporter):
        """The trainer's ``report`` hook: keeps (range, step, value, seconds since the previous report)
        where a trial's hook reports to its study."""

        def __init__(self, objective: str) -> None:
            super().__init__(objective)
            self.rows: list[tuple[int, str, int, float, float]] = []
            self.fold = 0
            self.fold_name = ""
            self.last = time.perf_counter()

        def start_fold(self, index: int, name: str, steps_per_fold: int, n_folds: int) -> None:
            super().start_fold(index, name, steps_per_fold, n_folds)
            self.fold, self.fold_name, self.last = index, name, time.perf_counter()

        def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
            now = time.perf_counter()
            self.rows.append((self.fold, self.fold_name, step, float(metrics[self.objective]), now - self.last))
            self.last = now

    return Recorder


def record(name: str, n: int) -> None:
    import torch
    from omegaconf import OmegaConf, open_dict

    from tuneflow.analysis.recompose import compose
    from tuneflow.search.space import PARAMS_NODE, config_path
    from tuneflow.trial.arch_task import train_folds

    torch.set_num_threads(1)
    arch, mode = name.split("/")
    base = compose([f"+arch={arch}", f"mode={mode}"], with_hydra=True)
    configs, fixed = configurations(base, n)
    cfg = compose([f"+arch={arch}", f"mode={mode}", *(f"{k}={v}" for k, v in fixed.items())])
    if cfg.get("data") is not None and cfg.data.get("kind") == "timeseries":
        with open_dict(cfg):
            cfg.data.as_of = AS_OF
    # Resolved once: every configuration is validated on the same date ranges (as a study pins them).
    resolved = OmegaConf.to_container(cfg, resolve=True)
    path = table_path(name)
    done = set()
    if path.exists():
        with gzip.open(path, "rt") as f:
            done = {int(row["config"]) for row in csv.DictReader(f)}
    names = sorted(configs[0])
    TABLES.mkdir(exist_ok=True)
    new = not path.exists()
    meta = {"seed": SEED, "sampler": "optuna.samplers.RandomSampler", "configs": n, "arch": arch, "mode": mode,
            "objective": str(cfg.arch.objective), "direction": str(cfg.arch.direction),
            "as_of": AS_OF, "fixed": fixed}
    (TABLES / f"{arch}_{mode}.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    Recorder = recorder_class()  # noqa: N806
    started = time.perf_counter()
    for index, params in enumerate(configs):
        if index in done:
            continue
        trial_cfg = OmegaConf.create(resolved)
        for key, value in params.items():
            OmegaConf.update(trial_cfg, config_path(key, PARAMS_NODE), value)
        recorder = Recorder(str(cfg.arch.objective))
        try:
            results = train_folds(trial_cfg, recorder)  # type: ignore[arg-type]
            final, state = results.objective, "COMPLETE"
            finals = results.values
        except Exception as error:  # noqa: BLE001 - a diverging configuration is a failed trial, kept as such
            final, state, finals = math.nan, "FAIL", []
            progress(f"{name} config {index} failed: {error}")
        rows = [{"config": index, "range": fold, "range_name": fold_name, "step": step, "value": value,
                 "seconds": round(seconds, 5),
                 # The range's final value (the best epoch's when early stopping restored it) on its last
                 # row, the trial's objective over the ranges on every row.
                 "final": final, "state": state,
                 **{f"p.{k}": params[k] for k in names}}
                for fold, fold_name, step, value, seconds in recorder.rows]
        for row in rows:
            row["range_final"] = finals[row["range"]] if len(finals) > row["range"] else math.nan
        with gzip.open(path, "at", newline="") as f:  # appended gzip members read back as one file
            writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "range_final", *(f"p.{k}" for k in names)])
            if new:
                writer.writeheader()
                new = False
            writer.writerows(rows)
        if index % 10 == 9:
            progress(f"{name}: {index + 1}/{n} configs, {time.perf_counter() - started:.0f} s")
    progress(f"{name}: done, {time.perf_counter() - started:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default=",".join(ALL_TABLES), help="comma-separated arch/mode")
    parser.add_argument("--configs", type=int, default=300)
    args = parser.parse_args()
    for name in args.tables.split(","):
        record(name, args.configs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
