"""The MLflow side: one parent run per study, one child run per trial, batched writes.

Everything goes through ``MlflowClient`` with explicit run ids, never the fluent "active run" API:
a job may run in a thread or a worker process of a parallel launcher, and must not depend on global
state. Values are buffered and written with ``log_batch`` (one call per value costs ~150 ms per run
on SQLite, a batch ~30 ms).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneflow.storage import sqlite

if TYPE_CHECKING:  # importing mlflow takes ~2 s: only the functions that talk to MLflow pay for it
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

#: Tags every tuneflow run carries (MLflow search: ``tags."tuneflow.study" = 'mlp'``).
STUDY_TAG = "tuneflow.study"
ROLE_TAG = "tuneflow.role"
TRIAL_TAG = "tuneflow.trial_number"
STATE_TAG = "tuneflow.state"
ARCH_TAG = "tuneflow.arch"
PARENT_TAG = "mlflow.parentRunId"

#: Optuna's trial state -> the MLflow run status it ends with.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}

# MLflow refuses a param value longer than this.
_MAX_PARAM_LENGTH = 6000


def resolve_tracking_uri(configured: str | None, root_dir: str | Path) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else SQLite under ``root_dir``."""
    from tuneflow.storage.urls import with_installed_driver

    if configured:
        return with_installed_driver(configured)
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return with_installed_driver(from_env)
    return f"sqlite:///{Path(root_dir).resolve() / 'mlflow.db'}"


def tracking_uri_source(configured: str | None) -> str:
    """Which setting a resolved tracking URI came from, for error messages."""
    return "tracking.uri" if configured else "MLFLOW_TRACKING_URI"


def filter_value(value: object) -> str:
    """``value`` as a string literal of an MLflow search filter: every value tuneflow puts into a
    ``filter_string`` goes through here. MLflow's grammar has no escape inside quotes; a value with a
    single quote is written in double quotes, and one with both cannot be searched for."""
    from tuneflow.errors import ConfigError

    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise ConfigError(f"{text!r} holds both kinds of quote; MLflow cannot search for it")


def default_artifact_location(tracking_uri: str, root_dir: str | Path) -> str | None:
    """Artifacts beside the embedded database; a tracking server decides for itself."""
    if tracking_uri.startswith("sqlite:"):
        return (Path(root_dir).resolve() / "artifacts").as_uri()
    return None


def check_artifact_folder(tracking_uri: str, root_dir: str | Path) -> None:
    """The local artifact folder tuneflow gives its experiments must be a folder it can write (or create):
    otherwise every trial fails on its first artifact and leaves its run behind. One line now instead."""
    from tuneflow.errors import ConfigError

    location = default_artifact_location(tracking_uri, root_dir)
    if location is None:
        return
    folder = Path(root_dir).resolve() / "artifacts"
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write MLflow artifacts to {folder}: {existing} is not a writable folder")


@lru_cache(maxsize=8)
def client_for(tracking_uri: str) -> MlflowClient:
    """One client per URI and process: building one opens the store (engine, schema check), ~90 ms,
    which every trial of a sequential sweep would otherwise pay again.

    An SQLite store is switched to WAL first (``tuneflow.storage.sqlite``): MLflow leaves SQLite in its
    rollback-journal default, ~5x slower per commit on this project's disk. Its connections then get
    ``synchronous=NORMAL`` as the Optuna storage's do (``sqlite.synchronous_normal``): MLflow's own
    ``synchronous=FULL`` waits for the disk at each of a trial's ~6 commits.
    """
    from mlflow import MlflowClient

    db_path = sqlite.db_path_of(tracking_uri)
    if db_path is not None:
        sqlite.enable_wal(db_path)
    client = MlflowClient(tracking_uri=tracking_uri)
    if db_path is not None:
        # MLflow builds its engine itself and takes no connect arguments: its store's engine, if this
        # MLflow exposes it where 3.x does (otherwise MLflow's default, slower and equally correct).
        engine = getattr(getattr(getattr(client, "_tracking_client", None), "store", None), "engine", None)
        if engine is not None:
            sqlite.synchronous_normal(engine)
    return client


