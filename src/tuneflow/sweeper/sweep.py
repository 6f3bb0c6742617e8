"""The sweeper behind ``hydra_plugins.tuneflow_sweeper``: ask, launch, tell, summarise.

1. ``plan``: read the search space (``hydra.sweeper.params`` + sweeps on the command line), validate it
   against the composed config and let the app check a job at the corners of the space (a task function
   with a ``tuneflow_check`` attribute). Nothing is created yet, so bad input leaves no trace.
2. ``open``: create or resume the Optuna study (with its pruner) on a shared storage, and the study's
   MLflow parent run.
3. ``loop``: until the study holds ``n_trials`` finished trials (across every worker and every earlier
   run): ask a batch of trials, launch them as Hydra jobs numbered by their trials (each job runs the app's
   task inside ``tuneflow.trial.job.TrialJob``: it opens the same study and becomes its trial, which is
   how it reports per epoch and gets pruned), tell their outcomes, rewrite the CSV.

The sweeper knows Optuna, Hydra's launcher and the trial protocol; nothing of the app's config.
4. ``summarise``: best trial, parent run, CSV.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneflow.errors import ConfigError, TooManyFailures
from tuneflow.search import space as search_space
from tuneflow.search import zoom
from tuneflow.search.failure_aware import FailureAwareSampler, describe_failures
from tuneflow.search.failure_aware import wrap as failure_aware_wrap
from tuneflow.storage import locks
from tuneflow.storage import urls as backends
from tuneflow.storage.study import (
    AS_OF_ATTR,
    ERROR_ATTR,
    OVERRIDES_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    SURPLUS_ATTR,
    Heartbeat,
    StudySettings,
    best_of,
    best_trial_or_none,
    count_states,
    count_trials,
    forget_job_studies,
    is_surplus,
    open_storage,
    study_settings,
)
from tuneflow.tracking import runs as tracking
from tuneflow.tracking import trials_csv as results
from tuneflow.trial.job import TrialJob, TrialOutcome

log = logging.getLogger("tuneflow")

_STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAIL}


@dataclass
class SweepPlan:
    """What to search and how, validated, before anything exists on disk."""

    settings: StudySettings
    distributions: dict[str, BaseDistribution]
    #: Overrides every job receives unchanged (fixed values from the command line or the space).
    fixed_overrides: list[str]
    sampler: optuna.samplers.BaseSampler
    #: Size of the grid when the grid sampler runs: the study stops when every point was tried.
    grid_size: int | None = None
    n_jobs: int = 1
    max_failures: int = 0
    trial_lines: list[str] = field(default_factory=list)
    #: Trials of an earlier study to run first (``hydra.sweeper.zoom``); the space is narrowed around them.
    finalists: list[optuna.trial.FrozenTrial] = field(default_factory=list)


class StudySweeper:
    def __init__(
        self,
        sampler: Any = None,
        pruner: Any = None,
        direction: str | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.25,
        heartbeat_interval: int | None = 60,
        params: Any = None,
        zoom: Any = None,
        custom_search_space: str | None = None,
        objective: str | None = None,
        root_dir: str = "mlruns",
        tracking_uri: str | None = None,
        experiment: str | None = None,
        params_node: str | None = None,
        log_params: Any = None,
        mlflow_autolog: bool = False,
        failure_aware: bool = True,
    ) -> None:
        self.sweeper_cfg: dict[str, Any] = {
            "sampler": _plain(sampler),
            "pruner": _plain(pruner),
            "direction": direction,
            "study_name": study_name,
            "storage": storage,
            "n_trials": n_trials,
            "n_jobs": n_jobs,
            "max_failure_rate": max_failure_rate,
            "heartbeat_interval": heartbeat_interval,
            "objective": objective,
            "root_dir": root_dir,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "params_node": params_node,
            "log_params": list(_plain(log_params) or []),
            "mlflow_autolog": mlflow_autolog,
            "custom_search_space": custom_search_space,
            "failure_aware": failure_aware,
        }
        self.space: dict[str, Any] = _plain(params) or {}
        self.zoom: dict[str, Any] = _plain(zoom) or {}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job: TrialJob | None = None
        #: The app's plan-time check of a job config (the task function's ``tuneflow_check``), if any.
        self.check_job: Any = None
        #: ``hydra.sweeper.custom_search_space``: called with (config, trial) on every asked trial.
        self.extend_space: Any = None
        self.storage: optuna.storages.RDBStorage | None = None
        #: Trials running elsewhere that this worker has beaten for once (see ``adopt_running_trials``).
        self.adopted: set[int] = set()
        self._study_id: int | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.check_job = getattr(task_function, "tuneflow_check", None)
        # The launcher runs every job through TrialJob: the app's task becomes an Optuna trial with its
        # MLflow run, whatever launcher (in-process, joblib, submitit, Ray) runs it.
        self.job = TrialJob(task_function)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=self.job, config=config
        )

    # --- 1. plan ----------------------------------------------------------------------------

    def plan(self, arguments: Sequence[str]) -> SweepPlan:
        assert self.config is not None
        settings = study_settings(self.sweeper_cfg, str(self.config.hydra.job.name))
        node = settings.params_node
        distributions, space_fixed = search_space.parse_search_space(self.space, node)
        fixed: dict[str, str | None] = dict(space_fixed)
        cli_distributions, cli_fixed = split_arguments(arguments, node)
        # The command line wins over hydra.sweeper.params: a value fixed (or deleted, ~name) there is no
        # longer searched, as in Hydra's Optuna sweeper; a sweep there is no longer fixed.
        overridden = {path.lstrip("~+") for path in cli_fixed}
        distributions = {name: distribution for name, distribution in distributions.items()
                         if search_space.config_path(name, node) not in overridden}
        for path in [*(search_space.config_path(name, node) for name in cli_distributions),
                     *(path.lstrip("~") for path in cli_fixed if path.startswith("~"))]:
            fixed.pop(path, None)
        distributions.update(cli_distributions)
        fixed.update(cli_fixed)
        if not distributions and self.check_job is not None:
            self.check_job(self.config)  # the app may know what is missing (tuneflow's: an architecture)
        # Nothing to search is no error: like Hydra's Optuna sweeper, the study runs n_trials trials of the
        # fixed values (repeats of one configuration).
        self.check_parameters_exist(distributions, node)
        finalists: list[optuna.trial.FrozenTrial] = []
        if self.zoom.get("study"):
            finalists = load_finalists(settings, str(self.zoom["study"]), int(self.zoom.get("top_k", 5)))
            distributions = zoom.narrow(distributions, finalists, float(self.zoom.get("margin", 0.5)))
        # A delete without a value (~name) stays bare; ~name=value deletes only while name has that value.
        fixed_overrides = [path if value is None else f"{path}={value}" for path, value in fixed.items()]
        # The smallest and the largest values of the space: a window longer than a date range, or a
        # range outside the data, shows now instead of failing every trial of a study already created.
        for point in corner_points(distributions):
            job_cfg = self.compose_job(fixed_overrides + search_space.to_overrides(point, node))
            if self.check_job is not None:
                self.check_job(job_cfg)
        sampler_cfg = dict(self.sweeper_cfg["sampler"] or {"_target_": "optuna.samplers.TPESampler"})
        grid_size = None
        if sampler_cfg["_target_"].endswith(".GridSampler"):
            grid = search_space.grid_of(distributions)
            sampler_cfg["search_space"] = grid
            grid_size = math.prod(len(values) for values in grid.values())
        elif sampler_cfg["_target_"].endswith(".BruteForceSampler") and not self.sweeper_cfg["custom_search_space"]:
            # It enumerates the points a grid would; the study stops once each was tried. With define-by-run
            # parameters the points are not known up front: n_trials bounds the study.
            grid_size = math.prod(len(values) for values in search_space.grid_of(distributions, "bruteforce").values())
        from tuneflow.storage.study import build_pruner

        build_pruner(settings.pruner)  # a pruner the jobs cannot build fails now, not in every trial
        self.extend_space = load_space_extender(self.sweeper_cfg["custom_search_space"])
        n_jobs = int(self.sweeper_cfg["n_jobs"])
        if n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs is {n_jobs}, but must be at least 1")
        rate = float(self.sweeper_cfg["max_failure_rate"])
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate is {rate}, but must be between 0 and 1")
        # Last: these connect to the database and the tracking server (still creating nothing).
        backends.check_storage(settings.storage_url)
        backends.check_tracking(settings.tracking_uri)
        return SweepPlan(
            settings=settings,
            distributions=distributions,
            fixed_overrides=fixed_overrides,
            sampler=build_sampler(sampler_cfg, failure_aware=bool(self.sweeper_cfg["failure_aware"])),
            grid_size=grid_size,
            n_jobs=n_jobs,
            max_failures=int(rate * settings.n_trials),
            finalists=finalists,
        )

    def check_parameters_exist(self, distributions: Mapping[str, BaseDistribution], node: str | None) -> None:
        """Every searched name is a value of the app's config (all wrong names in one line)."""
        assert self.config is not None
        missing = []
        for name in distributions:
            path = search_space.config_path(name, node)
            default = OmegaConf.select(self.config, path, default=_Missing)
            if default is _Missing:
                missing.append((name, path))
                continue
            check_choice_types(path, default, distributions[name])
        if missing:
            parent = missing[0][1].rpartition(".")[0]
            siblings = OmegaConf.select(self.config, parent, default=None) if parent else self.config
            known = sorted(str(k) for k in siblings if k != "hydra") if isinstance(siblings, DictConfig) else []
            names = ", ".join(f"{name!r} (no {path})" for name, path in missing)
            where = f" under {parent}" if parent else ""
            raise ConfigError(
                f"search space: not in the app's config: {names}; known names{where}: {', '.join(known) or 'none'}"
            )

    def compose_job(self, overrides: list[str]) -> DictConfig:
        """Compose one job's config now, so a type error shows before the study exists."""
        assert self.hydra_context is not None and self.config is not None
        try:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as error:  # noqa: BLE001 - Hydra raises several types; all mean the same
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(f"search space: a trial's config does not compose: {first_line}") from None

    # --- 2. open ----------------------------------------------------------------------------

    def open(self, plan: SweepPlan) -> tuple[optuna.Study, Any, str]:
        """Create or resume the study and its MLflow parent run.

        Under the study's lock (``locks.study_lock``): workers started together would otherwise
        race to create the same tables (Optuna's and MLflow's migrations fail on that) and the same
        parent run.
        """
        settings = plan.settings
        with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "open"):
            client = tracking.client_for(settings.tracking_uri)
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
            self.storage = storage
            study = optuna.create_study(
                study_name=settings.name,
                storage=storage,
                sampler=plan.sampler,
                pruner=optuna.pruners.NopPruner(),  # pruning happens in the jobs, with the configured pruner
                direction=settings.direction,  # type: ignore[arg-type]
                load_if_exists=True,
            )
            existing = study.direction.name.lower()
            if existing != settings.direction:
                raise ConfigError(
                    f"study {settings.name!r} already exists with direction {existing}; "
                    f"use another hydra.sweeper.study_name or direction={existing}"
                )
            if study.metric_names is None:
                # optuna-dashboard then labels the objective val_accuracy, not "Objective 0".
                study.set_metric_names([settings.objective or "objective"])
            if plan.finalists and not study.get_trials(deepcopy=False):
                zoom.enqueue_finalists(study, plan.finalists, plan.distributions)
            parent_run_id = self.open_parent_run(client, study, plan)
            on_stale_trial.experiment_id = client.get_run(parent_run_id).info.experiment_id
        return study, client, parent_run_id

    def open_parent_run(self, client: Any, study: optuna.Study, plan: SweepPlan) -> str:
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
        tracking.log_values(client, parent_run_id, params=_study_params(plan))
        return parent_run_id

    # --- 3. loop ----------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> list[TrialOutcome]:
        from tuneflow.console import quiet_library_warnings

        quiet_library_warnings()  # in any app, as in tuneflow's own
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        forget_job_studies()
        plan = self.plan(arguments)
        assert self.job is not None
        self.job.settings = plan.settings  # travels with the job to wherever the launcher runs it
        study, client, parent_run_id = self.open(plan)
        csv_path = results.results_csv_path(plan.settings.root_dir, plan.settings.name)
        self._save_multirun_config()
        outcomes: list[TrialOutcome] = []
        status = "FAILED"
        try:
            outcomes = self.loop(study, plan, csv_path)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            results.write_trials_csv(study, csv_path)
            client.log_artifact(parent_run_id, str(csv_path))
            summarise_to_parent(client, parent_run_id, study)
            client.set_terminated(parent_run_id, status=status)
        self.summarise(study, plan, parent_run_id, csv_path)
        return outcomes

    def loop(self, study: optuna.Study, plan: SweepPlan, csv_path: Path) -> list[TrialOutcome]:
        settings = plan.settings
        csv_file = results.ThrottledCsv(csv_path)
        target = settings.n_trials if plan.grid_size is None else min(settings.n_trials, plan.grid_size)
        outcomes: list[TrialOutcome] = []
        told: list[TrialOutcome] = []  # the last batch's outcomes, reported with the next read
        announced_wait = False
        # The failure cap applies to this run: failures an earlier run left behind (then fixed by the
        # user) must not stop the study forever.
        failed_before = count_trials(study)["failed"]
        while True:
            # Count and ask under the study's lock: workers racing for the last places would ask
            # for more than n_trials.
            with locks.study_lock(settings.storage_url, settings.root_dir, settings.name, "ask"):
                optuna.storages.fail_stale_trials(study)
                # One read of the study per batch: progress lines, CSV, failure cap and what is left to run.
                now = study.get_trials(deepcopy=False)
                counts = count_states(now)
                failed_now = counts["failed"] - failed_before
                if failed_now > plan.max_failures:
                    raise TooManyFailures(
                        f"study {settings.name!r}: {failed_now} trials failed, more than "
                        f"max_failure_rate x n_trials = {plan.max_failures}; last error: {last_error(study)}"
                    )
                # A grid visits each point once: a failed point is not retried, so it counts as done.
                done = counts["finished"] + (counts["failed"] if plan.grid_size is not None else 0)
                # Waiting trials are not subtracted: this worker's next ask takes them first.
                remaining = target - done - counts["running"]
                trials = self.ask(study, plan, min(plan.n_jobs, remaining)) if remaining > 0 else []
            for line in progress_lines(told, counts, best_of(now, study.direction), target):
                log.info(line)
            if told:
                csv_file.write_if_due(now)
            told = []
            if remaining <= 0:
                if counts["running"] and settings.heartbeat_interval:
                    # A trial running elsewhere may belong to a worker that died: stay until it ends,
                    # or until its heartbeat goes stale and this worker retries it.
                    self.adopt_running_trials(study, now)
                    if not announced_wait:
                        announced_wait = True
                        log.info(
                            f"waiting for {counts['running']} trial(s) running in other workers; a trial whose "
                            f"worker stops heartbeating for {2 * settings.heartbeat_interval}s is retried here"
                        )
                    time.sleep(min(settings.heartbeat_interval, 5))
                    continue
                if not outcomes:
                    log.info(
                        f"study {settings.name!r} already has {counts['finished']} of {target} trials finished"
                        + (f" ({counts['running']} running elsewhere)" if counts["running"] else "")
                        + "; raise hydra.sweeper.n_trials to run more"
                    )
                return outcomes
            announced_wait = False
            if not trials:
                continue
            try:
                # The worker beats for its trials from the moment it asked for them (the job beats
                # too, but only once it has started): a worker killed in between is noticed as well.
                with self.heartbeats(study, trials, settings.heartbeat_interval):
                    returns = self.launch(plan, trials)
            except BaseException:
                # Interrupted or a launcher failure: no trial of this batch may stay RUNNING.
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            told = [outcome_of(trial.number, job_return) for trial, job_return in zip(trials, returns)]
            for trial, outcome in zip(trials, told):
                tell(study, trial, outcome)
            outcomes.extend(told)
            usage = next((outcome for outcome in told if outcome.usage_error), None)
            if usage is not None:
                # Every trial would fail the same way: stop now, with the fix, instead of at the cap.
                raise ConfigError(f"trial {usage.number}: {usage.usage_error}")

    def launch(self, plan: SweepPlan, trials: Sequence[optuna.trial.Trial]) -> list[JobReturn]:
        """Launch the trials as Hydra jobs whose job number is the trial number (the job learns its
        trial from ``hydra.job.num``; output folders and logs are named by it). A launcher numbers the
        jobs of one call consecutively, so trials with gaps between their numbers (a retried or
        enqueued trial asked beside new ones) go in several calls."""
        returns: list[JobReturn] = []
        for run in consecutive_runs([trial.number for trial in trials]):
            batch = [self.job_overrides(plan, trial) for trial in trials if trial.number in run]
            returns.extend(self.launcher.launch(batch, initial_job_idx=run[0]))
        return returns

    def ask(self, study: optuna.Study, plan: SweepPlan, count: int) -> list[optuna.trial.Trial]:
        """Ask ``count`` trials; one that lost a race with another worker for the last places is
        marked surplus and failed at once, so the study never exceeds ``n_trials``."""
        asked = []
        for _ in range(count):
            trial = study.ask(plan.distributions)
            if self.extend_space is not None:
                # The user's define-by-run parameters (conditional spaces), through Optuna's public suggest API.
                self.extend_space(self.config, trial)
            if is_surplus(study, trial.number, plan.settings.n_trials):
                trial.set_user_attr(SURPLUS_ATTR, True)
                study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr(OVERRIDES_ATTR, plan.fixed_overrides)
            if plan.settings.heartbeat_interval:
                self.first_heartbeat(study, trial.number)
            asked.append(trial)
        # In trial-number order, as ``launch`` numbers the jobs.
        return sorted(asked, key=lambda trial: trial.number)

    def trial_id(self, study: optuna.Study, number: int) -> int:
        assert self.storage is not None
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def first_heartbeat(self, study: optuna.Study, number: int) -> None:
        """Beat once as soon as the trial is asked (under the study's lock): a worker killed before its
        heartbeat thread starts then leaves a trial that goes stale and is retried, not one RUNNING forever."""
        assert self.storage is not None
        self.storage.record_heartbeat(self.trial_id(study, number))

    def adopt_running_trials(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        """Beat once for each trial running elsewhere (of ``trials``, the study as just read). A trial
        asked by an older worker that died before its first heartbeat has none at all, and Optuna never
        finds it stale; after this one beat it goes stale like any other. A live worker's own beats
        carry on regardless."""
        assert self.storage is not None
        for trial in trials:
            if trial.state == TrialState.RUNNING and trial.number not in self.adopted:
                self.adopted.add(trial.number)
                self.storage.record_heartbeat(self.trial_id(study, trial.number))

    def heartbeats(
        self, study: optuna.Study, trials: list[optuna.trial.Trial], interval: int | None
    ) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if interval and self.storage is not None:
            for trial in trials:
                stack.enter_context(Heartbeat(self.storage, self.trial_id(study, trial.number), interval))
        return stack

    def job_overrides(self, plan: SweepPlan, trial: optuna.trial.Trial) -> list[str]:
        return [*plan.fixed_overrides, *search_space.to_overrides(trial.params, plan.settings.params_node)]

    def _save_multirun_config(self) -> None:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

    # --- 4. summarise -----------------------------------------------------------------------

    def summarise(self, study: optuna.Study, plan: SweepPlan, parent_run_id: str, csv_path: Path) -> None:
        best = best_trial_or_none(study)
        counts = count_trials(study)
        lines = [f"study {plan.settings.name!r}: {counts['finished']} finished, {counts['failed']} failed"]
        failures = describe_failures(study.get_trials(deepcopy=False))
        if failures:
            lines.append(f"where trials failed: {failures}")
        if best is not None:
            params = ", ".join(f"{k}={v}" for k, v in best.params.items())
            lines.append(f"best trial #{best.number}: {plan.settings.objective or 'objective'}={best.value:.6g} ({params})")
        lines.append(f"MLflow parent run: {parent_run_id}")
        lines.append(f"results CSV: {csv_path}")
        for line in lines:
            log.info(line)
        if best is not None:
            self._save_optimization_results(best)

    def _save_optimization_results(self, best: FrozenTrial) -> None:
        """``optimization_results.yaml`` in the sweep folder, as Hydra's Optuna sweeper writes it (scripts
        written for it read ``best_params`` and ``best_value`` there)."""
        assert self.config is not None
        results = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value,
                   "best_trial": best.number}
        OmegaConf.save(OmegaConf.create(results), Path(str(self.config.hydra.sweep.dir)) / "optimization_results.yaml")


