"""Where a stage's studies run. A stage only says what to search (``StudyRequest``); a backend runs it:

- ``tuneflow.strategy.sweeper_backend.SweeperBackend``: each study through tuneflow's sweeper (Hydra jobs,
  MLflow runs, pruning, resume, many workers): ``python -m tuneflow +arch=NAME -m +strategy=staged``;
- ``ObjectiveBackend`` here: plain Optuna studies of a Python function ``objective(params, overrides,
  seed)``, for benchmarks and for replaying recorded objectives (``run_with_objective``); with
  ``reports=True`` the function also gets the Optuna trial, reports each epoch to it and is pruned by the
  stage's pruner, as a trial of the sweeper is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from tuneflow.errors import ConfigError

INTERRUPTED_ATTR = "tuneflow_interrupted"
#: A trial added with a value an earlier stage measured: "<study>#<trial>" of the measurement.
KNOWN_ATTR = "tuneflow_known_from"

#: A configuration's score: objective(params, overrides, seed) -> value (``overrides`` as the stage gives
#: them to its trials, e.g. ["mode=fast"]).
Objective = Callable[[Mapping[str, Any], Sequence[str], int], float]
#: The per-epoch form (``ObjectiveBackend(..., reports=True)``): objective(params, overrides, seed, trial)
#: reports each epoch's value to ``trial`` and asks ``trial.should_prune()`` after it, raising
#: ``optuna.TrialPruned`` when told to, as a tuneflow trial's reporter does; the stage's pruner decides.
#: ``trial`` is None where no study runs the call (a repeat's new seeds: trained whole).
ReportingObjective = Callable[[Mapping[str, Any], Sequence[str], int, "optuna.Trial | None"], float]


@dataclass
class StudyRequest:
    """One study of a stage."""

    #: ``<stage>`` or ``<stage>/zone-<k>``: the backend prefixes the strategy's study name.
    name: str
    distributions: dict[str, BaseDistribution]
    #: Parameters every trial gets unchanged (the best input's, or a candidate's).
    fixed: dict[str, Any] = field(default_factory=dict)
    #: Points tried first, once each (only those inside ``distributions``).
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    #: Points whose value an earlier stage measured with the same overrides: added to the study as
    #: completed trials (Optuna's ``add_trial``), so the sampler learns from them and nothing trains them
    #: again; on top of ``n_trials``.
    #: (params, value, where it was measured: "<study>#<trial>").
    known: list[tuple[dict[str, Any], float, str]] = field(default_factory=list)
    n_trials: int = 20
    sampler: str = "tpe"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    overrides: list[str] = field(default_factory=list)


@dataclass
class RepeatResult:
    #: The candidates ranked by their mean over the new seeds, each with "repeat_mean" and "repeats".
    ranked: list[dict[str, Any]]
    verdict: str


class Backend(Protocol):
    #: minimize | maximize
    direction: str
    #: The strategy's study name (stage studies are ``<study>/<stage>``).
    study: str

    def default_space(self) -> dict[str, str]:
        """The search space the strategy starts from, in Hydra's sweep syntax."""
        ...

    def has_params(self, names: Sequence[str]) -> bool:
        """Whether the trained model has all these parameters (a decay stage needs lr_schedule & co)."""
        ...

    def default_value(self, name: str) -> Any:
        """The trained model's default value of a parameter (None where it has none)."""
        ...

    def run_study(self, request: StudyRequest) -> list[dict[str, Any]]:
        """Run (or resume) the study; its completed trials as candidates, best first."""
        ...

    def repeat(self, request: StudyRequest, candidates: Sequence[dict[str, Any]], seeds: int) -> RepeatResult:
        """Re-run ``candidates`` with ``seeds`` new seeds, rank them and export the winner."""
        ...

    def stage_lock(self, stage: str) -> AbstractContextManager[None]:
        """Held by the worker that ends a stage (writes its file) or runs a run-once stage: one at a time
        across every worker of the strategy."""
        ...


