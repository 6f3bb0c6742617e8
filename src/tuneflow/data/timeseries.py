"""Dated series cut into validation periods for forecasting models: the bundled Seattle weather, or a
project's own table.

The bundled task: forecast tomorrow's ``temp_max`` in Seattle from a window of past days
(``vega_datasets``' bundled ``seattle_weather``, daily, 2012-01-01..2015-12-31). A project's own series
is a CSV or Parquet file (``data.path``, with ``date_column``, ``target`` and ``features``) or whatever
a loader function of its own returns (``data.loader: my_data.load``, a DataFrame with a date column or a
date index); it gets exactly what the Seattle series gets: date-range folds, automatic monthly ranges,
fast mode, per-range metrics.

A :class:`DateRange` is a *validation period*. Its fold trains on the ``history_days`` days just before
the range starts and validates on the targets inside the range, so no validation target is ever a
training target and the model never sees the future it is scored on. Several ranges give several
folds; a study scores a trial on all of them, which is how a team checks a forecaster before it ships.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

SERIES_SETS = ("seattle_weather",)

#: Numeric columns used as input features, besides the day-of-year encoding.
NUMERIC_COLUMNS = ("precipitation", "temp_max", "temp_min", "wind")

#: Columns that can be forecast. Not precipitation: it enters as log1p(mm), and a forecast in
#: log-millimetres would not be in the units ``target_scale`` promises.
TARGETS = ("temp_max", "temp_min", "wind")


@dataclass(frozen=True)
class DateRange:
    """Days ``start`` (included) to ``end`` (excluded): ``2013-01-01..2013-04-01`` holds 90 days.

    Half-open, so consecutive ranges share no day and ``days`` is plain subtraction.
    """

    start: date
    end: date

    @property
    def name(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True)
class SeriesData:
    """One fold: windows of standardised features and the next day's standardised target."""

    #: (N, window, F) float32 input windows whose targets lie in the training history.
    x_train: np.ndarray
    #: (N,) float32 standardised targets.
    y_train: np.ndarray
    #: (M, window, F) float32 input windows whose targets lie inside the validation range.
    x_val: np.ndarray
    #: (M,) float32 standardised targets.
    y_val: np.ndarray
    #: (mean, std) of the target in the training history: ``y * std + mean`` is in the data's units.
    target_scale: tuple[float, float]
    #: Names of the F feature columns, in order.
    feature_names: tuple[str, ...] = ()


@lru_cache(maxsize=4)
def _load_frame(name: str) -> pd.DataFrame:
    """Daily numeric features indexed by date. Cached: every trial of a study reads it; do not mutate."""
    if name not in SERIES_SETS:
        raise ValueError(
            f"data.name is {name!r}, but the bundled series are {', '.join(SERIES_SETS)}; "
            "for your own series give data.path (a CSV or Parquet file) or data.loader (a function)"
        )
    from vega_datasets import local_data

    raw = local_data.seattle_weather()
    frame = raw.set_index(pd.DatetimeIndex(raw["date"]).normalize())[list(NUMERIC_COLUMNS)]
    frame = frame.astype("float64")
    # Rain is heavy-tailed; log1p keeps a few storms from dominating the standardised feature.
    frame["precipitation"] = np.log1p(frame["precipitation"])
    return _daily_with_calendar(frame, name)


