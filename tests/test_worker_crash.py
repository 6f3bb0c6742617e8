"""A worker killed mid-trial (kill -9) loses nothing: its trial is failed by heartbeat and retried with the
same params by another worker, and the study still ends with exactly n_trials finished trials."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import load_study, start_tuneflow, study_runs

pytestmark = pytest.mark.slow

WORKER = ["+arch=quadratic", "-m", "hydra.sweeper.n_trials=6", "hydra/sweeper/pruner=none",
          "hydra.sweeper.heartbeat_interval=1", "params.seconds_per_epoch=0.1"]


def wait_for_running_trial(project: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (project / "mlruns" / "optuna.db").exists():
            try:
                # Mid-trial: running, with its MLflow run (on a busy machine the job's set-up can take a while).
                if any(t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs
                       for t in load_study(project, "quadratic").trials):
                    return
            except Exception:  # noqa: BLE001 - the study may not exist yet
                pass
        time.sleep(0.3)
    raise AssertionError("no trial started")


def test_a_killed_workers_trial_is_retried_and_nothing_is_lost(project: Path) -> None:
    doomed = start_tuneflow(project, *WORKER)
    wait_for_running_trial(project)
    time.sleep(0.5)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()

    survivor = start_tuneflow(project, *WORKER)
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, out + err

    study = load_study(project, "quadratic")
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(finished) == 6
    assert len(failed) == 1, "the killed trial was failed by its stale heartbeat"
    (retry,) = [t for t in finished if t.system_attrs.get("failed_trial") == failed[0].number]
    assert retry.params == failed[0].params

    runs = {r.info.run_id: r for r in study_runs(project, "quadratic")}
    dead_run = runs[failed[0].user_attrs["mlflow_run_id"]]
    retry_run = runs[retry.user_attrs["mlflow_run_id"]]
    assert dead_run.info.status == "FAILED"
    assert retry_run.info.run_id != dead_run.info.run_id
    assert retry_run.data.tags["tuneflow.retry_of_trial"] == str(failed[0].number)
    assert retry_run.data.tags["tuneflow.retry_of_run"] == dead_run.info.run_id
    assert all(r.info.status != "RUNNING" for r in runs.values())
    assert len(runs) == len(study.trials)
