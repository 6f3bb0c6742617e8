"""How repeats are named, seeded and read back: per range for time series, one holdout for tabular."""

from __future__ import annotations

import json
from types import SimpleNamespace

from tuneflow.analysis.repeat import choose_seeds, finalists_by_trial, record_of
from tuneflow.analysis.report import range_scores

RANGES = ["2014-01-01..2014-04-01", "2014-04-01..2014-07-01"]


def repeat_run(trial: int, seed: int, ranges: list[str], metrics: dict[str, float], examples: str | None = None):  # type: ignore[no-untyped-def]
    tags = {"tuneflow.repeat_of_trial": str(trial), "tuneflow.repeat_seed": str(seed),
            "tuneflow.ranges": json.dumps(ranges)}
    params = {"val_examples": examples} if examples else {}
    return SimpleNamespace(info=SimpleNamespace(run_id=f"run-{trial}-{seed}"),
                           data=SimpleNamespace(tags=tags, metrics=metrics, params=params))


def test_new_seeds_skip_every_seed_a_finalist_was_tuned_with() -> None:
    assert choose_seeds([0], 3) == [1, 2, 3]
    assert choose_seeds([0, 2, 5], 4) == [1, 3, 4, 6]


def test_a_time_series_repeat_scores_each_date_range() -> None:
    run = repeat_run(7, 1, RANGES, {f"{RANGES[0]}/best_val_mae": 2.5, f"{RANGES[1]}/best_val_mae": 3.5,
                                    "best_val_mae": 3.0, "objective": 3.5})  # objective_over_ranges=worst
    record = record_of(run, "val_mae")
    assert record is not None and (record.trial, record.seed) == (7, 1)
    assert record.scores == {RANGES[0]: 2.5, RANGES[1]: 3.5}
    finalist = finalists_by_trial([record])[7]
    assert finalist.per_range() == {RANGES[0]: 2.5, RANGES[1]: 3.5}
    assert finalist.per_seed() == {1: 3.5}, "a repeat's score is its objective as the study combines ranges"


def test_a_tabular_repeat_is_one_holdout_unit_with_its_validation_size() -> None:
    record = record_of(repeat_run(3, 2, ["holdout"], {"best_val_accuracy": 0.97}, examples="450"), "val_accuracy")
    assert record is not None and record.scores == {"holdout": 0.97} and record.n_examples == 450


def test_a_repeat_without_its_metrics_is_left_out() -> None:
    assert record_of(repeat_run(3, 2, RANGES, {f"{RANGES[0]}/best_val_mae": 2.5}), "val_mae") is None


def test_per_range_trial_scores_come_from_the_runner_user_attributes() -> None:
    attrs = {f"{RANGES[0]}/val_mae": 2.0, f"{RANGES[1]}/val_mae": 4.0, "val_mae": 3.0,
             f"{RANGES[0]}/val_loss": 0.1, "mlflow_run_id": "abc"}
    assert range_scores(attrs, "val_mae") == {RANGES[0]: 2.0, RANGES[1]: 4.0}


def test_per_range_trial_scores_come_from_the_trials_final_metrics() -> None:
    attrs = {f"{RANGES[0]}/best_val_mae": 2.0, f"{RANGES[1]}/best_val_mae": 4.0, "best_val_mae": 3.0,
             f"{RANGES[0]}/best_val_loss": 0.1, f"{RANGES[0]}/best_epoch": 7.0, "mlflow_run_id": "abc"}
    assert range_scores(attrs, "val_mae") == {RANGES[0]: 2.0, RANGES[1]: 4.0}