def _daily_with_calendar(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Check one row per day and add the day-of-year encoding every series gets."""
    if len(frame) < 2:
        raise ValueError(f"{name} holds {len(frame)} row(s); a series needs at least two days")
    expected = pd.date_range(frame.index[0], frame.index[-1], freq="D")
    if len(frame) != len(expected) or not frame.index.equals(expected):
        missing = expected.difference(frame.index)
        detail = f"{len(missing)} day(s) missing, the first {missing[0].date()}" if len(missing) else \
            "dates repeated or out of order"
        raise ValueError(f"{name} must hold exactly one row per day from its first to its last date ({detail})")
    frame = frame.copy()
    day_angle = 2 * np.pi * (frame.index.day_of_year.to_numpy() - 1) / 365.25
    frame["doy_sin"], frame["doy_cos"] = np.sin(day_angle), np.cos(day_angle)
    return frame


@dataclass(frozen=True)
class TableSource:
    """Where a project's own series comes from, and which columns to use (hashable: it keys the cache)."""

    path: str | None
    loader: str | None
    date_column: str
    target: str
    features: tuple[str, ...] | None
    #: The file's modification time, so an edited file is read again.
    mtime: float = 0.0

    @property
    def label(self) -> str:
        return f"data.path {self.path}" if self.path else f"data.loader {self.loader}"


def table_source(data_cfg: Mapping[str, Any]) -> TableSource | None:
    """The project's own series a data config names (``path`` or ``loader``), or None for a bundled one."""
    path, loader = data_cfg.get("path"), data_cfg.get("loader")
    if path is None and loader is None:
        return None
    if path is not None and loader is not None:
        raise ValueError("data.path and data.loader are both set; give one of them")
    if data_cfg.get("target") is None:
        raise ValueError("data.target is not set; name the column to forecast")
    features = data_cfg.get("features")
    mtime = 0.0
    if path is not None:
        from pathlib import Path

        file = Path(str(path))
        if not file.is_file():
            raise ValueError(f"data.path {path!r} is not a file (looked in {file.resolve().parent})")
        mtime = file.stat().st_mtime
    return TableSource(
        path=None if path is None else str(path),
        loader=None if loader is None else str(loader),
        date_column=str(data_cfg.get("date_column", "date")),
        target=str(data_cfg["target"]),
        features=None if features is None else tuple(str(f) for f in features),
        mtime=mtime,
    )


@lru_cache(maxsize=4)
def _load_table(source: TableSource) -> pd.DataFrame:
    """A project's daily series: numeric features indexed by date. Cached per file version; do not mutate."""
    raw = _read_source(source)
    if not isinstance(raw, pd.DataFrame):
        raise ValueError(f"{source.label} gave a {type(raw).__name__}; it must give a pandas DataFrame")
    if source.date_column in raw.columns:
        dates = pd.to_datetime(raw[source.date_column], errors="coerce")
        if dates.isna().any():
            raise ValueError(f"{source.label}: column {source.date_column!r} holds values that are not dates")
        raw = raw.drop(columns=[source.date_column]).set_index(pd.DatetimeIndex(dates).normalize())
    elif not isinstance(raw.index, pd.DatetimeIndex):
        raise ValueError(
            f"{source.label} has no date column {source.date_column!r} (columns: {', '.join(map(str, raw.columns))}); "
            "set data.date_column"
        )
    columns = list(source.features) if source.features is not None else \
        [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c])]
    if source.target not in columns:
        columns.append(source.target)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ValueError(
            f"{source.label} has no column(s) {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(map(str, raw.columns))}"
        )
    not_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(raw[c])]
    if not_numeric:
        raise ValueError(f"{source.label}: column(s) {', '.join(map(repr, not_numeric))} are not numbers")
    frame = raw[columns].astype("float64").sort_index()
    if frame.isna().any().any():
        column = frame.columns[frame.isna().any()][0]
        raise ValueError(f"{source.label}: column {column!r} has empty cells; fill them or leave the column out")
    return _daily_with_calendar(frame, source.label)


def _read_source(source: TableSource) -> Any:
    if source.loader is not None:
        from tuneflow.dotted import import_function

        function = import_function(source.loader, "data.loader")
        try:
            return function()
        except Exception as error:  # noqa: BLE001 - the project's own code: name it, whatever it raised
            raise ValueError(f"data.loader {source.loader!r} raised {type(error).__name__}: {error}") from None
    assert source.path is not None
    if source.path.endswith((".parquet", ".pq")):
        return pd.read_parquet(source.path)
    return pd.read_csv(source.path)


def series_frame(data_cfg: Mapping[str, Any]) -> tuple[pd.DataFrame, str]:
    """The daily feature table a data config names and the column to forecast."""
    source = table_source(data_cfg)
    if source is not None:
        return _load_table(source), source.target
    target = str(data_cfg.get("target", "temp_max"))
    if target not in TARGETS:
        raise ValueError(f"data.target is {target!r}, but must be one of {', '.join(TARGETS)}")
    return _load_frame(str(data_cfg.get("name", "seattle_weather"))), target


def load_frame(name: str = "seattle_weather") -> pd.DataFrame:
    """A copy of the daily feature table (the cached one stays untouched)."""
    return _load_frame(name).copy()


def data_span(name: str = "seattle_weather") -> tuple[date, date]:
    """First and last day with data."""
    index = _load_frame(name).index
    return index[0].date(), index[-1].date()


def _to_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a date, write YYYY-MM-DD") from None


def parse_date_ranges(raw: Any, data_start: date, data_end: date) -> list[DateRange]:
    """Read ``[[start, end], ...]`` (ISO strings or dates), checking each range against the data.

    ``data_end`` is the last day with data; a range's ``end`` is excluded, so it may be ``data_end + 1``.
    """
    if raw is None or isinstance(raw, (str, bytes)) or len(raw) == 0:
        raise ValueError(f"data.date_ranges is {raw!r}, but must be a non-empty list of [start, end] pairs")
    ranges = []
    for i, pair in enumerate(raw):
        where = f"data.date_ranges[{i}]"
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise ValueError(f"{where} is {pair!r}, but must be a [start, end] pair")
        start, end = _to_date(pair[0], where), _to_date(pair[1], where)
        name = f"{start.isoformat()}..{end.isoformat()}"
        if end <= start:
            raise ValueError(f"{where} {name} ends on or before it starts; end must be after start")
        if start < data_start or end > data_end + timedelta(days=1):
            raise ValueError(
                f"{where} {name} lies outside the data ({data_start}..{data_end}, last day included); "
                f"it must start on or after {data_start} and end (excluded) on or before "
                f"{data_end + timedelta(days=1)}"
            )
        ranges.append(DateRange(start, end))
    return ranges


