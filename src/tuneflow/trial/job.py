"""The job side of a study: any Hydra task function run as one Optuna trial and one MLflow run.

The sweeper hands Hydra's launcher a ``TrialJob`` instead of the app's task function. In the job (in
this process, a joblib worker, a SLURM node or a Ray actor alike) it opens the study the sweeper created,
becomes trial ``hydra.job.num`` (the sweeper launches every job with its trial's number), opens the
trial's MLflow run under the study's parent run, makes the trial current for ``tuneflow.report`` and
calls the app's task. Whatever the task does (returns a float or a dict of metrics, reports per step, is
pruned, raises, calls ``sys.exit``), the run ends with the matching status and the job returns a
``TrialOutcome`` for the sweeper to ``tell``. The task function needs nothing of tuneflow.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tuneflow.errors import ConfigError, MetricIsNaN
from tuneflow.storage.study import (
    ERROR_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    StudySettings,
)
from tuneflow.tracking import runs as tracking
from tuneflow.trial import api, progress

#: A Hydra task function: the app's ``@hydra.main`` function, called with the job's config.
TaskFunction = Callable[[DictConfig], Any]


@dataclass
class TrialOutcome:
    """What a job hands back to the sweeper (picklable: it crosses process boundaries)."""

    number: int | None
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None = None
    #: Every objective's value, in the study's order (one for a single-objective study).
    values: list[float] | None = None
    run_id: str | None = None
    error: str | None = None
    pruned_at_step: int | None = None
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    #: The failure is the app's set-up, not this trial's region (an objective the task never returns):
    #: every trial would fail the same way, so the sweeper stops the study with this message.
    usage_error: str | None = None


class ObjectiveMissing(ConfigError):
    """The task's result holds no value for the study's objective."""


class TrialJob:
    """The task function the sweeper gives the launcher: ``task`` run as a trial of the study.

    ``settings`` is filled in by the sweeper once the study is planned (before any job is launched);
    the object is pickled with it for launchers that run jobs elsewhere.
    """

    def __init__(self, task: TaskFunction, settings: StudySettings | None = None,
                 progress_interval: float | None = progress.DEFAULT_INTERVAL) -> None:
        self.task = task
        self.settings = settings
        #: Seconds between the console's plain progress lines of a running trial (None: none).
        self.progress_interval = progress_interval
        # Hydra's run_job reads the task's name from the function it calls.
        self.__name__ = getattr(task, "__name__", "task")
        self.__module__ = getattr(task, "__module__", __name__)

    def __call__(self, cfg: DictConfig) -> TrialOutcome:
        from hydra.core.hydra_config import HydraConfig

        if self.settings is None:
            raise RuntimeError("TrialJob called before the sweeper planned the study")
        from tuneflow.console import quiet_library_warnings

        quiet_library_warnings()  # a launcher's worker process starts without the sweeper's filters
        hydra = HydraConfig.get()
        return run_trial(self.task, cfg, self.settings, int(hydra.job.num),
                         progress_interval=self.progress_interval, overrides=list(hydra.overrides.task))


def run_trial(
    task: TaskFunction, cfg: DictConfig, settings: StudySettings, number: int, *,
    progress_interval: float | None = progress.DEFAULT_INTERVAL, overrides: Sequence[str] = (),
) -> TrialOutcome:
    """Run ``task`` as Optuna trial ``number`` of the study ``settings`` describes, tracked in MLflow;
    its progress on the console and in the job's log file (``tuneflow.trial.progress``)."""
    from tuneflow.storage.study import Heartbeat, load_study_for_job, trial_handle

    started = time.perf_counter()
    log = progress.trial_log()
    # The job's launch, in its log file: the console shows one line per finished trial instead.
    log.info(f"trial {number} of study {settings.name!r}: {' '.join(overrides)}")
    live = progress.LiveProgress(number, settings.objective, progress_interval)
    try:
        study, storage = load_study_for_job(settings)
        trial, trial_id = trial_handle(study, storage, number)
        # Heartbeats from the start: a worker killed while it sets up the MLflow run leaves a trial that
        # goes stale and is retried, not one RUNNING forever.
        with Heartbeat(storage, trial_id, settings.heartbeat_interval):
            try:
                outcome = _run_tracked(task, cfg, settings, number, started, study, storage, trial, trial_id, live,
                                       log)
            except Exception as error:
                # The trial's MLflow run could not even be opened or closed: a tracking store that refuses
                # writes stops the study with its one line; anything else is the sweeper's FAIL as before.
                full = _store_full(error, settings)
                if full is None:
                    raise
                outcome = TrialOutcome(number=number, state="FAIL", error=describe_failure(error), usage_error=full,
                                       seconds=time.perf_counter() - started)
    finally:
        live.close()
    log.info(progress.outcome_text(outcome.state, outcome.value, outcome.pruned_at_step, outcome.error,
                                   outcome.seconds, outcome.run_id))
    progress.close_trial_log()
    return outcome


