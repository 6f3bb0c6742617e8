"""The bakery's own forecaster: tomorrow's loaves from a window of past days, a linear model trained by
stochastic gradient descent (scikit-learn's ``SGDRegressor``), one epoch at a time.

A trainer of a project's ``conf/arch/NAME.yaml``: tuneflow calls ``train`` once per date range with that
range's fold (``tuneflow.data.timeseries.SeriesData``: standardised windows and targets) and a ``report`` hook
it calls after every epoch. Nothing here knows Optuna or MLflow; the model is saved through MLflow's
scikit-learn flavor, picked from its type.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.linear_model import SGDRegressor

from tuneflow import TrainResult


def train(
    params: Mapping[str, Any],
    data: Any,
    report: Callable[[int, Mapping[str, float]], None],
    *,
    seed: int,
    device: str,
) -> TrainResult:
    x_train = data.x_train.reshape(len(data.x_train), -1)
    x_val = data.x_val.reshape(len(data.x_val), -1)
    mean, std = data.target_scale
    model = SGDRegressor(
        learning_rate="constant" if params["lr_schedule"] == "constant" else "invscaling",
        eta0=float(params["lr"]),
        alpha=float(params["alpha"]),
        penalty=str(params["penalty"]),
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    best_mae, best_model, best_epoch, epoch = float("inf"), None, 0, 0
    for epoch in range(1, int(params["epochs"]) + 1):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), int(params["batch_size"])):
            rows = order[start : start + int(params["batch_size"])]
            model.partial_fit(x_train[rows], data.y_train[rows])
        # Errors in loaves, not in standardised units.
        val_mae = float(np.mean(np.abs(model.predict(x_val) - data.y_val)) * std)
        train_mae = float(np.mean(np.abs(model.predict(x_train) - data.y_train)) * std)
        if not np.isfinite(val_mae):
            val_mae = float("nan")  # diverged: reported as is, tuneflow fails the trial with the reason
        report(epoch, {"val_mae": val_mae, "train_mae": train_mae})
        if val_mae < best_mae:
            best_mae, best_model, best_epoch = val_mae, copy.deepcopy(model), epoch
        elif epoch - best_epoch >= int(params["patience"]):
            break
    return TrainResult(
        metrics={"val_mae": best_mae},
        model=best_model if best_model is not None else model,
        flavor=None,  # MLflow's sklearn flavor, from the model's type
        epochs_run=epoch,
        extra={"best_epoch": float(best_epoch)},
    )
