"""Zones: finalists grouped by where they lie, so two good regions far apart are refined separately.

``tuneflow.search.zoom.narrow`` draws one box around all finalists: two optima far apart become one box
holding the bad land between them. Here the finalists are first split into zones, and each zone gets its
own box (``zoom.narrow`` on the zone's members alone).

Distance: every numeric parameter is mapped to [0, 1] over its search range (on the log scale for a log
parameter, as the sampler sees it); a categorical one counts 0 when equal and 1 when not. The distance is
the Euclidean one divided by sqrt(number of parameters), so a threshold means the same share of the space
whatever its dimension.

Grouping: single linkage with a distance threshold (``scipy.cluster.hierarchy``): two finalists share a
zone when a chain of finalists, each within ``threshold`` of the next, joins them. Single linkage rather
than k-means or Ward: the number of zones is not known beforehand (the threshold decides it), and a
valley stretched along one direction (a learning rate that trades against batch size) stays one zone
instead of being cut in pieces of equal size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.errors import ConfigError


@dataclass
class Zone:
    """Finalists near each other, best first, and the box the next stage searches for them."""

    number: int
    members: list[dict[str, Any]]
    space: dict[str, BaseDistribution]

    @property
    def best(self) -> dict[str, Any]:
        return self.members[0]


def unit_coordinates(params: Mapping[str, Any], space: Mapping[str, BaseDistribution]) -> list[float]:
    """A point's numeric coordinates in [0, 1] (log scale where the parameter is log); categoricals
    are handled in ``distance``."""
    coordinates = []
    for name, distribution in space.items():
        if isinstance(distribution, (FloatDistribution, IntDistribution)) and name in params:
            low, high, value = float(distribution.low), float(distribution.high), float(params[name])
            if distribution.log:
                low, high, value = math.log(low), math.log(high), math.log(value)
            coordinates.append(0.0 if high == low else (value - low) / (high - low))
    return coordinates


def distance(a: Mapping[str, Any], b: Mapping[str, Any], space: Mapping[str, BaseDistribution]) -> float:
    """Normalised distance of two points of ``space``: 0 (same) .. 1 (opposite corners)."""
    if not space:
        return 0.0
    numeric = sum((x - y) ** 2 for x, y in zip(unit_coordinates(a, space), unit_coordinates(b, space)))
    categorical = sum(1.0 for name, d in space.items()
                      if isinstance(d, CategoricalDistribution) and a.get(name) != b.get(name))
    return math.sqrt((numeric + categorical) / len(space))


def group(points: Sequence[Mapping[str, Any]], space: Mapping[str, BaseDistribution], threshold: float) -> list[int]:
    """Zone label (0, 1, ...) of each point, by single linkage at ``threshold``; zones are numbered in
    the order of their first point (pass points best first: zone 0 holds the best)."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"strategy: zones threshold is {threshold}, but must be in (0, 1]")
    if len(points) < 2:
        return [0] * len(points)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(points)
    matrix = [[distance(points[i], points[j], space) if i != j else 0.0 for j in range(n)] for i in range(n)]
    tree = linkage(squareform(matrix, checks=False), method="single")
    raw = fcluster(tree, t=threshold, criterion="distance")
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in raw]


def zones_of(
    finalists: Sequence[Mapping[str, Any]],
    space: Mapping[str, BaseDistribution],
    threshold: float,
    margin: float = 0.5,
    max_zones: int | None = None,
) -> list[Zone]:
    """The finalists (``{"params": ..., "value": ...}``, best first) as zones, each with its own narrowed
    space (``zoom.narrow`` around the zone's members); at most ``max_zones``, the best first."""
    from optuna.trial import create_trial

    from tuneflow.search import zoom

    labels = group([f["params"] for f in finalists], space, threshold)
    members: dict[int, list[dict[str, Any]]] = {}
    for label, finalist in zip(labels, finalists):
        members.setdefault(label, []).append(dict(finalist))
    zones = []
    for number, (_, group_members) in enumerate(sorted(members.items())):
        trials = [create_trial(params={k: v for k, v in m["params"].items() if k in space},
                               distributions={k: space[k] for k in m["params"] if k in space}, value=0.0)
                  for m in group_members]
        zones.append(Zone(number, group_members, zoom.narrow(space, trials, margin)))
    return zones[:max_zones] if max_zones else zones


def box_around(point: Mapping[str, Any], space: Mapping[str, BaseDistribution], half_width: float) -> dict[str, BaseDistribution]:
    """The box centred on ``point``: each numeric range ``half_width`` of its length (on the log scale for
    a log parameter) either side, inside the original bounds; a choice keeps ``point``'s value. The Habr
    article's "interval around the point": with a coarse grid of ``n`` parts before it, ``1 / (2 n)`` reaches
    half-way to the neighbouring grid points, where the grid's best point's basin ends."""
    if not 0 < half_width <= 1:
        raise ConfigError(f"strategy: around_best is {half_width}, but must be in (0, 1]")
    box: dict[str, BaseDistribution] = {}
    for name, distribution in space.items():
        value = point.get(name)
        if value is None:
            box[name] = distribution
        elif isinstance(distribution, CategoricalDistribution):
            box[name] = CategoricalDistribution((value,))
        elif isinstance(distribution, (FloatDistribution, IntDistribution)):
            to, back = (math.log, math.exp) if distribution.log else (float, float)
            low, high = to(distribution.low), to(distribution.high)
            reach = half_width * (high - low)
            new_low = max(distribution.low, back(to(value) - reach))
            new_high = min(distribution.high, back(to(value) + reach))
            if isinstance(distribution, IntDistribution):
                box[name] = IntDistribution(math.floor(new_low), math.ceil(new_high), log=distribution.log)
            else:
                box[name] = FloatDistribution(new_low, new_high, log=distribution.log)
        else:
            box[name] = distribution
    return box


def budget_shares(total: int, n_zones: int) -> list[int]:
    """``total`` trials split over the zones (best zone first), as evenly as possible, each at least 1.
    Even shares: a zone's rank after a cheaper stage is a weak signal of where the best point lies (that
    is why zones are refined separately at all), so none is starved on its account."""
    if n_zones == 0:
        return []
    base, extra = divmod(max(total, n_zones), n_zones)
    return [base + (1 if index < extra else 0) for index in range(n_zones)]


def gridded(space: Mapping[str, BaseDistribution], steps: int) -> dict[str, BaseDistribution]:
    """Each numeric range split into ``steps`` equal parts (on the log scale for log parameters): a
    choice of its ``steps + 1`` points, which the grid sampler enumerates (the Habr article's "interval
    around the point split into 8 parts"). Integer ranges keep their distinct rounded points."""
    if steps < 1:
        raise ConfigError(f"strategy: grid_steps is {steps}, but must be at least 1")
    out: dict[str, BaseDistribution] = {}
    for name, distribution in space.items():
        if isinstance(distribution, (FloatDistribution, IntDistribution)):
            low, high = float(distribution.low), float(distribution.high)
            if distribution.log:
                points = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / steps) for i in range(steps + 1)]
            else:
                points = [low + i * (high - low) / steps for i in range(steps + 1)]
            values: list[Any] = ([round(p) for p in points] if isinstance(distribution, IntDistribution)
                                 else [float(f"{p:.6g}") for p in points])
            out[name] = CategoricalDistribution(tuple(dict.fromkeys(values)))
        else:
            out[name] = distribution
    return out
