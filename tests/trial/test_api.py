"""The public API a training loop calls, outside a sweep and inside a (hand-made) trial."""

from __future__ import annotations

import math
import sys
import types
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf

import tuneflow
from tuneflow.errors import MetricIsNaN
from tuneflow.trial import api
from tuneflow.trial.arch_task import train_folds
from tuneflow.trial.job import ObjectiveMissing, result_of, results_of


def test_outside_a_sweep_report_only_checks_values_and_there_is_no_trial() -> None:
    assert tuneflow.current_trial() is None
    tuneflow.report(1, {"val_loss": 0.5, "acc": 0.9})  # no study, no run: nothing to do, nothing raised
    with tuneflow.mlflow_run() as run:
        assert run is None
    tuneflow.log_model(object())  # nothing tracked: nothing saved


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_diverged_objective_is_an_error_with_its_reason(bad: float) -> None:
    trial = api.Trial(number=3, params={}, run_id=None, study_name="s", objective="val_loss")
    with api.running(trial), pytest.raises(MetricIsNaN, match="val_loss is (NaN|inf|-inf) at step 2: training diverged"):
        tuneflow.report(2, {"val_loss": bad})


def test_inside_a_trial_report_feeds_the_pruner_and_a_pruned_trial_stops_there() -> None:
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    handle = api.Trial(number=0, params={}, run_id=None, study_name=study.study_name, objective="val_loss",
                       optuna_trial=study.ask())
    with api.running(handle):
        assert tuneflow.current_trial() is handle
        tuneflow.report(1, {"val_loss": 0.5, "train_loss": 0.2})
        with pytest.raises(optuna.TrialPruned):
            tuneflow.report(2, {"val_loss": 3.0})
    assert tuneflow.current_trial() is None
    assert handle.optuna_trial is not None
    stored = study.trials[0]
    assert stored.intermediate_values == {1: 0.5, 2: 3.0}
    assert (handle.last_step, handle.last_value) == (2, 3.0)


@pytest.mark.parametrize(
    ("objective", "returned", "value", "metrics"),
    [
        (None, 0.25, 0.25, {"objective": 0.25}),
        ("val_loss", {"val_loss": 0.5, "epochs": 3}, 0.5, {"val_loss": 0.5, "epochs": 3.0, "objective": 0.5}),
        (None, {"score": 0.7}, 0.7, {"score": 0.7, "objective": 0.7}),
        (None, {"objective": 0.1, "val_loss": 0.2}, 0.1, {"objective": 0.1, "val_loss": 0.2}),
    ],
)
def test_what_a_task_returns_is_the_objective_and_the_final_metrics(
    objective: str | None, returned: Any, value: float, metrics: dict[str, float]
) -> None:
    trial = api.Trial(number=0, params={}, run_id=None, study_name="s", objective=objective)
    assert result_of(returned, trial) == (value, metrics)


@pytest.mark.parametrize(
    ("objective", "returned", "message"),
    [
        ("val_acc", {"val_loss": 0.5}, "returned metrics val_loss without the objective 'val_acc'"),
        (None, {"a": 1.0, "b": 2.0}, "without an objective"),
        (None, None, "returned nothing and never reported an objective"),
        (None, [0.1, 0.2], "returned 2 values, but the study has one objective"),
        (None, "0.5", "returned a str"),
    ],
)
def test_a_result_without_the_objective_names_the_fix(objective: str | None, returned: Any, message: str) -> None:
    trial = api.Trial(number=0, params={}, run_id=None, study_name="s", objective=objective)
    with pytest.raises(ObjectiveMissing, match=message):
        result_of(returned, trial)


def test_with_several_objectives_report_records_and_never_prunes() -> None:
    # Optuna's Trial.report refuses a multi-objective study: tuneflow.report must not call it.
    study = optuna.create_study(directions=["minimize", "minimize"], pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    handle = api.Trial(number=0, params={}, run_id=None, study_name=study.study_name, objective=None,
                       optuna_trial=study.ask(), objectives=("val_loss", "train_seconds"))
    with api.running(handle):
        tuneflow.report(1, {"val_loss": 3.0, "train_seconds": 0.1})
        tuneflow.report(2, {"val_loss": 5.0, "train_seconds": 0.2})
    assert study.trials[0].intermediate_values == {}
    assert handle.last_step == 2


@pytest.mark.parametrize(
    ("returned", "values", "metrics"),
    [
        ((0.5, 3), [0.5, 3.0], {"loss": 0.5, "seconds": 3.0}),
        ([0.5, 3.0], [0.5, 3.0], {"loss": 0.5, "seconds": 3.0}),
        ({"seconds": 3, "loss": 0.5, "epochs": 2}, [0.5, 3.0], {"seconds": 3.0, "loss": 0.5, "epochs": 2.0}),
    ],
)
def test_several_objectives_come_as_a_sequence_or_a_dict_naming_them(
    returned: Any, values: list[float], metrics: dict[str, float]
) -> None:
    assert results_of(returned, ("loss", "seconds")) == (values, metrics)


@pytest.mark.parametrize(
    ("returned", "error", "message"),
    [
        (0.5, ObjectiveMissing, "returned float, but the study has 2 objectives"),
        ((0.5,), ObjectiveMissing, r"returned \(0.5,\), but the study has 2 objectives"),
        ({"loss": 0.5}, ObjectiveMissing, "without seconds; set hydra.sweeper.objective"),
        ((0.5, math.nan), MetricIsNaN, "seconds is NaN"),
    ],
)
def test_several_objectives_missing_or_diverged_name_the_fix(returned: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        results_of(returned, ("loss", "seconds"))


def test_a_task_returning_nothing_gives_its_last_reported_objective() -> None:
    trial = api.Trial(number=0, params={}, run_id=None, study_name="s", objective="val_loss")
    with api.running(trial):
        tuneflow.report(4, {"val_loss": 0.3})
    assert result_of(None, trial) == (0.3, {"objective": 0.3})


def test_a_trainer_gets_a_concrete_device_never_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def train(params: Any, data: Any, report: Any, *, seed: int, device: str) -> tuneflow.TrainResult:
        seen["device"] = device
        report(1, {"val_loss": 1.0})
        return tuneflow.TrainResult(metrics={"val_loss": 1.0}, model=None, flavor=None, epochs_run=1)

    module = types.ModuleType("my_project_trainer")
    module.train = train  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_project_trainer", module)
    cfg = OmegaConf.create({"arch": {"trainer": "my_project_trainer.train", "objective": "val_loss"},
                            "params": {"epochs": 1}, "data": {"kind": "none"}, "seed": 0, "device": "auto"})
    train_folds(cfg)
    assert seen["device"] in ("cpu", "cuda")
