"""Where search and tracking meet: one job = one training run = one MLflow run (= one Optuna trial).

The trainer sees neither Optuna nor MLflow. It gets a ``report`` hook; this module's hook buffers the
metrics for MLflow, reports the objective to the Optuna trial and raises ``optuna.TrialPruned`` when
the pruner says so. Whatever happens (completed, pruned, failed), the MLflow run ends with the matching
status and the job returns a ``TrialOutcome`` for the sweeper to ``tell``.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from tuneflow import data as datasets
from tuneflow import tracking
from tuneflow.errors import ConfigError, MetricIsNaN
from tuneflow.models.base import Trainer, TrainResult
from tuneflow.study import AS_OF_ATTR, ERROR_ATTR, RUN_ID_ATTR, StudySettings


@dataclass
class TrialOutcome:
    """What a job hands back to the sweeper (picklable: it crosses process boundaries)."""

    number: int | None
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None = None
    run_id: str | None = None
    error: str | None = None
    pruned_at_step: int | None = None
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


def load_trainer(path: str) -> Trainer:
    """``tuneflow.models.mlp.train`` -> the function."""
    module_name, _, attribute = path.rpartition(".")
    try:
        trainer = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"arch.trainer {path!r} cannot be imported; name a module function") from None
    return trainer  # type: ignore[no-any-return]


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    return dict(OmegaConf.to_container(cfg.params, resolve=True))  # type: ignore[arg-type]


class Reporter:
    """The hook handed to trainers: MLflow buffer + Optuna intermediate values + pruning + NaN check."""

    def __init__(self, objective: str, buffer: tracking.MetricBuffer | None, trial: Any | None) -> None:
        self.objective = objective
        self.buffer = buffer
        self.trial = trial
        self.prefix = ""
        self.step_offset = 0
        self.last_step = 0

    def start_fold(self, index: int, name: str, steps_per_fold: int, n_folds: int) -> None:
        # Steps continue across folds, so the pruner compares trials at the same point of the same range.
        self.prefix = f"{name}/" if n_folds > 1 else ""
        self.step_offset = index * steps_per_fold

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        global_step = self.step_offset + step
        self.last_step = global_step
        if self.buffer is not None:
            self.buffer.add(global_step, metrics, prefix=self.prefix)
        if self.objective not in metrics:
            raise ConfigError(
                f"arch.objective is {self.objective!r}, but the trainer reports {', '.join(sorted(metrics))}"
            )
        value = float(metrics[self.objective])
        if math.isnan(value):
            raise MetricIsNaN(f"{self.prefix}{self.objective} is NaN at step {step}: training diverged")
        if self.trial is not None:
            import optuna

            self.trial.report(value, global_step)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {global_step}")


@dataclass
class FoldResults:
    values: list[float] = field(default_factory=list)
    #: The folds' names (date ranges as ``start..end``), in the order of ``values``.
    names: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    last: TrainResult | None = None
    epochs: int = 0
    #: The trial's objective: ``values`` combined by ``data.objective_over_ranges``.
    objective: float = math.nan


def check_torch_threads(threads: Any) -> int | None:
    """``torch_threads`` as a count, or None for PyTorch's own default (one thread per core)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"torch_threads is {threads!r}, but must be a whole number of at least 1, or null")
    return threads


