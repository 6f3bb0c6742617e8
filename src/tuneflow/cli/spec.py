"""Experiment specs: a JSON file naming an architecture, date ranges and lists of parameter values,
run as one tuneflow study that tries every combination once, in random order.

``python -m tuneflow spec experiments.json [hydra overrides...]`` with::

    {"architecture": "lstm-attention",
     "date-range": [["2014-01-01", "2014-04-01"]],
     "parameters": {"num_of_attentions": [1, 2, 3], "attention_hidden_layer_size": [32, 128, 256]}}

runs::

    python -m tuneflow -m +arch=lstm_attention ~search_space hydra/sweeper/sampler=grid
        hydra/sweeper/pruner=none hydra.sweeper.n_trials=9 hydra.sweeper.study_name=experiments
        "data.date_ranges=[['2014-01-01','2014-04-01']]"
        "hydra.sweeper.params.num_of_attentions=choice(1, 2, 3)" ...

Each combination is one Optuna trial and one MLflow run, trained once per date range (the runner averages
the objective over the ranges and logs each range's metrics under the range's name). Keys may be written
with dashes or underscores. Optional keys: ``study-name`` (default: the file's name without ``.json``)
and ``overrides``, a mapping of fixed Hydra overrides (``{"params.epochs": 5, "mode": "fast"}``).

Every mistake is reported as one line (``tuneflow: error: ...``, exit status 2) before anything runs.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tuneflow.errors import ConfigError
from tuneflow.search.space import override_value
from tuneflow.storage.study import check_study_name
from tuneflow.storage.urls import refuse_passwords_in_arguments

EXIT_USAGE = 2

#: Top-level keys, after dashes become underscores; ``date_range`` is accepted for ``date_ranges``.
KEYS = ("architecture", "date_ranges", "parameters", "study_name", "overrides")
_ALIASES = {"date_range": "date_ranges"}
#: The keys as a spec writes them, for error messages.
_SHOWN_KEYS = "architecture, date-range, parameters, study-name, overrides"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SCALARS = (str, int, float, bool, type(None))


class SpecError(ConfigError):
    """An experiment spec that cannot run; the message names the key and the fix."""


@dataclass(frozen=True)
class Spec:
    """A validated experiment spec."""

    #: Name of a file in conf/arch/ (``lstm_attention``).
    architecture: str
    #: Parameter name (as in ``hydra.sweeper.params``) -> the values to try.
    parameters: dict[str, list[Any]]
    study_name: str
    #: ``[[start, end], ...]`` as ISO dates, end excluded; None = the data config's automatic ranges.
    date_ranges: list[list[str]] | None = None
    #: Fixed Hydra overrides ``path -> value`` every trial receives.
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def n_combinations(self) -> int:
        return math.prod(len(values) for values in self.parameters.values())


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing file or malformed JSON is a ``SpecError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read experiment spec {str(path)!r}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SpecError(
            f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8, as JSON requires"
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(
            f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a JSON object {{...}}, not a {type(raw).__name__}")
    return raw


def _key(name: str) -> str:
    key = name.replace("-", "_")
    return _ALIASES.get(key, key)


def parse_spec(raw: Mapping[str, Any], *, default_study_name: str, archs: Sequence[str]) -> Spec:
    """Validate a spec's structure: keys, architecture, parameters, overrides (not dates: see
    :func:`check_date_ranges`)."""
    entries: dict[str, Any] = {}
    for name, value in raw.items():
        key = _key(str(name))
        if key not in KEYS:
            raise SpecError(f"unknown key {name!r} in the experiment spec; allowed keys: {_SHOWN_KEYS}")
        if key in entries:
            raise SpecError(f"key {name!r} appears twice in the experiment spec (dashes and underscores are the same)")
        entries[key] = value
    for required in ("architecture", "parameters"):
        if required not in entries:
            raise SpecError(f"the experiment spec has no {required!r}; add it")

    architecture = entries["architecture"]
    if not isinstance(architecture, str) or _key(architecture) not in archs:
        raise SpecError(f"unknown architecture {architecture!r}; choose one of {', '.join(archs)}")

    grid = _parameter_grid(entries["parameters"])

    study_name = entries.get("study_name", default_study_name)
    if not isinstance(study_name, str) or not study_name.strip():
        raise SpecError(f"'study-name' is {study_name!r}, but must be a non-empty string")
    check_study_name(study_name.strip(), "'study-name'")

    overrides = _fixed_overrides(entries.get("overrides", {}))

    date_ranges = entries.get("date_ranges")
    if date_ranges is not None:
        date_ranges = _date_range_list(date_ranges)
    return Spec(_key(architecture), grid, study_name.strip(), date_ranges, overrides)


def _parameter_grid(parameters: Any) -> dict[str, list[Any]]:
    """``{"name": [values...]}`` checked: config names (dashes read as underscores), non-empty lists of
    distinct scalars."""
    if not isinstance(parameters, dict) or not parameters:
        raise SpecError("'parameters' must be a non-empty object {\"name\": [values, ...], ...}")
    grid: dict[str, list[Any]] = {}
    for name, values in parameters.items():
        key = str(name).replace("-", "_")
        if not _NAME.match(key):
            raise SpecError(f"parameter name {name!r} is not a config name (letters, digits, _ and dots)")
        if key in grid:
            raise SpecError(f"parameter {key!r} appears twice (dashes and underscores are the same)")
        if not isinstance(values, list):
            raise SpecError(f"parameter {name!r} is {values!r}, but must be a list of values to try, e.g. [{values!r}]")
        if not values:
            raise SpecError(f"parameter {name!r} has an empty list; give at least one value")
        for value in values:
            if not isinstance(value, _SCALARS):
                raise SpecError(f"parameter {name!r}: {value!r} is not a number, string, boolean or null")
        # One pass over a set: comparing each value with all earlier ones took minutes on a large grid.
        seen: set[tuple[type, Any]] = set()
        for value in values:
            if (type(value), value) in seen:  # by type too: 1 and True are different values to try
                raise SpecError(f"parameter {name!r} lists {value!r} more than once")
            seen.add((type(value), value))
        grid[key] = list(values)
    return grid


def _fixed_overrides(overrides: Any) -> dict[str, Any]:
    if not isinstance(overrides, dict):
        raise SpecError(f"'overrides' is {overrides!r}, but must be an object {{\"params.epochs\": 5, ...}}")
    for path, value in overrides.items():
        if not _NAME.match(str(path)):
            raise SpecError(f"override {path!r} is not a config path (e.g. params.epochs or mode)")
        if not isinstance(value, _SCALARS):
            raise SpecError(f"override {path!r}: {value!r} must be a number, string, boolean or null")
    return dict(overrides)


def _date_range_list(raw: Any) -> list[list[str]]:
    """``[[start, end], ...]``, also accepting one bare pair ``[start, end]``."""
    if isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"'date-range' is {raw!r}, but must be a list of [start, end] pairs of YYYY-MM-DD dates")
    return raw


def check_date_ranges(spec: Spec, data_cfg: Mapping[str, Any] | None) -> list[list[str]] | None:
    """The spec's date ranges as ISO strings, checked against the data the architecture trains on.

    ``data_cfg`` is the composed ``data`` node (None when it could not be composed: then only the data
    span is checked, and the history in front of each range is left to the trials).
    """
    if spec.date_ranges is None:
        return None
    from tuneflow.data import timeseries

    kind = None if data_cfg is None else data_cfg.get("kind")
    if data_cfg is not None and kind != "timeseries":
        raise SpecError(
            f"architecture {spec.architecture} trains on {data_cfg.get('name')!r}, which has no dates; "
            "remove 'date-range' from the spec"
        )
    name = "seattle_weather" if data_cfg is None else str(data_cfg.get("name", "seattle_weather"))
    first, last = timeseries.data_span(name)
    try:
        ranges = timeseries.parse_date_ranges(spec.date_ranges, first, last)
    except ValueError as error:
        raise SpecError(str(error).replace("data.date_ranges", "date-range")) from None
    history_days = None if data_cfg is None else data_cfg.get("history_days")
    if history_days is not None:
        earliest = first + timedelta(days=int(history_days))
        for i, period in enumerate(ranges):
            if period.start < earliest:
                raise SpecError(
                    f"date-range[{i}] {period.name} has {(period.start - first).days} days of data before it, "
                    f"but each range trains on the data.history_days={history_days} days before it; "
                    f"start it on or after {earliest} or lower data.history_days"
                )
    return [[period.start.isoformat(), period.end.isoformat()] for period in ranges]


def to_overrides(spec: Spec, date_ranges: list[list[str]] | None = None) -> list[str]:
    """The ``python -m tuneflow`` arguments that run ``spec``: a grid study over its parameters only."""
    date_ranges = spec.date_ranges if date_ranges is None else date_ranges
    arguments = [
        "-m",
        f"+arch={spec.architecture}",
        # Only the spec's parameters are searched: drop the architecture's default search space.
        "~search_space",
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=none",
        f"hydra.sweeper.n_trials={spec.n_combinations}",
        f"hydra.sweeper.study_name={override_value(spec.study_name)}",
    ]
    if date_ranges is not None:
        pairs = ",".join(f'["{start}","{end}"]' for start, end in date_ranges)
        arguments.append(f"data.date_ranges=[{pairs}]")
    arguments += [f"{path}={override_value(value)}" for path, value in spec.overrides.items()]
    arguments += [
        f"hydra.sweeper.params.{name}=choice({', '.join(override_value(v) for v in values)})"
        for name, values in spec.parameters.items()
    ]
    return arguments


def compose_data_config(spec: Spec, extra: Sequence[str]) -> Mapping[str, Any] | None:
    """The ``data`` node the trials will get (mode and fixed overrides applied), or None when the
    overrides do not compose here (tuneflow itself then reports what is wrong)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    overrides = [f"+arch={spec.architecture}"]
    overrides += [f"{path}={override_value(value)}" for path, value in spec.overrides.items()]
    overrides += [o for o in extra if not o.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    try:
        with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        data = OmegaConf.to_container(cfg.data, resolve=True) if "data" in cfg else {}
    except Exception:  # noqa: BLE001 - any composition problem is reported by tuneflow itself
        return None
    return data  # type: ignore[return-value]


def build_command(path: str | Path, extra: Sequence[str]) -> list[str]:
    """Validate the spec at ``path`` and return the full command that runs it."""
    from tuneflow.trial.arch_task import available_archs

    raw = read_spec_file(path)
    spec = parse_spec(raw, default_study_name=Path(path).stem, archs=available_archs())
    extra = [a for a in extra if a not in ("-m", "--multirun")]
    date_ranges = check_date_ranges(spec, compose_data_config(spec, extra)) if spec.date_ranges else None
    command = [sys.executable, "-m", "tuneflow", *to_overrides(spec, date_ranges), *extra]
    check_command_length(command, spec)
    return command


#: Linux takes at most 128 KiB per argument (MAX_ARG_STRLEN) and about ARG_MAX for all of them with the
#: environment; the spec runs as a child process's arguments.
MAX_ARGUMENT = 128 * 1024 - 1


def check_command_length(command: Sequence[str], spec: Spec) -> None:
    """A grid too large for one command line is one line here, not ``OSError: Argument list too long``."""
    import os

    limit = os.sysconf("SC_ARG_MAX") if hasattr(os, "sysconf") else 2**21
    total = sum(len(a.encode()) + 1 for a in command) + sum(len(k) + len(v) + 2 for k, v in os.environ.items())
    longest = max(command, key=len)
    if len(longest.encode()) > MAX_ARGUMENT or total > limit:
        raise SpecError(
            f"the spec's grid of {spec.n_combinations} points is too long for one command line "
            f"({len(longest.encode())} bytes in {longest.split('=', 1)[0]}); split it into several specs"
        )


def run(command: Sequence[str]) -> int:
    """Run tuneflow in a child process (its own Hydra state, logging and exit status) and return its
    exit status. On Ctrl-C the child, interrupted too (same process group), is left to mark its running
    trial failed; a SIGTERM, sent to this process only, is passed on to the child for the same end."""
    process = subprocess.Popen(list(command))
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


USAGE = "usage: python -m tuneflow spec [--dry-run] EXPERIMENTS.json [HYDRA_OVERRIDE ...]"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in arguments):
        print(USAGE)
        print(__doc__)
        return 0
    dry_run = "--dry-run" in arguments
    arguments = [a for a in arguments if a != "--dry-run"]
    if not arguments:
        print(f"tuneflow: error: no experiment spec given; {USAGE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        command = build_command(arguments[0], arguments[1:])
        # The command is printed below and saved by Hydra: it must not carry a password.
        refuse_passwords_in_arguments(command)
    except ConfigError as error:
        print(f"tuneflow: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    # On stdout: stderr is left to the one error line the study may end with.
    print(f"tuneflow spec: {shlex.join(['python', *command[1:]])}", flush=True)
    if dry_run:
        return 0
    return run(command)


if __name__ == "__main__":
    sys.exit(main())
