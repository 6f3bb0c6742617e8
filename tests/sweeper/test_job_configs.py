"""A job's config from tuneflow's launcher is the config Hydra's own ``load_sweep_config`` composes.

The launcher composes once per set of group choices and applies each trial's values to a copy; these
tests hold it to Hydra's result for the overrides a study produces (and some a user may add).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from tuneflow.sweeper.job_configs import JobConfigs, same_config

MULTIRUN = ["+arch=quadratic", "hydra/sweeper/pruner=none"]


@pytest.fixture(scope="module")
def hydra_loader() -> Iterator[Any]:
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def master_config(loader: Any, *extra: str) -> DictConfig:
    return loader.load_configuration("config", [*MULTIRUN, *extra], RunMode.MULTIRUN)  # type: ignore[no-any-return]


def trial(number: int, *values: str, fixed: tuple[str, ...] = ("+arch=quadratic",)) -> list[str]:
    """Trial ``number``'s job overrides as the sweeper writes them: fixed ones, then sampled values (the
    trial number reaches the job as its Hydra job number, not as an override)."""
    return [*fixed, *values]


# Each case: the overrides of two jobs of one multirun (the first builds the template, the second is a copy).
CASES: dict[str, tuple[list[str], list[str]]] = {
    "float params": (trial(0, "params.x=0.4881350392732475", "params.y=2.15"),
                     trial(1, "params.x=-1e-05", "params.y=3.0")),
    "int, bool, null and text values": (
        trial(0, "params.epochs=3", "params.fail_above=null", "seed=1"),
        trial(1, "params.epochs=7", "params.fail_above=2.5", "seed=2", "device=cpu"),
    ),
    "values that look like other types": (trial(0, "params.x=1"), trial(1, "params.x='1.5'", "device='007'")),
    "a dotted config path": (trial(0, "tracking.log_model=false"), trial(1, "tracking.log_model=true")),
    "an interpolation as a value": (trial(0, "params.x=${seed}"), trial(1, "params.x=${params.y}")),
    "a list and quoted text": (trial(0, "tracking.experiment='a b'"), trial(1, "tracking.experiment=\"x,y\"")),
    "a fixed addition (+) stays with the template": (
        trial(0, "params.x=1.0", fixed=("+arch=quadratic", "+extra.note=hi")),
        trial(1, "params.x=2.0", fixed=("+arch=quadratic", "+extra.note=hi")),
    ),
    "++ on the same key as a value: left to Hydra": (
        trial(0, "params.x=1.0", fixed=("+arch=quadratic", "++params.x=5.0")),
        trial(1, "params.x=2.0", fixed=("+arch=quadratic", "++params.x=5.0")),
    ),
    "a config group choice among the values": (
        trial(0, "mode=fast", "params.x=1.0"), trial(1, "mode=full", "params.x=2.0"),
    ),
    "a hydra. override": (trial(0, "hydra.job.chdir=false", "params.x=1.0"),
                          trial(1, "hydra.job.chdir=false", "params.x=3.0")),
    "a scalar over a whole node": (trial(0, "params.x=1.0"), trial(1, "tracking=3")),
    "override_dirname excludes keys, sorts the rest": (trial(0, "params.y=1.0", "params.x=1.0"),
                                                       trial(1, "params.y=2.0", "params.x=2.0")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_job_config_equals_hydras_own(hydra_loader: Any, case: str) -> None:
    extra = ["hydra.job.config.override_dirname.exclude_keys=[params.y]"] if "excludes" in case else []
    master = master_config(hydra_loader, *extra)
    configs = JobConfigs(hydra_loader, master)
    for overrides in CASES[case]:
        ours = configs.load(overrides)
        assert configs.load(overrides) is not ours, "every job gets its own config"
        hydras = hydra_loader.load_sweep_config(master, overrides)
        assert same_config(ours, hydras), f"{overrides}:\n{OmegaConf.to_yaml(ours)}"
        # The same Python types, not just the same YAML text.
        assert OmegaConf.to_container(ours) == OmegaConf.to_container(hydras)
        assert OmegaConf.get_type(ours, "hydra") is OmegaConf.get_type(hydras, "hydra")
    # The repeated loads (and the second job, where its group choices are the first's) were copies,
    # except where Hydra must compose every job.
    assert (configs.copied == 0) == (case == "++ on the same key as a value: left to Hydra"), configs.copied


def test_a_studys_trials_are_copies_of_one_composed_config(hydra_loader: Any) -> None:
    configs = JobConfigs(hydra_loader, master_config(hydra_loader))
    for number in range(5):
        cfg = configs.load(trial(number, f"params.x={number / 2}", "params.y=-1.0"))
        assert cfg.params.x == number / 2
        assert list(cfg.hydra.overrides.task) == ["+arch=quadratic", f"params.x={number / 2}", "params.y=-1.0"]
    # Job 0 composed by Hydra twice (the job itself and the template, checked against each other);
    # jobs 1-4 copied.
    assert (configs.composed_by_hydra, configs.copied) == (2, 4)


def test_copies_are_independent(hydra_loader: Any) -> None:
    configs = JobConfigs(hydra_loader, master_config(hydra_loader))
    first = configs.load(trial(0, "params.x=1.0"))
    second = configs.load(trial(1, "params.x=2.0"))
    third = configs.load(trial(2, "params.x=3.0"))
    assert (first.params.x, second.params.x, third.params.x) == (1.0, 2.0, 3.0)
    assert list(second.hydra.overrides.task) == ["+arch=quadratic", "params.x=2.0"]
    # A job that changes its config changes no later job's (each is a copy of the unchanged template).
    with open_dict(first):
        first.params.extra = 1
        first.params.y = 9.0
    fourth = configs.load(trial(3, "params.x=4.0"))
    assert "extra" not in fourth.params
    assert fourth.params.y == hydra_loader.load_sweep_config(configs.master_config, trial(3, "params.x=4.0")).params.y


@pytest.mark.parametrize(
    ("bad", "error"),
    [("params.nope=1", "Could not override 'params.nope'"), ("params.x.y=1", "Could not override 'params.x.y'"),
     ("tracking=[1]", "Error merging override tracking=")],
)
def test_a_value_hydra_rejects_fails_with_hydras_error(hydra_loader: Any, bad: str, error: str) -> None:
    configs = JobConfigs(hydra_loader, master_config(hydra_loader))
    configs.load(trial(0, "params.x=1.0"))
    with pytest.raises(Exception, match=error.replace("(", r"\(")) as ours:
        configs.load(trial(1, bad))
    with pytest.raises(type(ours.value)):
        hydra_loader.load_sweep_config(configs.master_config, trial(1, bad))


def test_a_template_that_differs_from_hydra_falls_back_to_hydra(
    hydra_loader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tuneflow.sweeper.job_configs as job_configs

    configs = JobConfigs(hydra_loader, master_config(hydra_loader))
    monkeypatch.setattr(job_configs, "same_config", lambda a, b: False)  # as if a copy came out wrong
    for number in range(3):
        assert configs.load(trial(number, f"params.x={number}.0")).params.x == float(number)
    assert configs.copied == 0