class _Missing:
    """Sentinel for a config path that does not exist."""


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
                    filter_string=f"tags.`{tracking.STUDY_TAG}` = '{study.study_name}' and "
                    f"tags.`{tracking.TRIAL_TAG}` = '{trial.number}' and attributes.status = 'RUNNING'",
                )
                run_ids.update(run.info.run_id for run in runs)
            except Exception as error:  # noqa: BLE001 - as above
                log.warning(f"could not search the MLflow runs of stale trial {trial.number}: {error}")
        return run_ids


def load_finalists(settings: StudySettings, name: str, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The best completed trials of study ``name`` on this study's storage, to zoom in on."""
    if name == settings.name:
        raise ConfigError(f"hydra.sweeper.zoom.study is {name!r}, the study itself; name an earlier study")
    url = settings.storage_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise ConfigError(f"hydra.sweeper.zoom.study: no study {name!r}, there is no storage at {url} yet")
    storage = open_storage(url)
    try:
        source = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise ConfigError(f"hydra.sweeper.zoom.study: no study {name!r} in {url}; studies there: {known}") from None
    finalists = zoom.top_trials(source.get_trials(deepcopy=False), source.direction.name.lower(), top_k)
    if not finalists:
        raise ConfigError(f"hydra.sweeper.zoom.study: study {name!r} has no completed trial to zoom in on")
    return finalists


def check_choice_types(path: str, default: Any, distribution: BaseDistribution) -> None:
    """A numeric parameter given text choices would fail in every trial: say so before the study."""
    numeric_default = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not numeric_default or not isinstance(distribution, CategoricalDistribution):
        return
    texts = [c for c in distribution.choices if isinstance(c, str)]
    if texts:
        raise ConfigError(
            f"search space: {path} is a number (default {default}), but its choice() includes {texts[0]!r}"
        )


def load_space_extender(path: str | None) -> Any:
    """``hydra.sweeper.custom_search_space``: a ``module.function(cfg, trial)`` that suggests more
    parameters on each trial, as with Hydra's Optuna sweeper."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return get_method(str(path))
    except Exception as error:  # noqa: BLE001 - Hydra raises several types for an unloadable path
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"hydra.sweeper.custom_search_space {path!r} cannot be loaded: {first}") from None


def consecutive_runs(numbers: Sequence[int]) -> list[list[int]]:
    """``[3, 4, 9, 10, 11]`` -> ``[[3, 4], [9, 10, 11]]`` (sorted first)."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


def split_arguments(
    arguments: Sequence[str], node: str | None = None
) -> tuple[dict[str, BaseDistribution], dict[str, str | None]]:
    """Command-line arguments of a multirun: sweeps join the search space, the rest stay fixed. A delete
    (``~name``, ``~name=value``) goes to every job as a delete: key ``~name``, value None when bare."""
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str | None] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()  # with its prefix: ~name, +name, ++name
        if override.is_delete():
            fixed[key] = None if override.value() is None else override.get_value_element_as_str()
        elif override.is_sweep_override():
            distributions[search_space.short_name(key, node)] = search_space.to_distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return distributions, fixed


