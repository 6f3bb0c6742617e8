"""The Optuna side of a study: storage, creation or resumption, and counting what is done.

The study is created up front, with its pruner, on a storage every process can reach; a job opens the
same study and becomes its trial (``trial_handle``). That is what lets pruning work inside a Hydra
multirun, with parallel launchers and with several independent worker processes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuneflow.errors import ConfigError
from tuneflow.storage import sqlite
from tuneflow.storage.urls import (
    default_storage_url as default_storage_url,  # re-exported
)
from tuneflow.storage.urls import storage_url

#: Trials that count towards ``n_trials``: a failed trial is retried, so it does not.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
#: Trials another worker is running now: they will finish, so they also count.
ACTIVE_STATES = (TrialState.RUNNING, TrialState.WAITING)

#: Study user attribute: the MLflow parent run of the study.
PARENT_RUN_ATTR = "mlflow_parent_run_id"
#: Trial user attribute: the trial's MLflow run.
RUN_ID_ATTR = "mlflow_run_id"
#: Trial user attribute set on a trial asked after the study already had n_trials (a lost race).
SURPLUS_ATTR = "tuneflow_surplus"
#: Study user attribute: the day the study began; automatic date ranges are drawn as of that day.
AS_OF_ATTR = "as_of"
#: Trial user attribute: the error that failed the trial.
ERROR_ATTR = "error"
#: Trial user attribute: the job's fixed overrides (``+arch=mlp``, ``params.epochs=3``, ...); with the
#: trial's params they recompose its config (``tuneflow repeat``, the exported best config).
OVERRIDES_ATTR = "tuneflow_overrides"


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    on_stale_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite or a server database) with heartbeats when asked for.

    ``grpc://HOST:PORT`` is Optuna's gRPC storage proxy (``tuneflow.storage.grpc``: no heartbeats);
    ``journal:///PATH`` Optuna's journal file, with file heartbeats (``tuneflow.storage.journal``).
    SQLite gets WAL mode, ``synchronous=NORMAL`` (see ``tuneflow.storage.sqlite`` for what that trades) and a
    generous lock timeout: several workers on one machine then wait for each other instead of failing
    with "database is locked".
    """
    from tuneflow.storage import grpc, journal

    if grpc.is_grpc(url):
        return grpc.open_proxy(url)  # type: ignore[no-any-return]
    journal_path = journal.journal_path_of(url)
    if journal_path is not None:
        return journal.HeartbeatJournalStorage(  # type: ignore[return-value]
            journal_path,
            heartbeat_interval=heartbeat_interval,
            heartbeat_stale_trial_callback=on_stale_trial,
        )
    engine_kwargs: dict[str, Any] = {}
    db_path = sqlite.db_path_of(url)
    if db_path is not None:
        sqlite.enable_wal(db_path)
        engine_kwargs = {
            "connect_args": {"timeout": sqlite.LOCK_TIMEOUT_S, "factory": sqlite.SynchronousNormalConnection}
        }
    else:
        engine_kwargs = {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=heartbeat_interval,
        grace_period=None if heartbeat_interval is None else 2 * heartbeat_interval,
        heartbeat_stale_trial_callback=on_stale_trial,
    )


def count_trials(study: optuna.Study) -> dict[str, int]:
    """How many trials are finished, running, waiting and failed (surplus trials excluded)."""
    return count_states(study.get_trials(deepcopy=False))


def count_states(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """``count_trials`` of trials already read.

    ``running`` trials belong to a worker that will finish them; ``waiting`` ones (retries of trials
    whose worker died, enqueued finalists) belong to whichever worker asks next, this one included.
    A trial whose worker died is retried with the same params: the retry counts, the dead trial is
    not a failure (a study whose workers were all killed at once must not hit its failure cap).
    """
    with warnings.catch_warnings():  # retry_history is marked experimental; it has been stable since 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {number for trial in trials for number in _retry_of(trial)}
    counts = {"finished": 0, "running": 0, "waiting": 0, "failed": 0}
    for trial in trials:
        if trial.user_attrs.get(SURPLUS_ATTR):
            continue
        if trial.state in FINISHED_STATES:
            counts["finished"] += 1
        elif trial.state == TrialState.RUNNING:
            counts["running"] += 1
        elif trial.state == TrialState.WAITING:
            counts["waiting"] += 1
        elif trial.state == TrialState.FAIL and trial.number not in retried:
            counts["failed"] += 1
    return counts


def _retry_of(trial: FrozenTrial) -> list[int]:
    return optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(trial)


def is_surplus(study: optuna.Study, trial_number: int, n_trials: int) -> bool:
    """Whether trial ``trial_number`` was asked after the study already had ``n_trials`` under way.

    Workers check the count before they ask, but two may ask at once; the storage numbers trials
    atomically, so counting the trials numbered before this one settles who was first.
    """
    if trial_number < n_trials:
        return False  # fewer than n_trials trials exist before it: no need to read them
    earlier = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < trial_number
        and not t.user_attrs.get(SURPLUS_ATTR)
        and t.state in FINISHED_STATES + ACTIVE_STATES
    ]
    return len(earlier) >= n_trials


