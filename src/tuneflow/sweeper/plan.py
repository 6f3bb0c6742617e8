"""Plan a sweep before anything exists: the search space (``hydra.sweeper.params`` and sweeps on the
command line) validated against the app's config, a job composed at the corners of the space and checked
by the app (a task function's ``tuneflow_check``), the sampler built, the stores reachable. Bad input
stops here with one line and leaves no trace."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution

from tuneflow.errors import ConfigError
from tuneflow.search import space as search_space
from tuneflow.search import zoom
from tuneflow.search.failure_aware import wrap as failure_aware_wrap
from tuneflow.storage import locks
from tuneflow.storage import urls as backends
from tuneflow.storage.journal import journal_path_of
from tuneflow.storage.study import StudySettings, build_pruner, open_storage, study_settings
from tuneflow.tracking import runs as tracking

#: Composes one job's config from its overrides (the sweeper's Hydra config loader).
ComposeJob = Callable[[list[str]], DictConfig]
#: The app's plan-time check of a composed job config.
CheckJob = Callable[[DictConfig], None]


@dataclass
class SweepPlan:
    """What to search and how, validated, before anything exists on disk."""

    settings: StudySettings
    distributions: dict[str, BaseDistribution]
    #: Overrides every job receives unchanged (fixed values from the command line or the space).
    fixed_overrides: list[str]
    sampler: optuna.samplers.BaseSampler
    #: Size of the grid when the grid sampler runs: the study stops when every point was tried.
    grid_size: int | None = None
    n_jobs: int = 1
    max_failures: int = 0
    #: ``max_failure_rate`` is 1: failures never stop the study with an error; ``max_failures`` of them end it.
    failures_never_stop: bool = False
    #: Trials of an earlier study to run first (``hydra.sweeper.zoom``); the space is narrowed around them.
    finalists: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    #: ``hydra.sweeper.custom_search_space``: called with (config, trial) on every asked trial.
    extend_space: Callable[[DictConfig, optuna.trial.Trial], None] | None = None
    #: ``hydra.sweeper.allow_changed_study``: resume even if this run changes what the study means.
    allow_changed_study: bool = False
    #: ``hydra.sweeper.study_keys``: the config groups and paths whose value is part of what the study means.
    study_keys: tuple[str, ...] = ()
    #: The app's config-group choices this run composed (``hydra.runtime.choices``, Hydra's own groups left out).
    group_choices: dict[str, str] = field(default_factory=dict)


def plan_sweep(
    sweeper_cfg: Mapping[str, Any],
    space: Mapping[str, Any],
    zoom_cfg: Mapping[str, Any],
    arguments: Sequence[str],
    config: DictConfig,
    compose_job: ComposeJob,
    check_job: CheckJob | None,
) -> SweepPlan:
    """Everything a sweep needs, checked; nothing created."""
    sweeper_cfg = without_default_pruner(sweeper_cfg, config)
    settings = study_settings(sweeper_cfg, str(config.hydra.job.name))
    node = settings.params_node
    distributions, space_fixed = search_space.parse_search_space(space, node)
    fixed: dict[str, str | None] = dict(space_fixed)
    cli_distributions, cli_fixed = split_arguments(arguments, node)
    # The command line wins over hydra.sweeper.params: a value fixed (or deleted, ~name) there is no
    # longer searched, as in Hydra's Optuna sweeper; a sweep there is no longer fixed.
    overridden = {path.lstrip("~+") for path in cli_fixed}
    distributions = {name: distribution for name, distribution in distributions.items()
                     if search_space.config_path(name, node) not in overridden}
    for path in [*(search_space.config_path(name, node) for name in cli_distributions),
                 *(path.lstrip("~") for path in cli_fixed if path.startswith("~"))]:
        fixed.pop(path, None)
    distributions.update(cli_distributions)
    fixed.update(cli_fixed)
    if not distributions and check_job is not None:
        check_job(config)  # the app may know what is missing (tuneflow's: an architecture)
    # Nothing to search is no error: like Hydra's Optuna sweeper, the study runs n_trials trials of the
    # fixed values (repeats of one configuration).
    check_parameters_exist(config, distributions, node)
    finalists: list[optuna.trial.FrozenTrial] = []
    if zoom_cfg.get("study"):
        top_k, margin = int(zoom_cfg.get("top_k", 5)), float(zoom_cfg.get("margin", 0.5))
        if top_k < 1:
            raise ConfigError(f"hydra.sweeper.zoom.top_k is {top_k}, but must be at least 1")
        if not 0 <= margin < math.inf:
            raise ConfigError(f"hydra.sweeper.zoom.margin is {margin:g}, but must be a fraction >= 0 (0.5 = half a range)")
        finalists = load_finalists(settings, str(zoom_cfg["study"]), top_k)
        check_same_space(str(zoom_cfg["study"]), finalists, distributions)
        distributions = zoom.narrow(distributions, finalists, margin)
    # A delete without a value (~name) stays bare; ~name=value deletes only while name has that value.
    fixed_overrides = [path if value is None else f"{path}={value}" for path, value in fixed.items()]
    # The smallest and the largest values of the space: a window longer than a date range, or a
    # range outside the data, shows now instead of failing every trial of a study already created.
    for point in corner_points(distributions):
        job_cfg = compose_job(fixed_overrides + search_space.to_overrides(point, node))
        if check_job is not None:
            check_job(job_cfg)
    sampler_cfg = dict(sweeper_cfg["sampler"] or {"_target_": "optuna.samplers.TPESampler"})
    grid_size = None
    if sampler_cfg["_target_"].endswith(".GridSampler"):
        grid = search_space.grid_of(distributions)
        sampler_cfg["search_space"] = grid
        grid_size = math.prod(len(values) for values in grid.values())
    elif sampler_cfg["_target_"].endswith(".BruteForceSampler") and not sweeper_cfg["custom_search_space"]:
        # It enumerates the points a grid would; the study stops once each was tried. With define-by-run
        # parameters the points are not known up front: n_trials bounds the study.
        grid_size = math.prod(len(values) for values in search_space.grid_of(distributions, "bruteforce").values())
    build_pruner(settings.pruner)  # a pruner the jobs cannot build fails now, not in every trial
    extend_space = load_space_extender(sweeper_cfg["custom_search_space"])
    n_jobs = int(sweeper_cfg["n_jobs"])
    if n_jobs < 1:
        raise ConfigError(f"hydra.sweeper.n_jobs is {n_jobs}, but must be at least 1")
    rate = float(sweeper_cfg["max_failure_rate"])
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"hydra.sweeper.max_failure_rate is {rate}, but must be between 0 and 1")
    backends.check_root_dir(settings.root_dir)
    # Last: these connect to the database and the tracking server (still creating nothing).
    backends.check_storage(settings.storage_url)
    backends.check_tracking(settings.tracking_uri, tracking.tracking_uri_source(sweeper_cfg.get("tracking_uri")))
    check_parent_run_reachable(settings)
    tracking.check_artifact_folder(settings.tracking_uri, settings.root_dir)
    return SweepPlan(
        settings=settings,
        distributions=distributions,
        fixed_overrides=fixed_overrides,
        sampler=build_sampler(sampler_cfg, failure_aware=bool(sweeper_cfg["failure_aware"])),
        grid_size=grid_size,
        n_jobs=n_jobs,
        max_failures=int(rate * settings.n_trials),
        failures_never_stop=rate >= 1.0,
        finalists=finalists,
        extend_space=extend_space,
        allow_changed_study=bool(sweeper_cfg.get("allow_changed_study", False)),
        study_keys=tuple(sweeper_cfg.get("study_keys") or ()),
        group_choices=group_choices(config),
    )


def without_default_pruner(sweeper_cfg: Mapping[str, Any], config: DictConfig) -> Mapping[str, Any]:
    """Optuna cannot prune a multi-objective study. The default pruner (median), which the user did not
    choose, is left out of one, so configs written for Hydra's Optuna sweeper (which has no pruner) run
    as they are; a pruner the user chose (on the command line, or any other pruner or setting) is
    refused with one line by ``study_settings``."""
    from tuneflow.search.configs import DEFAULT_PRUNER, PRUNERS

    directions = sweeper_cfg.get("directions") or sweeper_cfg.get("direction")
    if not isinstance(directions, (list, tuple)) or len(directions) < 2:
        return sweeper_cfg
    overrides = [str(o).lstrip("+~") for o in OmegaConf.select(config, "hydra.overrides.hydra", default=[]) or []]
    chosen = any(o.startswith(("hydra/sweeper/pruner", "hydra.sweeper.pruner")) for o in overrides)
    default = OmegaConf.to_container(OmegaConf.structured(PRUNERS[DEFAULT_PRUNER]))
    if chosen or dict(sweeper_cfg.get("pruner") or {}) != default:
        return sweeper_cfg
    return {**sweeper_cfg, "pruner": {"_target_": "optuna.pruners.NopPruner"}}


def check_parent_run_reachable(settings: StudySettings) -> None:
    """A study resumed with another MLflow store (``tracking.uri`` or $MLFLOW_TRACKING_URI changed) would
    look for its parent run there and fail after opening it (a new, empty store created on the way)."""
    from mlflow.exceptions import MlflowException

    from tuneflow.storage.sqlite import db_path_of
    from tuneflow.storage.study import PARENT_RUN_ATTR
    from tuneflow.tracking.runs import client_for

    journal = journal_path_of(settings.storage_url)
    optuna_file = db_path_of(settings.storage_url) or journal
    if optuna_file is not None and not optuna_file.is_file():
        return  # a new storage: a new study
    try:
        # Under the study's open lock on a server database: even with skip_table_creation, Optuna's
        # RDBStorage stamps the alembic_version table when it finds Optuna's tables without it, which
        # races a worker creating them (seen: "duplicate key ... alembic_version" with four workers).
        with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "read"):
            storage = (open_storage(settings.storage_url) if journal is not None
                       else optuna.storages.RDBStorage(settings.storage_url, skip_table_creation=True))
            study_id = storage.get_study_id_from_name(settings.name)
            run_id = storage.get_study_user_attrs(study_id).get(PARENT_RUN_ATTR)
    except Exception:  # noqa: BLE001 - no such study (KeyError), or no tables yet: nothing to resume
        return
    if not run_id:
        return
    shown = backends.shown(settings.tracking_uri)
    problem = (f"study {settings.name!r} was tracked in another MLflow store: its parent run {run_id} is not in {shown}; "
               "set tracking.uri / MLFLOW_TRACKING_URI back to that store, or use another hydra.sweeper.study_name")
    mlflow_file = db_path_of(settings.tracking_uri)
    if mlflow_file is not None and not mlflow_file.is_file():
        raise ConfigError(problem)
    if mlflow_file is not None:
        from tuneflow.storage import creation

        creation.check_readable(mlflow_file, "mlflow")  # a damaged store: one line naming it, left as it is
    try:
        client_for(settings.tracking_uri).get_run(str(run_id))
    except MlflowException:
        raise ConfigError(problem) from None


def group_choices(config: DictConfig) -> dict[str, str]:
    """The app's config-group choices (``arch: mlp``, ``mode: fast``), as Hydra recorded them."""
    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None) or {}
    return {str(group): str(option) for group, option in dict(choices).items()
            if not str(group).startswith("hydra/") and option is not None}


