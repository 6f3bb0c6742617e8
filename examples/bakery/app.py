"""The bakery's forecaster as its own Hydra app: the training loop calls `tuneflow.report` once per epoch,
and `override hydra/sweeper: tuneflow` in its config is all it takes to tune it.

    python examples/bakery/app.py                 # one training run, nothing tracked
    python examples/bakery/app.py -m              # a study: 20 trials, pruned per epoch, in ./mlruns

It validates on the last `val_days` days, trains on the `history_days` before them, and forecasts
tomorrow's loaves from the last `window` days (lags of every column, plus the weekday).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.linear_model import SGDRegressor

import tuneflow

SALES = Path(__file__).with_name("daily_sales.csv")


def lagged(frame: pd.DataFrame, target: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the last `window` days of every column (and the weekday) -> the next day's `target`."""
    lags = [frame.shift(lag).add_suffix(f"_lag{lag}") for lag in range(1, window + 1)]
    weekday = pd.get_dummies(frame.index.day_of_week, prefix="weekday").set_index(frame.index).astype(float)
    features = pd.concat([*lags, weekday], axis=1).iloc[window:]
    return features.to_numpy(dtype=float), frame[target].iloc[window:].to_numpy(dtype=float)


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def train(cfg: DictConfig) -> dict[str, float]:
    frame = pd.read_csv(SALES, parse_dates=["date"], index_col="date")
    x, y = lagged(frame, "loaves", cfg.data.window)
    val, history = cfg.data.val_days, cfg.data.history_days
    x_train, y_train, x_val, y_val = x[-val - history : -val], y[-val - history : -val], x[-val:], y[-val:]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-9
    y_mean, y_std = y_train.mean(), y_train.std()
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    model = SGDRegressor(eta0=cfg.model.lr, alpha=cfg.model.alpha, learning_rate="invscaling", random_state=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    best = float("inf")
    for epoch in range(1, cfg.model.epochs + 1):
        for rows in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // cfg.model.batch_size)):
            model.partial_fit(x_train[rows], (y_train[rows] - y_mean) / y_std)
        val_mae = float(np.mean(np.abs(model.predict(x_val) * y_std + y_mean - y_val)))
        # Step metrics to MLflow, val_mae to the pruner (which may stop this trial here).
        tuneflow.report(epoch, {"val_mae": val_mae})
        best = min(best, val_mae)
    tuneflow.log_model(model)  # MLflow's sklearn flavor, picked from the model's type
    return {"val_mae": best, "epochs": float(cfg.model.epochs)}


if __name__ == "__main__":
    train()