def _run_tracked(
    task: TaskFunction, cfg: DictConfig, settings: StudySettings, number: int, started: float,
    study: Any, storage: Any, trial: Any, trial_id: int, live: progress.LiveProgress, log: logging.Logger,
) -> TrialOutcome:
    import optuna

    client = tracking.client_for(settings.tracking_uri)
    experiment_id = tracking.experiment_id_for(
        client, settings.experiment, tracking.default_artifact_location(client.tracking_uri, settings.root_dir)
    )
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    # A retry (of a trial whose worker died) inherited the dead run's id: it gets a new run, linked to it.
    retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(storage.get_trial(trial_id))
    retry_tags = {} if retry_of is None else {"tuneflow.retry_of_trial": str(retry_of),
                                              "tuneflow.retry_of_run": str(trial.user_attrs.get(RUN_ID_ATTR, ""))}
    run = client.create_run(
        experiment_id,
        run_name=f"{settings.name}-trial-{number}",
        tags={
            tracking.STUDY_TAG: settings.name,
            tracking.ROLE_TAG: "trial",
            tracking.TRIAL_TAG: str(number),
            tracking.STATE_TAG: "RUNNING",
            **({tracking.PARENT_TAG: parent_run_id} if parent_run_id else {}),
            **retry_tags,
        },
    )
    run_id = run.info.run_id
    store = tracking.artifact_store(client, run.info.artifact_uri)
    trial.set_user_attr(RUN_ID_ATTR, run_id)
    buffer = tracking.MetricBuffer(client, run_id)
    handle = api.Trial(
        number=number, params=dict(trial.params), run_id=run_id, study_name=settings.name,
        objective=settings.objective, optuna_trial=trial, metrics_buffer=buffer,
        tracking_uri=settings.tracking_uri, artifact_uri=run.info.artifact_uri, progress=live,
        log=log if log.handlers else None,  # no log file: no line to format per report
        objectives=settings.objectives,
    )
    outcome = TrialOutcome(number=number, state="FAIL", run_id=run_id)
    # MLflow requests per trial: create_run (with its tags), params, config.yaml, then one batch at the
    # end (step metrics not yet flushed, final metrics, end tags), and the run's status.
    try:
        with api.running(handle):
            # In the trial already: the config may read the study (``${tuneflow.study_day:}``).
            start_run_record(client, run_id, store, cfg, run_params(cfg, trial.params, settings))
            returned = call_task(task, cfg, autolog=settings.autolog)
        if settings.multi_objective:
            outcome.values, outcome.metrics = results_of(returned, settings.objectives)
        else:
            outcome.value, outcome.metrics = result_of(returned, handle)
            outcome.values = [outcome.value]
        outcome.state = "COMPLETE"
        step = handle.last_step or 0
        buffer.flush(metrics=[(key, value, step) for key, value in outcome.metrics.items()],
                     tags={tracking.STATE_TAG: "COMPLETE"})
    except optuna.TrialPruned:
        if handle.last_step is None:  # pruned through the Optuna trial itself (an optuna-integration callback)
            handle.last_step = _safe_value(lambda: storage.get_trial(trial_id).last_step)
        outcome.state, outcome.pruned_at_step = "PRUNED", handle.last_step
        buffer.flush(tags={"tuneflow.pruned_at_step": handle.last_step, tracking.STATE_TAG: "PRUNED",
                           **_ended_name(settings, number, "PRUNED")})
    except KeyboardInterrupt:
        # Stopped by the user or the system: the study stops too, and leaves nothing RUNNING.
        _safe(lambda: buffer.flush(tags={tracking.STATE_TAG: "FAIL", "tuneflow.error": "interrupted",
                                         **_ended_name(settings, number, "FAIL")}))
        _safe(lambda: client.set_terminated(run_id, status="KILLED"))
        _safe(lambda: study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True))
        raise
    except BaseException as error:  # noqa: BLE001 - one failing trial must not stop the study
        outcome.state, outcome.error = "FAIL", describe_failure(error)
        outcome.usage_error = str(error) if isinstance(error, ObjectiveMissing) else _store_full(error, settings)
        _safe(lambda: tracking.log_text(store, traceback.format_exc(), "error.txt"))
        log.error(traceback.format_exc().rstrip())
        _safe(lambda: buffer.flush(tags={"tuneflow.error": outcome.error[:4000], tracking.STATE_TAG: "FAIL",
                                         **_ended_name(settings, number, "FAIL")}))
        _safe(lambda: trial.set_user_attr(ERROR_ATTR, outcome.error[:4000]))
    outcome.seconds = time.perf_counter() - started
    for key, value in outcome.metrics.items():
        _safe(lambda k=key, v=value: trial.set_user_attr(k, v))
    tracking.terminate(client, run_id, outcome.state)
    return outcome


