"""A LightGBM classifier on tabular rows (the breast-cancer set by default).

Boosting has no epochs, so one *report* (every ``report_every`` rounds) plays the role of an epoch:
validation metrics go to ``report``, the learning-rate schedule steps, and early stopping counts
``patience`` reports without a better ``val_loss``, so the learning-rate group means what it means for
the torch models. Everything happens in one LightGBM callback; the booster handed back holds only the
trees up to the best report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np

from tuneflow.data.tabular import TabularData
from tuneflow.models.base import Reporter, TrainResult

LR_SCHEDULES = ("constant", "step", "plateau")


def booster_params(params: Mapping[str, Any], n_classes: int, seed: int) -> dict[str, Any]:
    """LightGBM's own parameters: quiet, one thread, deterministic for a given seed."""
    bagging_fraction = float(params.get("bagging_fraction", 1.0))
    objective: dict[str, Any] = {"objective": "binary"}
    if n_classes > 2:
        objective = {"objective": "multiclass", "num_class": n_classes}
    return {
        **objective,
        "metric": "none",  # the callback computes val_loss / val_accuracy itself
        "learning_rate": float(params["lr"]),
        "num_leaves": int(params.get("num_leaves", 31)),
        "min_child_samples": int(params.get("min_child_samples", 20)),
        "feature_fraction": float(params.get("feature_fraction", 1.0)),
        "bagging_fraction": bagging_fraction,
        # Bagging only happens with a positive frequency; resample every round when it is on.
        "bagging_freq": 1 if bagging_fraction < 1.0 else 0,
        "lambda_l2": float(params.get("lambda_l2", 0.0)),
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def class_metrics(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Log loss and accuracy of predicted probabilities ((N,) for binary, (N, K) for multiclass)."""
    if probabilities.ndim == 1:
        probabilities = np.stack([1.0 - probabilities, probabilities], axis=1)
    picked = np.clip(probabilities[np.arange(len(targets)), targets], 1e-15, 1.0)
    return {
        "val_loss": float(-np.log(picked).mean()),
        "val_accuracy": float((probabilities.argmax(axis=1) == targets).mean()),
    }


class _ReportEvery:
    """Reports, schedules the learning rate and stops early, every ``report_every`` rounds."""

    order = 30  # after LightGBM's own callbacks

    def __init__(self, params: Mapping[str, Any], x_val: np.ndarray, y_val: np.ndarray, report: Reporter):
        self.report_every = int(params.get("report_every", 10))
        self.patience = int(params.get("patience", 5))
        self.schedule = str(params.get("lr_schedule", "constant"))
        self.decay = float(params.get("lr_decay", 0.5))
        self.step_reports = int(params.get("lr_step_reports", 5))
        self.plateau_patience = int(params.get("lr_plateau_patience", 2))
        self.lr = float(params["lr"])
        self.x_val, self.y_val, self.report = x_val, y_val, report
        self.best_loss, self.best_rounds = math.inf, 0
        self.best_metrics: dict[str, float] = {}
        self.rounds, self.reports, self.stale, self.plateau_stale = 0, 0, 0, 0

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        self.rounds = env.iteration + 1
        if self.rounds % self.report_every and self.rounds != env.end_iteration:
            return
        self.reports += 1
        metrics = class_metrics(env.model.predict(self.x_val), self.y_val)  # type: ignore[call-arg,arg-type]
        self.report(self.rounds, {**metrics, "lr": self.lr})  # may raise (pruning): let it propagate

        improved = metrics["val_loss"] < self.best_loss
        if improved:
            self.best_loss, self.best_rounds, self.best_metrics = metrics["val_loss"], self.rounds, metrics
            self.stale = 0
        else:
            self.stale += 1
        self._schedule(env, improved)
        if self.stale >= self.patience:
            raise lgb.callback.EarlyStopException(self.best_rounds - 1, [])

    def _schedule(self, env: lgb.callback.CallbackEnv, improved: bool) -> None:
        """Same rules as torch's StepLR / ReduceLROnPlateau, counted in reports instead of epochs."""
        decay = False
        if self.schedule == "step":
            decay = self.reports % self.step_reports == 0
        elif self.schedule == "plateau":
            self.plateau_stale = 0 if improved else self.plateau_stale + 1
            if self.plateau_stale > self.plateau_patience:
                decay, self.plateau_stale = True, 0
        if decay:
            self.lr *= self.decay
            env.model.reset_parameter({"learning_rate": self.lr})  # type: ignore[call-arg]


def _check(params: Mapping[str, Any]) -> None:
    schedule = str(params.get("lr_schedule", "constant"))
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"params.lr_schedule is {schedule!r}, but must be one of {', '.join(LR_SCHEDULES)}")
    for key in ("n_rounds", "report_every", "patience"):
        if int(params.get(key, 1)) < 1:
            raise ValueError(f"params.{key} is {params[key]}, but must be at least 1")


def train(
    params: Mapping[str, Any], data: TabularData, report: Reporter, *, seed: int, device: str
) -> TrainResult:
    """Boost up to ``n_rounds`` rounds; ``device`` is ignored (LightGBM's CPU build)."""
    _check(params)
    train_set = lgb.Dataset(data.x_train, label=data.y_train, params={"verbosity": -1})
    reporter = _ReportEvery(params, data.x_val, data.y_val, report)
    booster = lgb.train(
        booster_params(params, data.n_classes, seed),
        train_set,
        num_boost_round=int(params.get("n_rounds", 500)),
        callbacks=[reporter],
    )
    # Keep only the trees up to the best report, so every consumer of the saved model predicts alike.
    best = lgb.Booster(model_str=booster.model_to_string(num_iteration=reporter.best_rounds))
    return TrainResult(
        metrics=dict(reporter.best_metrics),
        model=best,
        flavor="lightgbm",
        epochs_run=reporter.rounds,
        input_example=data.x_val[:2],
        extra={"best_iteration": float(reporter.best_rounds)},
    )