def sampler_config(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """A hydra/sweeper/sampler option as the sweeper takes it (``_target_`` + arguments)."""
    from omegaconf import OmegaConf

    from tuneflow.search.configs import SAMPLERS

    if name not in SAMPLERS:
        raise ConfigError(f"strategy: sampler {name!r} is unknown; one of {', '.join(SAMPLERS)}")
    node = OmegaConf.to_container(OmegaConf.structured(SAMPLERS[name]))
    assert isinstance(node, dict)
    unknown = [key for key in args if key not in node]
    if unknown:
        raise ConfigError(f"strategy: sampler {name} has no argument {unknown[0]!r}")
    return {str(k): v for k, v in {**node, **args}.items()}


def pruner_config(name: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from tuneflow.search.configs import PRUNERS

    if name not in PRUNERS:
        raise ConfigError(f"strategy: pruner {name!r} is unknown; one of {', '.join(PRUNERS)}")
    node = OmegaConf.to_container(OmegaConf.structured(PRUNERS[name]))
    assert isinstance(node, dict)
    return {str(k): v for k, v in node.items()}


def add_known(study: optuna.Study, request: StudyRequest) -> int:
    """``request.known`` as completed trials of ``study`` (once: call it on an empty study); how many."""
    added = 0
    for params, value, source in request.known:
        params = {k: v for k, v in params.items() if k in request.distributions}
        try:
            trial = optuna.trial.create_trial(params=params, distributions=request.distributions, value=value,
                                              user_attrs={KNOWN_ATTR: source})
        except ValueError:  # not a point of the space after all (a rounded value): trained, not known
            request.enqueue.insert(0, params)
            continue
        study.add_trial(trial)
        added += 1
    return added


def known_count(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if KNOWN_ATTR in t.user_attrs)


def candidates_of(study: optuna.Study, fixed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The study's completed trials as candidates (``fixed`` params included), best first."""
    from tuneflow.search import zoom

    completed = zoom.top_trials(study.get_trials(deepcopy=False), study.direction.name.lower(), 10**9)
    return [{"params": {**fixed, **t.params}, "value": float(t.value), "study": study.study_name,  # type: ignore[arg-type]
             "trial": t.number} for t in completed]


class ObjectiveBackend:
    """Stages as plain Optuna studies of a Python objective (no Hydra, no MLflow): the same stage logic
    the sweeper runs, on any function. Used by benchmarks (many seeds in seconds) and tests.

    ``reports``: ``objective`` is a ``ReportingObjective`` and each stage study gets its stage's pruner (the
    sweeper's pruning, epoch by epoch); otherwise every call is a whole training and nothing is pruned."""

    def __init__(self, objective: Objective | ReportingObjective, space: Mapping[str, str], *,
                 study: str = "strategy", direction: str = "minimize", defaults: Mapping[str, Any] | None = None,
                 storage: Any = None, reports: bool = False) -> None:
        self.objective = objective
        self.reports = reports
        self.space = dict(space)
        self.study = study
        self.direction = direction
        self.defaults = dict(defaults or {})
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        #: Every objective call, in order: (stage study, params, overrides, seed); a benchmark counts them.
        self.calls: list[tuple[str, dict[str, Any], list[str], int]] = []

    def default_space(self) -> dict[str, str]:
        return dict(self.space)

    def has_params(self, names: Sequence[str]) -> bool:
        return all(name in self.defaults or name in self.space for name in names)

    def default_value(self, name: str) -> Any:
        return self.defaults.get(name)

    def stage_lock(self, stage: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # one process: nothing to share

    def _call(self, name: str, params: Mapping[str, Any], overrides: Sequence[str], seed: int,
              trial: optuna.Trial | None = None) -> float:
        full = {**self.defaults, **params}
        self.calls.append((name, full, list(overrides), seed))
        if self.reports:
            return float(self.objective(full, overrides, seed, trial))  # type: ignore[call-arg]
        return float(self.objective(full, overrides, seed))  # type: ignore[call-arg]

    def _pruner(self, request: StudyRequest) -> optuna.pruners.BasePruner:
        """The stage's pruner where the objective reports its epochs (a whole-curve objective has nothing
        to prune on: Optuna's pruners need intermediate values)."""
        from tuneflow.storage.study import build_pruner

        return build_pruner(pruner_config(request.pruner)) if self.reports else optuna.pruners.NopPruner()

    def run_study(self, request: StudyRequest) -> list[dict[str, Any]]:
        from tuneflow.search import space as search_space
        from tuneflow.sweeper.plan import build_sampler

        name = f"{self.study}/{request.name}"
        sampler_cfg = sampler_config(request.sampler, request.sampler_args)
        if request.sampler == "grid":
            sampler_cfg["search_space"] = search_space.grid_of(request.distributions)
        study = optuna.create_study(study_name=name, storage=self.storage, direction=self.direction,  # type: ignore[arg-type]
                                    sampler=build_sampler(sampler_cfg, failure_aware=request.sampler != "grid"),
                                    pruner=self._pruner(request), load_if_exists=True)
        if not study.trials:
            add_known(study, request)
            for point in request.enqueue:
                study.enqueue_trial(point, skip_if_exists=True)
        # A trial stopped by Ctrl-C is FAIL but not spent: the resumed study runs another in its place.
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                       and not t.user_attrs.get(INTERRUPTED_ATTR) for t in study.trials)
        budget = request.n_trials
        if request.sampler == "grid":  # every point once, as the sweeper's grid
            budget = min(budget, _grid_size(sampler_cfg["search_space"]))
        budget += known_count(study)
        # Ask and tell (Optuna's own interface for a given space): the stage's distributions as they are.
        for _ in range(max(0, budget - finished)):
            trial = study.ask(request.distributions)
            try:
                value = self._call(name, {**request.fixed, **trial.params}, request.overrides, 0, trial)
            except optuna.TrialPruned:  # its reports are its record (Optuna's tell keeps the last as its value)
                study.tell(trial, state=TrialState.PRUNED)
                continue
            except Exception:  # noqa: BLE001 - a failing configuration is a FAIL trial; the study goes on
                study.tell(trial, state=TrialState.FAIL)
                continue
            except BaseException:
                trial.set_user_attr(INTERRUPTED_ATTR, True)
                study.tell(trial, state=TrialState.FAIL)
                raise
            study.tell(trial, value)
        return candidates_of(study, request.fixed)

    def repeat(self, request: StudyRequest, candidates: Sequence[dict[str, Any]], seeds: int) -> RepeatResult:
        from tuneflow.analysis.significance import Finalist, significance_table

        name = f"{self.study}/{request.name}"
        finalists = []
        for index, candidate in enumerate(candidates):
            scores = {(seed, "all"): self._call(name, candidate["params"], request.overrides, seed)
                      for seed in range(1, seeds + 1)}
            finalists.append(Finalist(label=str(index), scores=scores))
        table = significance_table(finalists, self.direction)
        ranked = []
        for row in table.rows:
            candidate = dict(candidates[int(row.label)])
            ranked.append({**candidate, "repeat_mean": float(row.mean), "repeats": int(row.n_repeats)})
        return RepeatResult(ranked, table.verdict)


def _grid_size(grid: Mapping[str, Sequence[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size