def _store_full(error: BaseException, settings: StudySettings) -> str | None:
    """The tracking store's one line when ``error`` is that store refusing writes (a full disk, a read-only
    folder): every later trial would fail the same way, so the sweeper stops with it (``usage_error``)."""
    from tuneflow.storage.creation import store_failure
    from tuneflow.storage.urls import shown

    failure = store_failure(error)
    return None if failure is None else f"cannot write to {shown(settings.tracking_uri)}: {failure}"


def _ended_name(settings: StudySettings, number: int, state: str) -> dict[str, str]:
    """A pruned or failed trial's run is renamed ``<study>-trial-N-pruned`` / ``-failed`` in the batch
    that ends it (MLflow reads the tag ``mlflow.runName`` as the run's name): the MLflow UI shows its
    status only as an icon, KILLED and FAILED nearly alike."""
    return {"mlflow.runName": f"{settings.name}-trial-{number}-{'pruned' if state == 'PRUNED' else 'failed'}"}


def call_task(task: TaskFunction, cfg: DictConfig, *, autolog: bool = False) -> Any:
    """Call the app's task; with ``autolog``, inside the trial's run as MLflow's active run, with
    ``mlflow.autolog()`` on (Lightning, scikit-learn, XGBoost, LightGBM log into the trial's run)."""
    if not autolog:
        return task(cfg)
    import mlflow

    with api.mlflow_run():
        mlflow.autolog(silent=True)
        try:
            return task(cfg)
        finally:
            mlflow.autolog(disable=True, silent=True)


def result_of(returned: Any, trial: api.Trial) -> tuple[float, dict[str, float]]:
    """The trial's objective value and final metrics, from what the task returned.

    A number is the objective. A mapping holds metrics, the objective among them (by
    ``hydra.sweeper.objective``, else the key ``objective``, else its only entry). ``None`` means the
    last value the task reported for the objective.
    """
    metrics: dict[str, float] = {}
    if returned is None:
        value = trial.last_value
        if value is None:
            raise ObjectiveMissing(
                f"the task returned nothing and never reported {_objective_name(trial)} through "
                "tuneflow.report; return the objective (a number or a dict of metrics)"
            )
    elif _is_number(returned):
        value = float(returned)
    elif isinstance(returned, Mapping):
        metrics = {str(k): float(v) for k, v in returned.items() if _is_number(v)}
        value = _objective_in(metrics, trial)
    elif isinstance(returned, Sequence) and not isinstance(returned, (str, bytes)):
        raise ObjectiveMissing(
            f"the task returned {len(returned)} values, but the study has one objective; "
            "return one number or a dict of metrics"
        )
    else:
        raise ObjectiveMissing(
            f"the task returned a {type(returned).__name__}; return the objective as a number or a dict of metrics"
        )
    if not math.isfinite(value):
        raise MetricIsNaN(f"{trial.objective or 'the objective'} is {api.non_finite(value)}: training diverged")
    # The objective is always the run's metric `objective`: one column to sort any study's runs by.
    metrics.setdefault("objective", value)
    return value, metrics