def check_parameters_exist(config: DictConfig, distributions: Mapping[str, BaseDistribution], node: str | None) -> None:
    """Every searched name is a value of the app's config (all wrong names in one line)."""
    missing = []
    for name in distributions:
        path = search_space.config_path(name, node)
        default = OmegaConf.select(config, path, default=_Missing)
        if default is _Missing:
            missing.append((name, path))
            continue
        check_choice_types(path, default, distributions[name])
    if missing:
        parent = missing[0][1].rpartition(".")[0]
        siblings = OmegaConf.select(config, parent, default=None) if parent else config
        known = sorted(str(k) for k in siblings if k != "hydra") if isinstance(siblings, DictConfig) else []
        names = ", ".join(f"{name!r} (no {path})" for name, path in missing)
        where = f" under {parent}" if parent else ""
        raise ConfigError(
            f"search space: not in the app's config: {names}; known names{where}: {', '.join(known) or 'none'}"
        )


class _Missing:
    """Sentinel for a config path that does not exist."""


def load_finalists(settings: StudySettings, name: str, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The best completed trials of study ``name`` on this study's storage, to zoom in on."""
    if name == settings.name:
        raise ConfigError(f"hydra.sweeper.zoom.study is {name!r}, the study itself; name an earlier study")
    url = settings.storage_url
    stored = Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else journal_path_of(url)
    if stored is not None and not stored.exists():
        raise ConfigError(f"hydra.sweeper.zoom.study: no study {name!r}, there is no storage at {url} yet")
    storage = open_storage(url)
    try:
        source = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise ConfigError(f"hydra.sweeper.zoom.study: no study {name!r} in {url}; studies there: {known}") from None
    if len(source.directions) > 1:  # no single ranking to take the top_k of
        raise ConfigError(f"hydra.sweeper.zoom.study: study {name!r} has {len(source.directions)} objectives; "
                          "zoom in on a single-objective study")
    finalists = zoom.top_trials(source.get_trials(deepcopy=False), source.direction.name.lower(), top_k)
    if not finalists:
        raise ConfigError(f"hydra.sweeper.zoom.study: study {name!r} has no completed trial to zoom in on")
    return finalists


def check_same_space(source: str, finalists: Sequence[optuna.trial.FrozenTrial],
                     distributions: Mapping[str, BaseDistribution]) -> None:
    """Zooming in on a study that searched other parameters (another architecture's) would enqueue
    trials that mean nothing here."""
    searched = sorted({name for trial in finalists for name in trial.distributions})
    if not set(searched) & set(distributions) or not set(searched) <= set(distributions):
        raise ConfigError(
            f"hydra.sweeper.zoom.study: study {source!r} searched {', '.join(searched) or 'nothing'}, but this "
            f"study searches {', '.join(sorted(distributions)) or 'nothing'}; zoom in on a study of the same "
            "architecture and search space"
        )


def check_choice_types(path: str, default: Any, distribution: BaseDistribution) -> None:
    """A numeric parameter given text choices would fail in every trial: say so before the study."""
    numeric_default = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not numeric_default or not isinstance(distribution, CategoricalDistribution):
        return
    texts = [c for c in distribution.choices if isinstance(c, str)]
    if texts:
        raise ConfigError(
            f"search space: {path} is a number (default {default}), but its choice() includes {texts[0]!r}"
        )


def load_space_extender(path: str | None) -> Any:
    """``hydra.sweeper.custom_search_space``: a ``module.function(cfg, trial)`` that suggests more
    parameters on each trial, as with Hydra's Optuna sweeper."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return get_method(str(path))
    except Exception as error:  # noqa: BLE001 - Hydra raises several types for an unloadable path
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"hydra.sweeper.custom_search_space {path!r} cannot be loaded: {first}") from None


def split_arguments(
    arguments: Sequence[str], node: str | None = None
) -> tuple[dict[str, BaseDistribution], dict[str, str | None]]:
    """Command-line arguments of a multirun: sweeps join the search space, the rest stay fixed. A delete
    (``~name``, ``~name=value``) goes to every job as a delete: key ``~name``, value None when bare."""
    distributions, fixed, deletes = params_from_overrides(arguments, node)
    fixed_or_deleted: dict[str, str | None] = dict(fixed)
    for delete in deletes:
        key, _, value = delete.partition("=")
        fixed_or_deleted[key] = value if "=" in delete else None
    return distributions, fixed_or_deleted


def params_from_overrides(
    arguments: Sequence[str], node: str | None = None
) -> tuple[dict[str, BaseDistribution], dict[str, str], list[str]]:
    """The sweeps (as distributions), the fixed values and the deletes among overrides: the split
    Hydra's Optuna sweeper makes (its ``create_params_from_overrides``), with the same three results."""
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    deletes: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()  # with its prefix: ~name, +name, ++name
        if override.is_delete():
            deletes.append(key if override.value() is None else f"{key}={override.get_value_element_as_str()}")
        elif override.is_sweep_override():
            distributions[search_space.short_name(key, node)] = search_space.to_distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return distributions, fixed, deletes


def corner_points(distributions: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
    """Two valid points of the space, to test-compose a job: every parameter at its smallest value,
    then at its largest (choices that are not all numbers: the first choice in both)."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for name, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            choices = list(distribution.choices)
            numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
            low[name] = min(choices) if numeric else choices[0]  # type: ignore[type-var]
            high[name] = max(choices) if numeric else choices[0]  # type: ignore[type-var]
        else:
            low[name] = distribution.low  # type: ignore[attr-defined]
            high[name] = distribution.high  # type: ignore[attr-defined]
    return [low, high] if high != low else [low]


def build_sampler(sampler_cfg: Mapping[str, Any], failure_aware: bool = True) -> optuna.samplers.BaseSampler:
    """The configured sampler; failure-aware (``tuneflow.search.failure_aware.wrap``: all but the grid) unless turned off."""
    from hydra.utils import instantiate

    try:
        sampler = instantiate(dict(sampler_cfg), _convert_="all")
    except Exception as error:  # noqa: BLE001 - Hydra wraps whatever the sampler's constructor raised
        cause = error.__cause__ or error
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(f"hydra.sweeper.sampler ({sampler_cfg.get('_target_')}): {first}") from None
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise ConfigError(f"hydra.sweeper.sampler builds {type(sampler).__name__}, not an Optuna sampler")
    return failure_aware_wrap(sampler) if failure_aware else sampler
