"""A Hydra app that knows nothing of tuneflow: the value of a bowl, x² + y², lowest at the origin.

`fail=true` makes every job raise, to see how a sweep treats failing trials."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="bowl")
def bowl(cfg: DictConfig) -> float:
    if cfg.get("fail", False):
        raise RuntimeError("bowl was asked to fail")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    bowl()
