"""The lock workers take to create a study and to ask for trials, so that workers on any number of
machines neither race to create tables nor ask for more than ``n_trials``."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from tuneflow.storage.journal import is_journal, journal_path_of
from tuneflow.storage.urls import engine_for, is_sqlite


@contextlib.contextmanager
def study_lock(url: str, root_dir: str | Path, study_name: str, purpose: str = "open") -> Iterator[None]:
    """Held while a worker creates or opens a study (``purpose="open"``), asks for trials
    (``purpose="ask"``), or ends a strategy's stage (``purpose="stage"``: writes its finalists file or
    creates the strategy's run once, whichever worker gets there first; held while one worker runs a
    stage that must run once, such as the repeats, so it waits as long as that takes), or only reads a
    server database that another worker may be creating (``purpose="read"``: that server's ``open`` lock
    and nothing else, so it creates no file).

    Embedded SQLite or a journal file: a file lock beside the database (every worker runs on this machine). A server
    database: a PostgreSQL advisory lock, which holds across machines and is released by the server
    if the worker dies. ``open`` also takes the file lock in ``root_dir``: MLflow's embedded store
    there must not be created twice at once.
    """
    from filelock import FileLock

    with contextlib.ExitStack() as stack:
        if purpose == "open":
            Path(root_dir).mkdir(parents=True, exist_ok=True)
            stack.enter_context(FileLock(str(Path(root_dir) / ".tuneflow.lock"), timeout=600))
        if purpose == "stage":
            # Beside the finalists files (root_dir), which every worker of a strategy reads.
            Path(root_dir).mkdir(parents=True, exist_ok=True)
            stack.enter_context(FileLock(str(Path(root_dir) / f".{_digest(study_name)}.stage.lock"), timeout=-1))
        if url.startswith("postgresql"):
            key = "open" if purpose == "read" else purpose
            stack.enter_context(_advisory_lock(url, f"tuneflow:{key}:{study_name}"))
        elif (is_sqlite(url) or is_journal(url)) and purpose == "ask":
            database = Path(url[len("sqlite:///") :]) if is_sqlite(url) else journal_path_of(url)
            stack.enter_context(FileLock(f"{database}.{_digest(study_name)}.ask.lock", timeout=600))
        yield


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _advisory_lock(url: str, name: str) -> Iterator[None]:
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
    with engine_for(url).connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
