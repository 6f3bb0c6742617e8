"""A user's LightGBM app that prunes with optuna-integration's own callback, given the live Optuna trial
tuneflow exposes (tuneflow.current_trial().optuna_trial); outside a sweep it trains without one."""

import hydra
import lightgbm as lgb
from omegaconf import DictConfig
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import tuneflow


@hydra.main(version_base=None, config_path="conf", config_name="lgbm")
def train(cfg: DictConfig) -> float:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0)
    callbacks = []
    trial = tuneflow.current_trial()
    if trial is not None:
        from optuna_integration import LightGBMPruningCallback

        callbacks.append(LightGBMPruningCallback(trial.optuna_trial, "binary_logloss"))
    booster = lgb.train(
        {"objective": "binary", "learning_rate": cfg.lr, "num_leaves": cfg.num_leaves, "verbose": -1, "seed": 0},
        lgb.Dataset(x_train, y_train),
        num_boost_round=cfg.rounds,
        valid_sets=[lgb.Dataset(x_val, y_val)],
        callbacks=callbacks,
    )
    tuneflow.log_model(booster)
    return float(booster.best_score["valid_0"]["binary_logloss"])


if __name__ == "__main__":
    train()