def corner_points(distributions: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
    """Two valid points of the space, to test-compose a job: every parameter at its smallest value,
    then at its largest (choices that are not all numbers: the first choice in both)."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for name, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            choices = list(distribution.choices)
            numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
            low[name] = min(choices) if numeric else choices[0]  # type: ignore[type-var]
            high[name] = max(choices) if numeric else choices[0]  # type: ignore[type-var]
        else:
            low[name] = distribution.low  # type: ignore[attr-defined]
            high[name] = distribution.high  # type: ignore[attr-defined]
    return [low, high] if high != low else [low]


def build_sampler(sampler_cfg: Mapping[str, Any], failure_aware: bool = True) -> optuna.samplers.BaseSampler:
    """The configured sampler; failure-aware (``tuneflow.search.failure_aware.wrap``: all but the grid) unless turned off."""
    from hydra.utils import instantiate

    sampler = instantiate(dict(sampler_cfg), _convert_="all")
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise ConfigError(f"hydra.sweeper.sampler builds {type(sampler).__name__}, not an Optuna sampler")
    return failure_aware_wrap(sampler) if failure_aware else sampler


def outcome_of(number: int, job_return: JobReturn) -> TrialOutcome:
    """The job's own outcome, or a FAIL outcome if the job raised before it could produce one."""
    if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, TrialOutcome):
        return job_return.return_value
    error = getattr(job_return, "_return_value", None)
    return TrialOutcome(number=number, state="FAIL", error=f"{type(error).__name__}: {error}")


