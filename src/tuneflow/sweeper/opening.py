"""Open a study: create or resume the Optuna study (with its pruner) on the shared storage and the
study's MLflow parent run, under the study's lock; stale trials of dead workers end FAILED in MLflow
and are retried."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

import optuna

from tuneflow.errors import ConfigError
from tuneflow.search import zoom
from tuneflow.search.failure_aware import FailureAwareSampler
from tuneflow.storage import creation, locks, sqlite
from tuneflow.storage import urls as backends
from tuneflow.storage.journal import journal_path_of
from tuneflow.storage.study import (
    AS_OF_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    open_storage,
)
from tuneflow.sweeper import meaning
from tuneflow.sweeper.plan import SweepPlan
from tuneflow.tracking import runs as tracking

log = logging.getLogger("tuneflow")


@dataclass
class OpenStudy:
    """A study opened for sweeping, with its storage, MLflow client and parent run."""

    study: optuna.Study
    storage: Any
    client: Any
    parent_run_id: str


def open_study(plan: SweepPlan) -> OpenStudy:
    """Create or resume the study and its MLflow parent run.

    Under the study's lock (``locks.study_lock``): workers started together would otherwise race to
    create the same tables (Optuna's and MLflow's migrations fail on that) and the same parent run.
    """
    settings = plan.settings
    with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "open"):
        # Whole stores or none, whenever a process is killed or the disk fills (storage.creation).
        creation.prepare_tracking_store(settings.tracking_uri)
        client = tracking.client_for(settings.tracking_uri)
        optuna_db = sqlite.db_path_of(settings.storage_url) or journal_path_of(settings.storage_url)
        if optuna_db is not None and not optuna_db.exists():
            refuse_runs_of_a_lost_study(client, settings.name, settings.experiment)  # before creating the store
        creation.prepare_optuna_store(settings.storage_url)
        on_stale_trial = StaleTrialHandler(client)
        try:
            storage = open_storage(
                settings.storage_url,
                heartbeat_interval=settings.heartbeat_interval,
                on_stale_trial=on_stale_trial,
            )
        except Exception as error:  # noqa: BLE001 - drivers and the file system raise many types
            raise ConfigError(
                f"hydra.sweeper.storage: cannot open {backends.shown(settings.storage_url)}: "
                f"{backends.first_line(error)}"
            ) from None
        pruner = optuna.pruners.NopPruner()  # pruning happens in the jobs, with the configured pruner
        if settings.name in optuna.get_all_study_names(storage):
            # Loaded, not created again: on a journal, create_study(load_if_exists=True) appends a create
            # record that replay then ignores, so every start (a refused resume too) would change the file.
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=plan.sampler, pruner=pruner)
        else:
            refuse_runs_of_a_lost_study(client, settings.name, settings.experiment)
            study = optuna.create_study(
                study_name=settings.name,
                storage=storage,
                sampler=plan.sampler,
                pruner=pruner,
                directions=list(settings.directions),  # type: ignore[arg-type]
                load_if_exists=True,
            )
        # Before anything is written: a resume that changes what the study means (another architecture
        # mostly has another direction too: this names the real difference) is refused here.
        meaning.check_and_record(study, plan)
        existing = [d.name.lower() for d in study.directions]
        if existing != list(settings.directions):
            shown = existing[0] if len(existing) == 1 else f"[{','.join(existing)}]"
            raise ConfigError(
                f"study {settings.name!r} already exists with direction {shown}; "
                f"use another hydra.sweeper.study_name or direction={shown}"
            )
        if study.metric_names is None:
            # optuna-dashboard then labels the objective val_accuracy, not "Objective 0".
            study.set_metric_names(list(settings.objectives) or [settings.objective or "objective"])
        if plan.finalists and not study.get_trials(deepcopy=False):
            zoom.enqueue_finalists(study, plan.finalists, plan.distributions)
        parent_run_id = open_parent_run(client, study, plan)
        on_stale_trial.experiment_id = client.get_run(parent_run_id).info.experiment_id
        close_finished_trial_runs(client, on_stale_trial.experiment_id, study)
    return OpenStudy(study, storage, client, parent_run_id)


def open_parent_run(client: Any, study: optuna.Study, plan: SweepPlan) -> str:
    """The study's MLflow parent run, created the first time (with the study's settings as params)."""
    settings = plan.settings
    experiment_id = tracking.experiment_id_for(
        client, settings.experiment, tracking.default_artifact_location(client.tracking_uri, settings.root_dir)
    )
    if AS_OF_ATTR not in study.user_attrs:
        study.set_user_attr(AS_OF_ATTR, datetime.date.today().isoformat())
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent_run_id is not None:
        client.update_run(parent_run_id, status="RUNNING")
        return str(parent_run_id)
    parent_run_id = tracking.open_study_run(client, experiment_id, settings.name, {})
    study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
    tracking.log_values(client, parent_run_id, params=study_params(plan))
    return str(parent_run_id)


def refuse_runs_of_a_lost_study(client: Any, name: str, experiment: str) -> None:
    """A study the Optuna storage does not hold, whose trial runs MLflow does (its ``optuna.journal`` was emptied,
    deleted or replaced): a new study of that name would number its trials from 0 again, beside the old
    runs, under the old parent run. Refused before anything is created."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{tracking.STUDY_TAG}` = {tracking.filter_value(name)} and tags.`{tracking.ROLE_TAG}` = 'trial'",
        max_results=1,
    )
    if runs:
        raise ConfigError(
            f"study {name!r}: MLflow experiment {experiment!r} holds trial runs of a study {name!r} that the Optuna "
            "storage does not hold (was it emptied or replaced?); restore it, or use another hydra.sweeper.study_name"
        )


