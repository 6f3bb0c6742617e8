"""Tabular data a trial trains on, as its data config (``conf/data/NAME.yaml``) names it.

Bundled and offline: scikit-learn's classification sets. A project's own data: a table (``data.path``:
CSV or Parquet, with a ``target`` column) or a loader function of its own (``data.loader:
my_data.load``). Loaders are pure functions of their config and are
split reproducibly (a fixed ``split_seed``), so every trial of a study sees the same train/validation
split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


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

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise ValueError(
            f"data.name is {name!r}, but the bundled sets are {', '.join(TABULAR_SETS)}; for your own data "
            "give data.path (a CSV or Parquet file) and data.target, or data.loader (a function)"
        )
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction is {val_fraction}, but must be between 0 and 1")
    x, y = loaders[name](return_X_y=True)
    return split_and_scale(x, y, val_fraction, split_seed, image_shape=(8, 8) if name == "digits" else None)


def split_and_scale(x: np.ndarray, y: np.ndarray, val_fraction: float, split_seed: int,
                    image_shape: tuple[int, int] | None = None) -> TabularData:
    """A stratified train/validation split, standardised with the training rows' statistics only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=val_fraction, random_state=split_seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    return TabularData(
        x_train=scaler.transform(x_train).astype(np.float32),
        y_train=y_train.astype(np.int64),
        x_val=scaler.transform(x_val).astype(np.float32),
        y_val=y_val.astype(np.int64),
        n_classes=int(len(np.unique(y))),
        image_shape=image_shape,
    )


def load(data_cfg: Mapping[str, Any]) -> Any:
    """Build the dataset a tabular data config (``conf/data/*.yaml``) describes: a bundled set, a
    project's table split into train and validation, or whatever its own loader function returns."""
    if data_cfg.get("loader") is not None:
        return _call_loader(str(data_cfg["loader"]), data_cfg)
    val_fraction, split_seed = float(data_cfg.get("val_fraction", 0.25)), int(data_cfg.get("split_seed", 0))
    if data_cfg.get("path") is not None:
        if data_cfg.get("target") is None:
            raise ValueError("data.target is not set; name the column to predict")
        return load_table(str(data_cfg["path"]), str(data_cfg["target"]), val_fraction, split_seed)
    return load_tabular(str(data_cfg["name"]), val_fraction, split_seed)


def _call_loader(path: str, data_cfg: Mapping[str, Any]) -> Any:
    """``data.loader: my_data.load`` -> ``my_data.load(data_cfg)``; errors name the loader."""
    from tuneflow.dotted import import_function

    function = import_function(path, "data.loader")
    try:
        return function(dict(data_cfg))
    except Exception as error:  # noqa: BLE001 - the project's own code: name it, whatever it raised
        raise ValueError(f"data.loader {path!r} raised {type(error).__name__}: {error}") from None


@lru_cache(maxsize=4)
def load_table(path: str, target: str, val_fraction: float = 0.25, split_seed: int = 0) -> TabularData:
    """A project's classification table (CSV or Parquet): numeric feature columns and a ``target``
    column, split and standardised as the bundled sets are."""
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"data.path {path!r} is not a file (looked in {file.resolve().parent})")
    frame = pd.read_parquet(file) if file.suffix in (".parquet", ".pq") else pd.read_csv(file)
    if target not in frame.columns:
        raise ValueError(f"data.path {path!r} has no column {target!r}; its columns are {', '.join(map(str, frame.columns))}")
    features = frame.drop(columns=[target]).select_dtypes("number")
    _, y = np.unique(frame[target].to_numpy(), return_inverse=True)
    return split_and_scale(features.to_numpy(dtype=np.float64), y, val_fraction, split_seed)
