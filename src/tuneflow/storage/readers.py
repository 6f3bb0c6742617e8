"""Find a study's stores from the command line, the way the sweeper placed them, and read them
without disturbing a study that is still running.

``tuneflow report|repeat|ui STUDY`` accept ``--root-dir`` (default ``mlruns``), ``--storage`` (default
``sqlite:///<root-dir>/optuna.db``, as the sweeper's) and ``--tracking-uri`` (default
``$MLFLOW_TRACKING_URI``, else ``sqlite:///<root-dir>/mlflow.db``). Reading takes no lock: SQLite runs in
WAL mode, so readers and the study's writers never wait for each other.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tuneflow.errors import ConfigError
from tuneflow.storage import creation
from tuneflow.storage.study import FINISHED_STATES, SURPLUS_ATTR, default_storage_url
from tuneflow.storage.urls import shown
from tuneflow.tracking.runs import resolve_tracking_uri

if TYPE_CHECKING:
    import optuna

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse whose errors are tuneflow's one line (``tuneflow: error: ...``, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"tuneflow: error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="the study's name (hydra.sweeper.study_name; default: the arch's name)")
    parser.add_argument("--root-dir", default="mlruns", help="the study's root_dir (default: mlruns)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///ROOT_DIR/optuna.db, as the sweeper's)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///ROOT_DIR/mlflow.db)")


@dataclass(frozen=True)
class StudyLocation:
    name: str
    root_dir: Path
    storage_url: str
    tracking_uri: str

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> StudyLocation:
        root_dir = Path(args.root_dir)
        return cls(
            name=args.study,
            root_dir=root_dir,
            storage_url=args.storage or default_storage_url(root_dir),
            tracking_uri=resolve_tracking_uri(args.tracking_uri, root_dir),
        )

    @property
    def study_dir(self) -> Path:
        """Where the sweeper writes the study's CSV; reports and repeats go beside it."""
        return self.root_dir / "studies" / self.name


def read_storage(location: StudyLocation) -> optuna.storages.RDBStorage:
    """The study's Optuna storage, for reading: never creates a database or its tables."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = location.storage_url
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise ConfigError(f"no Optuna storage at {url}; run the study first, or give --root-dir/--storage")
        creation.check_readable(path, "optuna")
    return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), skip_table_creation=True)


def load_study(location: StudyLocation) -> optuna.Study:
    """The study as stored; a one-line error names the studies there when the name is wrong."""
    import optuna

    from tuneflow.storage.creation import store_failure

    try:
        storage = read_storage(location)
        names = optuna.get_all_study_names(storage)
    except Exception as error:
        failure = None if isinstance(error, ConfigError) else store_failure(error)
        if failure is None:
            raise
        raise ConfigError(f"cannot read {shown(location.storage_url)}: {failure}") from None
    if location.name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"no study {location.name!r} in {shown(location.storage_url)}; studies there: {known}")
    return optuna.load_study(study_name=location.name, storage=storage)


def _engine_kwargs(url: str) -> dict[str, Any]:
    return {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}


def finished_snapshot(study: optuna.Study) -> optuna.Study:
    """The study copied into memory as it stands: what a report of a running study shows, consistent
    across every table and plot, with no further reads of the live storage.

    Every trial keeps its number (the one the console, the CSV, MLflow and ``repeat`` show): Optuna
    numbers added trials anew, so each trial that is not complete or pruned (failed, surplus, still
    running or waiting) is added in its place as a FAIL trial, which Optuna's plots and importances leave
    out as they leave out failures.
    """
    import optuna
    from optuna.trial import TrialState

    snapshot = optuna.create_study(study_name=study.study_name, directions=study.directions)
    for key, value in study.user_attrs.items():
        snapshot.set_user_attr(key, value)
    copies = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in FINISHED_STATES and not trial.user_attrs.get(SURPLUS_ATTR):
            copies.append(trial)
        else:
            copies.append(optuna.trial.create_trial(
                state=TrialState.FAIL, params=trial.params, distributions=trial.distributions,
                user_attrs=dict(trial.user_attrs),
            ))
    snapshot.add_trials(copies)
    return snapshot


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best completed trials, best first."""
    from optuna.trial import TrialState

    completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(completed, key=lambda t: (t.value, -t.number), reverse=maximize)[:k]


def mlflow_client(location: StudyLocation) -> Any:
    from tuneflow.storage.sqlite import db_path_of
    from tuneflow.tracking import runs as tracking

    db_path = db_path_of(location.tracking_uri)
    if db_path is not None and db_path.exists():
        creation.check_readable(db_path, "mlflow")
    return tracking.client_for(location.tracking_uri)


def parent_run_id(study: optuna.Study) -> str | None:
    from tuneflow.storage.study import PARENT_RUN_ATTR

    value = study.user_attrs.get(PARENT_RUN_ATTR)
    return str(value) if value else None


def fail(error: BaseException) -> int:
    """Print a fixable error as one line and return the exit status; re-raise anything else."""
    from tuneflow.console import one_line_error

    message = None if isinstance(error, (KeyboardInterrupt, SystemExit)) else one_line_error(error)
    if message is None:
        raise error
    print(f"tuneflow: error: {message}", file=sys.stderr)
    return EXIT_USAGE
