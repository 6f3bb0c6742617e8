"""Results a user can read while the study runs: a CSV rewritten as trials finish."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from tuneflow.storage.study import ERROR_ATTR, OVERRIDES_ATTR, RUN_ID_ATTR, SURPLUS_ATTR


def results_csv_path(root_dir: str | Path, study_name: str) -> Path:
    return Path(root_dir) / "studies" / study_name / "trials.csv"


#: While a study runs, its CSV is rewritten at most this often (and always after its last trial).
CSV_EVERY_S = 2.0
#: ... and at most once per this many times the last rewrite took: a rewrite reads and writes every
#: trial (~0.6 s at 10,000 trials on a busy 2-core machine), so the CSV costs the sweeper at most
#: 1/CSV_COST_FACTOR of its time, whatever the study's size.
CSV_COST_FACTOR = 20.0


class ThrottledCsv:
    """The sweeper's CSV while it runs: rewritten after a trial finishes unless the last rewrite was
    less than ``every_s`` ago (or less than ``cost_factor`` times its own duration ago). A rewrite
    grows with the study; this way its share of the sweeper's time does not, and the file is at most
    ``max(every_s, cost_factor x rewrite time)`` behind."""

    def __init__(self, path: Path, every_s: float = CSV_EVERY_S, cost_factor: float = CSV_COST_FACTOR) -> None:
        self.path = path
        self.every_s = every_s
        self.cost_factor = cost_factor
        self._last = float("-inf")
        self._took = 0.0

    def write_if_due(self, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
        if time.monotonic() - self._last >= max(self.every_s, self.cost_factor * self._took):
            started = time.monotonic()
            write_rows(trials, self.path)
            self._last = time.monotonic()
            self._took = self._last - started


def write_trials_csv(study: optuna.Study, path: Path) -> Path:
    """One row per trial: number, state, value, duration, params, final metrics, MLflow run id, error.
    A multi-objective study's trials leave ``value`` empty: each objective has its column, the metric
    the job recorded under the objective's name (``objective_0``, ... for a task returning a sequence).

    Written to a temporary file and renamed, so a reader never sees half a file, even while several
    workers rewrite it.
    """
    return write_rows(study.get_trials(deepcopy=False), path)


def write_rows(all_trials: Sequence[optuna.trial.FrozenTrial], path: Path) -> Path:
    """``write_trials_csv`` of trials already read."""
    trials = [t for t in all_trials if not t.user_attrs.get(SURPLUS_ATTR)]
    param_names = sorted({name for t in trials for name in t.params})
    reserved = {RUN_ID_ATTR, ERROR_ATTR, SURPLUS_ATTR, OVERRIDES_ATTR}
    metric_names = sorted({k for t in trials for k in t.user_attrs if k not in reserved})
    columns = ["number", "state", "value", "duration_s", "datetime_start", *param_names, *metric_names,
               "mlflow_run_id", "error"]
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.values[0] if t.values is not None and len(t.values) == 1 else None,
            "duration_s": t.duration.total_seconds() if t.duration is not None else None,
            "datetime_start": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
            **{name: t.params.get(name) for name in param_names},
            **{name: t.user_attrs.get(name) for name in metric_names},
            "mlflow_run_id": t.user_attrs.get(RUN_ID_ATTR),
            "error": t.user_attrs.get(ERROR_ATTR),
        }
        for t in trials
    ]
    return write_table(rows, path, columns)


def write_table(rows: Sequence[Mapping[str, Any]], path: Path, columns: Sequence[str] | None = None) -> Path:
    """Rows as a CSV (pandas), every column any row has (in first-seen order) unless ``columns`` are
    given; an empty cell for a missing value. Written to a temporary file and renamed, so a reader never
    sees half a file, even while several workers rewrite it. The one CSV writer of tuneflow."""
    import pandas as pd

    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # dtype=object: each cell as given (an int column with gaps stays ints, not floats).
    pd.DataFrame(list(rows), columns=list(columns), dtype=object).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
