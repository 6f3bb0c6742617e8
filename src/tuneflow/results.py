"""Results a user can read while the study runs: a CSV rewritten after every finished trial."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import optuna

from tuneflow.study import ERROR_ATTR, OVERRIDES_ATTR, RUN_ID_ATTR, SURPLUS_ATTR


def results_csv_path(root_dir: str | Path, study_name: str) -> Path:
    return Path(root_dir) / "studies" / study_name / "trials.csv"


def write_trials_csv(study: optuna.Study, path: Path) -> Path:
    """One row per trial: number, state, value, duration, params, final metrics, MLflow run id, error.

    Written to a temporary file and renamed, so a reader never sees half a file, even while several
    workers rewrite it.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS_ATTR)]
    param_names = sorted({name for t in trials for name in t.params})
    reserved = {RUN_ID_ATTR, ERROR_ATTR, SURPLUS_ATTR, OVERRIDES_ATTR}
    metric_names = sorted({k for t in trials for k in t.user_attrs if k not in reserved})
    header = ["number", "state", "value", "duration_s", "datetime_start", *param_names, *metric_names,
              "mlflow_run_id", "error"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t in trials:
            duration = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow([
                t.number,
                t.state.name,
                "" if t.value is None else t.value,
                duration,
                t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
                *[t.params.get(name, "") for name in param_names],
                *[t.user_attrs.get(name, "") for name in metric_names],
                t.user_attrs.get(RUN_ID_ATTR, ""),
                t.user_attrs.get(ERROR_ATTR, ""),
            ])
    os.replace(tmp, path)
    return path
