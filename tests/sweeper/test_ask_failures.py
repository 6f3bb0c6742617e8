"""A failure while a trial is asked (the sampler, a distribution Optuna refuses, the user's define-by-run
space) fails that trial at once: no trial is left RUNNING to hold up later runs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tuneflow.errors import ConfigError
from tuneflow.storage.study import StudySettings, open_storage
from tuneflow.sweeper.asking import TrialAsker
from tuneflow.sweeper.plan import SweepPlan


def asker_for(tmp_path: Path, distributions: dict[str, optuna.distributions.BaseDistribution],
              extend_space: object = None) -> TrialAsker:
    settings = StudySettings(name="s", storage_url=f"sqlite:///{tmp_path / 'optuna.db'}", direction="minimize",
                             objective=None, n_trials=5, root_dir=str(tmp_path), heartbeat_interval=None)
    plan = SweepPlan(settings=settings, distributions=distributions, fixed_overrides=[],
                     sampler=optuna.samplers.RandomSampler(seed=0), extend_space=extend_space, max_failures=10)  # type: ignore[arg-type]
    storage = open_storage(settings.storage_url)
    study = optuna.create_study(study_name="s", storage=storage, sampler=plan.sampler)
    return TrialAsker(study, storage, plan)


def states(asker: TrialAsker) -> list[str]:
    return [trial.state.name for trial in asker.study.get_trials(deepcopy=False)]


def test_a_range_optuna_cannot_sample_is_one_line_and_its_trial_fails(tmp_path: Path) -> None:
    asker = asker_for(tmp_path, {"x": FloatDistribution(-1e308, 1e308)})  # numpy: "Range exceeds valid bounds"
    with pytest.raises(ConfigError, match=r"^study 's': cannot ask Optuna for a trial: Range exceeds valid bounds"):
        asker.read_and_ask(0)
    assert states(asker) == ["FAIL"]


def test_a_crash_in_the_users_define_by_run_space_fails_its_trial_and_is_not_hidden(tmp_path: Path) -> None:
    def extend(config: object, trial: optuna.trial.Trial) -> None:
        trial.suggest_int("layers", 1, 3)
        raise RuntimeError("a bug in the user's configure()")

    asker = asker_for(tmp_path, {"x": FloatDistribution(0, 1)}, extend)
    with pytest.raises(RuntimeError, match="a bug in the user's configure"):
        asker.read_and_ask(0)
    assert states(asker) == ["FAIL"]
    # The next ask (the bug fixed) is not held up by a RUNNING trial.
    asker.plan.extend_space = None
    read = asker.read_and_ask(0)
    assert (read.counts["running"], [t.number for t in read.asked]) == (0, [1])
    assert states(asker) == ["FAIL", TrialState.RUNNING.name]  # the new trial, asked now