def close_finished_trial_runs(client: Any, experiment_id: str, study: optuna.Study) -> int:
    """End the MLflow runs still RUNNING whose Optuna trial has ended (a worker killed between telling
    Optuna and ending its run, an artifact store that refused a write): with the status Optuna's state
    maps to. Runs of trials still running belong to live workers and are left alone. Returns how many."""
    ended = {trial.number: trial.state.name for trial in study.get_trials(deepcopy=False)
             if trial.state.is_finished()}
    if not ended:
        return 0
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tracking.STUDY_TAG}` = {tracking.filter_value(study.study_name)} and "
        f"tags.`{tracking.ROLE_TAG}` = 'trial' and attributes.status = 'RUNNING'",
        max_results=10_000,
    )
    closed = 0
    for run in runs:
        number = run.data.tags.get(tracking.TRIAL_TAG, "")
        state = ended.get(int(number)) if number.isdigit() else None
        if state is None:
            continue
        tags = {tracking.STATE_TAG: state}
        if run.data.tags.get(tracking.STATE_TAG) in (None, "RUNNING") and state == "FAIL":
            tags["tuneflow.error"] = "its worker ended before it closed the run"
        tracking.log_values(client, run.info.run_id, tags=tags)
        client.set_terminated(run.info.run_id, status=tracking.RUN_STATUS[state])
        closed += 1
    if closed:
        log.info(f"closed {closed} MLflow run(s) left RUNNING by trials that had ended")
    return closed


class StaleTrialHandler:
    """Called when a worker died mid-trial (its heartbeat went stale): end the dead trial's MLflow
    run as FAILED, then let Optuna's ``RetryHeartbeatStaleTrialCallback`` queue a retry with the
    same params (the retry gets a new MLflow run, tagged with the trial it retries)."""

    def __init__(self, client: Any, max_retry: int = 3) -> None:
        self.client = client
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        #: The study's MLflow experiment, set once the sweeper has opened it.
        self.experiment_id: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        for run_id in self.runs_of(study, trial):
            try:
                tracking.log_values(self.client, run_id, tags={tracking.STATE_TAG: "FAIL",
                                                               "tuneflow.error": "worker stopped heartbeating"})
                self.client.set_terminated(run_id, status="FAILED")
            except Exception as error:  # noqa: BLE001 - the retry matters more than the bookkeeping
                log.warning(f"could not end MLflow run {run_id} of stale trial {trial.number}: {error}")
        self.retry(study, trial)

    def runs_of(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> set[str]:
        """The dead trial's run, and any RUNNING run tagged with its number: a worker killed between
        creating the run and recording its id on the trial leaves one the trial does not name."""
        run_ids = {str(trial.user_attrs[RUN_ID_ATTR])} if trial.user_attrs.get(RUN_ID_ATTR) else set()
        if self.experiment_id is not None:
            try:
                runs = self.client.search_runs(
                    [self.experiment_id],
                    filter_string=f"tags.`{tracking.STUDY_TAG}` = {tracking.filter_value(study.study_name)} and "
                    f"tags.`{tracking.TRIAL_TAG}` = {tracking.filter_value(trial.number)} and attributes.status = 'RUNNING'",
                )
                run_ids.update(run.info.run_id for run in runs)
            except Exception as error:  # noqa: BLE001 - as above
                log.warning(f"could not search the MLflow runs of stale trial {trial.number}: {error}")
        return run_ids


def study_params(plan: SweepPlan) -> dict[str, Any]:
    settings = plan.settings
    params: dict[str, Any] = {
        "direction": ",".join(settings.directions),
        "objective": settings.objective or "objective",
        "n_trials": settings.n_trials,
        "sampler": type(getattr(plan.sampler, "base", plan.sampler)).__name__,
        "failure_aware": isinstance(plan.sampler, FailureAwareSampler),
        "pruner": str(settings.pruner.get("_target_", "")).rsplit(".", 1)[-1],
    }
    params.update({f"space.{name}": repr(dist) for name, dist in plan.distributions.items()})
    return params
