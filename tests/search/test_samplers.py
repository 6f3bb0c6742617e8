"""The Python API's default sampler is the one the command line uses (failure-aware TPE), and PyTorch's
threads are capped when a run asks for it."""

from __future__ import annotations

import optuna
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from tuneflow.errors import ConfigError
from tuneflow.search.failure_aware import FailureAwareSampler
from tuneflow.search.samplers import default_sampler
from tuneflow.sweeper.plan import build_sampler
from tuneflow.trial.arch_task import limit_torch_threads


def sweeper_default_sampler(seed: int) -> optuna.samplers.BaseSampler:
    """The sampler the sweeper builds from its composed config (failure-aware as configured)."""
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+arch=quadratic", f"hydra.sweeper.sampler.seed={seed}"],
                      return_hydra_config=True)
    sampler_cfg = OmegaConf.to_container(cfg.hydra.sweeper.sampler, resolve=True)
    return build_sampler(sampler_cfg, failure_aware=cfg.hydra.sweeper.failure_aware)  # type: ignore[arg-type]


def suggestions(sampler: optuna.samplers.BaseSampler, n_trials: int = 15) -> list[dict[str, float]]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 2) ** 2 + t.suggest_float("y", -5, 5) ** 2,
                   n_trials=n_trials)
    return [t.params for t in study.trials]


def test_default_sampler_searches_exactly_as_the_sweeper_default() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from_python, from_hydra = default_sampler(seed=7), sweeper_default_sampler(seed=7)
    assert type(from_python) is type(from_hydra) is FailureAwareSampler
    assert type(from_python.base) is type(from_hydra.base)  # type: ignore[attr-defined]
    # Past the random start-up trials, so the model-based suggestions are compared too.
    assert suggestions(from_python) == suggestions(from_hydra)
    assert suggestions(default_sampler(seed=8)) != suggestions(default_sampler(seed=7))


def test_torch_threads_caps_pytorch_and_rejects_nonsense() -> None:
    before = torch.get_num_threads()
    try:
        limit_torch_threads(1)
        assert torch.get_num_threads() == 1
        limit_torch_threads(None)  # PyTorch's default stays as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ConfigError, match="torch_threads is"):
            limit_torch_threads(bad)
