"""Find a study's stores from the command line, the way the sweeper placed them, and read them
without disturbing a study that is still running.

``tuneflow report|repeat|ui STUDY`` accept ``--root-dir`` (default ``mlruns``), ``--storage`` (default
``journal:///<root-dir>/optuna.journal``, or ``sqlite:///<root-dir>/optuna.db`` where only that exists, as
the sweeper's) and ``--tracking-uri`` (default ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<root-dir>/mlflow.db``). Reading takes no lock: a journal is only appended to, and SQLite runs
in WAL mode, so readers and the study's writers never wait for each other.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tuneflow.errors import ConfigError
from tuneflow.storage import creation
from tuneflow.storage.journal import journal_path_of
from tuneflow.storage.study import FINISHED_STATES, SURPLUS_ATTR
from tuneflow.storage.urls import default_storage_url, shown
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
                        help="Optuna storage URL (default: journal:///ROOT_DIR/optuna.journal, as the sweeper's; "
                             "sqlite:///ROOT_DIR/optuna.db where only that exists)")
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
        """The stores the arguments name, checked as the sweeper checks them (a password, a missing
        driver, a server that does not answer: one line, before anything is read or written)."""
        from tuneflow.storage.urls import check_storage, check_tracking, refuse_password, with_installed_driver

        root_dir = Path(args.root_dir)
        storage_url = with_installed_driver(args.storage) if args.storage else default_storage_url(root_dir)
        refuse_password(storage_url, "--storage")
        # An SQLite file is only read here (read_storage says when it is missing); anything else is checked
        # as the sweeper checks it.
        if args.storage and not (storage_url.startswith("sqlite:///") and len(storage_url) > len("sqlite:///")):
            check_storage(storage_url, what="--storage")
        location = cls(
            name=args.study,
            root_dir=root_dir,
            storage_url=storage_url,
            tracking_uri=resolve_tracking_uri(args.tracking_uri, root_dir),
        )
        tracking_from = "--tracking-uri" if args.tracking_uri else "MLFLOW_TRACKING_URI"
        stored = (Path(storage_url[len("sqlite:///"):]) if storage_url.startswith("sqlite:///")
                  else journal_path_of(storage_url))
        if stored is not None and not stored.is_file():
            raise ConfigError(f"no Optuna storage at {storage_url}; run the study first, or give --root-dir/--storage")
        # Reading must not create an empty MLflow store (MLflow makes the database when it opens it).
        if location.tracking_uri.startswith("sqlite:///") and not Path(location.tracking_uri[len("sqlite:///"):]).is_file():
            raise ConfigError(f"no MLflow store at {location.tracking_uri}; give the study's --tracking-uri or --root-dir")
        if args.tracking_uri is not None or not location.tracking_uri.startswith("sqlite:///"):
            check_tracking(location.tracking_uri, tracking_from)
        return location

    @property
    def study_dir(self) -> Path:
        """Where the sweeper writes the study's CSV; reports and repeats go beside it."""
        return self.root_dir / "studies" / self.name


def read_storage(location: StudyLocation) -> optuna.storages.BaseStorage:
    """The study's Optuna storage, for reading: never creates a database or its tables."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = location.storage_url
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            raise ConfigError(f"no Optuna storage at {url}; run the study first, or give --root-dir/--storage")
        creation.check_readable(path, "optuna")
    journal = journal_path_of(url)
    if journal is not None:
        if not journal.is_file():
            raise ConfigError(f"no Optuna storage at {url}; run the study first, or give --root-dir/--storage")
        from tuneflow.storage.journal import check_journal

        check_journal(journal, creation.FIX, repair=False)  # reading writes nothing: the next writer repairs
        from tuneflow.storage.study import open_storage

        return open_storage(url)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), skip_table_creation=True)
    except Exception as error:  # noqa: BLE001 - drivers and SQLite raise many types; all mean "cannot read"
        from tuneflow.storage.urls import first_line

        raise ConfigError(f"cannot read the Optuna storage {shown(url)}: {first_line(error)}") from None


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


def check_output_folder(path: str | Path, what: str) -> None:
    """A folder a subcommand writes into is one, or can be created (checked before anything is written)."""
    from tuneflow.storage.urls import can_create_in

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {folder} is a file, not a folder; give a folder")
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise ConfigError(f"{what} {folder}: {existing} is a file, so the folder cannot be created")
    if not can_create_in(existing):
        raise ConfigError(f"{what} {folder}: {existing} is not writable")


def experiment_of_run(client: Any, run_id: str, location: StudyLocation) -> str:
    """The experiment of the study's parent run; a study tracked in another MLflow store is one line."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_run(run_id).info.experiment_id)
    except MlflowException:
        raise ConfigError(
            f"no MLflow run {run_id} (study {location.name!r}'s parent run) in {shown(location.tracking_uri)}: the "
            "study was tracked in another MLflow store; give its --tracking-uri (or MLFLOW_TRACKING_URI)"
        ) from None


def fail(error: BaseException) -> int:
    """Print a fixable error as one line and return the exit status; re-raise anything else."""
    from tuneflow.console import one_line_error

    message = None if isinstance(error, (KeyboardInterrupt, SystemExit)) else one_line_error(error)
    if message is None:
        raise error
    print(f"tuneflow: error: {message}", file=sys.stderr)
    return EXIT_USAGE
