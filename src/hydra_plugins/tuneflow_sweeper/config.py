"""Structured configs of the tuneflow sweeper, registered in Hydra's ConfigStore: the sweeper, its
storages, zoom and launcher here; the samplers and pruners (``tuneflow.search.configs``) from the core,
so that the core never imports this plugin.
"""

# No `from __future__ import annotations`: OmegaConf reads these annotations at runtime, and Hydra
# loads this module in a way that breaks dataclasses with string annotations.
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from tuneflow.search.configs import (  # the samplers and pruners live in tuneflow's core
    DEFAULT_FAILURE_AWARE,
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    PRUNERS,
    SAMPLERS,
    WRAPPED_PRUNERS,
    MOTPESamplerConfig,
)

# --- storages (hydra/sweeper/storage) -------------------------------------------------------


@dataclass
class SqliteStorageConfig:
    """One SQLite file under root_dir (<root_dir>/optuna.db), no server; workers share this machine."""

    kind: str = "sqlite"
    # A SQLAlchemy URL used instead of everything above it; null = sqlite:///<root_dir>/optuna.db.
    url: Optional[str] = None


@dataclass
class JournalStorageConfig:
    """The embedded default: Optuna's journal file under root_dir (<root_dir>/optuna.journal), with file
    heartbeats: an eighth of SQLite's storage cost per trial; workers share this machine (or a shared
    file system). A root_dir that holds only an optuna.db (an earlier tuneflow's default) keeps using it."""

    kind: str = "journal"
    # A URL used instead: journal:///PATH (or any storage URL); null = journal:///<root_dir>/optuna.journal.
    url: Optional[str] = None


@dataclass
class PostgresStorageConfig:
    """PostgreSQL: workers on any number of machines share the study. There is no password field:
    libpq reads $PGPASSWORD or ~/.pgpass, so no config, log or MLflow run ever holds it."""

    kind: str = "postgres"
    # Server host ($PGHOST if set).
    host: str = "${oc.env:PGHOST,127.0.0.1}"
    # Server port ($PGPORT if set).
    port: str = "${oc.env:PGPORT,5432}"
    # Database role ($PGUSER if set).
    user: str = "${oc.env:PGUSER,tuneflow}"
    # Database that holds Optuna's tables ($PGDATABASE if set); MLflow's server needs a database of its own.
    database: str = "${oc.env:PGDATABASE,optuna}"
    # SQLAlchemy dialect+driver.
    driver: str = "postgresql+psycopg2"
    # A full SQLAlchemy URL (without password) used instead of the fields above.
    url: Optional[str] = None


# --- zooming in on an earlier study (tuneflow.search.zoom) ------------------------------------------


@dataclass
class ZoomConfig:
    """Start from the promising region of an earlier study on the same storage."""

    # Name of the earlier study (e.g. a mode=fast screen); null = no zoom.
    study: Optional[str] = None
    # Its best completed trials to re-run first and to draw the smaller space around.
    top_k: int = 5
    # Widen each numeric range by this share of the finalists' span on each side (log scale for log params).
    margin: float = 0.5


# --- asynchronous workers (tuneflow.sweeper.workers) ---------------------------------------------


@dataclass
class RayWorkersConfig:
    """Ray: a local Ray bound to 127.0.0.1 (address null) or a running cluster (ray://HOST:10001, auto)."""

    address: Optional[str] = None
    # Each worker's Ray task resources (a GPU per worker: num_gpus=1).
    num_cpus: float = 1
    num_gpus: float = 0


@dataclass
class WorkersConfig:
    """N workers, each running tuneflow's ask-train-tell loop one trial at a time on the shared storage,
    submitted once (no batches, no slot waits): engine=local (submitit's local executor), slurm (submitit,
    one sbatch array) or ray. null = the Hydra launcher runs the trials batch by batch."""

    engine: Optional[str] = None
    n: int = 2
    # Folder of submitit's job files and logs; null = <sweep dir>/.workers.
    folder: Optional[str] = None
    # submitit's parameters per engine (timeout_min, and for slurm slurm_partition, gpus_per_node,
    # cpus_per_task, mem_gb, slurm_additional_parameters, ...), as submitit's AutoExecutor names them.
    local: Dict[str, Any] = field(default_factory=dict)
    slurm: Dict[str, Any] = field(default_factory=dict)
    ray: RayWorkersConfig = field(default_factory=RayWorkersConfig)


# --- the sweeper ----------------------------------------------------------------------------


