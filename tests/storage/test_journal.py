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
from tuneflow.storage.urls import check_storage, default_storage_url, storage_url


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


def test_the_default_is_the_journal_but_an_earlier_tuneflow_s_sqlite_file_stays_in_use(tmp_path: Path) -> None:
    """Readers and the sweeper's default (the journal node, null or no storage) agree on the file."""
    root = tmp_path / "mlruns"
    journal, sqlite = f"journal://{(root / 'optuna.journal').resolve()}", f"sqlite:///{(root / 'optuna.db').resolve()}"
    defaults = (lambda: default_storage_url(root), lambda: storage_url({"kind": "journal", "url": None}, root),
                lambda: storage_url(None, root))
    assert [url() for url in defaults] == [journal] * 3, "no store yet: the journal"
    root.mkdir()
    (root / "optuna.db").touch()
    assert [url() for url in defaults] == [sqlite] * 3, "only optuna.db: a project an earlier tuneflow made"
    (root / "optuna.journal").touch()
    assert [url() for url in defaults] == [journal] * 3, "the journal, once it exists"
    assert storage_url({"kind": "sqlite", "url": None}, root) == sqlite, "hydra/sweeper/storage=sqlite"


def a_journal(tmp_path: Path) -> Path:
    path = tmp_path / "mlruns" / "optuna.journal"
    study = optuna.create_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    return path


def test_a_file_that_is_no_journal_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    from tuneflow.storage.creation import FIX, prepare_optuna_store

    path = tmp_path / "optuna.journal"
    for text in (b"\x00garbage\xff" * 4096, b'{"not": "a record"}\n{"op_code": 0}', b"garbage, no newline"):
        path.write_bytes(text)
        with pytest.raises(ConfigError) as refused:
            prepare_optuna_store(f"journal://{path}")
        assert str(refused.value) == f"{path} is not an Optuna journal (its first line is not a journal record); {FIX}"
        assert path.read_bytes() == text


@pytest.mark.parametrize("cut", ["mid-record", "first-record"])
def test_a_last_record_cut_short_is_dropped_under_the_lock_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: str) -> None:
    from tuneflow.storage.creation import prepare_optuna_store

    path = a_journal(tmp_path)
    data = path.read_bytes()
    whole = data[: data.rindex(b"\n", 0, len(data) - 1) + 1] if cut == "mid-record" else b""
    path.write_bytes(data[: len(whole) + 25])
    with caplog.at_level("WARNING", logger="tuneflow.storage.journal"):
        prepare_optuna_store(f"journal://{path}")
    assert path.read_bytes() == whole
    (warning,) = caplog.messages
    assert warning.startswith(f"{path}: dropped its last 25 bytes, a record cut short"), warning
    assert not Path(f"{path}.lock").exists(), "the journal's lock is released"
    if cut == "mid-record":  # the study resumes from the whole records, and appends to them
        study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
        assert len(optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path)).trials) == 4


def test_the_repair_waits_for_the_journal_lock(tmp_path: Path) -> None:
    """A last line without its newline may be an append in progress: it is only dropped under the lock."""
    import threading

    from tuneflow.storage.journal import check_journal, open_lock

    path = a_journal(tmp_path)
    whole = path.read_bytes()
    lock = open_lock(path)
    lock.acquire()
    path.write_bytes(whole + b'{"op_code":4,"wor')  # a writer mid-append, holding the lock
    checked = threading.Thread(target=check_journal, args=(path, "fix"))
    checked.start()
    time.sleep(0.5)
    assert checked.is_alive(), "the repair waits while a writer holds the lock"
    with path.open("ab") as journal:
        journal.write(b'ker_id":"w"}\n')  # the append finishes
    lock.release()
    checked.join(timeout=30)
    assert path.read_bytes() == whole + b'{"op_code":4,"worker_id":"w"}\n', "a finished append is kept"


def test_an_append_after_a_record_cut_short_drops_it_first(tmp_path: Path) -> None:
    """A worker whose append filled the disk leaves a record cut short while others still run: the next
    append drops it instead of following it (Optuna's reader stops at a broken line: every later record
    would be lost)."""
    path = a_journal(tmp_path)
    running = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    with path.open("ab") as journal:
        journal.write(b'{"op_code":5,"worker_id":"dead","trial_id":3,"sta')
    running.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    assert b'"dead"' not in path.read_bytes()


@pytest.mark.slow
def test_report_reads_a_journal_cut_short_as_it_is_and_the_sweeper_repairs_it(tmp_path: Path) -> None:
    from conftest import run_tuneflow

    sweep = ("+arch=quadratic", "-m", "hydra/sweeper/pruner=none", "tracking.log_model=false")
    assert run_tuneflow(tmp_path, *sweep, "hydra.sweeper.n_trials=2").returncode == 0
    path = tmp_path / "mlruns" / "optuna.journal"
    data = path.read_bytes()[:-5]
    path.write_bytes(data)
    report = run_tuneflow(tmp_path, "report", "quadratic")
    assert report.returncode == 0, report.output
    assert path.read_bytes() == data, "a reader writes nothing"
    done = run_tuneflow(tmp_path, *sweep, "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.output
    dropped = len(data) - (data.rindex(b"\n") + 1)
    assert f"{path}: dropped its last {dropped} bytes, a record cut short" in done.output
    study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    assert len([t for t in study.trials if t.state.is_finished()]) >= 3


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


@pytest.mark.slow
def test_a_project_an_earlier_tuneflow_made_on_sqlite_resumes_there(tmp_path: Path) -> None:
    """Its root_dir holds optuna.db and no optuna.journal: the default command, report and the workers'
    resolved storage keep using the SQLite file, so its studies resume instead of starting anew."""
    from conftest import run_tuneflow

    sweep = ("+arch=quadratic", "-m", "hydra/sweeper/pruner=none", "tracking.log_model=false")
    earlier = run_tuneflow(tmp_path, *sweep, "hydra.sweeper.n_trials=2", "hydra/sweeper/storage=sqlite")
    assert earlier.returncode == 0, earlier.output
    root = tmp_path / "mlruns"
    resumed = run_tuneflow(tmp_path, *sweep, "hydra.sweeper.n_trials=3")
    assert resumed.returncode == 0, resumed.output
    assert not (root / "optuna.journal").exists()
    study = optuna.load_study(study_name="quadratic", storage=f"sqlite:///{root / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3, "the earlier study resumed: 1 more trial"
    report = run_tuneflow(tmp_path, "report", "quadratic")
    assert report.returncode == 0, report.output


def test_a_full_disk_while_appending_is_the_disk_s_line_naming_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The append that fills the disk writes part of its record, then fails: the sweeper's one line
    (``store_failure``) names the journal, and the next append drops the part written."""
    import errno

    from tuneflow.storage import journal
    from tuneflow.storage.creation import store_failure

    path = a_journal(tmp_path)
    whole = path.read_bytes()
    study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    real_write, room = os.write, [10]

    def full_disk(fd: int, data: bytes) -> int:  # what write(2) does: what fits, then ENOSPC
        if not room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real_write(fd, bytes(data[: room[0]]))
        room[0] -= written
        return written

    monkeypatch.setattr(journal.os, "write", full_disk)
    with pytest.raises(OSError) as failed:
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert store_failure(failed.value) == f"No space left on device: {path} (is the disk full, or the folder read-only?)"
    assert path.read_bytes() == whole + whole[:10]
    monkeypatch.setattr(journal.os, "write", real_write)
    study = optuna.load_study(study_name="quadratic", storage=HeartbeatJournalStorage(path))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
