"""Translate a search space written in Hydra's sweep syntax into Optuna distributions, and back.

A search space is a mapping ``name -> sweep`` such as::

    lr: tag(log, interval(1e-4, 1e-1))     -> FloatDistribution(1e-4, 1e-1, log=True)
    batch_size: choice(16, 32, 64)         -> CategoricalDistribution((16, 32, 64))
    n_layers: range(1, 4)                  -> IntDistribution(1, 3)   (Hydra's range excludes its end)
    dropout: interval(0.0, 0.5)            -> FloatDistribution(0.0, 0.5)
    epochs: 20                             -> a fixed override, not searched

A key is a config path, as Hydra's Optuna sweeper reads it. An app may name a node its bare keys live
under (``hydra.sweeper.params_node``; tuneflow's own app: ``params``): then ``lr`` means ``params.lr``
and a dotted key is still a full config path (``data.val_fraction``). Every mistake is reported as one
line that names the parameter and the rule, before any study exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.errors import ConfigError

#: The node tuneflow's own app keeps an architecture's hyperparameters in (its ``params_node``).
PARAMS_NODE = "params"


class SearchSpaceError(ConfigError):
    """A search space that cannot be searched; the message names the parameter and the fix."""


def config_path(name: str, node: str | None = None) -> str:
    """With ``node="params"``: ``lr`` -> ``params.lr``; a dotted name is already a full config path."""
    return name if node is None or "." in name else f"{node}.{name}"


def flatten(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings (``params: {lr: ...}``) become dotted keys (``params.lr``)."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def parse_override(path: str, value: Any) -> Override:
    """Parse ``path=value`` with Hydra's own override grammar."""
    text = value if isinstance(value, str) else repr(value)
    try:
        return OverridesParser.create().parse_override(f"{path}={text}")
    except HydraException as error:
        first_line = str(error).strip().splitlines()[0]
        raise SearchSpaceError(f"search space: cannot parse {path}={text!r}: {first_line}") from None


def parse_search_space(
    space: Mapping[str, Any], node: str | None = None
) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Split a search space into Optuna distributions keyed by parameter name (``lr``,
    ``data.val_fraction``: what Optuna, the dashboard and MLflow show) and fixed overrides keyed by
    config path."""
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for name, value in flatten(space).items():
        path = config_path(name, node)
        override = parse_override(path, value)
        if override.is_sweep_override():
            distributions[short_name(path, node)] = to_distribution(override)
        else:
            fixed[path] = override.get_value_element_as_str()
    return distributions, fixed


def to_distribution(override: Override) -> BaseDistribution:
    """One Hydra sweep -> one Optuna distribution, validated."""
    path = override.get_key_element()
    sweep = override.value()
    tags = set(getattr(sweep, "tags", set()))
    unknown_tags = tags - {"log", "int"}
    if unknown_tags:
        raise SearchSpaceError(
            f"search space: {path} has tag(s) {sorted(unknown_tags)}; supported tags are log and int"
        )
    log = "log" in tags
    if isinstance(sweep, ChoiceSweep):
        if not sweep.list:
            raise SearchSpaceError(f"search space: {path} is an empty choice(); give at least one value")
        if log:
            raise SearchSpaceError(f"search space: {path}: tag(log) applies to interval or range, not choice")
        choices = tuple(_plain(element) for element in sweep.list)
        return CategoricalDistribution(choices)
    if isinstance(sweep, RangeSweep):
        return _range_distribution(path, sweep, log)
    if isinstance(sweep, IntervalSweep):
        return _interval_distribution(path, sweep, log, as_int="int" in tags)
    raise SearchSpaceError(
        f"search space: {path}={(override.input_line or '').split('=', 1)[-1]} is not supported; "
        "use choice(...), range(...), interval(...) or tag(log, ...)"
    )


def _range_distribution(path: str, sweep: RangeSweep, log: bool) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None  # the grammar requires both
    if step is None or step == 0:
        raise SearchSpaceError(f"search space: {path}: range step must be non-zero")
    if step < 0 or stop <= start:
        raise SearchSpaceError(
            f"search space: {path}: range({start}, {stop}) is empty; write range(low, high) with low < high "
            "(high is excluded, as in Hydra and Python)"
        )
    # Hydra's range excludes its end, like Python's: the largest value is the last step below stop.
    n_steps = math.ceil((stop - start) / step) - 1
    last = start + n_steps * step
    if all(float(x).is_integer() for x in (start, step)):
        if log and step != 1:
            raise SearchSpaceError(f"search space: {path}: tag(log, range(...)) needs step 1")
        _check_log_low(path, start, log)
        return IntDistribution(int(start), int(last), log=log, step=int(step))
    _check_log_low(path, start, log)
    if log:
        raise SearchSpaceError(f"search space: {path}: tag(log, range(...)) needs integer bounds")
    return FloatDistribution(float(start), float(last), step=float(step))


def _interval_distribution(path: str, sweep: IntervalSweep, log: bool, as_int: bool) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    assert low is not None and high is not None  # the grammar requires both
    if low > high:
        raise SearchSpaceError(
            f"search space: {path}: interval({low}, {high}) has low > high; swap the bounds"
        )
    _check_log_low(path, low, log)
    if as_int:
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _check_log_low(path: str, low: float, log: bool) -> None:
    if log and low <= 0:
        raise SearchSpaceError(
            f"search space: {path}: a log scale needs low > 0, got low={low}; use a positive lower bound"
        )


def _plain(element: Any) -> CategoricalChoiceType:
    """Hydra elements of a choice as the plain values Optuna stores (None, bool, int, float, str)."""
    if element is None or isinstance(element, (bool, int, float, str)):
        return element
    # Lists and dicts are not Optuna choices; keep their override text so the job receives them verbatim.
    return str(element)


def override_value(value: Any) -> str:
    """A sampled value as the right-hand side of a Hydra override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if text and all(ch.isalnum() or ch in "_-./:" for ch in text) and not text[0].isdigit():
        return text
    quoted = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{quoted}'"


def to_overrides(params: Mapping[str, Any], node: str | None = None) -> list[str]:
    """Sampled ``{name: value}`` -> ``["name=value", ...]`` (``node.name`` for a bare name under
    ``node``) for the launcher."""
    return [f"{config_path(name, node)}={override_value(value)}" for name, value in params.items()]


def grid_of(distributions: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The explicit grid of a search space, for Optuna's GridSampler.

    Only choice and range parameters have a finite grid; an interval is reported with the fix.
    """
    grid: dict[str, list[Any]] = {}
    for path, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[path] = list(distribution.choices)
        elif isinstance(distribution, IntDistribution) and not distribution.log:
            grid[path] = list(range(distribution.low, distribution.high + 1, distribution.step))
        elif isinstance(distribution, FloatDistribution) and distribution.step is not None:
            count = round((distribution.high - distribution.low) / distribution.step) + 1
            grid[path] = [distribution.low + i * distribution.step for i in range(count)]
        else:
            raise SearchSpaceError(
                f"search space: the grid sampler cannot enumerate {path} ({distribution.__class__.__name__}); "
                "give it as choice(...) or range(...)"
            )
    return grid


def short_name(path: str, node: str | None = None) -> str:
    """With ``node="params"``: ``params.lr`` -> ``lr`` for display and MLflow params; other paths stay
    whole."""
    prefix = f"{node}."
    return path[len(prefix) :] if node is not None and path.startswith(prefix) else path
