"""Run a strategy: its stages in order, each from the previous stage's finalists file, resuming where a
stopped run left off (a finished stage has its file; an unfinished one resumes its studies, which the
sweeper continues as it continues any study)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneflow.strategy import handoff as files
from tuneflow.strategy.backend import Backend, Objective, ObjectiveBackend, ReportingObjective
from tuneflow.strategy.config import StageConfig, StrategyConfig, strategy_config
from tuneflow.strategy.handoff import Handoff
from tuneflow.strategy.stages import KINDS, Context

log = logging.getLogger("tuneflow")


def strategy_folder(root_dir: str | Path, study: str) -> Path:
    """``<root_dir>/studies/<study>/``: beside the stage studies' own folders (``<study>/<stage>/``)."""
    return Path(root_dir) / "studies" / study


def run_strategy(strategy: StrategyConfig, backend: Backend, folder: Path,
                 on_stage: Any = None) -> Handoff:
    """Every stage of ``strategy`` not finished yet; returns the last stage's handoff.

    ``on_stage(stage, handoff)`` is called after each stage that ran (the sweeper backend nests its MLflow
    run there)."""
    inputs = (files.read(Path(strategy.inputs)) if strategy.inputs
              else Handoff("start", space=backend.default_space()))
    if not inputs.space:
        inputs.space = backend.default_space()
    started = strategy.start_at is None
    for index, stage in enumerate(strategy.stages):
        if not started and stage.name != strategy.start_at:
            continue
        if not started and strategy.inputs is None and index > 0:
            # start_at without inputs: the previous stage's file (a user may have edited or written it).
            inputs = files.read(files.stage_file(folder, strategy.stages[index - 1].name))
        started = True
        path = files.stage_file(folder, stage.name)
        if finished(path):
            log.info(f"stage {stage.name}: finished earlier, read from {path}")
            inputs = files.read(path)
            continue
        log.info(f"stage {stage.name} ({stage.kind}): {len(inputs.finalists)} input(s)")
        inputs = run_stage(strategy, stage, inputs, backend, path, on_stage)
    return inputs


#: Stage kinds one worker runs while the others wait (the repeats: ``tuneflow repeat`` runs each
#: (finalist, seed) pair once, from one process). The other kinds are shared studies every worker runs in.
RUN_ONCE = ("repeat",)


def finished(path: Path) -> bool:
    return path.is_file() and files.read(path).status == "done"


def run_stage(strategy: StrategyConfig, stage: StageConfig, inputs: Handoff, backend: Backend, path: Path,
              on_stage: Any) -> Handoff:
    """Run one stage and write its finalists file once, whatever the number of workers.

    Every worker runs a search, zones or decay stage's studies together (the sweeper shares a study's
    budget among them, and a worker whose share is done waits until the trials running elsewhere end),
    so all of them end the stage on the same finished studies. The first to take the stage lock writes
    the file (and logs it to the strategy run); the others find it written and read it, so every worker
    goes on from the same file. A repeat stage runs whole under the lock: one worker, once."""
    if stage.kind in RUN_ONCE:
        with backend.stage_lock(stage.name):
            if finished(path):
                log.info(f"stage {stage.name}: finished by another worker, read from {path}")
                return files.read(path)
            return write_stage(strategy, stage, run_kind(backend, strategy, stage, inputs), backend, path, on_stage)
    output = run_kind(backend, strategy, stage, inputs)
    with backend.stage_lock(stage.name):
        if finished(path):
            log.info(f"stage {stage.name}: its finalists were written by another worker, read from {path}")
            return files.read(path)
        return write_stage(strategy, stage, output, backend, path, on_stage)


def run_kind(backend: Backend, strategy: StrategyConfig, stage: StageConfig, inputs: Handoff) -> Handoff:
    return KINDS[stage.kind](Context(backend, strategy.seed), stage, inputs)


def write_stage(strategy: StrategyConfig, stage: StageConfig, output: Handoff, backend: Backend, path: Path,
                on_stage: Any) -> Handoff:
    files.write(path, output, header_of(strategy, stage, backend.study))
    if on_stage is not None:
        on_stage(stage, output)
    best = output.best
    if best is not None:
        log.info(f"stage {stage.name}: best {best['value']:.6g} {best['params']}; finalists in {path}")
    # The next stage reads the file back: what it starts from is what a user would see and edit.
    return files.read(path)


def header_of(strategy: StrategyConfig, stage: StageConfig, study: str) -> str:
    return (f"Finalists of stage {stage.name!r} ({stage.kind}) of strategy {strategy.name!r}, study {study!r}.\n"
            "The next stage starts from this file: edit it (remove a finalist, change a value) before it runs,\n"
            "or start a stage from it: +strategy.start_at=STAGE +strategy.inputs=THIS_FILE.\n"
            "Delete it (and the stage's studies) to run the stage again.")


def run_with_objective(objective: Objective | ReportingObjective, strategy: StrategyConfig | Mapping[str, Any],
                       space: Mapping[str, str], folder: Path, *, direction: str = "minimize",
                       defaults: Mapping[str, Any] | None = None, storage: Any = None, study: str = "strategy",
                       reports: bool = False) -> tuple[Handoff, ObjectiveBackend]:
    """A strategy on a Python objective (``objective(params, overrides, seed) -> value``): the same stages
    as ``python -m tuneflow ... +strategy=NAME``, without Hydra or MLflow. For benchmarks and replays.

    ``reports=True``: ``objective(params, overrides, seed, trial)`` reports each epoch to the Optuna trial
    and each stage's pruner prunes it, as in the sweeper (``tuneflow.strategy.backend.ReportingObjective``)."""
    config = strategy if isinstance(strategy, StrategyConfig) else strategy_config(strategy)
    backend = ObjectiveBackend(objective, space, study=study, direction=direction, defaults=defaults,
                               storage=storage, reports=reports)
    return run_strategy(config, backend, folder), backend


def calls_per_stage(backend: ObjectiveBackend, stages: Sequence[StageConfig]) -> dict[str, int]:
    counts = {stage.name: 0 for stage in stages}
    for name, _, _, _ in backend.calls:
        stage = name.split("/")[1]
        counts[stage] = counts.get(stage, 0) + 1
    return counts
