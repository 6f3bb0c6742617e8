"""What a study means, recorded when it is created and compared when it is resumed: the config-group
choices and fixed values ``hydra.sweeper.study_keys`` lists (tuneflow's app: the architecture, the mode,
the data, ``params.epochs``: what and at which fidelity it trains), each parameter's kind and, for a
grid, its points. Other fixed values (a device, a logging switch, a fault injected for a test) may change
between runs. A resume that changes any of them would mix incomparable trials in one
study, its best trial and its CSV, so it is refused in one line unless the user asks for it
(``hydra.sweeper.allow_changed_study=true``). A range narrowed or widened is no change of meaning:
Optuna's samplers handle a space that moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tuneflow.errors import ConfigError
from tuneflow.search import space as search_space
from tuneflow.storage.study import OVERRIDES_ATTR
from tuneflow.sweeper.plan import SweepPlan

#: Study user attribute: what the study means (``meaning_of``), recorded when it is created.
MEANING_ATTR = "tuneflow_meaning"
def kind_of(distribution: BaseDistribution) -> str:
    """A parameter's kind: what it takes (a float, an int, which choices) and its scale: what Optuna
    cannot change within a study (``optuna.distributions.check_distribution_compatibility``)."""
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        base = "float" if isinstance(distribution, FloatDistribution) else "int"
        return f"{base} (log scale)" if distribution.log else base
    if isinstance(distribution, CategoricalDistribution):
        return f"choice({', '.join(repr(choice) for choice in distribution.choices)})"
    return type(distribution).__name__


def _listed(path: str, keys: Sequence[str]) -> bool:
    return any(path == key or path.startswith(f"{key}.") for key in keys)


def fixed_values(overrides: Sequence[str], keys: Sequence[str], groups: Mapping[str, str]) -> dict[str, str | None]:
    """The fixed overrides (``params.epochs=3``, ``~name``) at or under ``keys``, as key -> value; group
    choices (``+arch=mlp``) are left to ``meaning_of``'s choices."""
    values: dict[str, str | None] = {}
    for override in overrides:
        key, has_value, value = override.partition("=")
        key = key.lstrip("+")  # +name and ++name set the same value
        path = key.lstrip("~")
        if _listed(path, keys) and path not in groups:
            values[key] = value if has_value else None
    return values


def meaning_of(plan: SweepPlan) -> dict[str, Any]:
    """What this run's study means: the listed group choices and fixed values, the parameters' kinds, the grid."""
    keys, groups = plan.study_keys, plan.group_choices
    return {
        "choices": {group: option for group, option in groups.items() if group in keys},
        "fixed": fixed_values(plan.fixed_overrides, keys, groups),
        "kinds": {name: kind_of(d) for name, d in plan.distributions.items()},
        # The grid sampler's points (its size is the study's size): another grid is another study.
        "grid": {name: [repr(value) for value in values]
                 for name, values in search_space.grid_of(plan.distributions, "bruteforce").items()}
        if plan.grid_size is not None else None,
    }


def recorded_meaning(study: optuna.Study, plan: SweepPlan) -> dict[str, Any] | None:
    """The meaning recorded at creation; for a study created before tuneflow recorded it, that of its last
    trial (each trial keeps its fixed overrides and distributions; group choices only where it overrode
    them). None: nothing to compare with."""
    recorded = study.user_attrs.get(MEANING_ATTR)
    if isinstance(recorded, dict):
        return recorded
    trials = [t for t in study.get_trials(deepcopy=False) if OVERRIDES_ATTR in t.user_attrs]
    if not trials:
        return None
    last = trials[-1]
    overrides = [str(override) for override in last.user_attrs[OVERRIDES_ATTR]]
    keys, groups = plan.study_keys, plan.group_choices
    chosen = {}
    for override in overrides:
        group, _, option = override.lstrip("+").partition("=")
        if group in groups and group in keys:
            chosen[group] = option
    return {"choices": chosen, "fixed": fixed_values(overrides, keys, groups),
            "kinds": {name: kind_of(d) for name, d in last.distributions.items()}, "grid": None}


def kind_changes(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Parameters of both whose kind changed, each as ``name: before -> now``."""
    kinds_before, kinds_now = before.get("kinds") or {}, now.get("kinds") or {}
    return [f"{name}: {kinds_before[name]} -> {kinds_now[name]}"
            for name in sorted(set(kinds_before) & set(kinds_now)) if kinds_before[name] != kinds_now[name]]


def setting_changes(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Fixed values and grid points that changed, each as ``what: before -> now`` (absent: ``unset``)."""
    changes: list[str] = []
    choices_before, choices_now = before.get("choices") or {}, now.get("choices") or {}
    for group in sorted(set(choices_before) & set(choices_now)):
        if choices_before[group] != choices_now[group]:
            changes.append(f"{group}: {choices_before[group]} -> {choices_now[group]}")
    fixed_before, fixed_now = before.get("fixed") or {}, now.get("fixed") or {}
    for key in sorted({*fixed_before, *fixed_now}, key=lambda k: k.lstrip("~")):
        old, new = fixed_before.get(key, "unset"), fixed_now.get(key, "unset")
        if old != new:
            changes.append(f"{key.lstrip('~')}: {_shown(key, old)} -> {_shown(key, new)}")
    grid_before, grid_now = before.get("grid"), now.get("grid")
    if grid_before is not None and grid_now is not None and grid_before != grid_now:
        changes.append(f"the grid: {_grid(grid_before)} -> {_grid(grid_now)}")
    return changes


def _shown(key: str, value: str | None) -> str:
    if value is None:
        return "deleted" if key.startswith("~") else "unset"
    return value


def _grid(grid: Mapping[str, Sequence[str]]) -> str:
    return " ".join(f"{name}=[{', '.join(values)}]" for name, values in sorted(grid.items()))


def check_and_record(study: optuna.Study, plan: SweepPlan) -> None:
    """Refuse (one line) a resume that changes what the study means, unless allowed; record the meaning
    of a study that has none yet. Called under the study's lock, before anything else is written."""
    now = meaning_of(plan)
    before = recorded_meaning(study, plan)
    if before is not None:
        kinds = kind_changes(before, now)
        if kinds:
            # Optuna's storage refuses them on the first trial (check_distribution_compatibility): not even
            # allow_changed_study can mix them.
            raise ConfigError(
                f"study {plan.settings.name!r} was run with other parameters ({'; '.join(kinds)}), which Optuna "
                "cannot change within a study; use another hydra.sweeper.study_name"
            )
        changes = setting_changes(before, now)
        if changes and not plan.allow_changed_study:
            raise ConfigError(
                f"study {plan.settings.name!r} was run with other settings ({'; '.join(changes)}): resuming it "
                "would mix trials that cannot be compared; use another hydra.sweeper.study_name, or "
                "hydra.sweeper.allow_changed_study=true to mix them"
            )
    if MEANING_ATTR not in study.user_attrs:
        study.set_user_attr(MEANING_ATTR, now if before is None else dict(before))
