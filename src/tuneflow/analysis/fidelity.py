"""Does ``mode=fast`` rank configurations the way ``mode=full`` does?

``python -m tuneflow fidelity +arch=lstm_attention --configs 8 [--seed 0] [hydra overrides...]`` draws
``--configs`` configurations from the architecture's default search space (Optuna's RandomSampler,
seeded), trains each in both modes, and reports the Spearman rank correlation of the objective between
the two: near 1, screening with the fast mode picks the configurations a full run would pick.

The table and the correlation are printed and recorded as one MLflow run in experiment ``fidelity``, in
the same store as the studies (params arch, K, seed; metrics spearman, p_value, seconds_fast,
seconds_full; the table as ``fidelity.csv``). Trainings are not tracked one by one.

With ``--reseed`` every configuration is also trained in mode=full with another training seed, and the
Spearman of full mode against itself is reported (``spearman_full_vs_reseeded``): where full-mode scores
of good configurations lie within their own seed noise, no cheap proxy can rank them, and this says so.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tuneflow.analysis.recompose import compose
from tuneflow.errors import ConfigError, TuneflowError

EXIT_USAGE = 2
MODES = ("fast", "full")
#: With ``--reseed``: mode=full again with another training seed, the noise ceiling of the check.
RESEEDED = "full_reseeded"
EXPERIMENT = "fidelity"


@dataclass
class Measurement:
    """One configuration trained in one mode."""

    value: float = math.nan
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Row:
    """One sampled configuration and how it fared in each mode."""

    index: int
    params: dict[str, Any]
    results: dict[str, Measurement] = field(default_factory=dict)


@dataclass
class Report:
    arch: str
    objective: str
    direction: str
    seed: int
    rows: list[Row]
    spearman: float
    p_value: float
    #: Configurations trained without error in both modes (the correlation is over these).
    n_compared: int
    #: Spearman of mode=full against itself with another training seed (``--reseed``), else NaN: fast mode
    #: cannot be expected to rank configurations more consistently than full mode ranks them twice.
    ceiling: float = math.nan

    def seconds(self, mode: str) -> float:
        return sum(row.results[mode].seconds for row in self.rows)


def sample_configurations(space: Mapping[str, Any], k: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``k`` points of a search space (Hydra sweep syntax), drawn by a seeded RandomSampler, and the
    space's fixed overrides."""
    import optuna

    from tuneflow.search.space import PARAMS_NODE, parse_search_space

    distributions, fixed = parse_search_space(space, PARAMS_NODE)
    if not distributions:
        raise ConfigError("the architecture's search space is empty; nothing to sample")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask(distributions).params for _ in range(k)], fixed


def build_configs(
    overrides: Sequence[str], k: int, seed: int, reseed: bool = False
) -> tuple[DictConfig, list[Row], dict[str, list[DictConfig]]]:
    """Compose every training config before any training, so a bad override fails at once."""
    from tuneflow.search.space import PARAMS_NODE, to_overrides

    base = compose(["mode=full", *overrides], with_hydra=True)
    if "arch" not in base:
        from tuneflow.trial.arch_task import available_archs

        raise ConfigError(f"no architecture chosen: add +arch=NAME, one of {', '.join(available_archs())}")
    space = OmegaConf.to_container(base.hydra.sweeper.params, resolve=True)
    points, fixed = sample_configurations(space, k, seed)  # type: ignore[arg-type]
    rows = [Row(index, params) for index, params in enumerate(points)]
    fixed_overrides = [f"{path}={value}" for path, value in fixed.items()]
    configs = {
        mode: [compose([f"mode={mode}", *overrides, *fixed_overrides, *to_overrides(row.params, PARAMS_NODE)]) for row in rows]
        for mode in MODES
    }
    if reseed:
        another = f"seed={int(base.seed) + 1}"
        configs[RESEEDED] = [compose(["mode=full", *overrides, *fixed_overrides, *to_overrides(row.params, PARAMS_NODE), another])
                             for row in rows]
    return base, rows, configs