def limit_torch_threads(threads: Any) -> None:
    """Cap the threads PyTorch trains with in this process. With several workers on one machine, each
    using every core, they slow each other down several-fold (benchmarks/README.md, parallel.py)."""
    count = check_torch_threads(threads)
    if count is None:
        return
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def train_folds(cfg: DictConfig, reporter: Reporter) -> FoldResults:
    """Train once per fold; per-fold metrics are prefixed with the fold's name when there are several."""
    limit_torch_threads(cfg.get("torch_threads"))
    trainer = load_trainer(str(cfg.arch.trainer))
    params = hyperparameters(cfg)
    folds = datasets.load_folds(cfg.data, params)
    steps_per_fold = int(cfg.arch.get("steps_per_fold") or params.get("epochs", 1000))
    results = FoldResults()
    for index, fold in enumerate(folds):
        reporter.start_fold(index, fold.name, steps_per_fold, len(folds))
        result = trainer(params, fold.data, reporter, seed=int(cfg.seed), device=str(cfg.device))
        value = float(result.metrics[reporter.objective])
        if math.isnan(value):
            raise MetricIsNaN(f"{reporter.prefix}{reporter.objective} is NaN after training")
        results.values.append(value)
        results.names.append(fold.name)
        results.epochs += result.epochs_run
        for key, metric in {**result.metrics, **result.extra}.items():
            results.metrics[f"{reporter.prefix}{key}"] = float(metric)
        results.last = result
    if len(folds) > 1:
        # The objective over ranges is their mean; each range's value is kept beside it.
        for key in {k.split("/", 1)[1] for k in results.metrics if "/" in k}:
            per_fold = [results.metrics[f"{fold.name}/{key}"] for fold in folds if f"{fold.name}/{key}" in results.metrics]
            results.metrics[key] = sum(per_fold) / len(per_fold)
    how = str(cfg.data.get("objective_over_ranges", "mean")) if "data" in cfg else "mean"
    results.objective = datasets.aggregate(results.values, how, str(cfg.arch.get("direction", "minimize")))
    return results


def compare_with_best(study: Any, results: FoldResults, objective: str, direction: str) -> dict[str, float]:
    """How a finished trial fares against the study's best so far, range by range.

    ``ranges_beaten`` counts the ranges on which it is better than the best trial, and
    ``beats_best_on_every_range`` is 1 when that is all of them: with several ranges, a new best that
    wins only on average may be noise; one that wins on every range can be trusted more. Empty when
    there is one range, no best yet, or the best was scored on other ranges.
    """
    if len(results.names) < 2:
        return {}
    try:
        best = study.best_trial
    except ValueError:
        return {}
    theirs = [best.user_attrs.get(f"{name}/{objective}") for name in results.names]
    if any(value is None for value in theirs):
        return {}
    better = [(mine < other) if direction == "minimize" else (mine > other)
              for mine, other in zip(results.values, theirs)]
    return {"ranges_beaten": float(sum(better)), "beats_best_on_every_range": float(all(better))}


def pin_automatic_date_ranges(cfg: DictConfig, study_as_of: str | None) -> None:
    """Automatic date ranges change with the month; a study keeps the ranges of the day it began,
    so trials run weeks apart (or resumed next month) are still compared on the same ranges."""
    if study_as_of and cfg.data.get("kind") == "timeseries" and cfg.data.get("as_of") is None:
        with open_dict(cfg):
            cfg.data.as_of = study_as_of


class Heartbeat:
    """Records the trial's heartbeat on the storage while the job runs, so that a killed worker's
    trial is noticed (``optuna.storages.fail_stale_trials``) and retried by another worker."""

    def __init__(self, storage: Any, trial_id: int, interval: int | None) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval:
            self._thread = threading.Thread(
                target=self._beat, args=(storage, trial_id, interval), daemon=True, name="tuneflow-heartbeat"
            )

    def _beat(self, storage: Any, trial_id: int, interval: int) -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_trial(cfg: DictConfig, settings: StudySettings, trial_number: int) -> TrialOutcome:
    """Run Optuna trial ``trial_number`` of the study ``settings`` describes, tracked in MLflow."""
    from tuneflow.study import load_study_for_job, trial_handle

    started = time.perf_counter()
    study, storage = load_study_for_job(settings)
    trial, trial_id = trial_handle(study, storage, trial_number)
    # Heartbeats from the start: a worker killed while it sets up the MLflow run leaves a trial that
    # goes stale and is retried, not one RUNNING forever.
    with Heartbeat(storage, trial_id, settings.heartbeat_interval):
        return _run_tracked(cfg, settings, trial_number, started, study, storage, trial, trial_id)


