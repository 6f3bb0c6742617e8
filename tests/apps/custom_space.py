"""A Hydra app whose search space is partly written in Python: ``hydra.sweeper.custom_search_space``
names ``add_dependent_parameters``, which asks Optuna for z near the sampled x and for a new parameter w
(define-by-run, a conditional space no sweep syntax can say). The app returns the squared norm."""
import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base=None, config_path="custom_space_conf", config_name="config")
def squared_norm(cfg: DictConfig) -> float:
    return sum(float(cfg[name]) ** 2 for name in ("w", "x", "y", "z"))


def add_dependent_parameters(cfg: DictConfig, trial: Trial) -> None:
    reach = cfg.max_z_difference_from_x
    trial.suggest_float("z", trial.params["x"] - reach, trial.params["x"] + reach)
    trial.suggest_float("w", 0.0, 1.0)


if __name__ == "__main__":
    squared_norm()
