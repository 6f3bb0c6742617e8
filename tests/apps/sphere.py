"""A plain Hydra app that knows nothing of tuneflow, as a user of Hydra's Optuna sweeper has it: the squared
distance of (x, y) from the origin. Only its config names tuneflow's sweeper. ``error=true`` makes the job
raise, for the failure paths."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="sphere")
def squared_distance(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("the job was asked to fail (error=true)")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    squared_distance()
