"""Zones: finalists grouped by distance in the normalised space, each zone with its own box."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuneflow.errors import ConfigError
from tuneflow.strategy import spaces, zones

SPACE = {"x": FloatDistribution(-5.0, 5.0), "y": FloatDistribution(-5.0, 5.0)}


def finalist(value: float, **params: float) -> dict[str, object]:
    return {"params": params, "value": value}


def test_two_clusters_far_apart_are_two_zones_each_with_its_own_box() -> None:
    near_a = [finalist(0.1, x=2.0, y=-1.0), finalist(0.3, x=2.5, y=-1.0), finalist(0.5, x=2.5, y=-0.5)]
    near_b = [finalist(0.2, x=-3.0, y=3.0), finalist(0.4, x=-2.5, y=2.5)]
    best_first = sorted(near_a + near_b, key=lambda f: f["value"])  # type: ignore[arg-type, return-value]
    found = zones.zones_of(best_first, SPACE, threshold=0.2)
    assert len(found) == 2
    a, b = found  # zone 0 holds the best finalist
    assert a.best["params"] == {"x": 2.0, "y": -1.0} and len(a.members) == 3
    assert b.best["params"] == {"x": -3.0, "y": 3.0} and len(b.members) == 2
    # Each box holds its own zone and not the other: one box (zoom) would span both and the land between.
    assert a.space["x"].low > 0 > b.space["x"].high  # type: ignore[attr-defined]
    assert a.space["y"].high < 0 < b.space["y"].low  # type: ignore[attr-defined]


def test_a_chain_of_near_points_stays_one_zone() -> None:
    chain = [finalist(float(i), x=-4.0 + i, y=0.0) for i in range(6)]  # steps of 0.1 of the range
    assert zones.group([f["params"] for f in chain], SPACE, threshold=0.1) == [0] * 6  # type: ignore[misc]


def test_a_log_parameter_is_measured_on_its_log_scale() -> None:
    space = {"lr": FloatDistribution(1e-5, 1e-1, log=True)}
    # 1e-5 and 1e-4 are one decade apart, a quarter of the range on the log scale; 1e-2 and 1e-1 too,
    # though on a linear scale the first pair is 1000x closer.
    assert zones.distance({"lr": 1e-5}, {"lr": 1e-4}, space) == pytest.approx(0.25)
    assert zones.distance({"lr": 1e-2}, {"lr": 1e-1}, space) == pytest.approx(0.25)


def test_categoricals_count_as_equal_or_not() -> None:
    space = {"x": FloatDistribution(0.0, 1.0), "kind": CategoricalDistribution(("a", "b"))}
    assert zones.distance({"x": 0.5, "kind": "a"}, {"x": 0.5, "kind": "b"}, space) == pytest.approx(0.5**0.5)


def test_budget_shares_are_even_and_never_zero() -> None:
    assert zones.budget_shares(10, 3) == [4, 3, 3]
    assert zones.budget_shares(2, 3) == [1, 1, 1]
    assert zones.budget_shares(5, 0) == []


def test_a_grid_splits_each_range_into_equal_parts() -> None:
    grid = zones.gridded({"x": FloatDistribution(0.0, 1.0), "lr": FloatDistribution(1e-4, 1e-2, log=True),
                          "n": IntDistribution(1, 3), "c": CategoricalDistribution(("a", "b"))}, 4)
    assert grid["x"].choices == (0.0, 0.25, 0.5, 0.75, 1.0)  # type: ignore[attr-defined]
    assert grid["lr"].choices == pytest.approx((1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2))  # type: ignore[attr-defined]
    assert grid["n"].choices == (1, 2, 3)  # type: ignore[attr-defined]
    assert grid["c"].choices == ("a", "b")  # type: ignore[attr-defined]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="threshold is 0"):
        zones.group([{"x": 0.0}, {"x": 1.0}], SPACE, threshold=0)
    with pytest.raises(ConfigError, match="grid_steps is 0"):
        zones.gridded(SPACE, 0)


def test_sweep_syntax_reads_back_to_the_same_space() -> None:
    text = {"lr": "tag(log, interval(0.0001, 0.03))", "layers": "range(1, 4)", "batch": "choice(16, 32)",
            "kind": "choice(constant, step)", "width": "tag(log, int(interval(8, 512)))", "p": "interval(0.0, 0.5)"}
    parsed = spaces.parse(text)
    assert spaces.parse(spaces.to_syntax(parsed)) == parsed


def test_the_box_around_a_point_is_centred_on_it_inside_the_bounds() -> None:
    space = {**SPACE, "lr": FloatDistribution(1e-4, 1e-2, log=True), "kind": CategoricalDistribution(("a", "b"))}
    box = zones.box_around({"x": 2.5, "y": 4.5, "lr": 1e-3, "kind": "b"}, space, 0.125)
    assert (box["x"].low, box["x"].high) == (1.25, 3.75)  # type: ignore[attr-defined]
    assert (box["y"].low, box["y"].high) == (3.25, 5.0)  # type: ignore[attr-defined]
    assert box["lr"].low == pytest.approx(10**-3.25) and box["lr"].high == pytest.approx(10**-2.75)  # type: ignore[attr-defined]
    assert box["kind"].choices == ("b",)  # type: ignore[attr-defined]
