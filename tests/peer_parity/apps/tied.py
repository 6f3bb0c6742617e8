"""A Hydra app whose search space is partly written in Python: `tie` (named by
`hydra.sweeper.custom_search_space`) draws `z` close to the `x` already drawn, and a parameter `+w`
that the config does not have."""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base=None, config_path="conf", config_name="tied")
def tied(cfg: DictConfig) -> float:
    return sum(float(cfg[name]) ** 2 for name in ("w", "x", "y", "z"))


def tie(cfg: DictConfig, trial: Trial) -> None:
    x = trial.params["x"]
    slack = cfg.max_z_difference_from_x
    trial.suggest_float("z", x - slack, x + slack)
    # `+w`: the config has no `w`, so the override that sets it must add it.
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    tied()