def tell(study: optuna.Study, trial: optuna.trial.Trial, outcome: TrialOutcome) -> None:
    if outcome.error:
        trial.set_user_attr(ERROR_ATTR, outcome.error[:4000])
    if outcome.state == "COMPLETE":
        study.tell(trial, outcome.value, skip_if_finished=True)
    else:
        study.tell(trial, state=_STATES[outcome.state], skip_if_finished=True)


def progress_lines(
    outcomes: Sequence[TrialOutcome], counts: Mapping[str, int], best: FrozenTrial | None, target: int
) -> list[str]:
    """One line per finished job; ``counts`` and ``best`` as the study stands after the whole batch."""
    finished = counts["finished"] - sum(o.state in ("COMPLETE", "PRUNED") for o in outcomes)
    lines = []
    for outcome in outcomes:
        finished += outcome.state in ("COMPLETE", "PRUNED")
        lines.append(progress_line(outcome, finished, best, target))
    return lines


def progress_line(outcome: TrialOutcome, finished: int, best: FrozenTrial | None, target: int) -> str:
    value = "" if outcome.value is None else f" value={outcome.value:.6g}"
    detail = ""
    if outcome.state == "PRUNED":
        detail = f" at step {outcome.pruned_at_step}"
    elif outcome.state == "FAIL":
        detail = f" ({outcome.error})"
    best_text = "" if best is None else f" | best={best.value:.6g} (#{best.number})"
    return (
        f"[{finished}/{target}] trial {outcome.number} {outcome.state}{detail}{value}"
        f" in {outcome.seconds:.1f}s{best_text}"
    )


