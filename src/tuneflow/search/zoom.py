"""Zoom in: start a study from the promising region of an earlier one.

The seed teams screened many configurations cheaply (``mode=fast``), then spent full runs only where the
screen pointed. ``hydra.sweeper.zoom_from=<study>`` does that with Optuna's own pieces:

1. the earlier study's ``top_k`` completed trials are enqueued (``Study.enqueue_trial``), so the new study
   first re-runs the finalists under its own settings (say, in full mode);
2. every numeric parameter's range shrinks to the span of those finalists, widened by ``margin`` of that
   span on each side (on the log scale for log parameters) and kept inside the original bounds; a choice
   keeps the values the finalists used. The sampler then searches this smaller space.

Pure functions of distributions and trials: the sweeper loads the earlier study and applies them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from tuneflow.errors import ConfigError


def top_trials(trials: Sequence[FrozenTrial], direction: str, k: int) -> list[FrozenTrial]:
    """The ``k`` best completed trials, best first."""
    if k < 1:
        raise ConfigError(f"hydra.sweeper.zoom_top_k is {k}, but must be at least 1")
    completed = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(completed, key=lambda t: t.value, reverse=direction == "maximize")[:k]  # type: ignore[arg-type, return-value]


def narrow(
    distributions: Mapping[str, BaseDistribution], finalists: Sequence[FrozenTrial], margin: float = 0.5
) -> dict[str, BaseDistribution]:
    """The search space around ``finalists``; parameters they do not share keep their distribution."""
    if margin < 0:
        raise ConfigError(f"hydra.sweeper.zoom_margin is {margin}, but must be >= 0")
    zoomed: dict[str, BaseDistribution] = {}
    for name, distribution in distributions.items():
        values = [t.params[name] for t in finalists if name in t.params]
        if not values:
            zoomed[name] = distribution
        elif isinstance(distribution, CategoricalDistribution):
            kept = tuple(c for c in distribution.choices if c in values)
            zoomed[name] = CategoricalDistribution(kept) if kept else distribution
        elif isinstance(distribution, (FloatDistribution, IntDistribution)):
            zoomed[name] = _narrow_numeric(distribution, values, margin)
        else:
            zoomed[name] = distribution
    return zoomed


def _narrow_numeric(
    distribution: FloatDistribution | IntDistribution, values: Sequence[Any], margin: float
) -> FloatDistribution | IntDistribution:
    to_scale, from_scale = (math.log, math.exp) if distribution.log else (float, float)
    low_all, high_all = to_scale(distribution.low), to_scale(distribution.high)
    low, high = to_scale(min(values)), to_scale(max(values))
    # Finalists that agree on one value still get a neighbourhood: a tenth of the original range.
    span = (high - low) or (high_all - low_all) / 10
    low = max(low_all, low - margin * span)
    high = min(high_all, high + margin * span)
    new_low, new_high = from_scale(low), from_scale(high)
    step = distribution.step
    if step is not None:
        new_low, new_high = _on_grid(distribution.low, step, new_low, new_high)
    new_low, new_high = max(distribution.low, new_low), min(distribution.high, new_high)
    if isinstance(distribution, IntDistribution):
        return IntDistribution(int(new_low), int(new_high), log=distribution.log, step=distribution.step)
    return FloatDistribution(new_low, new_high, log=distribution.log, step=step)


def _on_grid(origin: float, step: float, low: float, high: float) -> tuple[float, float]:
    """Widen ``[low, high]`` to the nearest points ``origin + i * step`` outside it."""
    first = origin + math.floor((low - origin) / step + 1e-9) * step
    last = origin + math.ceil((high - origin) / step - 1e-9) * step
    return first, last


def enqueue_finalists(study: Any, finalists: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]) -> int:
    """Queue the finalists' params (those the new space has) as the study's next trials, once each."""
    queued = 0
    for trial in finalists:
        params = {name: value for name, value in trial.params.items() if name in distributions}
        study.enqueue_trial(params, user_attrs={"tuneflow_zoom_of_trial": trial.number}, skip_if_exists=True)
        queued += 1
    return queued
