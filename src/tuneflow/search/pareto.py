"""A multi-objective study's answer is a Pareto set (Optuna's ``study.best_trials``); this module picks
one of its trials when one is wanted (``+best`` without a trial number) and lays the set out for files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial


def knee(pareto: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> FrozenTrial | None:
    """The knee of a Pareto set: the trial nearest the utopia point in min-max normalised objective space.

    Each objective is rescaled to [0, 1] over the Pareto set, oriented so that 0 is its best value (the
    smallest when minimised, the largest when maximised). The utopia point, every objective at its best,
    is then the origin; the knee is the trial with the smallest Euclidean distance to it: the balanced
    compromise, rather than an extreme that wins one objective and gives up the others. An objective
    on which every trial of the set is equal counts 0 for all. Ties go to the lowest trial number.
    None for an empty set.
    """
    if not pareto:
        return None
    values = [list(t.values) for t in pareto]
    scaled = [[0.0] * len(directions) for _ in pareto]
    for i, direction in enumerate(directions):
        column = [v[i] for v in values]
        low, high = min(column), max(column)
        for row, value in zip(scaled, column):
            share = 0.0 if high == low else (value - low) / (high - low)
            row[i] = share if direction == StudyDirection.MINIMIZE else 1.0 - share
    distances = [math.hypot(*row) for row in scaled]
    return min(zip(distances, [t.number for t in pareto], pareto))[2]


def pareto_set(study: optuna.Study) -> list[FrozenTrial]:
    """The study's Pareto-optimal complete trials (Optuna's ``best_trials``), by trial number."""
    return sorted(study.best_trials, key=lambda t: t.number)


def solutions(pareto: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """The Pareto set as Hydra's Optuna sweeper writes it to ``optimization_results.yaml`` (``params``
    and ``values`` of each), with each trial's number."""
    return [{"number": t.number, "params": dict(t.params), "values": list(t.values)} for t in pareto]


def objective_names(study: optuna.Study) -> list[str]:
    """The objectives' names as the sweeper set them (``study.metric_names``), else objective_0, ..."""
    return list(study.metric_names or [f"objective_{i}" for i in range(len(study.directions))])


def describe(study: optuna.Study) -> list[str]:
    """A multi-objective study's Pareto set, one line per trial, the knee marked."""
    names = objective_names(study)
    front = pareto_set(study)
    chosen = knee(front, study.directions)
    directions = ", ".join(f"{n} {d.name.lower()}d" for n, d in zip(names, study.directions))
    lines = [f"Pareto set: {len(front)} trial(s) ({directions})"]
    for trial in front:
        values = ", ".join(f"{name}={value:.6g}" for name, value in zip(names, trial.values))
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        lines.append(f"  #{trial.number}: {values} ({params})" + ("  <- knee" if trial is chosen else ""))
    return lines
