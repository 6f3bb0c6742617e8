"""A strategy's config (``conf/strategy/<name>.yaml``, chosen with ``+strategy=<name>``), checked.

A strategy is a list of stages; each stage names its kind (``tuneflow.strategy.stages.KINDS``), what it
searches and with which budget, sampler and pruner. Unknown keys and bad values stop with one line naming
the stage and the key, before any study exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from tuneflow.errors import ConfigError

KIND_NAMES = ("search", "zones", "decay", "repeat")


@dataclass
class StageConfig:
    #: Names the stage's study (``<study>/<name>``) and its finalists file (``<name>.yaml``).
    name: str
    #: search | zones | decay | repeat (``tuneflow.strategy.stages``).
    kind: str
    #: Trials of the stage (a zones stage: all its zones together; decay and repeat: set by their inputs).
    n_trials: int = 20
    #: A hydra/sweeper/sampler option (tpe, random, grid, qmc, ...), with constructor arguments.
    sampler: str = "tpe"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    #: A hydra/sweeper/pruner option.
    pruner: str = "median"
    #: What a search stage searches: all (the whole default space), rest (what no earlier stage searched),
    #: or a list of names (those the architecture lacks are dropped; none left = the stage is skipped).
    params: Any = "all"
    #: The parameters a search stage does not search: defaults (the architecture's) or best (the best input's).
    others: str = "defaults"
    #: Hydra overrides of every trial of the stage (e.g. [mode=fast]).
    overrides: list[str] = field(default_factory=list)
    #: Split each numeric range into this many equal parts and run the grid of their points (null = no grid).
    grid_steps: int | None = None
    #: Configurations handed on (a zones stage: per zone).
    top_k: int = 5
    #: zones: the single-linkage distance threshold in the normalised space (0..1), box margin, most zones.
    threshold: float = 0.2
    margin: float = 0.5
    max_zones: int | None = None
    #: zones: search the box centred on each zone's best, this share of each range either side (null = the
    #: box around the zone's members).
    around_best: float | None = None
    #: decay: scheme name -> the params it sets (lr_schedule, lr_decay, lr_step_epochs, lr_plateau_patience).
    schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: repeat: how many of the inputs, and how many new seeds each.
    top: int = 3
    seeds: int = 3


@dataclass
class StrategyConfig:
    name: str
    stages: list[StageConfig]
    #: Seed of every stage's sampler (a stage's sampler_args.seed wins).
    seed: int | None = 0
    #: Start at this stage (earlier ones are not run); its inputs come from ``inputs`` or the previous
    #: stage's finalists file.
    start_at: str | None = None
    #: A finalists file the first stage run reads its inputs from (any stage's file, or one written by hand).
    inputs: str | None = None


def _known(cls: type, where: str, node: Mapping[str, Any]) -> None:
    names = [f.name for f in fields(cls)]
    unknown = [key for key in node if key not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(names)}")


def stage_config(node: Mapping[str, Any], index: int) -> StageConfig:
    where = f"strategy.stages[{index}]"
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where} is {node!r}, but must be a mapping with name and kind")
    _known(StageConfig, where, node)
    for key in ("name", "kind"):
        if not node.get(key):
            raise ConfigError(f"{where} has no {key}")
    stage = StageConfig(**dict(node))
    where = f"strategy stage {stage.name!r}"
    if stage.kind not in KIND_NAMES:
        raise ConfigError(f"{where}: kind is {stage.kind!r}, but must be one of {', '.join(KIND_NAMES)}")
    if not str(stage.name).replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{where}: a stage name may hold letters, digits, - and _ only (it names a file)")
    for key in ("n_trials", "top_k", "top", "seeds"):
        if int(getattr(stage, key)) < 1:
            raise ConfigError(f"{where}: {key} is {getattr(stage, key)}, but must be at least 1")
    if stage.kind == "repeat" and stage.seeds < 2:
        raise ConfigError(f"{where}: seeds is {stage.seeds}, but an interval needs at least 2 repeats")
    if stage.others not in ("defaults", "best"):
        raise ConfigError(f"{where}: others is {stage.others!r}, but must be defaults or best")
    if not (stage.params in ("all", "rest") or (isinstance(stage.params, Sequence) and not isinstance(stage.params, str))):
        raise ConfigError(f"{where}: params is {stage.params!r}, but must be all, rest or a list of names")
    if stage.kind == "decay" and not stage.schemes:
        raise ConfigError(f"{where}: a decay stage needs schemes (name -> params)")
    return stage


def strategy_config(node: Mapping[str, Any]) -> StrategyConfig:
    """The ``strategy`` node of the app's config, checked."""
    _known(StrategyConfig, "strategy", node)
    stages_node = node.get("stages") or []
    if not stages_node:
        raise ConfigError("strategy: no stages; list them under strategy.stages")
    stages = [stage_config(stage, index) for index, stage in enumerate(stages_node)]
    names = [stage.name for stage in stages]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise ConfigError(f"strategy: two stages are named {duplicate!r}; each stage needs its own name")
    start_at = node.get("start_at")
    if start_at is not None and start_at not in names:
        raise ConfigError(f"strategy.start_at is {start_at!r}, but the stages are {', '.join(names)}")
    return StrategyConfig(
        name=str(node.get("name") or "strategy"),
        stages=stages,
        seed=node.get("seed", 0),
        start_at=start_at,
        inputs=node.get("inputs"),
    )