def experiment_id_for(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (or restored from deletion) when needed; looked up once
    per process and tracking URI (every trial of a sweep asks)."""
    key = (str(client.tracking_uri), name)
    if key not in _experiment_ids:
        _experiment_ids[key] = _find_or_create_experiment(client, name, artifact_location)
    return _experiment_ids[key]


_experiment_ids: dict[tuple[str, str], str] = {}


def _find_or_create_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # Another worker created it between our lookup and our create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def find_study_run(client: MlflowClient, experiment_id: str, study_name: str) -> str | None:
    """The parent run of ``study_name`` (the earliest, should two workers have raced to create it)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'study' and tags.`{STUDY_TAG}` = {filter_value(study_name)}",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def open_study_run(client: MlflowClient, experiment_id: str, study_name: str, tags: Mapping[str, str]) -> str:
    """Find or create the study's parent run and mark it RUNNING while this worker sweeps."""
    run_id = find_study_run(client, experiment_id, study_name)
    if run_id is None:
        run = client.create_run(
            experiment_id,
            run_name=study_name,
            tags={ROLE_TAG: "study", STUDY_TAG: study_name, **tags},
        )
        return str(run.info.run_id)
    client.update_run(run_id, status="RUNNING")
    return run_id


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_values(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Iterable[tuple[str, float, int]] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """Write metrics ``(key, value, step)``, params and tags in as few requests as MLflow allows."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_rows = [Metric(key, float(value), now, step) for key, value, step in metrics]
    param_rows = [Param(k, str(v)[:_MAX_PARAM_LENGTH]) for k, v in (params or {}).items()]
    tag_rows = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    if metric_rows or param_rows or tag_rows:
        # One call: MLflow splits it into requests within its per-request limits itself.
        client.log_batch(run_id, metrics=metric_rows, params=param_rows, tags=tag_rows)


@dataclass
class MetricBuffer:
    """Per-epoch metrics held back and written as one batch (at the end, or every ``flush_seconds``
    so a long trial still shows progress in the UI)."""

    client: Any
    run_id: str
    flush_seconds: float = 15.0
    _rows: list[tuple[str, float, int]] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    def add(self, step: int, metrics: Mapping[str, float], prefix: str = "") -> None:
        self._rows.extend((f"{prefix}{key}", float(value), step) for key, value in metrics.items())
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(
        self, *, metrics: Iterable[tuple[str, float, int]] = (), tags: Mapping[str, Any] | None = None
    ) -> None:
        """Write the buffered rows, plus ``metrics`` and ``tags`` in the same request."""
        rows = [*self._rows, *metrics]
        if rows or tags:
            log_values(self.client, self.run_id, metrics=rows, tags=tags)
        self._rows = []
        self._last_flush = time.monotonic()


def infer_flavor(model: Any) -> str:
    """The MLflow flavor that saves ``model``, from its type; ``pyfunc`` for anything with ``predict``."""
    kinds = {
        "torch.nn.modules.module.Module": "pytorch",
        "lightgbm.basic.Booster": "lightgbm",
        "lightgbm.sklearn.LGBMModel": "lightgbm",
        "xgboost.core.Booster": "xgboost",
        "xgboost.sklearn.XGBModel": "xgboost",
        "sklearn.base.BaseEstimator": "sklearn",
    }
    for cls in type(model).__mro__:
        flavor = kinds.get(f"{cls.__module__}.{cls.__qualname__}")
        if flavor is not None:
            return flavor
    if callable(getattr(model, "predict", None)):
        return "pyfunc"
    raise ValueError(
        f"cannot tell which MLflow flavor saves a {type(model).__name__}: name one "
        "(tuneflow.log_model(model, 'sklearn')), or give the object a predict method"
    )


#: The distribution each flavor's model needs at load time (explicit: inferring costs 5-10 s per model).
_FLAVOR_PACKAGES = {"pytorch": "torch", "lightgbm": "lightgbm", "xgboost": "xgboost", "sklearn": "scikit-learn",
                    "pyfunc": "cloudpickle"}


def save_model(model: Any, flavor: str | None, directory: Path, input_example: Any | None = None,
               **kwargs: Any) -> None:
    """Save a trained model with its MLflow flavor (``mlflow.<flavor>.save_model``), loadable by
    ``mlflow.pyfunc.load_model``; ``flavor`` None = from the model's type (``infer_flavor``). An object
    no flavor knows is saved as a pyfunc model that calls its ``predict``.

    Pip requirements are given explicitly unless ``kwargs`` names them: inferring them costs 5-10 s
    per model.
    """
    flavor = flavor or infer_flavor(model)
    pinned_here = "pip_requirements" not in kwargs and "extra_pip_requirements" not in kwargs
    if pinned_here:
        kwargs["pip_requirements"] = [
            f"{package}=={installed}" for package in (_FLAVOR_PACKAGES.get(flavor, flavor), "tuneflow")
            if (installed := installed_version(package)) is not None
        ]
    with _requirements_check_skipped(pinned_here):
        _save_with_flavor(model, flavor, directory, kwargs)


def _save_with_flavor(model: Any, flavor: str, directory: Path, kwargs: dict[str, Any]) -> None:
    import importlib

    if flavor == "pytorch":
        import logging

        # mlflow warns on every pickle save; tuneflow pickles on purpose (see below).
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        # Pickle, not the pt2 export: ~0.05 s instead of ~3 s, and still loads as pyfunc.
        kwargs.setdefault("serialization_format", "pickle")
    if flavor == "pyfunc":
        import logging

        import mlflow.pyfunc

        # Its warning about cloudpickled objects is the point of this flavor here: it saves any object.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)

        import warnings

        with warnings.catch_warnings():
            # MLflow asks for type hints on predict; a generic wrapper has none to give.
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(str(directory), python_model=_PredictModel(model), **kwargs)
        return
    try:
        module = importlib.import_module(f"mlflow.{flavor}")
    except ImportError:
        raise ValueError(f"model flavor is {flavor!r}, but MLflow has no flavor mlflow.{flavor}") from None
    module.save_model(model, str(directory), **kwargs)


_skip_check = threading.local()


@contextlib.contextmanager
def _requirements_check_skipped(skip: bool) -> Iterator[None]:
    """MLflow checks every saved model's requirements against the installed packages (to warn of a
    mismatch): ~3 ms per save, and ~0.8 s for its map of every installed distribution's modules on the
    first. Requirements tuneflow pinned itself are the installed versions, so the check cannot warn:
    it is skipped for those saves only (a thread-local flag; a user's own saves are still checked)."""
    if not skip:
        yield
        return
    _install_check_switch()
    _skip_check.active = True
    try:
        yield
    finally:
        _skip_check.active = False


@cache
def _install_check_switch() -> None:
    """Wrap MLflow's check (``mlflow.utils.environment`` calls it by this name) once per process; an
    MLflow without it is left as it is."""
    import mlflow.utils.environment as environment

    check = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if check is None:
        return

    @wraps(check)
    def switchable(*args: Any, **kwargs: Any) -> Any:
        if getattr(_skip_check, "active", False):
            return None
        return check(*args, **kwargs)

    setattr(environment, "warn_dependency_requirement_mismatches", switchable)  # noqa: B010 - not re-exported


@cache
def installed_version(package: str) -> str | None:
    """The installed version of a distribution (None: not installed), looked up once per process: each
    lookup reads and parses the distribution's metadata file (~0.5 ms), and every trial saving a model
    asked twice."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _predict_model_class() -> type:
    import mlflow.pyfunc

    class PredictModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        """Any object with ``predict(x)`` as an MLflow pyfunc model."""

        # No input schema to validate: the wrapped object's predict takes whatever it takes.
        _skip_type_hint_validation = True

        def __init__(self, model: Any) -> None:
            self.model = model

        # Unannotated on purpose: MLflow would read type hints as an input schema to enforce.
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return self.model.predict(model_input)

    return PredictModel


def _PredictModel(model: Any) -> Any:  # noqa: N802 - reads as the class it builds
    return _predict_model_class()(model)


def artifact_store(client: MlflowClient, artifact_uri: str) -> ArtifactRepository:
    """A run's artifact store, from the artifact URI ``create_run`` returned. (``MlflowClient.log_text``
    and ``log_artifacts`` look the run up again to find it: one database read per trial.)"""
    from mlflow.store.artifact.artifact_repository_registry import (
        get_artifact_repository,
    )

    return get_artifact_repository(artifact_uri, tracking_uri=client.tracking_uri)


def log_text(store: ArtifactRepository, text: str, artifact_file: str) -> None:
    """Write ``text`` as the run's artifact ``artifact_file`` (a file name, as in ``config.yaml``)."""
    local = _local_artifact_folder(store, artifact_file)
    if local is not None:
        # Straight into a local run's folder: a temporary file copied there and deleted costs more than
        # writing it (log_model).
        local.write_text(text, encoding="utf-8")
        return
    with tempfile.TemporaryDirectory(prefix="tuneflow-text-") as tmp:
        path = Path(tmp) / artifact_file
        path.write_text(text, encoding="utf-8")
        store.log_artifact(str(path))  # type: ignore[no-untyped-call]


def log_model(store: ArtifactRepository, model: Any, flavor: str | None, *, name: str = "model",
              input_example: Any = None, **kwargs: Any) -> None:
    """Save the model as the run's artifact ``name``: straight into the run's artifact folder when it is
    local, else into a temporary folder uploaded from there."""
    local = _local_artifact_folder(store, name)
    if local is not None:
        # A local store would copy the saved files and the temporary folder be deleted: on this project's
        # disk the copy and the deletion cost ~5 ms per trial, more than writing the files.
        try:
            save_model(model, flavor, local, input_example, **kwargs)
        except BaseException:
            shutil.rmtree(local, ignore_errors=True)  # no half-written model left in the run
            raise
        return
    with tempfile.TemporaryDirectory(prefix="tuneflow-model-") as tmp:
        target = Path(tmp) / name
        save_model(model, flavor, target, input_example, **kwargs)
        store.log_artifacts(str(target), artifact_path=name)  # type: ignore[no-untyped-call]


def _local_artifact_folder(store: ArtifactRepository, name: str) -> Path | None:
    """Where artifact ``name`` (a model's folder, a file) goes in a local (file) artifact store, when it
    does not exist yet (MLflow saves a model only into a new or empty folder); None for a remote store or
    an existing artifact."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    if not isinstance(store, LocalArtifactRepository):
        return None
    folder = Path(store.artifact_dir) / name
    if folder.exists() or Path(name).is_absolute() or ".." in Path(name).parts:
        return None  # MLflow's own upload decides (and refuses a path outside the run's folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def terminate(client: MlflowClient, run_id: str, state: str) -> None:
    """End a run with the MLflow status matching Optuna's ``state`` (COMPLETE/PRUNED/FAIL)."""
    client.set_terminated(run_id, status=RUN_STATUS[state])
