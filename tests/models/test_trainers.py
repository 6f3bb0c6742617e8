"""Every architecture honours the trainer contract of tuneflow.models.base, on tiny runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from tuneflow.data.tabular import load_tabular
from tuneflow.data.timeseries import build_folds
from tuneflow.models import cnn, lightgbm, lstm_attention, mlp
from tuneflow.models.base import TrainResult

LR_GROUP = {
    "lr": 3e-3, "batch_size": 64, "lr_schedule": "constant", "lr_decay": 0.5, "patience": 10, "epochs": 2
}


@dataclass
class Case:
    """One architecture with tiny params, its data, and the metric its study optimises."""

    train: Callable[..., TrainResult]
    params: dict[str, Any]
    data: Callable[[], Any]
    objective: str


def _one_seattle_fold(window: int = 7) -> Any:
    config = {"name": "seattle_weather", "history_days": 365, "date_ranges": [["2014-01-01", "2014-02-01"]]}
    return build_folds(config, window=window)[0][1]


CASES = {
    "mlp": Case(
        mlp.train,
        {**LR_GROUP, "hidden_size": 32, "n_layers": 1, "dropout": 0.1},
        lambda: load_tabular("digits"),
        "val_accuracy",
    ),
    "cnn": Case(
        cnn.train,
        {**LR_GROUP, "channels": 4, "n_conv": 2, "kernel_size": 3, "dropout": 0.1},
        lambda: load_tabular("digits"),
        "val_accuracy",
    ),
    "lightgbm": Case(
        lightgbm.train,
        {
            "lr": 0.1, "n_rounds": 30, "report_every": 10, "patience": 10, "lr_schedule": "constant",
            "num_leaves": 8, "min_child_samples": 10, "feature_fraction": 0.8, "bagging_fraction": 0.8,
            "lambda_l2": 1.0,
        },
        lambda: load_tabular("breast_cancer"),
        "val_loss",
    ),
    "lstm_attention": Case(
        lstm_attention.train,
        {
            **LR_GROUP, "lr": 1e-2, "window": 7, "hidden_size": 8, "num_layers": 1, "num_of_attentions": 2,
            "attention_hidden_layer_size": 8, "attention_regularization": 0.01, "dropout": 0.0,
        },
        _one_seattle_fold,
        "val_mae",
    ),
}


class StopTrial(Exception):
    """Stands in for optuna.TrialPruned."""


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


Calls = list[tuple[int, Mapping[str, float]]]


def _run(case: Case, seed: int = 0, **overrides: Any) -> tuple[TrainResult, Calls]:
    """Train ``case`` with some params overridden; return the result and every report call."""
    calls: Calls = []

    def record(step: int, metrics: Mapping[str, float]) -> None:
        calls.append((step, metrics))

    result = case.train({**case.params, **overrides}, case.data(), record, seed=seed, device="cpu")
    return result, calls


@pytest.mark.parametrize("arch", CASES)
def test_a_tiny_run_reports_every_epoch_and_returns_sane_metrics(arch: str) -> None:
    case = CASES[arch]

    result, calls = _run(case)

    steps = [step for step, _ in calls]
    assert steps == sorted(set(steps)) and len(steps) == (3 if arch == "lightgbm" else 2)
    assert all(case.objective in metrics and "val_loss" in metrics for _, metrics in calls)
    assert all(math.isfinite(value) for value in result.metrics.values())
    assert result.epochs_run == steps[-1]
    assert result.flavor == ("lightgbm" if arch == "lightgbm" else "pytorch")
    assert result.input_example is not None and len(result.input_example) == 2
    if case.objective == "val_accuracy":
        assert result.metrics["val_accuracy"] > 0.5  # chance is 0.1 on digits
    elif arch == "lightgbm":
        assert result.metrics["val_loss"] < math.log(2)  # better than a coin flip
    else:
        assert 0.5 < result.metrics["val_mae"] < 8.0  # degrees C: a forecast, not noise


@pytest.mark.parametrize("arch", CASES)
def test_a_reporter_that_raises_stops_training_and_the_exception_propagates(arch: str) -> None:
    case = CASES[arch]
    steps: list[int] = []

    def prune_at_second_report(step: int, metrics: Mapping[str, float]) -> None:
        steps.append(step)
        if len(steps) == 2:
            raise StopTrial

    params = {**case.params, "epochs": 5, "n_rounds": 50}

    with pytest.raises(StopTrial):
        case.train(params, case.data(), prune_at_second_report, seed=0, device="cpu")

    assert len(steps) == 2 and steps[0] < steps[1]


@pytest.mark.parametrize("arch", CASES)
def test_the_seed_makes_a_run_reproducible(arch: str) -> None:
    case = CASES[arch]

    first, _ = _run(case, seed=1)
    again, _ = _run(case, seed=1)
    other, _ = _run(case, seed=2)

    assert first.metrics == again.metrics
    assert other.metrics != first.metrics


def test_lightgbm_keeps_the_trees_of_its_best_report_and_they_predict_its_metrics() -> None:
    data = load_tabular("breast_cancer")
    # A huge learning rate overfits fast, so val_loss stops improving well before n_rounds.
    result, calls = _run(CASES["lightgbm"], lr=0.8, n_rounds=200, report_every=5, patience=3)

    best_step = min(calls, key=lambda call: call[1]["val_loss"])[0]
    assert result.epochs_run == best_step + 3 * 5 < 200
    assert result.model.num_trees() == best_step == result.extra["best_iteration"]
    assert lightgbm.class_metrics(result.model.predict(data.x_val), data.y_val) == pytest.approx(result.metrics)


def test_lightgbm_keeps_its_best_trees_also_when_it_runs_out_of_rounds() -> None:
    result, calls = _run(CASES["lightgbm"], lr=0.8, n_rounds=60, report_every=5, patience=100)

    best_step = min(calls, key=lambda call: call[1]["val_loss"])[0]
    assert result.epochs_run == 60 and best_step < 60
    assert result.model.num_trees() == best_step


def test_lightgbm_step_schedule_decays_the_learning_rate_every_few_reports() -> None:
    _, calls = _run(CASES["lightgbm"], n_rounds=60, lr_schedule="step", lr_decay=0.5, lr_step_reports=2)

    assert [metrics["lr"] for _, metrics in calls] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_attention_penalty_is_zero_for_hops_on_distinct_days_and_positive_for_repeated_hops() -> None:
    distinct = torch.eye(3).unsqueeze(0)  # 3 hops, each all on its own day
    repeated = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]])  # A Aᵀ - I = [[-.5, .5], [.5, -.5]]
    penalty = lstm_attention.StructuredSelfAttention.penalty

    assert penalty(distinct).item() == 0.0
    assert penalty(repeated).item() == pytest.approx(4 * 0.5**2)


def test_attention_regularization_changes_what_the_lstm_learns() -> None:
    plain, _ = _run(CASES["lstm_attention"], attention_regularization=0.0)
    penalised, _ = _run(CASES["lstm_attention"], attention_regularization=1.0)

    assert plain.metrics != penalised.metrics


def test_lstm_forecasts_a_batch_of_windows_as_one_number_each() -> None:
    fold = _one_seattle_fold()
    result, _ = _run(CASES["lstm_attention"])

    forecast = result.model(torch.as_tensor(fold.x_val[:5]))

    assert forecast.shape == (5,)


def test_cnn_refuses_rows_that_are_not_images() -> None:
    with pytest.raises(ValueError, match="arch cnn needs image rows"):
        cnn.train(CASES["cnn"].params, load_tabular("breast_cancer"), lambda s, m: None, seed=0, device="cpu")


def test_cnn_reads_8x8_digit_rows_at_every_depth() -> None:
    data = load_tabular("digits")
    for n_conv in (1, 2, 3, 4):
        model = cnn.ConvNet((8, 8), 10, channels=2, n_conv=n_conv, kernel_size=5, dropout=0.0)
        assert model(torch.as_tensor(data.x_val[:3])).shape == (3, 10)


def test_lstm_refuses_params_whose_window_differs_from_its_fold() -> None:
    with pytest.raises(ValueError, match="params.window is 14, but the fold's windows"):
        _run(CASES["lstm_attention"], window=14)


def test_unknown_lr_schedule_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="constant, step, plateau"):
        _run(CASES["lightgbm"], lr_schedule="cosine")
    with pytest.raises(ValueError, match="constant, step, plateau"):
        _run(CASES["cnn"], lr_schedule="cosine")



def test_metrics_carry_no_float32_noise() -> None:
    """441 of 450 right is 0.98, not float32's 0.9800000190734863 (what MLflow and the CSV would show)."""
    from tuneflow.models._torch import classification_metrics, plain, regression_metrics

    targets = torch.arange(450) % 3
    logits = torch.nn.functional.one_hot(targets, 3).float()
    logits[:9] = logits[:9].roll(1, dims=1)  # 9 wrong
    assert classification_metrics(logits, targets)["val_accuracy"] == 0.98
    assert plain(torch.tensor(0.1, dtype=torch.float32)) == 0.1
    metrics = regression_metrics(2.0)(torch.full((4,), 0.3), torch.zeros(4))
    assert metrics == {"val_loss": 0.09, "val_mae": 0.6}