def _run_tracked(
    cfg: DictConfig, settings: StudySettings, trial_number: int, started: float,
    study: Any, storage: Any, trial: Any, trial_id: int,
) -> TrialOutcome:
    import optuna

    study_attrs = study.user_attrs  # one read of the storage
    pin_automatic_date_ranges(cfg, study_attrs.get(AS_OF_ATTR))
    client = tracking.client_for(tracking.resolve_tracking_uri(cfg.tracking.uri, settings.root_dir))
    experiment_id = tracking.experiment_id_for(
        client,
        cfg.tracking.experiment or settings.name,
        tracking.default_artifact_location(client.tracking_uri, settings.root_dir),
    )
    parent_run_id = study_attrs.get("mlflow_parent_run_id")
    # A retry (of a trial whose worker died) inherited the dead run's id: it gets a new run, linked to it.
    retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(storage.get_trial(trial_id))
    retry_tags = {} if retry_of is None else {"tuneflow.retry_of_trial": str(retry_of),
                                              "tuneflow.retry_of_run": str(trial.user_attrs.get(RUN_ID_ATTR, ""))}
    run = client.create_run(
        experiment_id,
        run_name=f"{settings.name}-trial-{trial_number}",
        tags={
            tracking.STUDY_TAG: settings.name,
            tracking.ROLE_TAG: "trial",
            tracking.TRIAL_TAG: str(trial_number),
            tracking.ARCH_TAG: str(cfg.arch.name),
            tracking.STATE_TAG: "RUNNING",
            **({tracking.PARENT_TAG: parent_run_id} if parent_run_id else {}),
            **retry_tags,
        },
    )
    run_id = run.info.run_id
    store = tracking.artifact_store(client, run.info.artifact_uri)
    trial.set_user_attr(RUN_ID_ATTR, run_id)
    start_run_record(client, run_id, store, cfg)
    buffer = tracking.MetricBuffer(client, run_id)
    reporter = Reporter(settings.objective, buffer, trial)
    outcome = TrialOutcome(number=trial_number, state="FAIL", run_id=run_id)
    # MLflow requests per trial: create_run (with its tags), params, config.yaml, then one batch at the
    # end (step metrics not yet flushed, final metrics, end tags), the model, and the run's status.
    try:
        results = train_folds(cfg, reporter)
        outcome.value = results.objective
        versus_best = compare_with_best(study, results, settings.objective, settings.direction)
        outcome.metrics = {**results.metrics, **versus_best}
        outcome.state = "COMPLETE"
        finish_completed(
            store, cfg, results, outcome.value, started, buffer, versus_best, tags={tracking.STATE_TAG: "COMPLETE"}
        )
    except optuna.TrialPruned:
        outcome.state, outcome.pruned_at_step = "PRUNED", reporter.last_step
        buffer.flush(tags={"tuneflow.pruned_at_step": reporter.last_step, tracking.STATE_TAG: "PRUNED"})
    except (KeyboardInterrupt, SystemExit):
        # Stopped by the user or the system: the study stops too, and leaves nothing RUNNING.
        _safe(lambda: buffer.flush(tags={tracking.STATE_TAG: "FAIL", "tuneflow.error": "interrupted"}))
        _safe(lambda: client.set_terminated(run_id, status="KILLED"))
        _safe(lambda: study.tell(trial_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True))
        raise
    except Exception as error:  # noqa: BLE001 - one failing trial must not kill the study
        outcome.state, outcome.error = "FAIL", f"{type(error).__name__}: {error}"
        _safe(lambda: tracking.log_text(store, traceback.format_exc(), "error.txt"))
        _safe(lambda: buffer.flush(tags={"tuneflow.error": outcome.error[:4000], tracking.STATE_TAG: "FAIL"}))
        _safe(lambda: trial.set_user_attr(ERROR_ATTR, outcome.error[:4000]))
    outcome.seconds = time.perf_counter() - started
    for key, value in outcome.metrics.items():
        _safe(lambda k=key, v=value: trial.set_user_attr(k, v))
    tracking.terminate(client, run_id, outcome.state)
    return outcome


