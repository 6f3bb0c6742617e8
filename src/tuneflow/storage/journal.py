"""Optuna's journal file storage, with heartbeats: the embedded default (``<root_dir>/optuna.journal``,
``hydra/sweeper/storage=journal``, ``journal:///PATH``).

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
crash or power loss can lose the last records. A last record cut short (that, a full disk, or a writer killed
between the ``write`` calls of a long record) is dropped under the journal's lock, with one warning
(``drop_cut_short_record``): at the sweeper's start and before every append, so no record is ever appended
after a broken line (Optuna's reader stops at one, and every record after it would be unreadable).
"""

from __future__ import annotations

import json
import logging
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

log = logging.getLogger(__name__)

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


def check_journal(path: Path, fix: str, *, repair: bool = True) -> None:
    """A journal Optuna can read and append to: missing, empty, or records, one JSON object a line. A file
    whose first line is no journal record is not one (refused with one line; ``fix`` says what to do). A last
    record cut short is dropped under the journal's lock (``drop_cut_short_record``) when ``repair``; a reader
    (``repair=False``) leaves it: Optuna's reader skips an unfinished last line, and the next writer drops it."""
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
    if not _is_record(first):
        raise ConfigError(f"{path} is not an Optuna journal (its first line is not a journal record); {fix}")
    if last != b"\n" and repair:
        with get_lock_file(open_lock(path)):
            fd = os.open(path, os.O_RDWR)
            try:
                drop_cut_short_record(fd, path)
            finally:
                os.close(fd)


def _is_record(first_line: bytes) -> bool:
    """A whole first line that is a journal record, or the start of one that was cut short (a journal whose
    first append never finished): Optuna writes each record as ``{"op_code":...}``."""
    if not first_line.endswith(b"\n"):
        return first_line.startswith(b'{"op_code":')
    try:
        record = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def open_lock(path: Path) -> JournalFileOpenLock:
    """The lock every tuneflow writer of the journal appends under (the open lock, O_EXCL, not Optuna's
    default symlink lock: it works on any local or NFSv3+ file system; both use ``<journal>.lock``, so they
    exclude each other, and optuna-dashboard's writes wait for tuneflow's)."""
    return JournalFileOpenLock(str(path), grace_period=LOCK_GRACE_S)


def drop_cut_short_record(fd: int, path: Path) -> int:
    """Truncate the journal open as ``fd`` to just after its last newline; the bytes dropped (0 when it ends
    with one). Only under the journal's lock: no writer is then mid-append, so a last line without its newline
    is an append that never finished (a full disk, an OS crash, a writer killed between two ``write`` calls),
    and nothing it held was ever readable: Optuna's reader skips such a line. Left there, the next append
    would follow it, and Optuna's reader stops at a broken line: every later record would be lost."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    dropped = size - end
    if dropped:
        os.ftruncate(fd, end)
        log.warning(f"{path}: dropped its last {dropped} bytes, a record cut short (an append that never "
                    "finished, so nothing in it was ever read); the records before it are whole")
    return dropped


def heartbeat_dir(path: Path) -> Path:
    """The folder of the journal's heartbeat files: ``<journal>.heartbeats``."""
    return path.with_name(path.name + ".heartbeats")


class UnsyncedJournalFileBackend(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` without its ``fsync`` after every append (Optuna has no option for it):
    20 reports make 20 appends per trial, and on this project's shared disk the ``fsync`` made a no-op trial
    cost 60-100 ms instead of 4-6 ms. The append is otherwise Optuna's: the same lock, one ``write`` of whole
    lines (``O_APPEND``), after dropping a record left cut short."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(record, separators=(",", ":")) for record in logs) + "\n").encode("utf-8")
        with get_lock_file(self._lock):
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
            try:
                # One fstat and a one-byte read per append: a record another writer left cut short (a full
                # disk) is dropped before this one follows it (see drop_cut_short_record).
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    drop_cut_short_record(fd, Path(self._file_path))
                view = memoryview(data)
                while view:  # os.write may write less than asked (a signal, a full disk raises)
                    view = view[os.write(fd, view):]
            except OSError as error:  # os.write's error names no file: the one line that reports it should
                raise OSError(error.errno, error.strerror, self._file_path) from error
            finally:
                os.close(fd)


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
        super().__init__(UnsyncedJournalFileBackend(str(self.path), lock_obj=open_lock(self.path)))
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
