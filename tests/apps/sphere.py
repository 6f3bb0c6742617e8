# Modelled on the example app of Hydra's Optuna sweeper (plugins/hydra_optuna_sweeper/example/sphere.py,
# Copyright (c) Facebook, Inc. and its affiliates. All Rights Reserved. MIT License), with only the
# sweeper's name changed in its config: a plain Hydra app that knows nothing of tuneflow.
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="sphere")
def sphere(cfg: DictConfig) -> float:
    x: float = cfg.x
    y: float = cfg.y
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return x**2 + y**2


if __name__ == "__main__":
    sphere()
