"""Every config group composes, and every architecture ships a search space that fits its params."""

from __future__ import annotations

from importlib.resources import files

import optuna
import pytest
from hydra import compose, initialize_config_module
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.tuneflow_sweeper.config import PRUNERS, SAMPLERS
from tuneflow.search.space import PARAMS_NODE, config_path, parse_search_space

ARCHS = sorted(p.name.removesuffix(".yaml") for p in files("tuneflow").joinpath("conf/arch").iterdir()
               if p.name.endswith(".yaml"))


def compose_tuneflow(*overrides: str):  # type: ignore[no-untyped-def]
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_sweeper_plugin_is_discovered() -> None:
    names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    assert "TuneflowSweeper" in names


def test_the_shipped_architectures() -> None:
    assert {"mlp", "lightgbm", "quadratic"} <= set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_composes_with_a_default_search_space_over_its_own_params(arch: str) -> None:
    cfg = compose_tuneflow(f"+arch={arch}")
    assert cfg.arch.name == arch
    assert cfg.arch.direction in ("minimize", "maximize")
    space = OmegaConf.to_container(cfg.hydra.sweeper.params)
    distributions, _ = parse_search_space(space, PARAMS_NODE)  # type: ignore[arg-type]
    assert distributions, f"{arch} ships no search space"
    for name in distributions:
        assert OmegaConf.select(cfg, config_path(name, PARAMS_NODE)) is not None, f"{arch}: {name} is not a parameter"


@pytest.mark.parametrize("arch", [a for a in ARCHS if a not in ("quadratic", "twin_quadratic")])
def test_real_architectures_search_the_learning_rate_on_a_log_scale(arch: str) -> None:
    cfg = compose_tuneflow(f"+arch={arch}")
    distributions, _ = parse_search_space(OmegaConf.to_container(cfg.hydra.sweeper.params), PARAMS_NODE)  # type: ignore[arg-type]
    assert distributions["lr"].log is True  # type: ignore[attr-defined]
    assert "lr_schedule" in distributions and "patience" in distributions


@pytest.mark.parametrize("sampler", sorted(set(SAMPLERS) - {"grid"}))
def test_each_sampler_config_builds_an_optuna_sampler(sampler: str) -> None:
    cfg = compose_tuneflow("+arch=quadratic", f"hydra/sweeper/sampler={sampler}")
    built = instantiate(cfg.hydra.sweeper.sampler)
    assert isinstance(built, optuna.samplers.BaseSampler)


def test_grid_sampler_config_takes_its_grid_from_the_search_space() -> None:
    from tuneflow.search.space import PARAMS_NODE, grid_of, parse_search_space
    from tuneflow.sweeper.plan import build_sampler

    cfg = compose_tuneflow("+arch=quadratic", "hydra/sweeper/sampler=grid",
                           "hydra.sweeper.params.x='choice(1.0, 2.0)'", "hydra.sweeper.params.y='range(-1, 2)'")
    sampler_cfg = OmegaConf.to_container(cfg.hydra.sweeper.sampler)
    assert sampler_cfg["_target_"] == "tuneflow.search.samplers.GridSampler"
    assert sampler_cfg["search_space"] is None  # left for the sweeper to fill from the space
    distributions, _ = parse_search_space(OmegaConf.to_container(cfg.hydra.sweeper.params), PARAMS_NODE)
    sampler_cfg["search_space"] = grid_of(distributions)  # as plan_sweep fills it
    sampler = build_sampler(sampler_cfg)
    study = optuna.create_study(sampler=sampler)
    points = set()
    for _ in range(6):
        trial = study.ask(distributions)
        points.add((trial.params["x"], trial.params["y"]))
        study.tell(trial, 0.0)
    assert points == {(x, y) for x in (1.0, 2.0) for y in (-1, 0, 1)}


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [("median", "MedianPruner"), ("percentile", "PercentilePruner"), ("hyperband", "HyperbandPruner"),
     ("successive_halving", "SuccessiveHalvingPruner"), ("asha", "SuccessiveHalvingPruner"),
     ("threshold", "ThresholdPruner"),
     ("patient", "PatientPruner"), ("wilcoxon", "WilcoxonPruner"), ("none", "NopPruner")],
)
def test_each_pruner_config_builds_the_optuna_pruner(pruner: str, cls: str) -> None:
    assert set(PRUNERS) == {"median", "percentile", "hyperband", "successive_halving", "asha", "threshold",
                            "patient", "wilcoxon", "none"}
    bound = ["hydra.sweeper.pruner.upper=1.0"] if pruner == "threshold" else []
    cfg = compose_tuneflow("+arch=quadratic", f"hydra/sweeper/pruner={pruner}", *bound)
    assert type(instantiate(cfg.hydra.sweeper.pruner)).__name__ == cls


def test_tpe_with_its_pruner_is_the_default() -> None:
    cfg = compose_tuneflow("+arch=mlp")
    assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert cfg.hydra.sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.hydra.sweeper.n_trials == 20
