"""A user writes the search space in Hydra's sweep syntax; tuneflow hands Optuna the same space."""

from __future__ import annotations

import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.search.space import (
    SearchSpaceError,
    config_path,
    grid_of,
    override_value,
    parse_search_space,
    to_overrides,
)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("tag(int, interval(1, 10))", IntDistribution(1, 10)),
        ("tag(log, int, interval(1, 1024))", IntDistribution(1, 1024, log=True)),
        ("choice(16, 32, 64, 128)", CategoricalDistribution((16, 32, 64, 128))),
        ("choice(constant, step, plateau)", CategoricalDistribution(("constant", "step", "plateau"))),
        # Hydra's range excludes its end, as Python's does: range(1, 4) is 1, 2, 3 (not 4).
        ("range(1, 4)", IntDistribution(1, 3)),
        ("range(0, 10, step=3)", IntDistribution(0, 9, step=3)),
        ("range(0.0, 1.0, step=0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("tag(log, range(1, 9))", IntDistribution(1, 8, log=True)),
    ],
)
def test_sweep_syntax_becomes_the_optuna_distribution(sweep: str, expected: object) -> None:
    distributions, fixed = parse_search_space({"lr": sweep})
    assert distributions == {"lr": expected}
    assert fixed == {}


def test_plain_values_are_fixed_overrides_not_searched() -> None:
    distributions, fixed = parse_search_space({"lr": "interval(0.1, 0.2)", "epochs": 3}, "params")
    assert list(distributions) == ["lr"]
    assert fixed == {"params.epochs": "3"}


def test_keys_are_config_paths_as_hydras_optuna_sweeper_reads_them() -> None:
    assert config_path("x") == "x"
    distributions, fixed = parse_search_space({"x": "interval(-5, 5)", "db": {"lr": "choice(0.1, 0.2)"}, "y": 1})
    assert list(distributions) == ["x", "db.lr"]
    assert fixed == {"y": "1"}
    assert to_overrides({"x": 0.5, "db.lr": 0.1}) == ["x=0.5", "db.lr=0.1"]


def test_an_app_can_keep_bare_names_under_a_node_and_dotted_names_are_config_paths() -> None:
    assert config_path("lr", "params") == "params.lr"
    assert config_path("data.val_fraction", "params") == "data.val_fraction"
    distributions, _ = parse_search_space({"data": {"val_fraction": "interval(0.1, 0.3)"}}, "params")
    assert list(distributions) == ["data.val_fraction"]
    assert to_overrides({"lr": 0.01, "data.val_fraction": 0.2}, "params") == ["params.lr=0.01", "data.val_fraction=0.2"]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("interval(0.5, 0.1)", "low > high"),
        ("tag(log, interval(0.0, 1.0))", "log scale needs low > 0"),
        ("tag(log, interval(-1.0, 1.0))", "log scale needs low > 0"),
        ("range(5, 5)", "is empty"),
        ("range(5, 1)", "is empty"),
        ("choice()", "empty choice"),
        ("tag(loq, interval(1, 2))", "supported tags are log and int"),
        ("interval(1, ", "cannot parse"),
    ],
)
def test_an_unsearchable_space_is_one_line_naming_the_parameter(sweep: str, message: str) -> None:
    with pytest.raises(SearchSpaceError) as error:
        parse_search_space({"lr": sweep}, "params")
    text = str(error.value)
    assert message in text
    assert "params.lr" in text
    assert "\n" not in text


def test_grid_enumerates_choices_and_ranges_and_refuses_intervals() -> None:
    distributions, _ = parse_search_space({"a": "choice(x, y)", "b": "range(1, 4)"})
    assert grid_of(distributions) == {"a": ["x", "y"], "b": [1, 2, 3]}
    continuous, _ = parse_search_space({"lr": "interval(0.1, 0.2)"})
    with pytest.raises(SearchSpaceError, match="grid sampler cannot enumerate lr"):
        grid_of(continuous)


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), (True, "true"), (3, "3"), (0.001, "0.001"), ("plateau", "plateau"), ("a b", "'a b'"),
     ("it's", "'it\\'s'"), ("1abc", "'1abc'")],
)
def test_sampled_values_become_valid_override_text(value: object, text: str) -> None:
    assert override_value(value) == text
