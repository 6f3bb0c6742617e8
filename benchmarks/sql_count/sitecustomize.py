"""Counts the SQL statements a Python process sends, per database file and statement kind.

Put this folder first on PYTHONPATH and name an output file; at exit the process writes one line per
(database, kind): ``optuna.db<TAB>SELECT<TAB>1234``. Statements per trial = (count at 25 trials - count at
5 trials) / 20, which cancels start-up:

    SQLCOUNT_OUT=/tmp/n25.tsv PYTHONPATH=benchmarks/sql_count:src python -m tuneflow +arch=quadratic -m \\
        hydra/sweeper/pruner=none hydra.sweeper.n_trials=25

Measurement only (SQLAlchemy's ``before_cursor_execute`` and ``commit`` events on every engine).
"""

from __future__ import annotations

import atexit
import collections
import os
from typing import Any

counts: collections.Counter[tuple[str, str]] = collections.Counter()


def _database(connection: Any) -> str:
    return os.path.basename(str(connection.engine.url.database))


def _install() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts[(_database(connection), statement.lstrip().split(None, 1)[0].upper())] += 1

    @event.listens_for(Engine, "commit")
    def _commit(connection: Any) -> None:
        counts[(_database(connection), "COMMIT")] += 1


@atexit.register
def _dump() -> None:
    out = os.environ.get("SQLCOUNT_OUT")
    if out:
        with open(out, "w") as handle:
            for (database, kind), number in sorted(counts.items()):
                handle.write(f"{database}\t{kind}\t{number}\n")


if os.environ.get("SQLCOUNT_OUT"):
    _install()