def _safe(action: Any) -> None:
    """Best-effort bookkeeping while a trial is already failing: never mask the original error."""
    try:
        action()
    except Exception:  # noqa: BLE001
        pass


def start_run_record(client: Any, run_id: str, store: Any, cfg: DictConfig) -> None:
    """Params and the resolved config, written before training so a crash still shows them."""
    params = {**hyperparameters(cfg), **{f"data.{k}": v for k, v in _flat(cfg.data).items()}}
    params["seed"] = cfg.seed
    tracking.log_values(client, run_id, params=params)
    tracking.log_text(store, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def finish_completed(
    store: Any,
    cfg: DictConfig,
    results: FoldResults,
    objective: float,
    started: float,
    buffer: tracking.MetricBuffer,
    versus_best: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """The run's last metrics in one request with the step metrics still buffered and ``tags``, then
    the model."""
    # Per-epoch values keep their names as step metrics; the trained (best-epoch) model's values are
    # logged as best_<name>, so neither history is mixed into the other.
    final = {_prefixed_leaf("best_", k): v for k, v in results.metrics.items()}
    final.update(objective=objective, epochs_run=float(results.epochs))
    final.update(versus_best or {})
    final["train_seconds"] = time.perf_counter() - started
    end_tags = dict(tags or {})
    if versus_best:
        end_tags["tuneflow.beats_best_on_every_range"] = str(bool(versus_best["beats_best_on_every_range"])).lower()
    buffer.flush(metrics=[(k, v, 0) for k, v in final.items()], tags=end_tags)
    if cfg.tracking.log_model and results.last is not None:
        tracking.log_model(store, results.last.model, results.last.flavor, results.last.input_example)


def _prefixed_leaf(prefix: str, key: str) -> str:
    """``2014-01-01..2014-04-01/val_mae`` -> ``2014-01-01..2014-04-01/best_val_mae``."""
    head, slash, leaf = key.rpartition("/")
    return f"{head}{slash}{prefix}{leaf}"


def _flat(node: Any) -> dict[str, Any]:
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    flat: dict[str, Any] = {}
    for key, value in container.items():  # type: ignore[union-attr]
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        else:
            flat[str(key)] = value
    return flat


def run_single(cfg: DictConfig, tags: Mapping[str, str] | None = None) -> TrialOutcome:
    """A plain training run (no ``-m``): the arch's default params, one MLflow run, errors raised.
    ``tags`` are added to the run's (``tuneflow repeat`` links its runs to the trial they repeat)."""
    started = time.perf_counter()
    check_torch_threads(cfg.get("torch_threads"))  # before any run exists
    root_dir = str(cfg.root_dir)
    client = tracking.client_for(tracking.resolve_tracking_uri(cfg.tracking.uri, root_dir))
    experiment_id = tracking.experiment_id_for(
        client,
        cfg.tracking.experiment or str(cfg.arch.name),
        tracking.default_artifact_location(client.tracking_uri, root_dir),
    )
    run = client.create_run(
        experiment_id, tags={tracking.ROLE_TAG: "single", tracking.ARCH_TAG: str(cfg.arch.name), **(tags or {})}
    )
    run_id = run.info.run_id
    store = tracking.artifact_store(client, run.info.artifact_uri)
    start_run_record(client, run_id, store, cfg)
    buffer = tracking.MetricBuffer(client, run_id)
    reporter = Reporter(str(cfg.arch.objective), buffer, trial=None)
    try:
        results = train_folds(cfg, reporter)
        value = results.objective
        finish_completed(store, cfg, results, value, started, buffer)
    except BaseException:
        _safe(buffer.flush)
        tracking.terminate(client, run_id, "FAIL")
        raise
    tracking.terminate(client, run_id, "COMPLETE")
    return TrialOutcome(number=None, state="COMPLETE", value=value, run_id=run_id, metrics=results.metrics,
                        seconds=time.perf_counter() - started)
