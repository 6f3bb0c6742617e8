"""The sweeper behind ``hydra_plugins.tuneflow_sweeper``, step by step (one module each):

1. ``plan``: the search space validated against the app's config, a job checked at the space's corners,
   the sampler built, the stores reachable. Nothing is created yet, so bad input leaves no trace.
2. ``opening``: create or resume the Optuna study (with its pruner) on a shared storage, and the study's
   MLflow parent run.
3. the loop, here: until the study holds ``n_trials`` finished trials (across every worker and earlier
   run), ask a batch under the study's lock (``asking``: the cross-worker protocol and its invariants),
   launch the trials as Hydra jobs numbered by their trials (each job runs the app's task inside
   ``tuneflow.trial.job.TrialJob``: it opens the same study and becomes its trial, which is how it
   reports per epoch and gets pruned), tell their outcomes (``outcomes``), rewrite the CSV.
4. ``summary``: best trial, parent run, CSV, ``optimization_results.yaml``.

The sweeper knows Optuna, Hydra's launcher and the trial protocol; nothing of the app's config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from tuneflow.console import interrupt_behind
from tuneflow.errors import ConfigError, TuneflowError
from tuneflow.search import space as search_space
from tuneflow.storage.creation import store_failure
from tuneflow.storage.study import count_trials, forget_job_studies, share_with_jobs
from tuneflow.storage.urls import first_line, shown
from tuneflow.sweeper.asking import TrialAsker
from tuneflow.sweeper.opening import OpenStudy, close_finished_trial_runs, open_study
from tuneflow.sweeper.outcomes import consecutive_runs, outcome_of, progress_lines, tell
from tuneflow.sweeper.plan import SweepPlan, plan_sweep
from tuneflow.sweeper.summary import (
    save_optimization_results,
    summarise_to_parent,
    summary_lines,
)
from tuneflow.sweeper.workers import (
    WorkerJob,
    WorkersSettings,
    absolute_stores,
    absolute_sweep_dir,
    run_workers,
    workers_settings,
)
from tuneflow.tracking import trials_csv as results
from tuneflow.trial.job import TrialJob, TrialOutcome

log = logging.getLogger("tuneflow")


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Python's full garbage collections during the trials skip the objects that exist before them
    (imported modules, Hydra's configs, the study): on 2 cores they scanned them every ~15 trials,
    ~0.45 s of a 100-trial sweep's in-study time of the quadratic arch, ~0.2 s with them frozen.
    Frozen objects are still freed when unreferenced; only cycles among them wait for the unfreeze."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class StudySweeper:
    def __init__(
        self,
        sampler: Any = None,
        pruner: Any = None,
        direction: Any = None,
        directions: Any = None,
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.25,
        heartbeat_interval: int | None = 60,
        params: Any = None,
        zoom: Any = None,
        custom_search_space: str | None = None,
        objective: Any = None,
        root_dir: str = "mlruns",
        tracking_uri: str | None = None,
        experiment: str | None = None,
        params_node: str | None = None,
        log_params: Any = None,
        mlflow_autolog: bool = False,
        failure_aware: bool = True,
        progress_interval: float | None = 30.0,
        allow_changed_study: bool = False,
        study_keys: Any = None,
        workers: Any = None,
    ) -> None:
        self.sweeper_cfg: dict[str, Any] = {
            "sampler": _plain(sampler),
            "pruner": _plain(pruner),
            "direction": _plain(direction),
            "directions": _plain(directions),
            "study_name": study_name,
            "storage": storage,
            "n_trials": n_trials,
            "n_jobs": n_jobs,
            "max_failure_rate": max_failure_rate,
            "heartbeat_interval": heartbeat_interval,
            "objective": _plain(objective),
            "root_dir": root_dir,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "params_node": params_node,
            "log_params": list(_plain(log_params) or []),
            "mlflow_autolog": mlflow_autolog,
            "custom_search_space": custom_search_space,
            "failure_aware": failure_aware,
            "allow_changed_study": allow_changed_study,
            "study_keys": [str(key) for key in _plain(study_keys) or []],
            "workers": _plain(workers),
        }
        self.progress_interval = progress_interval
        self.space: dict[str, Any] = _plain(params) or {}
        self.zoom: dict[str, Any] = _plain(zoom) or {}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job: TrialJob | None = None
        self.task_function: TaskFunction | None = None
        #: The app's plan-time check of a job config (the task function's ``tuneflow_check``), if any.
        self.check_job: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig,
              launcher: Any = None) -> None:
        """``launcher``: one to use instead of the configured ``hydra.launcher`` (an asynchronous worker's
        in-process one)."""
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.check_job = getattr(task_function, "tuneflow_check", None)
        # The launcher runs every job through TrialJob: the app's task becomes an Optuna trial with its
        # MLflow run, whatever launcher (in-process, joblib, submitit, Ray) runs it.
        self.job = TrialJob(task_function, progress_interval=self.progress_interval)
        if launcher is not None:
            # An asynchronous worker's: its log file is no console, the launcher's per-job lines stay.
            launcher.setup(hydra_context=hydra_context, task_function=self.job, config=config)
            self.launcher = launcher
        else:
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=self.job, config=config
            )
            quiet_launcher(self.launcher)

    def plan(self, arguments: Sequence[str]) -> SweepPlan:
        assert self.config is not None
        return plan_sweep(self.sweeper_cfg, self.space, self.zoom, arguments, self.config, self.compose_job,
                          self.check_job)

    def compose_job(self, overrides: list[str]) -> DictConfig:
        """Compose one job's config now, so a type error shows before the study exists."""
        assert self.hydra_context is not None and self.config is not None
        try:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as error:  # noqa: BLE001 - Hydra raises several types; all mean the same
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(f"search space: a trial's config does not compose: {first_line}") from None

    def sweep(self, arguments: list[str]) -> list[TrialOutcome]:
        from tuneflow.console import quiet_library_warnings

        quiet_library_warnings()  # in any app, as in tuneflow's own
        if self.progress_interval is not None and self.progress_interval < 0:
            raise ConfigError(f"hydra.sweeper.progress_interval is {self.progress_interval}, but must be a "
                              "number of seconds >= 0 (null or 0 = no progress lines)")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        forget_job_studies()
        plan = self.plan(arguments)
        assert self.job is not None and self.config is not None
        workers = workers_settings(self.sweeper_cfg.get("workers"), plan.n_jobs)
        worker_cfg = None if workers is None else absolute_stores(self.sweeper_cfg, plan.settings, workers)
        # Travels with the job to wherever the launcher runs it: with the root folder absolute, as a job
        # Hydra's Ray launcher runs in a folder of its own would otherwise open an empty store there.
        self.job.settings = dataclasses.replace(plan.settings, root_dir=str(Path(plan.settings.root_dir).resolve()))
        with store_errors(plan):
            opened = open_study(plan)
        csv_path = results.results_csv_path(plan.settings.root_dir, plan.settings.name)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        outcomes: list[TrialOutcome] = []
        status = "FAILED"
        try:
            with store_errors(plan):
                if workers is None or worker_cfg is None:
                    outcomes = self.loop(opened, plan, csv_path)
                else:
                    outcomes = self.run_workers(workers, worker_cfg, arguments, sweep_dir)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            problem = finish_study(opened, csv_path, status)
        if problem is not None:
            raise ConfigError(problem)
        for line in summary_lines(opened.study, plan.settings.name, plan.settings.objective, opened.parent_run_id,
                                  csv_path):
            log.info(line)
        save_optimization_results(opened.study, sweep_dir)
        return outcomes

    def loop(self, opened: OpenStudy, plan: SweepPlan, csv_path: Path) -> list[TrialOutcome]:
        with startup_objects_frozen():
            return self._loop(opened, plan, csv_path)

    def _loop(self, opened: OpenStudy, plan: SweepPlan, csv_path: Path) -> list[TrialOutcome]:
        study, settings = opened.study, plan.settings
        share_with_jobs(settings.storage_url, study)  # its jobs in this process read through the sweeper's cache
        asker = TrialAsker(study, opened.storage, plan, self.config)
        csv_file = results.ThrottledCsv(csv_path)
        outcomes: list[TrialOutcome] = []
        told: list[TrialOutcome] = []  # the last batch's outcomes, reported with the next read
        announced_wait = False
        # The failure cap applies to this run: failures an earlier run left behind (then fixed by the
        # user) must not stop the study forever.
        failed_before = count_trials(study)["failed"]
        while True:
            read = asker.read_and_ask(failed_before)
            counts = read.counts
            for line in progress_lines(told, counts, read.best, asker.target):
                log.info(line)
            if told:
                csv_file.write_if_due(read.trials)
            told = []
            if read.remaining <= 0:
                if counts["running"] and settings.heartbeat_interval:
                    # A trial running elsewhere may belong to a worker that died: stay until it ends,
                    # or until its heartbeat goes stale and this worker retries it.
                    asker.adopt_running_trials(read.trials)
                    if not announced_wait:
                        announced_wait = True
                        log.info(
                            f"waiting for {counts['running']} trial(s) running in other workers; a trial whose "
                            f"worker stops heartbeating for {2 * settings.heartbeat_interval}s is retried here"
                        )
                    asker.wait_for_running(counts["running"], min(settings.heartbeat_interval, 5))
                    continue
                if not outcomes:
                    log.info(already_done_line(settings.name, counts, asker.target, plan.grid_size))
                return outcomes
            announced_wait = False
            trials = read.asked
            if not trials:
                continue
            try:
                with asker.heartbeats(trials):
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

    def run_workers(self, workers: WorkersSettings, worker_cfg: dict[str, Any], arguments: list[str],
                    sweep_dir: Path) -> list[TrialOutcome]:
        """The loop above, in ``workers.n`` asynchronous workers submitted through ``workers.engine``
        (``tuneflow.sweeper.workers``); this process waits for them."""
        from hydra.core.singleton import Singleton

        assert self.config is not None
        config = self.config.copy()
        absolute_sweep_dir(config)
        jobs = [
            WorkerJob({**worker_cfg, "progress_interval": self.progress_interval}, self.space, self.zoom,
                      list(arguments), config, self.hydra_context,
                      self.task_function, Singleton.get_state(), index)
            for index in range(workers.n)
        ]
        return run_workers(workers, jobs, sweep_dir.resolve())

    def launch(self, plan: SweepPlan, trials: Sequence[optuna.trial.Trial]) -> list[JobReturn]:
        """Launch the trials as Hydra jobs whose job number is the trial number (the job learns its
        trial from ``hydra.job.num``; output folders and logs are named by it). A launcher numbers the
        jobs of one call consecutively, so trials with gaps between their numbers (a retried or
        enqueued trial asked beside new ones) go in several calls."""
        returns: list[JobReturn] = []
        for run in consecutive_runs([trial.number for trial in trials]):
            batch = [job_overrides(plan, trial) for trial in trials if trial.number in run]
            returns.extend(self.launcher.launch(batch, initial_job_idx=run[0]))
            self.restore_logging()
        return returns

    def restore_logging(self) -> None:
        """Hydra's basic launcher leaves the last job's logging in place: the sweeper's lines would go to
        that trial's log file, in the job's format. Back to Hydra's own (tuneflow's launcher and the
        launchers that run jobs in other processes leave it so; a file handler on the root logger is
        the job's)."""
        assert self.config is not None
        if any(isinstance(handler, logging.FileHandler) for handler in logging.getLogger().handlers):
            from hydra.core.utils import configure_log

            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)


