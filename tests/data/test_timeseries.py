"""Validation date ranges and forecasting folds of tuneflow.data.timeseries."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tuneflow.data import timeseries as ts

DATA_START, DATA_END = date(2012, 1, 1), date(2015, 12, 31)
SEATTLE = {
    "name": "seattle_weather",
    "kind": "timeseries",
    "target": "temp_max",
    "history_days": 730,
    "date_ranges": None,
    "n_ranges": 3,
    "range_days": 90,
    "as_of": "2024-05-15",
}


def test_seattle_weather_spans_2012_to_2015() -> None:
    assert ts.data_span() == (DATA_START, DATA_END)


def test_a_user_lists_validation_ranges_as_iso_strings_or_dates() -> None:
    ranges = ts.parse_date_ranges(
        [["2013-01-01", "2013-04-01"], [date(2015, 12, 1), "2016-01-01"]], DATA_START, DATA_END
    )

    assert [r.name for r in ranges] == ["2013-01-01..2013-04-01", "2015-12-01..2016-01-01"]
    # The end is excluded: Jan + Feb + Mar 2013 is 90 days; the last range ends with the data.
    assert [r.days for r in ranges] == [90, 31]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([["2013-04-01", "2013-01-01"]], "date_ranges[0] 2013-04-01..2013-01-01 ends on or before it starts"),
        ([["2013-01-01", "2013-01-01"]], "end must be after start"),
        (
            [["2013-01-01", "2013-02-01"], ["2011-06-01", "2012-03-01"]],
            "data.date_ranges[1] 2011-06-01..2012-03-01 lies outside the data (2012-01-01..2015-12-31",
        ),
        ([["2015-12-01", "2016-01-02"]], "end (excluded) on or before 2016-01-01"),
        ([], "must be a non-empty list"),
        ([["2013-02-30", "2013-04-01"]], "data.date_ranges[0]: '2013-02-30' is not a date"),
        ([["next monday", "2013-04-01"]], "is not a date, write YYYY-MM-DD"),
        ([["2013-01-01"]], "data.date_ranges[0] is ['2013-01-01'], but must be a [start, end] pair"),
    ],
)
def test_a_bad_range_is_refused_with_one_line_naming_it_and_the_rule(raw: list, message: str) -> None:
    with pytest.raises(ValueError) as error:
        ts.parse_date_ranges(raw, DATA_START, DATA_END)

    assert message in str(error.value)
    assert "\n" not in str(error.value)


def _automatic(as_of: date, n: int = 3, range_days: int = 90, history_days: int = 730) -> list[ts.DateRange]:
    return ts.automatic_date_ranges(n, range_days, history_days, DATA_START, DATA_END, as_of)


def test_automatic_ranges_stay_the_same_all_month_so_a_study_compares_trials_fairly() -> None:
    assert _automatic(date(2024, 5, 1)) == _automatic(date(2024, 5, 17)) == _automatic(date(2024, 5, 31))


def test_automatic_ranges_change_from_one_month_to_the_next() -> None:
    months = [date(2023 + m // 12, m % 12 + 1, 1) for m in range(25)]
    draws = [_automatic(month) for month in months]

    assert all(this != following for this, following in zip(draws, draws[1:]))


@pytest.mark.parametrize("as_of", [date(2024, m, 1) for m in range(1, 13)])
def test_automatic_ranges_are_sorted_disjoint_and_have_enough_history(as_of: date) -> None:
    ranges = _automatic(as_of)

    assert len(ranges) == 3
    assert all(r.days == 90 for r in ranges)
    assert all(r.start - timedelta(days=730) >= DATA_START for r in ranges)
    assert all(r.end <= DATA_END + timedelta(days=1) for r in ranges)
    assert all(earlier.end <= later.start for earlier, later in zip(ranges, ranges[1:]))


def test_more_ranges_than_fit_side_by_side_may_overlap_but_stay_inside_the_data() -> None:
    ranges = _automatic(date(2024, 5, 1), n=12)  # 12 x 90 days > the 731 days after the history

    assert len(ranges) == 12
    assert ranges == sorted(ranges, key=lambda r: r.start)
    assert all(r.start >= date(2013, 12, 31) and r.end <= date(2016, 1, 1) for r in ranges)


def test_history_plus_range_longer_than_the_data_is_refused() -> None:
    with pytest.raises(ValueError, match="data.history_days=1400 \\+ data.range_days=90 exceed the data"):
        _automatic(date(2024, 5, 1), history_days=1400)


def _day_numbered_frame(days: int = 400) -> pd.DataFrame:
    """A frame whose temp_max on each day is that day's index, so a target tells its own date."""
    index = pd.date_range("2012-01-01", periods=days, freq="D")
    numbers = np.arange(days, dtype=float)
    return pd.DataFrame({"temp_max": numbers, "wind": np.sin(numbers)}, index=index)


