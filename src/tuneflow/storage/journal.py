"""Optuna's journal file storage, with heartbeats: ``hydra/sweeper/storage=journal`` (``journal:///PATH``).

Optuna's ``JournalStorage`` keeps a study as an append-only log of operations in one file
(``JournalFileBackend``: each write appended under a file lock), replayed in memory by each process: a no-op
trial costs a few ms of storage where SQLite through SQLAlchemy costs ~30 ms of CPU (``benchmarks/README.md``,
overhead), and several workers on one machine (or on a shared file system) append to the same file.

Optuna offers no heartbeat for it: only ``RDBStorage`` implements ``optuna.storages._heartbeat.BaseHeartbeat``,
and tuneflow's promise that a killed worker's trial is failed and retried rests on heartbeats. So this
subclass implements that interface with one small file per running trial in a folder beside the journal
(``record_heartbeat`` sets its modification time; a RUNNING trial whose file is older than the grace period
is stale; machines sharing the file over a network must agree on the time within that period). Optuna's own
``fail_stale_trials`` and ``RetryHeartbeatStaleTrialCallback`` then work unchanged, as on
SQLite. A trial that never beat has no file and is never stale, as on ``RDBStorage``.

What a ``kill -9`` leaves: every append is a single ``write`` of whole lines, so a killed worker leaves whole
records (what ``write`` returned is the kernel's, whatever happens to the process); its file lock is broken by
the next writer after ``LOCK_GRACE_S``. Appends are not ``fsync``'ed (``UnsyncedJournalFileBackend``): the
same trade as ``synchronous=NORMAL`` on tuneflow's SQLite stores (``tuneflow.storage.sqlite``): only an OS
crash or power loss can lose the last records, and a last record cut short is then refused with one line
(``check_journal``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState

from tuneflow.errors import ConfigError

#: The scheme of tuneflow's journal URLs: ``journal:///ABSOLUTE/PATH`` (or ``journal://RELATIVE/PATH``).
SCHEME = "journal://"
#: Seconds after which a lock file left by a killed writer is broken by the next one (Optuna's default).
LOCK_GRACE_S = 30


def is_journal(url: str) -> bool:
    return url.startswith(SCHEME)


def journal_path_of(url: str) -> Path | None:
    """The file behind ``journal:///path`` (None for other URLs)."""
    if not is_journal(url):
        return None
    return Path(url[len(SCHEME):])


def journal_url(path: str | Path) -> str:
    return f"{SCHEME}{Path(path)}"


def check_journal(path: Path, fix: str) -> None:
    """A journal Optuna can read and append to: missing, empty, or whole records, one JSON object a line.
    Optuna's reader skips a last line cut short (a crash or a full disk while it was written) and stops at
    one that is not JSON, so a later append would follow the broken line and every record after it would be
    unreadable: refused instead, with one line naming the file (``fix`` says what to do)."""
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; {fix}")
    with path.open("rb") as journal:
        first = journal.readline()
        if not first:
            return
        journal.seek(-1, os.SEEK_END)
        last = journal.read(1)
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        problem = "its first line is not a journal record"
    elif last != b"\n":
        # A write that failed (a full disk) or an OS crash; or a file cut short by other damage, which
        # cannot be told apart from it: the user decides whether the records before it are the study.
        raise ConfigError(f"{path}: its last record is cut short (a full disk or a crash while it was written); "
                          f"delete that last, incomplete line to resume from the records before it, or {fix}")
    else:
        return
    raise ConfigError(f"{path} is not an Optuna journal ({problem}); {fix}")


def heartbeat_dir(path: Path) -> Path:
    """The folder of the journal's heartbeat files: ``<journal>.heartbeats``."""
    return path.with_name(path.name + ".heartbeats")


class UnsyncedJournalFileBackend(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` without its ``fsync`` after every append (Optuna has no option for it):
    20 reports make 20 appends per trial, and on this project's shared disk the ``fsync`` made a no-op trial
    cost 60-100 ms instead of 4-6 ms. The append itself is Optuna's: the same lock, one ``write`` of whole lines."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with get_lock_file(self._lock):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as journal:
                journal.write(text.encode("utf-8"))


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """``JournalStorage`` on one file, with file heartbeats (see the module's docstring for why)."""

    def __init__(
        self,
        path: str | Path,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The open lock (O_EXCL), not the symlink lock: it works on any local or NFSv3+ file system.
        lock = JournalFileOpenLock(str(self.path), grace_period=LOCK_GRACE_S)
        super().__init__(UnsyncedJournalFileBackend(str(self.path), lock_obj=lock))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period if grace_period is not None else (
            None if heartbeat_interval is None else 2 * heartbeat_interval)
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

    def _beat_file(self, trial_id: int) -> Path:
        return heartbeat_dir(self.path) / str(trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        beat = self._beat_file(trial_id)
        try:
            os.utime(beat)
        except FileNotFoundError:
            beat.parent.mkdir(exist_ok=True)
            beat.touch()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if self.grace_period is None:
            return []
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            try:
                last_beat = self._beat_file(trial._trial_id).stat().st_mtime
            except FileNotFoundError:
                continue  # never beat: not stale (as on RDBStorage)
            if now - last_beat > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.heartbeat_stale_trial_callback

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():
            # A finished trial is never stale: its beat file only took room.
            self._beat_file(trial_id).unlink(missing_ok=True)
        return changed
