"""Structured configs of the tuneflow sweeper, registered in Hydra's ConfigStore.

One dataclass per Optuna object, with ``_target_`` naming the real class, so that
``hydra/sweeper/sampler=random`` or ``hydra.sweeper.sampler.seed=3`` on the command line
configure Optuna itself; nothing here re-implements a sampler or a pruner.
"""

# No `from __future__ import annotations`: OmegaConf reads these annotations at runtime, and Hydra
# loads this module in a way that breaks dataclasses with string annotations.
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

# --- samplers (hydra/sweeper/sampler) -------------------------------------------------------


@dataclass
class TPESamplerConfig:
    """Tree-structured Parzen Estimator, Optuna's default."""

    _target_: str = "optuna.samplers.TPESampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: Optional[int] = None
    # Random trials before TPE starts modelling the space.
    n_startup_trials: int = 10
    # Model the parameters jointly rather than one by one.
    multivariate: bool = True
    # With multivariate: model each conditional sub-space separately.
    group: bool = False
    # Treat running trials as bad so parallel workers spread out (recommended with several workers).
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig:
    """Uniform random search."""

    _target_: str = "optuna.samplers.RandomSampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: Optional[int] = None


@dataclass
class GridSamplerConfig:
    """Every combination once, in random order. The grid is built from the search space."""

    _target_: str = "tuneflow.search.samplers.GridSampler"
    # Filled in by the sweeper from the search space (choice and range parameters only).
    search_space: Any = None
    # Seed of the order in which the grid is visited.
    seed: Optional[int] = None


@dataclass
class GPSamplerConfig:
    """Gaussian-process Bayesian optimisation; strong on small budgets of continuous parameters."""

    _target_: str = "optuna.samplers.GPSampler"
    # Seed of the sampler's random state; null = a fresh seed per process.
    seed: Optional[int] = None
    # Random trials before the Gaussian process is fitted.
    n_startup_trials: int = 10


# --- pruners (hydra/sweeper/pruner) ---------------------------------------------------------


@dataclass
class MedianPrunerConfig:
    """Stop a trial whose metric is worse than the median of earlier trials at the same epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    # Trials that always run to the end before pruning starts.
    n_startup_trials: int = 5
    # Epochs every trial runs before it can be pruned.
    n_warmup_steps: int = 2
    # Check every this many epochs.
    interval_steps: int = 1


@dataclass
class HyperbandPrunerConfig:
    """Hyperband: several successive-halving brackets with different aggressiveness."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    # Epochs every trial is granted.
    min_resource: int = 1
    # Most epochs a trial can run; "auto" = learnt from the first completed trial.
    max_resource: Any = "auto"
    # Keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 3


@dataclass
class SuccessiveHalvingPrunerConfig:
    """Asynchronous successive halving (ASHA)."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    # Epochs before the first rung; "auto" = estimated from the first trials.
    min_resource: Any = "auto"
    # Keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 4
    # Skip this many of the lowest rungs.
    min_early_stopping_rate: int = 0


@dataclass
class NopPrunerConfig:
    """Never prune: every trial trains to its end."""

    _target_: str = "optuna.pruners.NopPruner"


# --- the groups and their defaults ---------------------------------------------------------

#: hydra/sweeper/sampler options. tuneflow.search.samplers.default_sampler builds SAMPLERS[DEFAULT_SAMPLER] too,
#: so the Python API and the command line share one definition of the default.
SAMPLERS: Dict[str, Any] = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "gp": GPSamplerConfig,
}
#: hydra/sweeper/pruner options.
PRUNERS: Dict[str, Any] = {
    "median": MedianPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "none": NopPrunerConfig,
}
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "median"


# --- storages (hydra/sweeper/storage) -------------------------------------------------------


@dataclass
class SqliteStorageConfig:
    """The embedded default: one SQLite file under root_dir, no server; workers share this machine."""

    kind: str = "sqlite"
    # A SQLAlchemy URL used instead of everything above it; null = sqlite:///<root_dir>/optuna.db.
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


# --- the sweeper ----------------------------------------------------------------------------


@dataclass
class TuneflowSweeperConf:
    _target_: str = "hydra_plugins.tuneflow_sweeper.tuneflow_sweeper.TuneflowSweeper"
    # Hand sampler and pruner to the sweeper as configs: it builds them once the search space is known.
    _recursive_: bool = False
    # _self_ first, so the chosen sampler and pruner configs fill the fields below.
    defaults: List[Any] = field(
        default_factory=lambda: ["_self_", {"sampler": DEFAULT_SAMPLER}, {"pruner": DEFAULT_PRUNER}, {"storage": "sqlite"}]
    )

    # Optuna sampler (hydra/sweeper/sampler=tpe|random|grid|gp).
    sampler: Any = None
    # Optuna pruner (hydra/sweeper/pruner=median|hyperband|successive_halving|none).
    pruner: Any = None
    # minimize | maximize (null = minimize; tuneflow's app: its architecture's arch.direction).
    direction: Optional[str] = None
    # Name of the study; running the same command again resumes it. null = the app's job name
    # (tuneflow's app: the architecture's name).
    study_name: Optional[str] = None
    # The metric the study optimises, when the task reports or returns several (tuneflow.report, a
    # dict); null = the task's single value (logged in MLflow as `objective`).
    objective: Optional[str] = None
    # Optuna storage (hydra/sweeper/storage=sqlite|postgres, or hydra.sweeper.storage.url=URL).
    storage: Any = None
    # Finished (complete or pruned) trials the study should hold in total, across runs and workers.
    n_trials: int = 20
    # Trials launched together per batch (use with a parallel launcher such as joblib).
    n_jobs: int = 1
    # Stop with an error once more than this share of n_trials has failed.
    max_failure_rate: float = 0.25
    # Show the sampler failed trials as infeasible, so it learns where training fails (tuneflow.search.failure_aware); not the grid.
    failure_aware: bool = True
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
    # Folder of the embedded stores (Optuna's and MLflow's SQLite, artifacts, CSVs), relative to the
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
    # Zoom in on an earlier study: hydra.sweeper.zoom.study=NAME (see tuneflow/zoom.py).
    zoom: ZoomConfig = field(default_factory=ZoomConfig)


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
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="tuneflow")
    storages = {"sqlite": SqliteStorageConfig, "postgres": PostgresStorageConfig}
    for name, node in storages.items():
        store.store(group="hydra/sweeper/storage", name=name, node=node, provider="tuneflow")


register_configs()