def trial_handle(
    study: optuna.Study, storage: optuna.storages.BaseStorage, trial_number: int
) -> tuple[optuna.trial.Trial, int]:
    """The live ``Trial`` of a study by number (and its storage id), for a job that reports and asks
    whether to prune. ``storage`` is the one ``study`` was loaded from; only public methods are used.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
    return optuna.trial.Trial(study, trial_id), trial_id


def best_trial_or_none(study: optuna.Study) -> FrozenTrial | None:
    """The best trial of a single-objective study; None before one completes, and for a
    multi-objective study (it has a Pareto set instead: ``study.best_trials``)."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:
        return None


def best_of(trials: Sequence[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    """The best complete trial of trials already read (the earliest of equal ones), like ``best_trial``."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if direction == StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type,return-value]


@dataclass(frozen=True)
class StudySettings:
    """Everything the sweeper and its jobs must agree on, resolved once from the sweeper's config."""

    name: str
    storage_url: str
    #: The direction of the (first) objective.
    direction: str
    #: The metric the study optimises, by name (None: the task's single value, logged as ``objective``).
    objective: str | None
    n_trials: int
    root_dir: str
    heartbeat_interval: int | None
    #: The pruner's config (``_target_`` + arguments); jobs build the same pruner from it.
    pruner: dict[str, Any] = field(default_factory=dict)
    #: MLflow: where trials are tracked (resolved) and in which experiment.
    tracking_uri: str = ""
    experiment: str = ""
    #: The config node bare search-space names live under (None: every name is a config path).
    params_node: str | None = None
    #: Config nodes logged as each trial's MLflow params, beside the sampled values.
    log_params: tuple[str, ...] = ()
    #: Run each task with the trial's MLflow run active and ``mlflow.autolog()`` on.
    autolog: bool = False
    #: Every objective's direction: one for a single-objective study, several for a multi-objective one.
    directions: tuple[str, ...] = ()
    #: A multi-objective study's objectives by name, in the order of ``directions`` (their MLflow metrics
    #: and CSV columns); empty for a single-objective study, whose name is ``objective``.
    objectives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.directions:  # built with one direction only
            object.__setattr__(self, "directions", (self.direction,))

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def param_name(self, path: str) -> str:
        """A config path as the search space names it (``params.lr`` -> ``lr`` under node ``params``)."""
        prefix = f"{self.params_node}."
        return path[len(prefix):] if self.params_node and path.startswith(prefix) else path


#: A worker that has not beaten for twice this long is taken for dead; a day is already far past useful.
MAX_HEARTBEAT_S = 86_400
#: A study's name names its folder (``ROOT_DIR/studies/NAME``) and lock files: one file-name component.
MAX_STUDY_NAME = 100


def check_study_name(name: str, what: str = "hydra.sweeper.study_name") -> None:
    """The one check of a study name: it becomes a folder and file names under ``root_dir`` and a value
    in MLflow searches, so it is plain file-name components (nothing written outside ``root_dir``).
    ``/`` separates components: a strategy's stage studies are ``<study>/<stage>[/zone-<k>]``, folders
    inside their strategy's folder; no component may be ``.`` or ``..``."""
    rule = ("but a study name is a folder name (or folders joined by /): no \\, quotes, control characters, "
            f"no . or .. or empty part, at most {MAX_STUDY_NAME} characters a part")
    parts = name.split("/")
    if any(not part.strip() or part in (".", "..") or len(part) > MAX_STUDY_NAME for part in parts):
        shown = name if len(name) <= 40 else f"{name[:20]}...{name[-10:]} ({len(name)} characters)"
        raise ConfigError(f"{what} is {shown!r}, {rule}")
    if any(c in name for c in "\\'\"`") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"{what} is {name!r}, {rule}")


def study_settings(sweeper: Mapping[str, Any], job_name: str = "tuneflow") -> StudySettings:
    """Resolve the sweeper's nullable fields; the study is named after the app's job when unnamed."""
    from tuneflow.tracking.runs import resolve_tracking_uri

    directions = study_directions(sweeper.get("directions") or sweeper.get("direction"))
    objectives = objective_names(sweeper.get("objective"), directions)
    pruner = dict(sweeper.get("pruner") or {"_target_": "optuna.pruners.NopPruner"})
    if len(directions) > 1 and not str(pruner.get("_target_", "")).endswith(".NopPruner"):
        # Optuna's pruners compare one intermediate value per step; a multi-objective trial has several.
        raise ConfigError(
            f"hydra.sweeper.pruner: Optuna cannot prune a study with {len(directions)} objectives; "
            "add hydra/sweeper/pruner=none"
        )
    n_trials = int(sweeper.get("n_trials", 20))
    if n_trials < 1:
        raise ConfigError(f"hydra.sweeper.n_trials is {n_trials}, but must be at least 1")
    root_dir = str(sweeper.get("root_dir") or "mlruns")
    heartbeat = sweeper.get("heartbeat_interval")
    if heartbeat is not None and not 0 <= int(heartbeat) <= MAX_HEARTBEAT_S:
        raise ConfigError(
            f"hydra.sweeper.heartbeat_interval is {heartbeat}, but must be a number of seconds from 1 to "
            f"{MAX_HEARTBEAT_S} (null or 0 = off)"
        )
    name = str(sweeper.get("study_name") or job_name)
    check_study_name(name)
    url = storage_url(sweeper.get("storage"), root_dir)
    if url.startswith("grpc://"):
        heartbeat = None  # Optuna's gRPC proxy has no heartbeats (tuneflow.storage.grpc says what follows)
    return StudySettings(
        name=name,
        storage_url=url,
        direction=directions[0],
        objective=None if len(directions) > 1 or sweeper.get("objective") is None else str(sweeper["objective"]),
        n_trials=n_trials,
        root_dir=root_dir,
        heartbeat_interval=None if heartbeat in (None, 0) else int(heartbeat),
        pruner=pruner,
        tracking_uri=resolve_tracking_uri(sweeper.get("tracking_uri"), root_dir),
        experiment=str(sweeper.get("experiment") or name),
        params_node=sweeper.get("params_node") or None,
        log_params=tuple(str(node) for node in sweeper.get("log_params") or ()),
        autolog=bool(sweeper.get("mlflow_autolog", False)),
        directions=directions,
        objectives=objectives if len(directions) > 1 else (),
    )


def study_directions(value: Any) -> tuple[str, ...]:
    """``hydra.sweeper.direction`` (or ``directions``): one direction or a list of them, as Hydra's
    Optuna sweeper takes it; null = minimize."""
    given = list(value) if isinstance(value, (list, tuple)) else [value]
    directions = tuple(str("minimize" if d is None else d).lower() for d in given)
    if not directions or any(d not in ("minimize", "maximize") for d in directions):
        raise ConfigError(
            f"hydra.sweeper.direction is {value!r}, but must be minimize, maximize or a list of them "
            "(one per objective)"
        )
    return directions


def objective_names(value: Any, directions: Sequence[str]) -> tuple[str, ...]:
    """The objectives' names: ``hydra.sweeper.objective`` as a list (one per direction), else
    ``objective_0``, ``objective_1``, ... for a task that returns a sequence of values."""
    if value is None or isinstance(value, str):
        if len(directions) > 1 and isinstance(value, str):
            raise ConfigError(
                f"hydra.sweeper.objective is {value!r}, but the study has {len(directions)} directions; "
                f"name one objective per direction: hydra.sweeper.objective=[{value},...]"
            )
        return tuple(f"objective_{i}" for i in range(len(directions)))
    names = tuple(str(name) for name in value)
    if len(names) != len(directions):
        raise ConfigError(
            f"hydra.sweeper.objective names {len(names)} objectives ({', '.join(names)}) but "
            f"hydra.sweeper.direction has {len(directions)}; give one direction per objective"
        )
    return names


def build_pruner(pruner_cfg: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The configured pruner (a nested ``_target_``, e.g. PatientPruner's ``wrapped_pruner``, is built too)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        pruner = instantiate(dict(pruner_cfg))
    except InstantiationException as error:
        cause = error.__cause__ or error
        name = str(pruner_cfg.get("_target_", "")).rsplit(".", 1)[-1]
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(f"hydra.sweeper.pruner: cannot build {name}: {first}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError(f"hydra.sweeper.pruner builds {type(pruner).__name__}, not an Optuna pruner")
    return pruner


@lru_cache(maxsize=8)
def job_storage(url: str) -> optuna.storages.RDBStorage:
    """One storage (connection pool) per URL and process, shared by the jobs that process runs."""
    return open_storage(url)


#: The storage each sweeper of this process reads its study through, by storage URL (``share_with_jobs``).
_sweeper_storages: dict[str, Any] = {}


def share_with_jobs(url: str, study: optuna.Study) -> None:
    """Let the jobs this process runs (tuneflow's launcher, Hydra's basic one) read the study through the
    sweeper's storage, and so through Optuna's cache of its trials, which the sweeper has filled already.
    Otherwise a worker's first job reads every trial a second time when its pruner first looks (~10 s of CPU
    at 10,000 trials on SQLite: benchmarks/scale.py) and the process holds every trial twice.

    ``study._storage`` is the one private attribute read here: Optuna's cache lives in the storage object
    ``optuna.create_study`` wraps around the one it is given, and a study exposes no other handle on it.
    """
    _sweeper_storages[url] = study._storage


def load_study_for_job(settings: StudySettings) -> tuple[optuna.Study, Any]:
    """The study as a job sees it: same storage and pruner; it never samples, so a cheap sampler.

    Loaded once per process and study: the jobs of a sweep share it, so the pruner reads the trials
    other jobs finished from Optuna's cache (only new and running trials come from the database)
    instead of reading the whole study again in every job. In the sweeper's own process the cache is the
    sweeper's (``share_with_jobs``).
    """
    storage = _sweeper_storages.get(settings.storage_url) or job_storage(settings.storage_url)
    key = (settings.storage_url, settings.name, repr(sorted(settings.pruner.items())))
    study_id = storage.get_study_id_from_name(settings.name)
    cached = _job_studies.get(key)
    if cached is None or cached[1] != study_id or cached[2] is not storage:
        # New, deleted and created again, or the sweeper's storage came after this study was loaded.
        study = optuna.load_study(
            study_name=settings.name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            pruner=build_pruner(settings.pruner),
        )
        cached = _job_studies[key] = (study, study_id, storage)
    return cached[0], storage


#: The job's study by (storage URL, study name, pruner): (study, its id, the storage it was loaded from).
_job_studies: dict[tuple[str, str, str], tuple[optuna.Study, int, Any]] = {}


def forget_job_studies() -> None:
    """A new sweep in this process loads its study afresh (SQLite may give a study deleted and created
    again its old id, which the check above cannot tell from the same study)."""
    _job_studies.clear()
    _sweeper_storages.clear()


class Heartbeat:
    """Records the trial's heartbeat on the storage while the job runs, so that a killed worker's
    trial is noticed (``optuna.storages.fail_stale_trials``) and retried by another worker.

    One beater per trial and process: the sweeper beats for its batch, and a job it runs in its own
    process (tuneflow's and Hydra's basic launcher) then adds no second thread, since both die together;
    a job in another process (joblib, SLURM, Ray) beats for itself. ``beat_now=False`` waits one interval
    before the first beat, for a trial whose heartbeat was just recorded (at ask, under the study's
    lock). Each beat is one storage commit, so a short trial keeps to the one heartbeat written at ask.
    """

    #: Trial ids some Heartbeat of this process beats for now.
    _beating: set[int] = set()
    _beating_lock = threading.Lock()

    def __init__(self, storage: Any, trial_id: int, interval: int | None, *, beat_now: bool = True) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trial_id = trial_id
        self._beat_now = beat_now
        if interval:
            self._thread = threading.Thread(
                target=self._beat, args=(storage, trial_id, interval), daemon=True, name="tuneflow-heartbeat"
            )

    def _beat(self, storage: Any, trial_id: int, interval: int) -> None:
        if not self._beat_now and self._stop.wait(interval):
            return
        while True:
            storage.record_heartbeat(trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        if self._thread is not None:
            with Heartbeat._beating_lock:
                if self._trial_id in Heartbeat._beating:
                    self._thread = None  # this process beats for the trial already
                else:
                    Heartbeat._beating.add(self._trial_id)
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with Heartbeat._beating_lock:
                Heartbeat._beating.discard(self._trial_id)
