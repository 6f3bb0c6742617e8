"""The folds a configuration is trained and validated on (a holdout split, or one fold per date range),
and how a trial's objective combines them."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuneflow.data.tabular import load
from tuneflow.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One train/validation split a trial trains on: the holdout of a tabular set, or one date range."""

    name: str
    data: Any


def load_folds(data_cfg: Mapping[str, Any], params: Mapping[str, Any]) -> list[Fold]:
    """Every split one configuration must be trained and validated on."""
    if data_cfg.get("kind") == "timeseries":
        from tuneflow.data import timeseries

        if params.get("window") is None:
            raise ValueError("time-series folds need params.window: the days of past data in one input")
        window = int(params["window"])
        return [Fold(date_range.name, series) for date_range, series in timeseries.build_folds(data_cfg, window)]
    if data_cfg.get("kind") == "none":
        return [Fold("holdout", None)]
    return [Fold("holdout", load(data_cfg))]


#: How a trial's objective combines its folds (date ranges): ``data.objective_over_ranges``.
AGGREGATES = ("mean", "median", "worst")


def check_aggregate(how: Any) -> str:
    if how not in AGGREGATES:
        raise ConfigError(f"data.objective_over_ranges is {how!r}, but must be one of {', '.join(AGGREGATES)}")
    return str(how)


def aggregate(values: list[float], how: str, direction: str) -> float:
    """The objective over folds: their mean, their median, or the worst of them (the max when
    minimising): ``worst`` asks for a configuration that is good on every range, not on average."""
    if check_aggregate(how) == "mean":
        return statistics.fmean(values)
    if how == "median":
        return statistics.median(values)
    return max(values) if direction == "minimize" else min(values)


def check_folds(data_cfg: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Raise a ``ConfigError`` naming the fix if the folds of ``data_cfg`` cannot be built for ``params``
    (a date range that ends before it starts or lies outside the data, a window longer than a range...)."""
    if not data_cfg:
        return
    check_aggregate(data_cfg.get("objective_over_ranges", "mean"))
    try:
        load_folds(data_cfg, params)
    except (ValueError, KeyError) as error:
        message = str(error).strip().strip("'\"").splitlines()[0]
        raise ConfigError(message) from None
