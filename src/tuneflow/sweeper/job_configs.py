"""Each job's config of a multirun, as Hydra composes it, without composing it from scratch every time.

Hydra's basic launcher builds every job's config from scratch (``load_sweep_config``: defaults tree,
every config file read and merged again), and that was most of tuneflow's cost per trial. The trials of
a study differ only in values (``params.lr=0.01``, ``data.val_fraction=0.2``, ``trial.number=7``), so
``JobConfigs`` lets Hydra compose a job once per distinct set of the other overrides (config group
choices such as ``+arch=mlp``, additions, deletions) and gives each job a copy of that config with its
value overrides applied the way Hydra applies them (Hydra's own override parser and
``OmegaConf.update``), then updates the ``hydra.overrides`` / ``hydra.job`` fields Hydra would set.

Anything it cannot apply that way (a config group, a sweep, a ``hydra.`` key, an override whose key
another override also touches) goes to Hydra's full compose. The first job of every template is
composed both ways and compared; if the two ever differ, that template falls back to Hydra for good.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

#: A template that failed its first-use check: every job of it is composed by Hydra.
_HYDRA_ONLY = None


@dataclass(frozen=True)
class SplitOverrides:
    """One job's overrides: what shapes the config (composed by Hydra) and plain value changes."""

    #: Overrides Hydra must compose (group choices, +/++/~, hydra.*), in their order.
    structure: tuple[str, ...]
    #: ``key=value`` changes of existing config values, parsed.
    values: tuple[Override, ...]
    #: Every override parsed, in the order given (for ``hydra.overrides.task``).
    parsed: tuple[Override, ...]


