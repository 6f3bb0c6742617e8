"""A Hydra app with two values to lower at once (Binh and Korn's test problem): near the origin the
first is small, near (5, 5) the second; no point is best at both, so the answer is a Pareto front."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="two_goals")
def two_goals(cfg: DictConfig) -> tuple[float, float]:
    x, y = float(cfg.x), float(cfg.y)
    near_origin = 4 * (x * x + y * y)
    near_five = (x - 5) ** 2 + (y - 5) ** 2
    return near_origin, near_five


if __name__ == "__main__":
    two_goals()
