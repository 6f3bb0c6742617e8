"""The journal storage (``hydra/sweeper/storage=journal``): Optuna's journal file with file heartbeats, so that
Optuna's own ``fail_stale_trials`` and ``RetryHeartbeatStaleTrialCallback`` fail and retry a dead worker's trial
exactly as on SQLite; and a sweep on it, read back by the readers and the dashboard's way of opening it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest

from tuneflow.errors import ConfigError
from tuneflow.storage.journal import HeartbeatJournalStorage, heartbeat_dir, journal_path_of
from tuneflow.storage.study import open_storage
from tuneflow.storage.urls import check_storage, storage_url, stored_storage_url


@pytest.fixture(autouse=True)
def quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_stale(storage: HeartbeatJournalStorage, trial_id: int, seconds_ago: float) -> None:
    beat = heartbeat_dir(storage.path) / str(trial_id)
    then = time.time() - seconds_ago
    os.utime(beat, (then, then))


def test_a_trial_whose_beat_is_older_than_the_grace_period_is_failed_and_retried_with_its_params(
    tmp_path: Path,
) -> None:
    path = tmp_path / "optuna.journal"
    storage = HeartbeatJournalStorage(
        path, heartbeat_interval=5, heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(3)
    )
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive, silent = study.ask(), study.ask(), study.ask()
    for trial in (dead, alive, silent):
        trial.suggest_float("x", 0, 1)
    storage.record_heartbeat(dead._trial_id)
    storage.record_heartbeat(alive._trial_id)
    make_stale(storage, dead._trial_id, seconds_ago=11)  # grace period: 2 x 5 s
    make_stale(storage, alive._trial_id, seconds_ago=9)

    # Another worker's view of the same file: the stale trial is found through the file, not memory.
    other = HeartbeatJournalStorage(
        path, heartbeat_interval=5, heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(3)
    )
    seen = optuna.load_study(study_name="s", storage=other)
    optuna.storages.fail_stale_trials(seen)

    states = {t.number: t.state.name for t in seen.get_trials(deepcopy=False)}
    assert states[dead.number] == "FAIL"
    assert states[alive.number] == "RUNNING", "a beat within the grace period is alive"
    assert states[silent.number] == "RUNNING", "a trial that never beat is never stale (as on RDBStorage)"
    (retry,) = seen.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert retry.params == {"x": dead.params["x"]}
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == dead.number
    assert not (heartbeat_dir(path) / str(dead._trial_id)).exists(), "a finished trial's beat file is gone"


def test_without_a_heartbeat_interval_nothing_is_ever_stale(tmp_path: Path) -> None:
    storage = HeartbeatJournalStorage(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    make_stale(storage, trial._trial_id, seconds_ago=10**6)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state.name == "RUNNING"


def test_the_journal_storage_config_and_urls(tmp_path: Path) -> None:
    url = storage_url({"kind": "journal", "url": None}, tmp_path / "mlruns")
    assert url == f"journal://{(tmp_path / 'mlruns' / 'optuna.journal').resolve()}"
    assert journal_path_of(url) == (tmp_path / "mlruns" / "optuna.journal").resolve()
    assert isinstance(open_storage(url, heartbeat_interval=3), HeartbeatJournalStorage)
    # A relative journal URL is made absolute (a worker elsewhere must open the same file).
    relative = storage_url("journal://runs/optuna.journal", tmp_path)
    assert relative == f"journal://{Path('runs/optuna.journal').resolve()}"
    check_storage(url)
    with pytest.raises(ConfigError, match="names no file"):
        check_storage(f"journal://{tmp_path}")


def test_readers_open_the_journal_where_only_it_exists(tmp_path: Path) -> None:
    root = tmp_path / "mlruns"
    assert stored_storage_url(root).startswith("sqlite:///"), "no store yet: the default"
    root.mkdir()
    (root / "optuna.journal").touch()
    assert stored_storage_url(root).startswith("journal://")
    (root / "optuna.db").touch()
    assert stored_storage_url(root).startswith("sqlite:///"), "an SQLite store keeps its precedence"


def a_journal(tmp_path: Path) -> Path:
    path = tmp_path / "mlruns" / "optuna.journal"
    study = optuna.create_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    return path


@pytest.mark.parametrize(("damage", "problem"), [
    ("garbage", "is not an Optuna journal (its first line is not a journal record); "),
    ("truncated", ": its last record is cut short (a full disk or a crash while it was written); delete that "
                  "last, incomplete line to resume from the records before it, or "),
])
def test_a_damaged_journal_is_refused_before_optuna_reads_or_appends_to_it(
        tmp_path: Path, damage: str, problem: str) -> None:
    from tuneflow.storage.creation import FIX, prepare_optuna_store

    path = a_journal(tmp_path)
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage\xff" * 4096 if damage == "garbage" else data[: len(data) // 3])
    before = path.read_bytes()
    with pytest.raises(ConfigError) as refused:
        prepare_optuna_store(f"journal://{path}")
    assert str(refused.value) == f"{path}{'' if problem.startswith(':') else ' '}{problem}{FIX}"
    assert path.read_bytes() == before
    if damage == "truncated":  # what the message says to do: the study resumes from the whole records
        path.write_bytes(before[: before.rindex(b"\n") + 1])
        prepare_optuna_store(f"journal://{path}")
        assert optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path)).trials


@pytest.mark.slow
def test_a_damaged_journal_is_one_line_in_the_sweeper_and_in_report(tmp_path: Path) -> None:
    from conftest import run_tuneflow

    path = a_journal(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    for args in (["+arch=quadratic", "-m", "hydra.sweeper.n_trials=4", "hydra/sweeper/storage=journal"],
                 ["report", "quadratic"]):
        result = run_tuneflow(tmp_path, *args)
        assert result.returncode == 2, result.output
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(
            f"tuneflow: error: {path}: its last record is cut short"), result.stderr
        assert path.read_bytes() == data[:-5]


@pytest.mark.slow
def test_optuna_dashboard_reads_the_journal_as_tuneflow_ui_starts_it(tmp_path: Path) -> None:
    import json
    import subprocess
    import urllib.request

    from tuneflow.cli.ui import dashboard_server, free_port
    from tuneflow.storage.readers import StudyLocation

    path = a_journal(tmp_path)
    location = StudyLocation("quadratic", tmp_path / "mlruns", f"journal://{path}", "")
    server = dashboard_server(location, free_port(), 0, tmp_path)
    process = subprocess.Popen(server.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(server.probe_url, timeout=5) as response:
                    studies = json.loads(response.read())["study_summaries"]
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.5)
    finally:
        process.kill()
        process.wait()
    (study,) = studies
    assert study["study_name"] == "quadratic"


@pytest.mark.slow
def test_a_sweep_on_the_journal_then_report_reads_it_without_being_told_where(tmp_path: Path) -> None:
    from conftest import run_tuneflow

    done = run_tuneflow(tmp_path, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=none",
                        "tracking.log_model=false", "hydra/sweeper/storage=journal")
    assert done.returncode == 0, done.output
    root = tmp_path / "mlruns"
    assert not (root / "optuna.db").exists()
    study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(root / "optuna.journal"))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert [p.name for p in heartbeat_dir(root / "optuna.journal").iterdir()] == [], "no beat file outlives its trial"
    report = run_tuneflow(tmp_path, "report", "quadratic")
    assert report.returncode == 0, report.output
    assert (root / "studies" / "quadratic" / "report" / "top_trials.csv").is_file()
