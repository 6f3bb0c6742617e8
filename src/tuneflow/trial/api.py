"""The public API a training loop calls: ``tuneflow.report(step, metrics)`` and the current trial.

Inside a trial of a tuneflow sweep, ``report`` writes step metrics to the trial's MLflow run (batched),
to the trial's log file and the console's progress line (``tuneflow.trial.progress``), and hands the
objective to the study's pruner, raising ``optuna.TrialPruned`` when the pruner says stop;
``current_trial()`` gives the trial's number, params, MLflow run id and the live ``optuna.Trial`` (so
optuna-integration's pruning callbacks work unchanged). Outside a sweep (a plain run, a unit test) the
same calls work: ``report`` only checks the objective, ``current_trial()`` is ``None``. The user's code
needs no ``if tuning:``.

The job side (``tuneflow.trial.job``) sets the current trial around the user's task function; this
module holds nothing but that state and the calls on it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneflow.errors import MetricIsNaN

if TYPE_CHECKING:
    import optuna

    from tuneflow.tracking.runs import MetricBuffer
    from tuneflow.trial.progress import LiveProgress


@dataclass
class Trial:
    """The trial the calling code runs in (``tuneflow.current_trial()``)."""

    #: The Optuna trial number: the same in the console, the CSV, MLflow and the report.
    number: int | None
    #: The sampled hyperparameters, by their Optuna names.
    params: dict[str, Any]
    #: The trial's MLflow run (None when nothing is tracked).
    run_id: str | None
    #: The study's name (None outside a study).
    study_name: str | None
    #: The metric the study optimises (``hydra.sweeper.objective``); None = the only reported metric.
    objective: str | None
    #: The live Optuna trial: ``optuna_trial.report``/``should_prune`` or optuna-integration callbacks.
    optuna_trial: optuna.trial.Trial | None = None
    #: Where ``report`` buffers step metrics for MLflow (written in batches by the job).
    metrics_buffer: MetricBuffer | None = field(default=None, repr=False)
    #: The MLflow tracking URI of ``run_id``, and the run's artifact location.
    tracking_uri: str | None = None
    artifact_uri: str | None = None
    #: The last step ``report`` saw, and the objective's last reported value.
    last_step: int | None = None
    last_value: float | None = None
    #: The running trial on the console and in its log file (set by the job; see ``tuneflow.trial.progress``).
    progress: LiveProgress | None = field(default=None, repr=False)
    log: logging.Logger | None = field(default=None, repr=False)
    #: A multi-objective study's objectives by name (empty for one objective): nothing is pruned then.
    objectives: tuple[str, ...] = ()

    @property
    def study(self) -> optuna.Study | None:
        return None if self.optuna_trial is None else self.optuna_trial.study

    def objective_of(self, metrics: Mapping[str, float]) -> float | None:
        """The objective's value among ``metrics``: the named one, or the only one when none is named."""
        if self.objective is not None:
            value = metrics.get(self.objective)
        elif len(metrics) == 1:
            value = next(iter(metrics.values()))
        else:
            value = None
        return None if value is None else float(value)


_current: contextvars.ContextVar[Trial | None] = contextvars.ContextVar("tuneflow_trial", default=None)


def current_trial() -> Trial | None:
    """The trial this code runs in, or None outside a tuneflow trial."""
    return _current.get()


@contextlib.contextmanager
def running(trial: Trial) -> Iterator[Trial]:
    """Make ``trial`` the current trial for the code inside the block (the job side calls this)."""
    token = _current.set(trial)
    try:
        yield trial
    finally:
        _current.reset(token)


def report(step: int, metrics: Mapping[str, float], *, value: float | None = None) -> None:
    """Record ``metrics`` at ``step`` (an epoch, a number of boosting rounds) for the current trial.

    The objective (``metrics[objective]``, or ``value`` when given: a fold's objective under another
    name) goes to the study's pruner; if the pruner says stop, ``optuna.TrialPruned`` is raised here and
    should propagate (the trial ends PRUNED, its MLflow run KILLED). A NaN or infinite objective raises
    ``MetricIsNaN``: the trial ends FAIL with that reason and the study goes on.
    """
    trial = current_trial()
    objective = value if value is not None else (trial.objective_of(metrics) if trial else None)
    if trial is not None:
        _show(trial, step, metrics, objective, named=value is not None)
    if trial is not None and trial.objectives:
        # Several objectives: Optuna cannot prune (Trial.report refuses multi-objective studies), and
        # the last values are what the task returns. The metrics are recorded, nothing more.
        trial.last_step = step
        return
    if objective is None:
        return
    objective = float(objective)
    if not math.isfinite(objective):
        name = (trial.objective if trial else None) or "the objective"
        raise MetricIsNaN(f"{name} is {non_finite(objective)} at step {step}: training diverged")
    if trial is None:
        return
    trial.last_step, trial.last_value = step, objective
    if trial.optuna_trial is not None:
        import optuna

        trial.optuna_trial.report(objective, step)
        if trial.optuna_trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")


