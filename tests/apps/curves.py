"""A user's own Hydra app whose training loop reports per epoch through tuneflow's public API.

It knows nothing of Optuna or MLflow beyond `tuneflow.report`: a learning curve that decays towards
(lr - 0.1)^2 + 1, so bad learning rates are visibly bad after a few epochs and get pruned. With
`fail_above`, large learning rates raise; with `exit_code`, the task calls sys.exit.
"""

import sys

import hydra
from omegaconf import DictConfig

import tuneflow


@hydra.main(version_base=None, config_path="conf", config_name="curves")
def train(cfg: DictConfig) -> dict:
    if cfg.exit_code is not None:
        sys.exit(cfg.exit_code)
    if cfg.fail_above is not None and cfg.lr > cfg.fail_above:
        raise RuntimeError(f"lr={cfg.lr} diverged")
    final = (cfg.lr - 0.1) ** 2 + 1.0
    loss = final
    for epoch in range(1, cfg.epochs + 1):
        loss = final + 5.0 / epoch
        tuneflow.report(epoch, {"val_loss": loss, "train_loss": loss / 2})
    trial = tuneflow.current_trial()
    return {"val_loss": loss, "trial_seen": -1.0 if trial is None else float(trial.number)}


if __name__ == "__main__":
    train()
