"""What tuneflow shows on the console in any app that runs its sweeper: library warnings quieted, errors
the user can fix as one line, Ctrl-C and SIGTERM as a clean stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

#: Exit status of an error the user can fix (as argparse uses).
EXIT_USAGE = 2


def quiet_library_warnings() -> None:
    """Warnings about choices tuneflow made on purpose (heartbeats with ask/tell, pickled torch
    models for 0.05 s saves instead of 3 s exports) say nothing a user can act on."""
    import warnings

    warnings.filterwarnings("ignore", message=".*heartbeat.*", category=Warning)
    warnings.filterwarnings("ignore", message=".*fail_stale_trials.*", category=Warning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*", category=UserWarning)
    warnings.filterwarnings("ignore", message=".*retried_trial_number.*", category=Warning)
    # Optuna marks APIs tuneflow relies on (heartbeats, retries, metric names) experimental; stable since 3.x.
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    # MLflow's tracking store uses a SQLAlchemy loader that SQLAlchemy 2.1 deprecates: MLflow's to change.
    warnings.filterwarnings("ignore", message=".*``noload`` loader strategy is deprecated.*", category=Warning)
    # MLflow announces creating and migrating its tables on a new store, at INFO; and logs a database error
    # with its traceback at ERROR before raising it, which tuneflow turns into one line (a full disk).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    # With a tracking server MLflow prints two "View run" links per trial, and fetches the run to do so.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is: a scheduler's pre-emption, ``docker stop`` or ``kill``
    then ends the study the way Ctrl-C does (the running trial FAIL, its MLflow run and the parent
    run KILLED, the CSV written) instead of leaving them RUNNING until a heartbeat goes stale."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def terminate_like_interrupt() -> None:
    """Make SIGTERM end the process as Ctrl-C does (only the main thread may set a signal handler)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that ``error`` was raised while handling, if any: clean-up code that runs
    during an interrupt (a half-copied config, a closed connection) can fail in turn, and its error then
    hides the interrupt; the user stopped the run, so it ends as an interrupt, not as an input error."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def exit_interrupted(interrupt: KeyboardInterrupt) -> NoReturn:
    """One line and 130 (Ctrl-C) or 143 (SIGTERM); finished trials are kept."""
    terminated = isinstance(interrupt, Terminated)
    print(f"tuneflow: {'terminated' if terminated else 'interrupted'}; finished trials are kept, "
          "the running one is marked failed", file=sys.stderr)
    sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Errors a user can fix end the process with one line and status 2; Ctrl-C and SIGTERM with one
    line and 130 / 143. Finished trials are kept either way."""
    from tuneflow.errors import TuneflowError

    try:
        yield
    except TuneflowError as error:
        interrupted = interrupt_behind(error)
        if interrupted is not None:
            exit_interrupted(interrupted)
        print(f"tuneflow: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt as interrupt:
        exit_interrupted(interrupt)


def _yaml_problem(error: BaseException) -> str | None:
    """A config file that is not YAML (Hydra lets PyYAML's error through): its file, line and problem."""
    import yaml

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, yaml.YAMLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    mark = getattr(cause, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "a config file"
    problem = getattr(cause, "problem", None) or str(cause).splitlines()[0]
    return f"{where} is not valid YAML: {problem}; fix the file"


def one_line_error(error: BaseException) -> str | None:
    """The one line that tells the user what to fix, or None for a bug (the traceback is shown)."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from tuneflow.errors import TuneflowError

    if isinstance(error, TuneflowError):
        return str(error)
    yaml_problem = _yaml_problem(error)
    if yaml_problem is not None:
        return yaml_problem
    if isinstance(error, MissingConfigException):
        missing = error.missing_cfg_file or ""
        group, _, option = str(missing).rpartition("/")
        options = ", ".join(error.options or [])
        if group and options:
            return f"unknown {group} {option!r}: choose one of {options}"
        return str(error).strip().splitlines()[0]
    if isinstance(error, (HydraException, OmegaConfBaseException)):
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        cause = error.__cause__
        if cause is not None and str(cause).strip():
            lines.append(str(cause).strip().splitlines()[0])
        return " ".join(lines[:3]) if lines else type(error).__name__
    return None