def quiet_launcher(launcher: Any) -> None:
    """Keep the launcher's per-job lines (``Launching 1 jobs locally``, ``#N : <overrides>``) off the
    console: the sweeper prints one line per finished trial, and each trial's log file starts with its
    overrides. Hydra's launchers log at INFO on their module's logger; their warnings still show."""
    package = type(launcher).__module__.rpartition(".")[0] or type(launcher).__module__
    logging.getLogger(package).setLevel(logging.WARNING)


@contextlib.contextmanager
def store_errors(plan: SweepPlan) -> Iterator[None]:
    """A store that cannot be written (a full disk, a read-only folder, a damaged file) as one line naming
    the stores, instead of the traceback of whichever library met it first."""
    try:
        yield
    except Exception as error:
        failure = None if isinstance(error, TuneflowError) else store_failure(error)
        if failure is None:
            raise
        stores = f"{shown(plan.settings.storage_url)} or {shown(plan.settings.tracking_uri)}"
        raise ConfigError(f"study {plan.settings.name!r}: cannot write to {stores}: {failure}") from None


def finish_study(opened: OpenStudy, csv_path: Path, status: str) -> str | None:
    """The CSV, the parent run's summary and status, and no trial run left RUNNING: each step tried even
    if one before it fails (a full disk, an artifact folder that refuses writes), so the parent run is
    never left RUNNING. Returns the first failure as a line for the user (also logged: when the sweep
    itself failed, its error is the one raised)."""
    steps: list[tuple[str, Any]] = [
        (f"write {csv_path}", lambda: results.write_trials_csv(opened.study, csv_path)),
        ("save the CSV as the parent run's artifact",
         lambda: opened.client.log_artifact(opened.parent_run_id, str(csv_path))),
        ("write the summary to the parent run",
         lambda: summarise_to_parent(opened.client, opened.parent_run_id, opened.study)),
        ("end the parent run", lambda: opened.client.set_terminated(opened.parent_run_id, status=status)),
        ("end trial runs left RUNNING",
         lambda: close_finished_trial_runs(
             opened.client, opened.client.get_run(opened.parent_run_id).info.experiment_id, opened.study)),
    ]
    first: str | None = None
    interrupted: KeyboardInterrupt | None = None
    for what, step in steps:
        try:
            step()
        except Exception as error:  # noqa: BLE001 - the other steps must still run; reported below
            # A Ctrl-C landing inside a store call can surface as that store's error ("This transaction
            # is closed"); the user stopped the run, so it ends as the interrupt, not as one error line.
            interrupted = interrupted or interrupt_behind(error)
            line = f"cannot {what}: {store_failure(error) or first_line(error)}"
            log.warning(line)
            first = first or line
    if interrupted is not None:
        raise interrupted
    return first


def already_done_line(name: str, counts: dict[str, int], target: int, grid_size: int | None) -> str:
    """Why a run ran nothing: the study already holds what this run asks for (say which bound it is)."""
    finished, running = counts["finished"], counts["running"]
    elsewhere = f" ({running} running elsewhere)" if running else ""
    if grid_size is not None and target == grid_size:
        return (f"study {name!r} already has {finished} trials finished{elsewhere}, and this run's grid has "
                f"{grid_size} points: nothing left to run; use another hydra.sweeper.study_name for another grid")
    if finished > target:
        return (f"study {name!r} already has {finished} trials finished{elsewhere}, more than the {target} this "
                "run asks for (hydra.sweeper.n_trials); raise it to run more")
    return f"study {name!r} already has {finished} of {target} trials finished{elsewhere}; raise hydra.sweeper.n_trials to run more"


def job_overrides(plan: SweepPlan, trial: optuna.trial.Trial) -> list[str]:
    """A trial's job: the fixed overrides, then its sampled values."""
    return [*plan.fixed_overrides, *search_space.to_overrides(trial.params, plan.settings.params_node)]


def _plain(node: Any) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