def automatic_date_ranges(
    n: int, range_days: int, history_days: int, data_start: date, data_end: date, as_of: date
) -> list[DateRange]:
    """``n`` sorted validation ranges, drawn at random but fixed for the calendar month of ``as_of``.

    Fixed within a month so the trials of a study (and its resumes) are compared on the same
    periods; redrawn the next month so the team does not tune to the same few quarters forever.
    Each range has ``history_days`` of data before it; ranges do not overlap when the span allows.
    """
    if n < 1 or range_days < 1 or history_days < 0:
        raise ValueError(
            f"data.n_ranges={n}, data.range_days={range_days}, data.history_days={history_days}: "
            "n_ranges and range_days must be >= 1, history_days >= 0"
        )
    first = data_start + timedelta(days=history_days)
    # Number of days in which ranges may lie: from `first` to the last day with data.
    room = (data_end - first).days + 1
    if room < range_days:
        raise ValueError(
            f"data.history_days={history_days} + data.range_days={range_days} exceed the data "
            f"({data_start}..{data_end}); lower one of them"
        )
    rng = random.Random(as_of.year * 12 + as_of.month)
    slack = room - n * range_days
    if slack >= 0:
        # Random gaps before/between ranges that add up to at most `slack`: no overlap, uniform spread.
        offsets = sorted(rng.randint(0, slack) for _ in range(n))
        starts = [first + timedelta(days=off + i * range_days) for i, off in enumerate(offsets)]
    else:
        starts = sorted(first + timedelta(days=rng.randint(0, room - range_days)) for _ in range(n))
    return [DateRange(s, s + timedelta(days=range_days)) for s in starts]


def _windows(
    values: np.ndarray, target: np.ndarray, first: int, stop: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``values[t - window:t]`` and targets ``target[t]`` for day indices ``first <= t < stop``."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (T-window+1, F, window)
    x = view[first - window : stop - window].transpose(0, 2, 1)
    return np.ascontiguousarray(x, dtype=np.float32), target[first:stop].astype(np.float32)


def make_fold(
    frame: pd.DataFrame, target: str, period: DateRange, history_days: int, window: int
) -> SeriesData:
    """Train on the ``history_days`` days before ``period``, validate on the targets inside it.

    Training windows stay inside the history; validation windows may reach back into it (those days
    are past observations at forecast time). Features and target are standardised with the history's
    statistics only, so nothing about the validation period leaks into training.
    """
    day0 = frame.index[0].date()
    start, stop = (period.start - day0).days, (period.end - day0).days
    history_start = start - history_days
    if history_start < 0:
        raise ValueError(
            f"date range {period.name} has {start} days of data before it, but data.history_days is "
            f"{history_days}; start it on or after {day0 + timedelta(days=history_days)} "
            "or lower history_days"
        )
    if window > period.days:
        raise ValueError(
            f"params.window is {window} days, but date range {period.name} holds only {period.days} days; "
            f"choose window <= {period.days}"
        )
    if history_days - window < 2:
        raise ValueError(
            f"params.window is {window} days, but data.history_days is {history_days}: "
            "the history must exceed the window by at least 2 days to train on"
        )
    values = frame.to_numpy(dtype=np.float64)
    history = values[history_start:start]
    mean, std = history.mean(axis=0), history.std(axis=0)
    std[std == 0] = 1.0
    scaled = (values - mean) / std
    column = list(frame.columns).index(target)
    x_train, y_train = _windows(scaled, scaled[:, column], history_start + window, start, window)
    x_val, y_val = _windows(scaled, scaled[:, column], start, stop, window)
    return SeriesData(
        x_train, y_train, x_val, y_val,
        target_scale=(float(mean[column]), float(std[column])),
        feature_names=tuple(frame.columns),
    )


def build_folds(data_cfg: Mapping[str, Any], window: int) -> list[tuple[DateRange, SeriesData]]:
    """One (validation range, fold) per range a data config (``conf/data/seattle_weather.yaml``, or a
    project's ``conf/data/NAME.yaml``) names."""
    frame, target = series_frame(data_cfg)
    window = int(window)
    if window < 1:
        raise ValueError(f"params.window is {window}, but must be at least 1 day")
    history_days = int(data_cfg.get("history_days", 730))
    data_start, data_end = frame.index[0].date(), frame.index[-1].date()
    if data_cfg.get("date_ranges") is not None:
        ranges = parse_date_ranges(data_cfg["date_ranges"], data_start, data_end)
    else:
        as_of = data_cfg.get("as_of")
        ranges = automatic_date_ranges(
            int(data_cfg.get("n_ranges", 3)),
            int(data_cfg.get("range_days", 90)),
            history_days,
            data_start,
            data_end,
            date.today() if as_of is None else _to_date(as_of, "data.as_of"),
        )
    return [(period, make_fold(frame, target, period, history_days, window)) for period in ranges]
