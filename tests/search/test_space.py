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
        ("range(5)", IntDistribution(0, 4)),
        ("range(0, 1, 0.1)", FloatDistribution(0.0, 0.9, step=0.1)),
        # A negative step counts down; the values, and so the distribution, are the same set.
        ("range(5, 1, -1)", IntDistribution(2, 5)),
        # Simple form: a comma list is a choice.
        ("1,2,3", CategoricalDistribution((1, 2, 3))),
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
        ("range(1, 2, 0)", "step must be non-zero"),
        ("tag(log, range(0.5, 4.5))", "needs integer start, stop and step"),
        ("tag(log, range(1, 9, 2))", "needs step 1"),
        ("tag(int, choice(1, 2))", "cast the values instead: int(choice(...))"),
        ("tag(log, choice(1, 2))", "tag(log) applies to interval or range, not choice"),
        # Casts Hydra's grammar refuses, and a cast that would silently drop the tag inside it.
        ("str(interval(1, 5))", "Intervals cannot be cast to str"),
        ("bool(interval(0, 1))", "Intervals cannot be cast to bool"),
        ("str(range(1, 3))", "Range can only be cast to int or float"),
        ("bool(range(0, 2))", "Range can only be cast to int or float"),
        ("int(tag(log, range(1, 9)))", "a cast drops the tags inside it; put tag() outside"),
        ("tag(log, int(interval(0.5, 10)))", "log scale needs low > 0, got low=0"),
        ("glob(*)", "selects config-group options"),
    ],
)
def test_an_unsearchable_space_is_one_line_naming_the_parameter(sweep: str, message: str) -> None:
    with pytest.raises(SearchSpaceError) as error:
        parse_search_space({"lr": sweep}, "params")
    text = str(error.value)
    assert message in text
    assert "params.lr" in text
    assert "\n" not in text


# Hydra's parser applies casts, shuffle and sort before tuneflow sees the sweep: a cast of a sweep is a
# sweep of cast values (int(interval(1, 5)) is an interval with int bounds), shuffle and sort only set the
# order Hydra's basic sweeper would visit. Each form below must become exactly this distribution.
GRAMMAR = [
    # casts around choice
    ("int(choice(1.5, 2.5))", CategoricalDistribution((1, 2))),
    ("float(choice(1, 2))", CategoricalDistribution((1.0, 2.0))),
    ("str(choice(1, 2))", CategoricalDistribution(("1", "2"))),
    ("bool(choice(0, 1))", CategoricalDistribution((False, True))),
    ("int(1.5, 2.7)", CategoricalDistribution((1, 2))),
    # casts around range: Hydra's rule (ints only when start, stop and step are) decides int or float
    ("int(range(1, 4))", IntDistribution(1, 3)),
    ("float(range(1, 4))", FloatDistribution(1.0, 3.0, step=1.0)),
    ("range(1.0, 4.0)", FloatDistribution(1.0, 3.0, step=1.0)),
    ("int(range(0.0, 9.0, 3.0))", IntDistribution(0, 6, step=3)),
    # casts around interval: interval() gives floats, int() makes it an int distribution
    ("int(interval(1, 5))", IntDistribution(1, 5)),
    ("int(interval(1.5, 5.5))", IntDistribution(1, 5)),
    ("float(interval(1, 5))", FloatDistribution(1.0, 5.0)),
    ("interval(1, 5)", FloatDistribution(1.0, 5.0)),
    # tags, also around casts
    ("tag(log, int(interval(1, 1024)))", IntDistribution(1, 1024, log=True)),
    ("tag(int, float(interval(1, 8)))", IntDistribution(1, 8)),
    ("tag(log, float(interval(1, 8)))", FloatDistribution(1.0, 8.0, log=True)),
    ("tag(log, int(range(1, 9)))", IntDistribution(1, 8, log=True)),
    ("tag(int, range(1, 9))", IntDistribution(1, 8)),
    # nested casts
    ("int(float(choice(1.5, 2.5)))", CategoricalDistribution((1, 2))),
    ("str(int(choice(1.5, 2.5)))", CategoricalDistribution(("1", "2"))),
    ("float(int(interval(1.5, 5.5)))", FloatDistribution(1.0, 5.0)),
    ("int(float(range(1, 4)))", IntDistribution(1, 3)),
    # order is irrelevant to Optuna: shuffled or sorted, the same distribution; but a shuffled range is
    # the choice of its values, as Hydra's Optuna sweeper makes it (its test suite asserts it)
    ("shuffle(range(1, 3))", CategoricalDistribution((1, 2))),
    ("shuffle(choice(a, b))", CategoricalDistribution(("a", "b"))),
    ("shuffle(1, 2, 3)", CategoricalDistribution((1, 2, 3))),
    ("int(shuffle(range(1, 3)))", IntDistribution(1, 2)),
    ("sort(choice(3, 1, 2))", CategoricalDistribution((1, 2, 3))),
    ("sort(range(1, 5), reverse=true)", IntDistribution(1, 4)),
    # a tag asks for a distribution over the range: honoured (Hydra's Optuna sweeper drops it)
    ("tag(log, shuffle(range(1, 9)))", IntDistribution(1, 8, log=True)),
]


@pytest.mark.parametrize(("sweep", "expected"), GRAMMAR, ids=[sweep for sweep, _ in GRAMMAR])
def test_every_sweep_function_of_hydras_grammar_becomes_its_distribution(sweep: str, expected: object) -> None:
    distributions, fixed = parse_search_space({"x": sweep})
    assert distributions == {"x": expected}
    assert type(distributions["x"]) is type(expected)
    if isinstance(expected, CategoricalDistribution):  # 1 == 1.0 == True: compare the types too
        assert [type(c) for c in distributions["x"].choices] == [type(c) for c in expected.choices]
    assert fixed == {}


def test_a_shuffled_or_sorted_list_is_a_fixed_value_as_in_hydra() -> None:
    distributions, fixed = parse_search_space({"x": "sort([3, 1, 2])"})
    assert distributions == {}
    assert fixed == {"x": "[1,2,3]"}


def test_grid_enumerates_choices_and_ranges_and_refuses_intervals() -> None:
    distributions, _ = parse_search_space({"a": "choice(x, y)", "b": "range(1, 4)", "c": "tag(log, int(interval(1, 3)))"})
    assert grid_of(distributions) == {"a": ["x", "y"], "b": [1, 2, 3], "c": [1, 2, 3]}
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
