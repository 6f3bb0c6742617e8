"""Every sampler and pruner a user can pick (hydra/sweeper/sampler=NAME, hydra/sweeper/pruner=NAME) builds
through the code the sweeper uses and runs a few trials of the distributions tuneflow produces.

One contract over all of them, as Optuna's own tests/samplers_tests/test_samplers.py: composed from the
registered configs, built by ``build_sampler`` (failure-aware where the sweeper wraps it) and
``build_pruner``, asked and told on an in-memory study, with a failed trial among them so the
failure-aware view is exercised too.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from typing import Any

import optuna
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.tuneflow_sweeper.config import PRUNERS, SAMPLERS, WRAPPED_PRUNERS
from tuneflow.search.failure_aware import FailureAwareSampler
from tuneflow.search.space import grid_of, parse_search_space
from tuneflow.storage.study import build_pruner
from tuneflow.sweeper.plan import build_sampler

#: A space with every kind of distribution the grammar gives (float, log float, stepped float, int, log
#: int, categorical).
SPACE = {
    "x": "interval(-5.0, 5.0)",
    "lr": "tag(log, interval(1e-4, 1e-1))",
    "dropout": "range(0.0, 0.5, 0.1)",
    "units": "int(interval(1, 8))",
    "width": "tag(log, int(interval(1, 64)))",
    "act": "choice(relu, tanh)",
}
#: What a grid (and brute force) can enumerate.
DISCRETE_SPACE = {"n": "range(1, 4)", "act": "choice(relu, tanh)", "flag": "bool(choice(0, 1))"}
#: Samplers that enumerate: the sweeper does not make them failure-aware (a failed point counts as visited).
ENUMERATING = {"grid", "bruteforce"}


def composed(*overrides: str) -> Any:
    with initialize_config_module(config_module="tuneflow.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+arch=quadratic", *overrides], return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)


def objective(params: dict[str, Any]) -> float:
    return sum(float(v) ** 2 if not isinstance(v, str) else len(v) for v in params.values())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_builds_as_the_sweeper_builds_it_and_samples_tuneflows_distributions(name: str) -> None:
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None and not os.environ.get("TUNEFLOW_CI"):
        pytest.skip("cmaes, a dependency of tuneflow, is not installed in this environment: pip install -e .")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweeper = composed(f"hydra/sweeper/sampler={name}", "hydra.sweeper.sampler.seed=0")
    distributions, _ = parse_search_space(DISCRETE_SPACE if name in ENUMERATING else SPACE)
    sampler_cfg = dict(sweeper["sampler"])
    if name == "grid":  # as StudySweeper.plan does
        sampler_cfg["search_space"] = grid_of(distributions)
    if name == "nsgaii" or name == "nsgaiii":  # several generations in a few trials
        sampler_cfg["population_size"] = 2
    sampler = build_sampler(sampler_cfg, failure_aware=sweeper["failure_aware"])
    assert isinstance(sampler, FailureAwareSampler) is (name not in ENUMERATING)

    study = optuna.create_study(sampler=sampler)
    n_trials = 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and independent-sampling notices
        for number in range(n_trials):
            trial = study.ask(distributions)
            assert set(trial.params) == set(distributions)
            for param, value in trial.params.items():
                assert distributions[param]._contains(distributions[param].to_internal_repr(value))
            if number == 2:
                study.tell(trial, state=TrialState.FAIL)  # the failure-aware view now has a failure
            else:
                study.tell(trial, objective(trial.params))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == n_trials - 1
    if name in ENUMERATING:  # 3 x 2 x 2 points: no point twice
        points = [tuple(sorted(t.params.items())) for t in study.trials]
        assert len(set(points)) == len(points)


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_builds_as_the_jobs_build_it_and_decides_on_reported_values(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    overrides = [f"hydra/sweeper/pruner={name}"]
    if name == "threshold":
        overrides.append("hydra.sweeper.pruner.upper=10.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = build_pruner(composed(*overrides)["pruner"])
        assert isinstance(pruner, optuna.pruners.BasePruner)
        study = optuna.create_study(pruner=pruner)
        decisions = []
        for number in range(8):
            trial = study.ask({"x": optuna.distributions.FloatDistribution(-5, 5)})
            state, value = TrialState.COMPLETE, math.nan
            for step in range(6):
                value = float(number + 1) * (10 - step)  # later trials are worse at every step
                trial.report(value, step)
                if trial.should_prune():
                    state = TrialState.PRUNED
                    break
            decisions.append(state)
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    if name == "none":
        assert TrialState.PRUNED not in decisions
    if name in ("median", "percentile", "threshold", "successive_halving", "asha", "hyperband"):
        assert TrialState.PRUNED in decisions, f"{name} never pruned a trial that is worse at every step"


@pytest.mark.parametrize("wrapped", sorted(WRAPPED_PRUNERS))
def test_the_patient_pruner_wraps_another_pruner_chosen_by_name(wrapped: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = composed("hydra/sweeper/pruner=patient", f"+hydra/sweeper/pruner/wrapped_pruner={wrapped}")["pruner"]
        if wrapped == "threshold":
            cfg["wrapped_pruner"]["upper"] = 1.0
        pruner = build_pruner(cfg)
    assert isinstance(pruner, optuna.pruners.PatientPruner)
    assert type(pruner._wrapped_pruner).__name__ == PRUNERS[wrapped]._target_.rsplit(".", 1)[-1]


def test_the_patient_pruner_alone_prunes_once_patience_runs_out() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = build_pruner(composed("hydra/sweeper/pruner=patient", "hydra.sweeper.pruner.patience=1")["pruner"])
    assert isinstance(pruner, optuna.pruners.PatientPruner) and pruner._wrapped_pruner is None
    study = optuna.create_study(pruner=pruner)
    trial = study.ask()
    for step, value in enumerate([1.0, 2.0, 3.0]):  # never improves (minimize)
        trial.report(value, step)
    assert trial.should_prune()


def test_every_config_field_has_a_comment_above_it() -> None:
    import ast
    import inspect

    from hydra_plugins.tuneflow_sweeper import config

    lines = inspect.getsource(config).splitlines()
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.ClassDef) and node.name in {c.__name__ for c in [*SAMPLERS.values(), *PRUNERS.values()]}:
            for field in node.body:
                if isinstance(field, ast.AnnAssign) and field.target.id != "_target_":  # type: ignore[union-attr]
                    above = lines[field.lineno - 2].strip()
                    assert above.startswith("#"), f"{node.name}.{field.target.id} has no comment above it"  # type: ignore[union-attr]


def test_every_optuna_sampler_and_pruner_has_a_config() -> None:
    targets = {c._target_.rsplit(".", 1)[-1] for c in [*SAMPLERS.values(), *PRUNERS.values()]}
    optuna_classes = {n for n in optuna.samplers.__all__ if n.endswith("Sampler")} | {
        n for n in optuna.pruners.__all__ if n.endswith("Pruner")}
    # Base classes and a wrapper that needs a sampler object and fixed values are not choices of their own.
    assert optuna_classes - targets <= {"BaseSampler", "BaseGASampler", "PartialFixedSampler", "BasePruner"}