def last_error(study: optuna.Study) -> str:
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if ERROR_ATTR in t.user_attrs]
    return failed[-1].user_attrs[ERROR_ATTR] if failed else "unknown"


def summarise_to_parent(client: Any, parent_run_id: str, study: optuna.Study) -> None:
    """The parent run shows the study's best so far and its counts."""
    best = best_trial_or_none(study)
    counts = count_trials(study)
    metrics = [(f"n_{state}", float(n), 0) for state, n in counts.items()]
    tags: dict[str, Any] = {}
    if best is not None and best.value is not None:
        metrics.append(("best_value", float(best.value), 0))
        tags = {"tuneflow.best_trial": best.number, "tuneflow.best_run_id": best.user_attrs.get(RUN_ID_ATTR, "")}
    tracking.log_values(client, parent_run_id, metrics=metrics, tags=tags)


def _study_params(plan: SweepPlan) -> dict[str, Any]:
    settings = plan.settings
    params: dict[str, Any] = {
        "direction": settings.direction,
        "objective": settings.objective or "objective",
        "n_trials": settings.n_trials,
        "sampler": type(getattr(plan.sampler, "base", plan.sampler)).__name__,
        "failure_aware": isinstance(plan.sampler, FailureAwareSampler),
        "pruner": str(settings.pruner.get("_target_", "")).rsplit(".", 1)[-1],
    }
    params.update({f"space.{name}": repr(dist) for name, dist in plan.distributions.items()})
    return params


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node
