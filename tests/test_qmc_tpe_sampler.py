"""hydra/sweeper/sampler=qmc_tpe: scrambled Sobol points for the first trials, then TPE (issue 17's sampler
search, benchmarks/README.md)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import load_study, run_tuneflow

from tuneflow.search.failure_aware import FailureAwareSampler
from tuneflow.search.samplers import QmcThenTpeSampler


def bowl(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -5, 5) ** 2 + trial.suggest_float("y", -5, 5) ** 2


def sobol_points(seed: int, n: int) -> list[dict[str, float]]:
    alone = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=seed, scramble=True))
    alone.optimize(bowl, n_trials=n)
    return [t.params for t in alone.trials]


def test_the_start_up_trials_are_the_sobol_points_and_tpe_takes_over_after_them() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=QmcThenTpeSampler(seed=3, n_startup_trials=4))
    study.optimize(bowl, n_trials=12)
    points = sobol_points(3, 12)
    assert [t.params for t in study.trials[:4]] == points[:4]
    assert all(t.params != p for t, p in zip(study.trials[4:], points[4:]))  # TPE's, not the sequence's
    again = optuna.create_study(sampler=QmcThenTpeSampler(seed=3, n_startup_trials=4))
    again.optimize(bowl, n_trials=12)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]  # seeded: the same search


def test_under_the_failure_aware_view_it_learns_the_failing_region() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def fails_right(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", -5, 5), trial.suggest_float("y", -5, 5)
        if x > 3:
            raise RuntimeError("diverged")
        return x**2 + y**2

    def failed_after_startup(sampler: optuna.samplers.BaseSampler) -> int:
        study = optuna.create_study(sampler=sampler)
        study.optimize(fails_right, n_trials=25, catch=(RuntimeError,))
        return sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials[5:])

    aware = failed_after_startup(FailureAwareSampler(QmcThenTpeSampler(seed=0)))
    assert aware <= 4 and aware < failed_after_startup(QmcThenTpeSampler(seed=0))


@pytest.mark.slow
def test_the_named_config_drives_a_sweep(project: Path) -> None:
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra/sweeper/sampler=qmc_tpe",
                          "hydra.sweeper.sampler.seed=0", "hydra.sweeper.n_trials=7")
    assert result.returncode == 0, result.output[-3000:]
    study = load_study(project, "quadratic")
    assert len(study.trials) == 7 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert [t.params for t in study.trials[:5]] == sobol_points(0, 5)
