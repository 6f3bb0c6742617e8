"""A user moving from Hydra's Optuna sweeper keeps their sweep config: the same overrides mean the same
Optuna search space, the plugin is found under its name, and the removed `motpe` sampler is explained.

Each test mirrors one case of that sweeper's own test suite (named `peer: ...`), asserting the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import InstantiationException
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.tuneflow_sweeper.tuneflow_sweeper import TuneflowSweeper
from tuneflow.search.configs import MOTPESamplerConfig
from tuneflow.search.space import to_distribution
from tuneflow.sweeper.plan import params_from_overrides

#: Why three cases expect another range than the peer does: tuneflow keeps Hydra's meaning of `range`
#: (its end excluded, as Python's range and Hydra's basic sweeper), while the peer includes the end for
#: samplers other than grid. The README says so under "Choosing the search".
RANGE_END = "tuneflow excludes range's end (Hydra's meaning); the peer includes it"


def test_hydra_discovers_the_tuneflow_sweeper() -> None:
    """peer: test_discovery"""
    found = {plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)}
    assert TuneflowSweeper.__name__ in found


def same_distribution(expected: BaseDistribution, actual: BaseDistribution) -> bool:
    """Equal distributions; for a choice, the same values in any order (`shuffle` reorders them)."""
    if isinstance(expected, CategoricalDistribution):
        return isinstance(actual, CategoricalDistribution) and set(actual.choices) == set(expected.choices)
    return actual == expected


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param("lr=choice(1,2)", CategoricalDistribution([1, 2]), id="choice-ints"),
        pytest.param("lr=choice(true, false)", CategoricalDistribution([True, False]), id="choice-bools"),
        pytest.param("lr=choice('hello', 'world')", CategoricalDistribution(["hello", "world"]), id="choice-strs"),
        pytest.param("lr=shuffle(range(1,3))", CategoricalDistribution([2, 1]), id="shuffled-range"),
        # RANGE_END: the peer expects IntDistribution(1, 3).
        pytest.param("lr=range(1,3)", IntDistribution(1, 2), id="int-range"),
        pytest.param("lr=interval(1, 5)", FloatDistribution(1.0, 5.0), id="interval"),
        pytest.param("lr=int(interval(1, 5))", IntDistribution(1, 5), id="int-interval"),
        pytest.param("lr=tag(log, interval(1, 5))", FloatDistribution(1.0, 5.0, log=True), id="log-interval"),
        pytest.param("lr=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True), id="log-int-interval"),
        # RANGE_END: the peer expects FloatDistribution(0.5, 5.5, step=1).
        pytest.param("lr=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 4.5, step=1.0), id="float-range"),
    ],
)
def test_each_sweep_function_becomes_the_matching_optuna_distribution(
    override: str, expected: BaseDistribution
) -> None:
    """peer: test_create_optuna_distribution_from_override"""
    [parsed] = OverridesParser.create().parse_overrides([override])
    actual = to_distribution(parsed)
    assert same_distribution(expected, actual), (override, actual)


@pytest.mark.parametrize(
    ("overrides", "searched", "fixed", "deleted"),
    [
        pytest.param(["lr=choice(1,2)"], {"lr": CategoricalDistribution([1, 2])}, {}, [], id="one-sweep"),
        pytest.param(["lr=5"], {}, {"lr": "5"}, [], id="one-fixed"),
        pytest.param(
            ["lr=choice(1,2)", "depth=5"], {"lr": CategoricalDistribution([1, 2])}, {"depth": "5"}, [],
            id="sweep-and-fixed",
        ),
        pytest.param(
            ["lr=choice(1,2)", "depth=5", "width=range(1,3)"],
            # RANGE_END: the peer expects width IntDistribution(1, 3).
            {"lr": CategoricalDistribution([1, 2]), "width": IntDistribution(1, 2)},
            {"depth": "5"},
            [],
            id="two-sweeps-and-fixed",
        ),
        pytest.param(["~dropout"], {}, {}, ["~dropout"], id="delete"),
        pytest.param(["~dropout=10"], {}, {}, ["~dropout=10"], id="delete-if-value"),
    ],
)
def test_overrides_split_into_searched_fixed_and_deleted(
    overrides: list[str], searched: dict[str, BaseDistribution], fixed: dict[str, str], deleted: list[str]
) -> None:
    """peer: test_create_params_from_overrides"""
    assert params_from_overrides(overrides) == (searched, fixed, deleted)


@pytest.mark.slow  # about 10 s: 8 trials, each with its MLflow run
def test_a_sweep_whose_space_is_empty_runs_its_trials(
    hydra_sweep_runner: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """peer: test_launch_jobs. Hydra's own test app and config (nothing to search, only fixed values),
    8 trials asked 3 at a time through Hydra's basic launcher: the sweep completes and, like Hydra's
    sweepers, returns nothing."""
    monkeypatch.chdir(tmp_path)  # the sweeper keeps its stores under the working folder
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        config_path="configs",
        config_name="compose.yaml",
        task_function=None,
        overrides=["hydra/sweeper=tuneflow", "hydra/launcher=basic", "hydra.sweeper.n_trials=8",
                   "hydra.sweeper.n_jobs=3"],
    )
    with sweep:
        assert sweep.returns is None


def test_the_removed_motpe_sampler_says_what_to_use_instead() -> None:
    """peer: test_motpe_sampler_removed"""
    config = OmegaConf.structured(MOTPESamplerConfig)
    with pytest.raises(InstantiationException, match="The 'motpe' sampler was removed in Optuna 4.0"):
        instantiate(config)
