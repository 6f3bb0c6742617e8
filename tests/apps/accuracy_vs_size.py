# A plain Hydra app with two objectives, returned as a dict that names them (the tuneflow sweeper reads
# them by hydra.sweeper.objective); it knows nothing of tuneflow.
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="accuracy_vs_size")
def train(cfg: DictConfig) -> dict:
    width = cfg.width
    error = 1.0 / width + (cfg.lr - 0.1) ** 2  # wider is more accurate...
    return {"error": error, "size": float(width * width), "lr_used": cfg.lr}  # ...and bigger


if __name__ == "__main__":
    train()