def train_once(cfg: DictConfig) -> Measurement:
    """Train one configuration on every fold of its mode; the objective is the mean over folds."""
    from tuneflow.trial.arch_task import train_folds

    started = time.perf_counter()
    try:
        results = train_folds(cfg)
        value = results.objective
    except (TuneflowError, ValueError, RuntimeError) as error:  # one bad configuration is a row, not a crash
        return Measurement(seconds=time.perf_counter() - started, error=f"{type(error).__name__}: {error}")
    return Measurement(value=value, seconds=time.perf_counter() - started)


def correlate(rows: Sequence[Row], modes: tuple[str, str] = MODES) -> tuple[float, float, int]:
    """Spearman's rho and its p-value over the rows trained without error in both ``modes``."""
    from scipy.stats import spearmanr

    pairs = [(r.results[modes[0]].value, r.results[modes[1]].value) for r in rows if _ok(r, modes)]
    if len(pairs) < 3:
        return math.nan, math.nan, len(pairs)
    fast, full = zip(*pairs)
    result = spearmanr(fast, full)
    return float(result.statistic), float(result.pvalue), len(pairs)


def _ok(row: Row, modes: Sequence[str] = MODES) -> bool:
    return all(row.results[m].error is None and math.isfinite(row.results[m].value) for m in modes)


def ranks(rows: Sequence[Row], mode: str, direction: str) -> dict[int, int]:
    """Rank 1 = the best configuration in ``mode`` (rows that failed in either mode are not ranked)."""
    ok = [r for r in rows if _ok(r)]
    ordered = sorted(ok, key=lambda r: r.results[mode].value, reverse=direction == "maximize")
    return {row.index: position + 1 for position, row in enumerate(ordered)}


def table(report: Report) -> list[dict[str, Any]]:
    rank = {mode: ranks(report.rows, mode, report.direction) for mode in MODES}
    lines = []
    for row in report.rows:
        line: dict[str, Any] = {"config": row.index}
        for mode in MODES:
            result = row.results[mode]
            line[f"{mode}_{report.objective}"] = result.value
            line[f"{mode}_rank"] = rank[mode].get(row.index, "")
            line[f"{mode}_seconds"] = round(result.seconds, 2)
        line["params"] = " ".join(f"{k}={_short(v)}" for k, v in row.params.items())
        line["error"] = "; ".join(f"{m}: {row.results[m].error}" for m in MODES if row.results[m].error)
        lines.append(line)
    return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_table(lines: Sequence[Mapping[str, Any]], objective: str) -> str:
    header = f"{'config':>6}  {'fast ' + objective:>14} {'rank':>4}  {'full ' + objective:>14} {'rank':>4}  params"
    out = [header]
    for line in lines:
        out.append(
            f"{line['config']:>6}  {line[f'fast_{objective}']:>14.5g} {line['fast_rank']!s:>4}  "
            f"{line[f'full_{objective}']:>14.5g} {line['full_rank']!s:>4}  {line['params']}"
            + (f"  [{line['error']}]" if line["error"] else "")
        )
    return "\n".join(out)


def log_to_mlflow(report: Report, lines: Sequence[Mapping[str, Any]], base: DictConfig, overrides: Sequence[str]) -> str:
    """One run in experiment ``fidelity`` of the study store under ``root_dir``."""
    from tuneflow.tracking import runs as tracking

    root_dir = str(base.root_dir)
    client = tracking.client_for(tracking.resolve_tracking_uri(OmegaConf.select(base, "tracking.uri"), root_dir))
    experiment_id = tracking.experiment_id_for(
        client, EXPERIMENT, tracking.default_artifact_location(client.tracking_uri, root_dir)
    )
    run_id = client.create_run(
        experiment_id,
        run_name=f"{report.arch}-fast-vs-full",
        tags={tracking.ROLE_TAG: "fidelity", tracking.ARCH_TAG: report.arch},
    ).info.run_id
    params = {"arch": report.arch, "K": len(report.rows), "seed": report.seed, "objective": report.objective,
              "overrides": " ".join(overrides)}
    metrics = [("spearman", report.spearman, 0), ("p_value", report.p_value, 0),
               ("seconds_fast", report.seconds("fast"), 0), ("seconds_full", report.seconds("full"), 0),
               ("n_compared", float(report.n_compared), 0)]
    if not math.isnan(report.ceiling):
        metrics.append(("spearman_full_vs_reseeded", report.ceiling, 0))
    tracking.log_values(client, run_id, params=params, metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="tuneflow-fidelity-") as tmp:
        from tuneflow.tracking.trials_csv import write_table

        path = write_table(lines, Path(tmp) / "fidelity.csv")
        client.log_artifact(run_id, str(path))
    tracking.terminate(client, run_id, "COMPLETE")
    return str(run_id)