@dataclass
class TuneflowSweeperConf:
    _target_: str = "hydra_plugins.tuneflow_sweeper.tuneflow_sweeper.TuneflowSweeper"
    # Hand sampler and pruner to the sweeper as configs: it builds them once the search space is known.
    _recursive_: bool = False
    # _self_ first, so the chosen sampler and pruner configs fill the fields below.
    defaults: List[Any] = field(
        default_factory=lambda: ["_self_", {"sampler": DEFAULT_SAMPLER}, {"pruner": DEFAULT_PRUNER}, {"storage": "journal"}]
    )

    # Optuna sampler (hydra/sweeper/sampler=tpe|random|grid|gp|cmaes|nsgaii|nsgaiii|qmc|bruteforce).
    sampler: Any = None
    # Optuna pruner (hydra/sweeper/pruner=median|percentile|hyperband|successive_halving|asha|threshold|
    # patient|wilcoxon|none).
    pruner: Any = None
    # minimize | maximize (null = minimize; tuneflow's app: its architecture's arch.direction), or a list
    # of them, one per objective, for a multi-objective study ([maximize, minimize]) as with Hydra's
    # Optuna sweeper.
    direction: Any = None
    # The same list under Optuna's name (create_study(directions=...)); null = direction.
    directions: Optional[List[str]] = None
    # Name of the study; running the same command again resumes it. null = the app's job name
    # (tuneflow's app: the architecture's name).
    study_name: Optional[str] = None
    # The metric the study optimises, when the task reports or returns several (tuneflow.report, a
    # dict); null = the task's single value (logged in MLflow as `objective`). With several directions:
    # a list naming each objective ([val_accuracy, train_seconds]), read from the task's dict; null =
    # the task returns a sequence of values, logged as objective_0, objective_1, ...
    objective: Any = None
    # Optuna storage (hydra/sweeper/storage=journal|sqlite|postgres, or hydra.sweeper.storage.url=URL);
    # default: the journal file <root_dir>/optuna.journal.
    storage: Any = None
    # Finished (complete or pruned) trials the study should hold in total, across runs and workers.
    n_trials: int = 20
    # Trials launched together per batch (use with a parallel launcher such as joblib).
    n_jobs: int = 1
    # Stop with an error once more than this share of n_trials has failed.
    max_failure_rate: float = 0.25
    # Show the sampler failed trials as infeasible, so it learns where training fails (tuneflow.search.failure_aware); not the grid.
    failure_aware: bool = DEFAULT_FAILURE_AWARE
    # Seconds between trial heartbeats on the storage (a killed worker's trial is failed and retried).
    heartbeat_interval: Optional[int] = 60
    # Search space in Hydra's sweep syntax, keyed by config path (x, model.lr), as Hydra's Optuna
    # sweeper reads it.
    params: Dict[str, Any] = field(default_factory=dict)
    # A function `module.configure(cfg, trial)` that suggests more parameters on every trial (define-by-run,
    # e.g. one whose range depends on another's value), as with Hydra's Optuna sweeper; null = none.
    custom_search_space: Optional[str] = None
    # A config node that bare keys of `params` live under (tuneflow's app: params, so lr = params.lr);
    # null = every key is a config path.
    params_node: Optional[str] = None
    # Folder of the embedded stores (Optuna's journal, MLflow's SQLite, artifacts, CSVs), relative to the
    # folder the command runs in.
    root_dir: str = "mlruns"
    # MLflow tracking URI; null = $MLFLOW_TRACKING_URI if set, else SQLite under root_dir.
    tracking_uri: Optional[str] = None
    # MLflow experiment of the study's runs; null = the study's name.
    experiment: Optional[str] = None
    # Config nodes logged, flattened, as every trial's MLflow params beside the sampled values.
    log_params: List[str] = field(default_factory=list)
    # Run each job with its trial's MLflow run active and mlflow.autolog() on (Lightning, scikit-learn,
    # XGBoost, LightGBM log into the trial's run).
    mlflow_autolog: bool = False
    # Seconds between the console's lines on a running trial (step, objective, elapsed) when the output is
    # not a terminal (a terminal gets one status line, redrawn at each report); null or 0 = none.
    progress_interval: Optional[float] = 30.0
    # Config groups (arch, mode) and config paths (params.epochs, data) whose choice or fixed value is part of
    # what a study means: a resume that changes one is refused (parameter kinds and the grid always are).
    study_keys: List[str] = field(default_factory=list)
    # Resume a study although this run changes what it means (study_keys, the grid): its trials then mix
    # both. false = refuse, naming the change.
    allow_changed_study: bool = False
    # Zoom in on an earlier study: hydra.sweeper.zoom.study=NAME (see tuneflow/zoom.py).
    zoom: ZoomConfig = field(default_factory=ZoomConfig)
    # Asynchronous workers on this machine, SLURM or Ray: hydra.sweeper.workers.engine=local|slurm|ray,
    # hydra.sweeper.workers.n=4 (see tuneflow/sweeper/workers.py).
    workers: WorkersConfig = field(default_factory=WorkersConfig)


# --- the launcher (hydra/launcher=tuneflow) -------------------------------------------------


@dataclass
class TuneflowLauncherConf:
    """Jobs run one after another in this process, like hydra/launcher=basic, without composing each
    job's config from scratch (tuneflow.sweeper.launcher)."""

    _target_: str = "hydra_plugins.tuneflow_sweeper.tuneflow_launcher.TuneflowLauncher"


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/launcher", name="tuneflow", node=TuneflowLauncherConf, provider="tuneflow")
    store.store(group="hydra/sweeper", name="tuneflow", node=TuneflowSweeperConf, provider="tuneflow")
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="tuneflow")
    # Kept to say what replaced it, as Hydra's Optuna sweeper does: building it raises that message.
    store.store(group="hydra/sweeper/sampler", name="motpe", node=MOTPESamplerConfig, provider="tuneflow")
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="tuneflow")
    for name, node in WRAPPED_PRUNERS.items():
        store.store(group="hydra/sweeper/pruner/wrapped_pruner", name=name, node=node, provider="tuneflow")
    storages = {"sqlite": SqliteStorageConfig, "journal": JournalStorageConfig, "postgres": PostgresStorageConfig}
    for name, node in storages.items():
        store.store(group="hydra/sweeper/storage", name=name, node=node, provider="tuneflow")


register_configs()