def _show(trial: Trial, step: int, metrics: Mapping[str, float], objective: float | None, *, named: bool) -> None:
    """The report in the trial's MLflow run (batched), its log file and the console's progress
    (``named``: the objective was given as ``value=``, under no name of ``metrics``)."""
    if trial.metrics_buffer is not None:
        trial.metrics_buffer.add(step, metrics)
    if trial.log is None and trial.progress is None:
        return
    from tuneflow.trial.progress import metrics_text

    shown = {**metrics, (trial.objective or "objective"): objective} if named else dict(metrics)
    if trial.log is not None:
        trial.log.info(f"step {step}: {metrics_text(shown)}")
    if trial.progress is not None:
        trial.progress.update(step, metrics, None if objective is None else float(objective))


def non_finite(value: float) -> str:
    """``NaN``, ``inf`` or ``-inf``: how a diverged metric is named in errors."""
    return "NaN" if math.isnan(value) else str(value)


def log_model(model: Any, flavor: str | None = None, *, name: str = "model", **kwargs: Any) -> None:
    """Save ``model`` as the current trial's MLflow model ``name`` (loadable with
    ``mlflow.pyfunc.load_model(f"runs:/{run_id}/{name}")``) through its MLflow flavor: ``flavor`` names
    one (``"sklearn"``, ``"pytorch"``, ``"xgboost"``, ...), or None to pick it from the model's type; an
    object that no flavor knows but that has ``predict`` is saved as a pyfunc. Outside a tracked trial
    this does nothing."""
    trial = current_trial()
    if trial is None or trial.artifact_uri is None or trial.tracking_uri is None:
        return
    from tuneflow.tracking import runs as tracking

    store = tracking.artifact_store(tracking.client_for(trial.tracking_uri), trial.artifact_uri)
    tracking.log_model(store, model, flavor, name=name, **kwargs)


@contextlib.contextmanager
def mlflow_run() -> Iterator[Any]:
    """Make the current trial's MLflow run the active run of MLflow's fluent API inside the block, so
    that ``mlflow.log_metric``, ``mlflow.<flavor>.log_model`` and ``mlflow.autolog()`` record into it.
    Outside a tracked trial it yields None and changes nothing."""
    trial = current_trial()
    if trial is None or trial.run_id is None or trial.tracking_uri is None:
        yield None
        return
    import mlflow

    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(trial.tracking_uri)
    # Not `with mlflow.start_run(...)`: leaving that block ends the run (FINISHED or FAILED), and the
    # run's status is the trial's (a pruned trial's run is KILLED), which the job sets when it ends.
    run = mlflow.start_run(run_id=trial.run_id)
    try:
        yield run
    finally:
        _deactivate(run.info.run_id)
        mlflow.set_tracking_uri(previous_uri)


def study_day() -> str | None:
    """The day the current trial's study began (``YYYY-MM-DD``), or None outside a study.

    Registered as the config resolver ``${tuneflow.study_day:}``: a data config's ``as_of`` set to it
    keeps a study's automatic date ranges those of the day it began, in every trial and resume, and the
    run's params and ``config.yaml`` show that day."""
    trial = current_trial()
    study = trial.study if trial is not None else None
    if study is None:
        return None
    from tuneflow.storage.study import AS_OF_ATTR

    day = study.user_attrs.get(AS_OF_ATTR)
    return None if day is None else str(day)


def register_resolvers() -> None:
    """Register tuneflow's config resolvers with OmegaConf (done on import; idempotent)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("tuneflow.study_day", study_day, replace=True)


register_resolvers()


def _deactivate(run_id: str) -> None:
    """Take the run off MLflow's active-run stack without ending it (MLflow offers no public call)."""
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()  # type: ignore[no-untyped-call]  # noqa: SLF001
    stack[:] = [run for run in stack if run.info.run_id != run_id]