class JobConfigs:
    """Job configs of one multirun, equal to what Hydra's ``load_sweep_config`` returns, built once per
    distinct ``structure`` and copied for each job."""

    def __init__(self, config_loader: ConfigLoader, master_config: DictConfig) -> None:
        self.config_loader = config_loader
        self.master_config = master_config
        self.parser = OverridesParser.create()
        self._templates: dict[tuple[str, ...], DictConfig | None] = {}
        #: Each template pickled once (``copy_config``: a copy is a pickle round trip, and a template
        #: never changes once composed: only the unpickling is left per job).
        self._pickled: dict[tuple[str, ...], bytes] = {}
        self._is_group: dict[str, bool] = {}
        #: How many job configs were built each way (tests and benchmarks read these).
        self.composed_by_hydra = 0
        self.copied = 0

    def load(self, overrides: Sequence[str]) -> DictConfig:
        """The config of a job with ``overrides``, as Hydra would compose it."""
        split = self.split(overrides)
        if split is None or not split.values:
            return self._compose(overrides)
        template = self._templates.get(split.structure, ...)
        if template is _HYDRA_ONLY:
            return self._compose(overrides)
        if template is ...:
            return self._first_of_template(split, overrides)
        try:
            return self._copy_with_values(template, split)
        except Exception:  # noqa: BLE001 - e.g. a value of the wrong type: Hydra says what is wrong
            return self._compose(overrides)

    def split(self, overrides: Sequence[str]) -> SplitOverrides | None:
        """Sort the overrides into structure and values; None when they do not parse (Hydra reports it)."""
        try:
            parsed = self.parser.parse_overrides(list(overrides))
        except Exception:  # noqa: BLE001 - Hydra's compose raises the error the user should see
            return None
        structure = [o for o in parsed if not self._is_value_change(o)]
        values = [o for o in parsed if self._is_value_change(o)]
        # A value another override also touches (`++params.x=1 params.x=2`, `~params params.x=2`) depends on
        # the order Hydra applies them in: leave all of it to Hydra.
        touched = [o.key_or_group for o in structure if not o.is_hydra_override()]
        if any(_related(v.key_or_group, key) for v in values for key in touched):
            structure, values = list(parsed), []
        return SplitOverrides(
            structure=tuple(str(o.input_line) for o in structure),
            values=tuple(values),
            parsed=tuple(parsed),
        )

    def _is_value_change(self, override: Override) -> bool:
        return (
            override.type == OverrideType.CHANGE
            and override.package is None
            and not override.is_sweep_override()
            and not override.is_hydra_override()
            and "/" not in override.key_or_group
            and not isinstance(override.value(), dict)
            and not self._names_a_group(override.key_or_group)
        )

    def _names_a_group(self, key: str) -> bool:
        # What Hydra checks to tell `data=none` (a group choice) from `seed=3` (a value).
        if key not in self._is_group:
            self._is_group[key] = key in self.config_loader.list_groups("")
        return self._is_group[key]

    def _compose(self, overrides: Sequence[str]) -> DictConfig:
        self.composed_by_hydra += 1
        return self.config_loader.load_sweep_config(self.master_config, list(overrides))

    def _first_of_template(self, split: SplitOverrides, overrides: Sequence[str]) -> DictConfig:
        """Compose the template, and check on this job that a copy equals Hydra's own config."""
        composed = self._compose(overrides)
        try:
            template = self._compose(list(split.structure))
            copied = self._copy_with_values(template, split)
            self.copied -= 1  # a check, not a job
            same = same_config(copied, composed)
        except Exception:  # noqa: BLE001 - whatever went wrong, Hydra's config is the right one
            template, same = None, False
        if not same:
            log.debug(f"job configs of {' '.join(split.structure)} are composed by Hydra for every job")
            self._pickled.pop(split.structure, None)
        self._templates[split.structure] = template if same else _HYDRA_ONLY
        return composed

    def _copy_of(self, template: DictConfig, structure: tuple[str, ...]) -> DictConfig:
        """A fresh copy of the template of ``structure``."""
        pickled = self._pickled.get(structure)
        if pickled is None:
            try:
                pickled = pickle.dumps(template, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - something in the config does not pickle
                return copy_config(template)
            self._pickled[structure] = pickled
        return pickle.loads(pickled)  # type: ignore[no-any-return]

    def _copy_with_values(self, template: DictConfig, split: SplitOverrides) -> DictConfig:
        cfg = self._copy_of(template, split.structure)
        # What ConfigLoaderImpl._apply_overrides_to_config does for a plain `key=value`.
        for override in split.values:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        task = [o for o in split.parsed if not o.is_hydra_override()]
        hydra = cfg.hydra
        hydra.overrides.task = [str(o.input_line) for o in task]
        dirname = hydra.job.config.override_dirname
        hydra.job.override_dirname = override_dirname(
            task, exclude_keys=list(dirname.exclude_keys), item_sep=dirname.item_sep, kv_sep=dirname.kv_sep
        )
        with open_dict(hydra):
            for key in hydra.job.env_copy:
                hydra.job.env_set[key] = os.environ[key]
        hydra.runtime.cwd = os.getcwd()
        OmegaConf.copy_cache(from_config=self.master_config, to_config=cfg)
        self.copied += 1
        return cfg


def copy_config(cfg: DictConfig) -> DictConfig:
    """An independent copy: a pickle round trip is 2-3x faster than ``copy.deepcopy`` on a job config
    (most of it is the ``hydra`` node) and keeps types, flags and interpolations alike."""
    try:
        return pickle.loads(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - something in the config does not pickle
        return copy.deepcopy(cfg)


def override_dirname(overrides: Sequence[Override], exclude_keys: list[str], item_sep: str, kv_sep: str) -> str:
    """``hydra.job.override_dirname``, computed as Hydra does (``config_loader_impl.get_overrides_dirname``)."""
    lines = sorted(str(o.input_line) for o in overrides if o.key_or_group not in exclude_keys)
    return re.sub(pattern="[=]", repl=kv_sep, string=item_sep.join(lines))


def same_config(a: DictConfig, b: DictConfig) -> bool:
    """Equal values, types (1 is not 1.0 or '1') and interpolations as YAML shows them, and equal flags."""
    return (
        OmegaConf.to_yaml(a) == OmegaConf.to_yaml(b)
        and OmegaConf.is_struct(a) == OmegaConf.is_struct(b)
        and OmegaConf.is_readonly(a) == OmegaConf.is_readonly(b)
    )


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
