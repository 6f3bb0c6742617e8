"""The end of a sweep: the summary lines, the parent run's best and counts, optimization_results.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from tuneflow.search import pareto
from tuneflow.search.failure_aware import describe_failures
from tuneflow.storage.study import RUN_ID_ATTR, best_trial_or_none, count_trials
from tuneflow.tracking import runs as tracking


def summary_lines(study: optuna.Study, name: str, objective: str | None, parent_run_id: str, csv_path: Path) -> list[str]:
    """What the console shows once the study stops: counts, where trials failed, the best trial, where to look."""
    best = best_trial_or_none(study)
    counts = count_trials(study)
    lines = [f"study {name!r}: {counts['finished']} finished, {counts['failed']} failed"]
    failures = describe_failures(study.get_trials(deepcopy=False))
    if failures:
        lines.append(f"where trials failed: {failures}")
    if best is not None:
        params = ", ".join(f"{k}={v}" for k, v in best.params.items())
        lines.append(f"best trial #{best.number}: {objective or 'objective'}={best.value:.6g} ({params})")
    if len(study.directions) > 1:
        lines.extend(pareto.describe(study))
    lines.append(f"MLflow parent run: {parent_run_id}")
    lines.append(f"results CSV: {csv_path}")
    return lines


def save_optimization_results(study: optuna.Study, sweep_dir: Path) -> Path | None:
    """``optimization_results.yaml`` in the sweep folder, as Hydra's Optuna sweeper writes it (scripts
    written for it read ``best_params`` and ``best_value`` there; for several objectives ``solutions``,
    the Pareto set's ``params`` and ``values``). Nothing before a trial completes."""
    if len(study.directions) > 1:
        front = pareto.pareto_set(study)
        if not front:
            return None
        knee = pareto.knee(front, study.directions)
        results: dict[str, Any] = {"name": "optuna", "solutions": pareto.solutions(front),
                                   "knee_trial": None if knee is None else knee.number}
    else:
        best = best_trial_or_none(study)
        if best is None:
            return None
        results = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value,
                   "best_trial": best.number}
    path = sweep_dir / "optimization_results.yaml"
    OmegaConf.save(OmegaConf.create(results), path)
    return path


def summarise_to_parent(client: Any, parent_run_id: str, study: optuna.Study) -> None:
    """The parent run shows the study's best so far and its counts."""
    best = best_trial_or_none(study)
    counts = count_trials(study)
    metrics = [(f"n_{state}", float(n), 0) for state, n in counts.items()]
    tags: dict[str, Any] = {}
    if best is not None and best.value is not None:
        metrics.append(("best_value", float(best.value), 0))
        tags = {"tuneflow.best_trial": best.number, "tuneflow.best_run_id": best.user_attrs.get(RUN_ID_ATTR, "")}
    elif len(study.directions) > 1:
        front = pareto.pareto_set(study)
        metrics.append(("n_pareto", float(len(front)), 0))
        if front:
            tags = {"tuneflow.pareto_trials": ",".join(str(t.number) for t in front)}
    tracking.log_values(client, parent_run_id, metrics=metrics, tags=tags)