def measure(
    overrides: Sequence[str], k: int, seed: int, progress: Any = print, reseed: bool = False
) -> tuple[Report, DictConfig]:
    from tuneflow.trial.arch_task import load_trainer

    base, rows, configs = build_configs(overrides, k, seed, reseed)
    load_trainer(str(base.arch.trainer))  # imported before the clock starts: not part of any timing
    for row in rows:
        for mode in configs:
            row.results[mode] = result = train_once(configs[mode][row.index])
            progress(f"config {row.index + 1}/{k} {mode}: {base.arch.objective}={result.value:.5g} "
                     f"in {result.seconds:.1f}s" + (f" ({result.error})" if result.error else ""))
    spearman, p_value, n_compared = correlate(rows)
    report = Report(str(base.arch.name), str(base.arch.objective), str(base.arch.direction), seed, rows,
                    spearman, p_value, n_compared)
    if reseed:
        report.ceiling = correlate(rows, ("full", RESEEDED))[0]
    return report, base


def parse_arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tuneflow fidelity",
        description="Rank correlation of mode=fast and mode=full over sampled configurations.",
        epilog="Other arguments are Hydra overrides, e.g. +arch=lstm_attention params.epochs=2.",
    )
    parser.add_argument("--configs", type=int, default=8, help="configurations to sample (K, at least 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RandomSampler that draws them")
    parser.add_argument("--reseed", action="store_true",
                        help="also train mode=full with another training seed: full mode's agreement with "
                             "itself, the most the fast mode can be expected to reach")
    args, overrides = parser.parse_known_args(list(argv))
    if args.configs < 3:
        raise ConfigError(f"--configs is {args.configs}, but a rank correlation needs at least 3 configurations")
    for override in overrides:
        if override.split("=", 1)[0].lstrip("+~") == "mode":
            raise ConfigError(f"{override}: fidelity trains every configuration in both modes; drop it")
        if override.startswith("-"):
            raise ConfigError(f"unknown option {override}; see python -m tuneflow fidelity --help")
    return args, overrides


def main(argv: Sequence[str] | None = None) -> int:
    from tuneflow.console import one_line_error, quiet_library_warnings

    quiet_library_warnings()
    try:
        args, overrides = parse_arguments(sys.argv[1:] if argv is None else argv)
        report, base = measure(overrides, args.configs, args.seed, reseed=args.reseed)
    except BaseException as error:  # noqa: BLE001 - fixable errors become one line, bugs keep their traceback
        message = None if isinstance(error, (KeyboardInterrupt, SystemExit)) else one_line_error(error)
        if message is None:
            raise
        print(f"tuneflow: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    lines = table(report)
    print(format_table(lines, report.objective))
    fast, full = report.seconds("fast"), report.seconds("full")
    print(f"spearman={report.spearman:.3f} (p={report.p_value:.3g}) over {report.n_compared} of "
          f"{len(report.rows)} configurations of {report.arch}; "
          f"fast {fast:.1f}s, full {full:.1f}s ({full / fast if fast else math.nan:.1f}x)")
    if not math.isnan(report.ceiling):
        print(f"noise ceiling: mode=full against itself with another training seed, spearman={report.ceiling:.3f}")
    run_id = log_to_mlflow(report, lines, base, overrides)
    print(f"MLflow run {run_id} in experiment {EXPERIMENT!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