def test_a_fold_trains_only_on_days_before_its_range_and_validates_on_the_range() -> None:
    period = ts.DateRange(date(2012, 10, 1), date(2012, 11, 1))  # days 274..304
    fold = ts.make_fold(_day_numbered_frame(), "temp_max", period, history_days=100, window=5)
    mean, std = fold.target_scale
    train_days = np.rint(fold.y_train * std + mean)
    val_days = np.rint(fold.y_val * std + mean)

    assert train_days.min() == 274 - 100 + 5 and train_days.max() == 273
    assert val_days.tolist() == list(range(274, 305))
    assert not set(train_days) & set(val_days)
    # Each input window ends the day before its target.
    assert np.allclose(fold.x_val[:, -1, 0] * std + mean, val_days - 1, atol=1e-3)
    assert fold.x_train.shape == (95, 5, 2) and fold.x_train.dtype == np.float32


def test_standardisation_uses_the_training_history_only() -> None:
    frame = _day_numbered_frame()
    period = ts.DateRange(date(2012, 10, 1), date(2012, 11, 1))
    before = ts.make_fold(frame, "temp_max", period, history_days=100, window=5)
    frame.loc["2012-10-01":"2012-10-31", "temp_max"] = 1e6  # rewrite the validation period's future
    after = ts.make_fold(frame, "temp_max", period, history_days=100, window=5)

    assert after.target_scale == before.target_scale
    assert np.array_equal(after.x_train, before.x_train) and np.array_equal(after.y_train, before.y_train)
    assert before.target_scale[0] == pytest.approx(np.arange(174, 274).mean())


def test_seattle_folds_follow_the_data_config() -> None:
    folds = ts.build_folds(SEATTLE, window=7)

    assert [period for period, _ in folds] == _automatic(date(2024, 5, 15))
    for _, fold in folds:
        assert fold.x_train.shape == (730 - 7, 7, len(fold.feature_names))
        assert fold.x_val.shape == (90, 7, len(fold.feature_names)) and fold.y_val.shape == (90,)
        assert "temp_max" in fold.feature_names
        assert 5.0 < fold.target_scale[1] < 10.0  # temp_max varies by several degrees C


def test_explicit_ranges_in_the_config_replace_the_automatic_ones() -> None:
    config = {**SEATTLE, "date_ranges": [["2014-02-01", "2014-03-01"]]}

    (period, fold), = ts.build_folds(config, window=7)

    assert period.name == "2014-02-01..2014-03-01" and len(fold.y_val) == 28


def test_a_window_longer_than_the_range_is_refused() -> None:
    config = {**SEATTLE, "date_ranges": [["2014-02-01", "2014-03-01"]]}

    with pytest.raises(ValueError) as error:
        ts.build_folds(config, window=30)

    assert "params.window is 30 days, but date range 2014-02-01..2014-03-01 holds only 28" in str(error.value)


def test_a_target_that_cannot_be_forecast_in_its_own_units_is_refused() -> None:
    with pytest.raises(ValueError, match="data.target is 'precipitation', but must be one of temp_max"):
        ts.build_folds({**SEATTLE, "target": "precipitation"}, window=7)


def test_a_range_with_too_little_history_before_it_is_refused() -> None:
    config = {**SEATTLE, "date_ranges": [["2013-01-01", "2013-04-01"]]}

    with pytest.raises(ValueError, match="has 366 days of data before it, but data.history_days is 730"):
        ts.build_folds(config, window=7)


def test_the_loaded_series_is_cached_across_trials() -> None:
    ts.build_folds(SEATTLE, window=7)
    misses = ts._load_frame.cache_info().misses

    ts.build_folds(SEATTLE, window=14)

    assert ts._load_frame.cache_info().misses == misses


@pytest.mark.parametrize(
    ("how", "direction", "expected"),
    [("mean", "minimize", 1.875), ("median", "minimize", 1.5), ("worst", "minimize", 4.0), ("worst", "maximize", 0.5)],
)
def test_the_objective_over_ranges_is_their_mean_median_or_worst(how: str, direction: str, expected: float) -> None:
    from tuneflow.data.folds import aggregate

    assert aggregate([0.5, 1.0, 2.0, 4.0], how, direction) == expected