def results_of(returned: Any, names: Sequence[str]) -> tuple[list[float], dict[str, float]]:
    """A multi-objective trial's values and final metrics, from what the task returned: a sequence of
    numbers (in the order of ``hydra.sweeper.direction``, as Hydra's Optuna sweeper takes it) or a
    mapping holding every objective by name (``hydra.sweeper.objective``). Each objective is logged as
    a metric under its name."""
    metrics: dict[str, float] = {}
    if isinstance(returned, Mapping):
        metrics = {str(k): float(v) for k, v in returned.items() if _is_number(v)}
        missing = [name for name in names if name not in metrics]
        if missing:
            raise ObjectiveMissing(
                f"the task returned metrics {', '.join(sorted(metrics)) or '(none numeric)'} without "
                f"{', '.join(missing)}; set hydra.sweeper.objective to a list of {len(names)} of them"
            )
        values = [metrics[name] for name in names]
    elif isinstance(returned, Sequence) and not isinstance(returned, (str, bytes)):
        if len(returned) != len(names) or not all(_is_number(v) for v in returned):
            raise ObjectiveMissing(
                f"the task returned {returned!r}, but the study has {len(names)} objectives; return "
                f"{len(names)} numbers, one per hydra.sweeper.direction, or a dict naming them"
            )
        values = [float(v) for v in returned]
    else:
        raise ObjectiveMissing(
            f"the task returned {type(returned).__name__ if returned is not None else 'nothing'}, but the "
            f"study has {len(names)} objectives; return {len(names)} numbers or a dict naming them"
        )
    for name, value in zip(names, values):
        if not math.isfinite(value):
            raise MetricIsNaN(f"{name} is {api.non_finite(value)}: training diverged")
        metrics[name] = value
    return values, metrics


def _objective_in(metrics: Mapping[str, float], trial: api.Trial) -> float:
    for key in (trial.objective, "objective"):
        if key is not None and key in metrics:
            return metrics[key]
    if trial.objective is None and len(metrics) == 1:
        return next(iter(metrics.values()))
    raise ObjectiveMissing(
        f"the task returned metrics {', '.join(sorted(metrics)) or '(none numeric)'} without "
        f"{_objective_name(trial)}; set hydra.sweeper.objective to one of them or return it"
    )


def _objective_name(trial: api.Trial) -> str:
    return f"the objective {trial.objective!r}" if trial.objective else "an objective"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def describe_failure(error: BaseException) -> str:
    """One line for the console, the CSV and the run's ``tuneflow.error`` tag."""
    if isinstance(error, SystemExit):
        return f"SystemExit: the task called sys.exit({error.code!r})"
    # One line: SQLAlchemy's messages (through MLflow's) add a "(Background on this error ...)" line.
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}"


def run_params(cfg: DictConfig, sampled: Mapping[str, Any], settings: StudySettings) -> dict[str, Any]:
    """MLflow params of a trial's run: the sampled values, then the config nodes ``log_params`` names
    (flattened, named as the search space names them)."""
    # A define-by-run parameter new to the config is suggested as `+w` (an append override, as with
    # Hydra's Optuna sweeper); MLflow keys cannot hold `+`, and the run's param is the config's `w`.
    params: dict[str, Any] = {name.lstrip("+"): value for name, value in sampled.items()}
    for node in settings.log_params:
        value = OmegaConf.select(cfg, node)
        if isinstance(value, DictConfig):
            for key, leaf in flatten(value).items():
                params.setdefault(settings.param_name(f"{node}.{key}"), leaf)
        elif value is not None or node in cfg:
            params.setdefault(settings.param_name(node), value)
    return params


def start_run_record(client: Any, run_id: str, store: Any, cfg: DictConfig, params: Mapping[str, Any]) -> None:
    """Params and the resolved config, written before training so a crash still shows them."""
    tracking.log_values(client, run_id, params=params)
    tracking.log_text(store, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def flatten(node: Any) -> dict[str, Any]:
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    flat: dict[str, Any] = {}
    for key, value in container.items():  # type: ignore[union-attr]
        if isinstance(value, Mapping):
            flat.update({f"{key!s}.{k}": v for k, v in flatten(value).items()})
        else:
            flat[str(key)] = value
    return flat


def _safe_value(action: Any) -> Any:
    try:
        return action()
    except Exception:  # noqa: BLE001 - bookkeeping only
        return None


def _safe(action: Any) -> None:
    """Best-effort bookkeeping while a trial is already failing: never mask the original error."""
    try:
        action()
    except Exception:  # noqa: BLE001
        pass
