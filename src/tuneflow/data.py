"""Datasets that ship offline: scikit-learn's bundled sets (and, for time series, seattle_weather).

Loaders are pure functions of their config, return numpy arrays ready for training, and are split
reproducibly (a fixed ``split_seed``), so every trial of a study sees the same train/validation split.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from tuneflow.errors import ConfigError


@dataclass(frozen=True)
class TabularData:
    """A train/validation split of a tabular classification set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    #: Image shape of one row (``(8, 8)`` for digits) for convolutional models; ``None`` if not images.
    image_shape: tuple[int, int] | None = None


TABULAR_SETS = ("digits", "breast_cancer", "wine")


@lru_cache(maxsize=8)
def load_tabular(name: str, val_fraction: float = 0.25, split_seed: int = 0) -> TabularData:
    """Load one of scikit-learn's bundled classification sets, standardised, as float32 / int64."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise ValueError(f"data.name is {name!r}, but must be one of {', '.join(TABULAR_SETS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction is {val_fraction}, but must be between 0 and 1")
    x, y = loaders[name](return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val_fraction, random_state=split_seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    return TabularData(
        x_train=scaler.transform(x_train).astype(np.float32),
        y_train=y_train.astype(np.int64),
        x_val=scaler.transform(x_val).astype(np.float32),
        y_val=y_val.astype(np.int64),
        n_classes=int(len(np.unique(y))),
        image_shape=(8, 8) if name == "digits" else None,
    )


def load(data_cfg: Mapping[str, Any]) -> TabularData:
    """Build the dataset a data config (``conf/data/*.yaml``) describes."""
    return load_tabular(
        str(data_cfg["name"]),
        float(data_cfg.get("val_fraction", 0.25)),
        int(data_cfg.get("split_seed", 0)),
    )


@dataclass(frozen=True)
class Fold:
    """One train/validation split a trial trains on: the holdout of a tabular set, or one date range."""

    name: str
    data: Any


def load_folds(data_cfg: Mapping[str, Any], params: Mapping[str, Any]) -> list[Fold]:
    """Every split one configuration must be trained and validated on."""
    if data_cfg.get("kind") == "timeseries":
        from tuneflow import timeseries

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
