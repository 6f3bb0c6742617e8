"""Translate a search space written in Hydra's sweep syntax into Optuna distributions, and back.

A search space is a mapping ``name -> sweep`` such as::

    lr: tag(log, interval(1e-4, 1e-1))     -> FloatDistribution(1e-4, 1e-1, log=True)
    batch_size: choice(16, 32, 64)         -> CategoricalDistribution((16, 32, 64))
    n_layers: range(1, 4)                  -> IntDistribution(1, 3)   (Hydra's range excludes its end)
    dropout: interval(0.0, 0.5)            -> FloatDistribution(0.0, 0.5)
    units: int(interval(1, 5))             -> IntDistribution(1, 5)   (the cast makes the bounds ints)
    width: tag(log, int(interval(1, 1024))) -> IntDistribution(1, 1024, log=True)
    act: str(choice(1, 2))                 -> CategoricalDistribution(("1", "2"))
    epochs: 20                             -> a fixed override, not searched

A key is a config path, as Hydra's Optuna sweeper reads it. An app may name a node its bare keys live
under (``hydra.sweeper.params_node``; tuneflow's own app: ``params``): then ``lr`` means ``params.lr``
and a dotted key is still a full config path (``data.val_fraction``). Every mistake is reported as one
line that names the parameter and the rule, before any study exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
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
    """One Hydra sweep -> one Optuna distribution, validated.

    Every sweep function of Hydra's override grammar is either translated or refused with the fix.
    Hydra's parser has already applied the casts: ``int(interval(1, 5))`` arrives as an interval with
    int bounds, ``float(range(1, 4))`` as a range of floats, ``str(choice(1, 2))`` as a choice of
    strings, so the types of the bounds decide int or float, as Hydra's own ``RangeSweep.range()`` does.
    ``sort(...)`` and ``shuffle(choice(...))`` only change the order in which Hydra's basic sweeper would
    visit the values; Optuna samples, it does not visit in order, so they are the plain distribution.
    ``shuffle(range(...))`` is the choice of the range's values, as Hydra's Optuna sweeper makes it
    (Hydra's parser turns a shuffled range into a list of its values); tagged, it is the tagged range.
    """
    path = override.get_key_element()
    sweep = override.value()
    text = _sweep_text(override)
    if isinstance(sweep, Glob):
        raise SearchSpaceError(
            f"search space: {path}={text} selects config-group options, which a search cannot sample; "
            "name them: choice(a, b)"
        )
    tags = set(getattr(sweep, "tags", set()))
    unknown_tags = tags - {"log", "int"}
    if unknown_tags:
        raise SearchSpaceError(
            f"search space: {path} has tag(s) {sorted(unknown_tags)}; supported tags are log and int"
        )
    if not tags and _CAST_AROUND_TAG.search(text):
        # Hydra's int()/float()/str()/bool() rebuild a range or a choice without its tags.
        raise SearchSpaceError(
            f"search space: {path}={text}: a cast drops the tags inside it; put tag() outside, "
            "e.g. tag(log, int(range(1, 9)))"
        )
    log, as_int = "log" in tags, "int" in tags
    if isinstance(sweep, ChoiceSweep):
        if not sweep.list:
            raise SearchSpaceError(f"search space: {path} is an empty choice(); give at least one value")
        if log or as_int:
            tag_name = "log" if log else "int"
            raise SearchSpaceError(
                f"search space: {path}: tag({tag_name}) applies to interval or range, not choice"
                + ("; cast the values instead: int(choice(...))" if as_int and not log else "")
            )
        choices = tuple(_plain(element) for element in sweep.list)
        if any(isinstance(c, float) and math.isnan(c) for c in choices):
            raise SearchSpaceError(f"search space: {path}: choice() holds nan, which no trial can use; drop it")
        return CategoricalDistribution(choices)
    if isinstance(sweep, RangeSweep) and sweep.shuffle and not (log or as_int):
        # (With tag(log) or tag(int) the tag asks for a distribution over the range, and gets it.)
        return CategoricalDistribution(tuple(_plain(element) for element in sweep.range()))
    if isinstance(sweep, RangeSweep):
        return _range_distribution(path, sweep, log, as_int)
    if isinstance(sweep, IntervalSweep):
        return _interval_distribution(path, sweep, log, as_int)
    raise SearchSpaceError(
        f"search space: {path}={text} is not supported; "
        "use choice(...), range(...), interval(...) or tag(log, ...)"
    )


#: ``int(tag(log, range(1, 9)))``: a cast whose argument holds a tag().
_CAST_AROUND_TAG = re.compile(r"\b(?:int|float|str|bool)\s*\(.*\btag\s*\(")


def _sweep_text(override: Override) -> str:
    return override.input_line.split("=", 1)[-1] if override.input_line else str(override.value())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_distribution(path: str, sweep: RangeSweep, log: bool, as_int: bool) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None  # the grammar requires both
    shown = f"range({start}, {stop})" if step == 1 else f"range({start}, {stop}, step={step})"
    if step is None or step == 0:
        raise SearchSpaceError(f"search space: {path}: range step must be non-zero")
    _check_finite(path, shown, start, stop, step)
    empty = SearchSpaceError(
        f"search space: {path}: {shown} is empty; write range(low, high) with low < high "
        "(high is excluded, as in Hydra and Python)"
    )
    # Hydra's range excludes its end, like Python's. Its values are ints only when start, stop and step
    # all are (RangeSweep.range()); otherwise they are floats counted in Decimal (Hydra's FloatRange).
    if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int) and not any(
        isinstance(x, bool) for x in (start, stop, step)
    ):
        values = range(start, stop, step)
        if not values:
            raise empty
        low, high = min(values[0], values[-1]), max(values[0], values[-1])
        _check_log_low(path, low, log)
        if log and abs(step) != 1:
            raise SearchSpaceError(f"search space: {path}: tag(log, range(...)) needs step 1")
        return IntDistribution(low, high, log=log, step=abs(step))
    if as_int or log:
        tag_name = "int" if as_int else "log"
        raise SearchSpaceError(
            f"search space: {path}: tag({tag_name}, {shown}) needs integer start, stop and step; "
            "write them as integers or cast: int(range(...))"
        )
    first, stop_d, step_d = Decimal(start), Decimal(stop), Decimal(step)
    count = math.ceil((stop_d - first) / step_d)
    if count <= 0:
        raise empty
    last = first + (count - 1) * step_d
    return FloatDistribution(float(min(first, last)), float(max(first, last)), step=float(abs(step_d)))


def _interval_distribution(path: str, sweep: IntervalSweep, log: bool, as_int: bool) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    assert low is not None and high is not None  # the grammar requires both
    _check_finite(path, f"interval({low}, {high})", low, high)
    if low > high:
        raise SearchSpaceError(
            f"search space: {path}: interval({low}, {high}) has low > high; swap the bounds"
        )
    # interval() always gives floats; int(interval(...)) gives int bounds: an int distribution, as in
    # Hydra's Optuna sweeper. tag(int, ...) says the same.
    if as_int or (_is_int(low) and _is_int(high)):
        low, high = int(low), int(high)
        _check_log_low(path, low, log)
        return IntDistribution(low, high, log=log)
    _check_log_low(path, low, log)
    return FloatDistribution(float(low), float(high), log=log)


def _check_finite(path: str, shown: str, *bounds: float) -> None:
    """nan and inf bounds, or a width past the largest float, break every sampler at its first draw
    (after the study was created): say so now."""
    if not all(math.isfinite(b) for b in bounds) or not math.isfinite(float(bounds[1]) - float(bounds[0])):
        raise SearchSpaceError(
            f"search space: {path}: {shown} needs finite bounds less than 1e308 apart (no nan or inf)"
        )


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


def grid_of(distributions: Mapping[str, BaseDistribution], sampler: str = "grid") -> dict[str, list[Any]]:
    """The explicit grid of a search space, for Optuna's GridSampler (and the size of what the
    brute-force sampler enumerates).

    Only choice and range parameters (and integer intervals) have a finite grid; a continuous interval
    is reported with the fix.
    """
    grid: dict[str, list[Any]] = {}
    for path, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[path] = list(distribution.choices)
        elif isinstance(distribution, IntDistribution):
            grid[path] = list(range(distribution.low, distribution.high + 1, distribution.step))
        elif isinstance(distribution, FloatDistribution) and distribution.step is not None:
            count = round((distribution.high - distribution.low) / distribution.step) + 1
            grid[path] = [distribution.low + i * distribution.step for i in range(count)]
        else:
            raise SearchSpaceError(
                f"search space: the {sampler} sampler cannot enumerate {path} ({distribution.__class__.__name__}); "
                "give it as choice(...) or range(...)"
            )
    return grid


def short_name(path: str, node: str | None = None) -> str:
    """With ``node="params"``: ``params.lr`` -> ``lr`` for display and MLflow params; other paths stay
    whole."""
    prefix = f"{node}."
    return path[len(prefix) :] if node is not None and path.startswith(prefix) else path
