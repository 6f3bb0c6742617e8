"""Search spaces as the sweeper reads them (Hydra's sweep syntax) and as Optuna holds them.

A stage hands the next one a space (in its finalists file, where a user can read and edit it) and asks
the sweeper for a narrowed one: both go through Hydra's own grammar (``tuneflow.search.space``), so the
text a user edits means exactly what it means on the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.search import space as search_space


def sweep_syntax(distribution: BaseDistribution) -> str:
    """An Optuna distribution as the Hydra sweep that ``tuneflow.search.space`` reads back to it."""
    if isinstance(distribution, CategoricalDistribution):
        return f"choice({', '.join(search_space.override_value(c) for c in distribution.choices)})"
    if isinstance(distribution, IntDistribution):
        if distribution.step != 1:
            return f"range({distribution.low}, {distribution.high + 1}, {distribution.step})"
        text = f"int(interval({distribution.low}, {distribution.high}))"
        return f"tag(log, {text})" if distribution.log else text
    if isinstance(distribution, FloatDistribution):
        if distribution.step is not None:
            count = round((distribution.high - distribution.low) / distribution.step) + 1
            values = [distribution.low + i * distribution.step for i in range(count)]
            return f"choice({', '.join(repr(float(v)) for v in values)})"
        text = f"interval({distribution.low!r}, {distribution.high!r})"
        return f"tag(log, {text})" if distribution.log else text
    raise TypeError(f"no sweep syntax for {type(distribution).__name__}")


def to_syntax(distributions: Mapping[str, BaseDistribution]) -> dict[str, str]:
    return {name: sweep_syntax(distribution) for name, distribution in distributions.items()}


def parse(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """Sweep syntax -> distributions (names are the search space's: ``lr``, ``data.history_days``);
    a fixed value in the space is no dimension and is left out."""
    distributions, _ = search_space.parse_search_space(space, "params")
    return distributions


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a point of ``distribution`` (an enqueued trial must be)."""
    try:
        distribution.to_internal_repr(value)
    except (ValueError, TypeError):
        return False
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        return bool(distribution.low <= value <= distribution.high)
    return True
