"""Asynchronous workers: the driver submits N jobs through an engine, each running tuneflow's own
ask-train-tell loop (``StudySweeper.loop`` with one trial at a time) on the study's shared storage.

Hydra's launchers run a sweep batch by batch: a pruned trial's slot waits for its batch-mate, and every
trial pays a fresh process on SLURM or Ray. A worker here starts once and asks for its next trial the
moment its last one ends; the cross-worker protocol (``tuneflow.sweeper.asking``: the study-wide ask
lock, surplus trials, heartbeats) makes N of them run exactly ``n_trials`` together, and retries the
trial of a worker that was killed.

Engines (``hydra.sweeper.workers.engine``):

- ``local``: submitit's local executor, N processes on this machine;
- ``slurm``: submitit's SLURM executor, N jobs of one array (one ``sbatch``);
- ``ray``: N Ray tasks on a local Ray (started bound to 127.0.0.1) or on the cluster at ``ray.address``.

submitit and Ray pickle the job (the app's task function included, with cloudpickle), as Hydra's own
submitit and Ray launchers do; a worker rebuilds the sweeper from it and plans the sweep again (the plan
holds a sampler, which is not meant to be pickled, and is cheap to rebuild once per worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict, read_write

from tuneflow.errors import ConfigError
from tuneflow.storage import urls as backends
from tuneflow.storage.journal import is_journal
from tuneflow.storage.study import StudySettings
from tuneflow.trial.job import TrialOutcome

log = logging.getLogger("tuneflow")

ENGINES = ("local", "slurm", "ray")


@dataclass(frozen=True)
class WorkersSettings:
    """``hydra.sweeper.workers``, checked."""

    engine: str
    n: int
    #: submitit's executor parameters (``local`` and ``slurm``), e.g. timeout_min, slurm_partition.
    submitit: dict[str, Any] = field(default_factory=dict)
    #: Ray: the cluster's address (None: a local Ray bound to 127.0.0.1) and each worker's resources.
    ray_address: str | None = None
    ray_options: dict[str, Any] = field(default_factory=dict)
    #: Folder of submitit's job files (pickles, logs); None: ``<sweep dir>/.workers``.
    folder: str | None = None

    @property
    def multi_node(self) -> bool:
        """Whether jobs may run on other machines (their own folders, their own disks)."""
        return self.engine == "slurm" or (self.engine == "ray" and self.ray_address not in (None, "", "local"))


def workers_settings(node: Mapping[str, Any] | None, n_jobs: int) -> WorkersSettings | None:
    """``hydra.sweeper.workers`` as settings; None when no engine is chosen (the launcher runs batches)."""
    if not node or not node.get("engine"):
        return None
    engine = str(node["engine"])
    if engine not in ENGINES:
        raise ConfigError(f"hydra.sweeper.workers.engine is {engine!r}; use one of {', '.join(ENGINES)} (or null)")
    n = int(node.get("n") or 0)
    if n < 1:
        raise ConfigError(f"hydra.sweeper.workers.n is {n}, but must be at least 1")
    if n_jobs != 1:
        raise ConfigError(
            f"hydra.sweeper.n_jobs is {n_jobs} with hydra.sweeper.workers.engine={engine}: each worker runs one "
            "trial at a time; set hydra.sweeper.workers.n instead"
        )
    submitit = dict(node.get(engine) or {}) if engine in ("local", "slurm") else {}
    ray = dict(node.get("ray") or {})
    address = ray.pop("address", None)
    return WorkersSettings(
        engine=engine,
        n=n,
        submitit=submitit,
        ray_address=None if address in (None, "") else str(address),
        ray_options=ray,
        folder=None if not node.get("folder") else str(node["folder"]),
    )


# --- the driver's stores, once, in absolute form ----------------------------------------------------


def absolute_stores(sweeper_cfg: Mapping[str, Any], settings: StudySettings, workers: WorkersSettings) -> dict[str, Any]:
    """The sweeper's config as every worker must see it: the storage URL, tracking URI and root folder
    the driver resolved, absolute (a worker on Ray or SLURM runs in a folder of its own, where
    ``root_dir=mlruns`` would open an empty store). On a multi-node engine, a SQLite file given by a
    relative path is refused: the nodes would each resolve it on their own disk."""
    root_dir = str(sweeper_cfg.get("root_dir") or "mlruns")
    embedded = backends.is_sqlite(settings.storage_url) or is_journal(settings.storage_url)
    if workers.multi_node and embedded and _relative_sqlite(sweeper_cfg, root_dir):
        kind = "SQLite" if backends.is_sqlite(settings.storage_url) else "a journal file"
        raise ConfigError(
            f"hydra.sweeper.storage is {kind} at a relative path ({_configured_path(sweeper_cfg, root_dir)}), which "
            f"workers.engine={workers.engine} resolves on each node; use hydra/sweeper/storage=postgres, Optuna's "
            "gRPC proxy (hydra.sweeper.storage.url=grpc://HOST:PORT) or an absolute path on a shared file system"
        )
    return {
        **sweeper_cfg,
        "root_dir": str(Path(root_dir).resolve()),
        "storage": _absolute_sqlite(settings.storage_url),
        "tracking_uri": _absolute_sqlite(settings.tracking_uri),
    }


def _relative_sqlite(sweeper_cfg: Mapping[str, Any], root_dir: str) -> bool:
    return not Path(_configured_path(sweeper_cfg, root_dir)).is_absolute()


def _configured_path(sweeper_cfg: Mapping[str, Any], root_dir: str) -> str:
    """The SQLite or journal file as the user wrote it (the default: ``<root_dir>/optuna.journal``)."""
    node = sweeper_cfg.get("storage")
    url = node if isinstance(node, str) else (node or {}).get("url") if isinstance(node, Mapping) else None
    if url and str(url).startswith("sqlite:///"):
        return str(url)[len("sqlite:///"):]
    if url and is_journal(str(url)):
        return str(url)[len("journal://"):]
    if isinstance(node, Mapping) and node.get("kind") == "sqlite":
        return str(Path(root_dir) / backends.SQLITE_FILE)
    return str(backends.embedded_file(root_dir))


def _absolute_sqlite(url: str) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url[len('sqlite:///'):]).resolve()}"
    return url


def absolute_sweep_dir(config: DictConfig) -> None:
    """The jobs' output folders under the driver's sweep folder, wherever a worker runs."""
    sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))
    with read_write(config), open_dict(config):
        config.hydra.sweep.dir = sweep_dir


# --- what a worker runs --------------------------------------------------------------------------


@dataclass
class WorkerJob:
    """Everything one worker needs, pickled by the engine."""

    sweeper_cfg: dict[str, Any]
    space: dict[str, Any]
    zoom: dict[str, Any]
    arguments: list[str]
    config: DictConfig
    hydra_context: Any
    task_function: Any
    singleton_state: Any
    index: int = 0

    def __call__(self) -> list[TrialOutcome]:
        return run_worker(self)


def run_worker(job: WorkerJob) -> list[TrialOutcome]:
    """A worker: tuneflow's loop, one trial at a time, with tuneflow's in-process launcher (a worker
    never submits jobs itself)."""
    with _stopped_once():
        return _run_worker(job)


def _run_worker(job: WorkerJob) -> list[TrialOutcome]:
    import optuna
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, setup_globals

    from tuneflow.console import Terminated, quiet_library_warnings
    from tuneflow.storage.study import forget_job_studies
    from tuneflow.sweeper.launcher import InProcessLauncher
    from tuneflow.sweeper.opening import open_study
    from tuneflow.sweeper.sweep import StudySweeper
    from tuneflow.tracking import trials_csv as results

    quiet_library_warnings()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the driver's sweep sets it
    Singleton.set_state(job.singleton_state)
    setup_globals()
    # Hydra's logging from the start: the worker's lines before its first job go to its log too.
    configure_log(job.config.hydra.hydra_logging, job.config.hydra.verbose)
    HydraConfig.instance().set_config(job.config)
    forget_job_studies()
    cfg = {**job.sweeper_cfg, "workers": None, "n_jobs": 1}
    sweeper = _worker_sweeper(StudySweeper, cfg)
    sweeper.space, sweeper.zoom = job.space, job.zoom
    launcher = InProcessLauncher()
    sweeper.setup(hydra_context=job.hydra_context, task_function=job.task_function, config=job.config,
                  launcher=launcher)
    plan = sweeper.plan(job.arguments)
    assert sweeper.job is not None
    sweeper.job.settings = plan.settings
    opened = open_study(plan)
    csv_path = results.results_csv_path(plan.settings.root_dir, plan.settings.name)
    log.info(f"worker {job.index}: study {plan.settings.name!r}, one trial at a time")
    try:
        outcomes: list[TrialOutcome] = sweeper.loop(opened, plan, csv_path)
        return outcomes
    except Terminated:
        # scancel or a pre-emption (SIGTERM to this worker alone): the loop failed the trial at once;
        # queue it again with the same params, as if its heartbeat had gone stale (a retry is no
        # failure). A stop of the whole sweep (Ctrl-C, SIGTERM to the driver: a KeyboardInterrupt
        # here) leaves the trial FAIL, as Ctrl-C does on one process.
        retry_in_flight(opened, sweeper.in_flight)
        raise


@contextlib.contextmanager
def _stopped_once() -> Iterator[None]:
    """SIGTERM (scancel, a pre-emption) ends the worker as Ctrl-C does, the running trial FAIL at once;
    Ray's cancel raises KeyboardInterrupt through the same SIGINT handler. Only the first signal
    counts: a terminal's Ctrl-C reaches a local worker, and then submitit's controller sends its own
    SIGINT, which would break off the trial's clean-up (its MLflow run left for the driver to close,
    FAILED instead of KILLED). The handlers are put back after: a Ray worker process runs other tasks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from tuneflow.console import Terminated

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in before:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in before.items():
            if handler is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(number, handler)


def _worker_sweeper(base: Any, cfg: dict[str, Any]) -> Any:
    """A ``StudySweeper`` that remembers the trials it is running (``in_flight``)."""

    class WorkerSweeper(base):  # type: ignore[misc]
        in_flight: list[int] = []

        def launch(self, plan: Any, trials: Sequence[Any]) -> Any:
            self.in_flight = [trial.number for trial in trials]
            for number in self.in_flight:
                # Which worker runs which trial, in the worker's log (``scancel`` the right one).
                log.info(f"trial {number} started in this worker (pid {os.getpid()})")
            returns = super().launch(plan, trials)
            self.in_flight = []
            return returns

    return WorkerSweeper(**cfg)


def retry_in_flight(opened: Any, numbers: Sequence[int]) -> None:
    """The trials a terminated worker was running, failed by its loop: their MLflow runs FAILED and a
    retry each, through the handler a stale heartbeat would call (``opening.StaleTrialHandler``)."""
    from optuna.trial import TrialState

    from tuneflow.sweeper.opening import StaleTrialHandler

    handler = StaleTrialHandler(opened.client)
    handler.experiment_id = opened.client.get_run(opened.parent_run_id).info.experiment_id
    trials = {trial.number: trial for trial in opened.study.get_trials(deepcopy=False)}
    for number in numbers:
        trial = trials.get(number)
        if trial is not None and trial.state == TrialState.FAIL:
            handler(opened.study, trial)
            log.info(f"worker terminated: trial {number} queued again with the same params")


# --- the engines ---------------------------------------------------------------------------------


def run_workers(workers: WorkersSettings, jobs: Sequence[WorkerJob], sweep_dir: Path) -> list[TrialOutcome]:
    """Submit the workers, wait for all; their outcomes. A worker that died (killed, pre-empted) is
    reported; the others retry its trial from its heartbeat. Ctrl-C or SIGTERM cancels every worker."""
    if workers.engine == "ray":
        return _run_ray(workers, jobs)
    return _run_submitit(workers, jobs, sweep_dir)


def _run_submitit(workers: WorkersSettings, jobs: Sequence[WorkerJob], sweep_dir: Path) -> list[TrialOutcome]:
    import submitit

    folder = Path(workers.folder) if workers.folder else sweep_dir / ".workers"
    cluster = "local" if workers.engine == "local" else "slurm"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    parameters = {"name": "tuneflow-worker", "timeout_min": 60 * 24, **workers.submitit}
    try:
        executor.update_parameters(**parameters)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"hydra.sweeper.workers.{workers.engine}: {backends.first_line(error)}") from None
    with executor.batch():  # one sbatch array on SLURM
        submitted = [executor.submit(job) for job in jobs]
    log.info(f"{len(submitted)} workers submitted through submitit ({cluster}); job files in {folder}")
    try:
        return _collect(submitted, _submitit_done, _submitit_result, lambda job: job.cancel(check=False))
    except BaseException:
        for job in submitted:
            try:
                job.cancel(check=False)
            except Exception as error:  # noqa: BLE001 - cancelling the rest matters more
                log.warning(f"could not cancel worker {job.job_id}: {error}")
        if workers.engine == "local":
            # Each worker fails its running trial (a SIGINT from submitit's controller, a second later a
            # SIGKILL): exit only once they have, so nothing is RUNNING when this command ends. On SLURM
            # each job has scancel's KillWait (30 s) of its own, whatever the driver does.
            _wait_for(lambda: all(job.done() for job in submitted), CANCEL_GRACE_S)
        raise


def _submitit_done(job: Any) -> bool:
    """Done once the worker's result is saved: submitit's local job reports done only when its process
    has exited, seconds later (the interpreter's teardown), and the driver's summary would wait for it."""
    return bool(job.paths.result_pickle.exists() or job.done())


def _submitit_result(job: Any) -> list[TrialOutcome]:
    """A worker's outcomes from its saved result (submitit saves it whole, through a temporary file);
    an error or a missing result through ``job.result()``, which raises the worker's error."""
    from submitit.core.utils import pickle_load

    if job.paths.result_pickle.exists():
        outcome, result = pickle_load(job.paths.result_pickle)
        if outcome == "success":
            return list(result)
    return list(job.result())


#: Seconds the other workers get to end once one worker ended its loop (the study was done when it did).
#: A worker cancelled outside tuneflow (``scancel``) may never be reported done where the engine cannot
#: tell (SLURM without accounting: submitit's ``sacct`` sees nothing): it is given up after this.
GRACE_S = 60.0
#: Seconds cancelled workers (Ctrl-C or SIGTERM here) get to fail their running trials before the driver
#: gives up on them (Ray: kills them, and shuts the local Ray down).
CANCEL_GRACE_S = 30.0


def _collect(handles: Sequence[Any], done: Any, result: Any, cancel: Any = None) -> list[TrialOutcome]:
    """Wait for every worker; outcomes of those that ended, one warning per dead one; an error when all died."""
    pending = list(handles)
    outcomes: list[TrialOutcome] = []
    errors: list[str] = []
    give_up_at: float | None = None
    while pending:
        time.sleep(0.2)
        for handle in [h for h in pending if done(h)]:
            pending.remove(handle)
            try:
                outcomes.extend(result(handle))
                # A worker's loop ends when nothing is left to run or running elsewhere: the rest end soon.
                give_up_at = give_up_at or time.monotonic() + GRACE_S
            except Exception as error:  # noqa: BLE001 - engines wrap a worker's death in many types
                if _is_usage_error(error):
                    raise ConfigError(_usage_message(error)) from None
                errors.append(_last_line(error))
                log.warning(f"a worker ended without finishing: {errors[-1]}; the others retry its trial")
        if pending and give_up_at is not None and time.monotonic() > give_up_at:
            log.warning(f"{len(pending)} worker(s) still not reported done {GRACE_S:.0f}s after the study ended "
                        "(cancelled outside tuneflow?); a worker ended without finishing, given up")
            errors.extend("given up" for _ in pending)
            for handle in pending:
                if cancel is not None:
                    cancel(handle)
            pending = []
    if errors and len(errors) == len(handles):
        raise ConfigError(f"every worker failed; the first: {errors[0]}")
    return outcomes


def _is_usage_error(error: BaseException) -> bool:
    return "tuneflow.errors" in str(error) or isinstance(error, ConfigError)


def _usage_message(error: BaseException) -> str:
    if isinstance(error, ConfigError):
        return str(error)
    lines = [line for line in str(error).splitlines() if "Error: " in line and "tuneflow" in line]
    return lines[-1].split("Error: ", 1)[1] if lines else _last_line(error)


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _run_ray(workers: WorkersSettings, jobs: Sequence[WorkerJob]) -> list[TrialOutcome]:
    import ray

    from tuneflow.console import terminate_like_interrupt

    started_here = not ray.is_initialized()
    token_existed = RAY_TOKEN_FILE.exists()
    if started_here:
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if workers.ray_address is None:
            # A local Ray for this sweep: bound to loopback, one CPU slot per worker.
            init.update(_node_ip_address="127.0.0.1", num_cpus=max(workers.n, os.cpu_count() or 1))
        else:
            init["address"] = workers.ray_address
        ray.init(**init)
    # ray.init installs its own SIGTERM handler (exit 1, the parent run FAILED); SIGTERM must end the
    # driver as Ctrl-C does (143, the parent run KILLED), as without Ray.
    terminate_like_interrupt()
    options = {"num_cpus": 1, "max_retries": 0, **workers.ray_options}
    remote = ray.remote(_ray_worker).options(**options)
    futures = [remote.remote(job) for job in jobs]
    log.info(f"{len(futures)} workers submitted to Ray ({workers.ray_address or 'local, 127.0.0.1'})")
    try:
        return _collect(futures, lambda f: bool(ray.wait([f], timeout=0)[0]), ray.get)
    except BaseException:
        _cancel_ray_workers(ray, futures)
        raise
    finally:
        if started_here:
            ray.shutdown()
            if workers.ray_address is None:
                _forget_new_token(token_existed)


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _cancel_ray_workers(ray: Any, futures: Sequence[Any]) -> None:
    """Ctrl-C or SIGTERM here: each worker's running trial FAIL (its MLflow run KILLED), as on the local
    engine, not left RUNNING until a later run finds its heartbeat stale. Ray's cancel without force
    raises KeyboardInterrupt in the task, where the loop fails the trial; the driver waits for that
    (``ray.shutdown`` of a local Ray would kill the workers mid-way) and kills what does not end."""
    for future in futures:
        ray.cancel(future)
    _, pending = ray.wait(list(futures), num_returns=len(futures), timeout=CANCEL_GRACE_S)
    for future in pending:
        log.warning(f"a worker did not end within {CANCEL_GRACE_S:.0f}s of its cancel; killed")
        ray.cancel(future, force=True)


#: Where a new local Ray saves its authentication token (Ray's default, ~/.ray/auth_token).
RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def _forget_new_token(existed: bool) -> None:
    """A new local Ray saves a token to ~/.ray/auth_token, outside tuneflow's folders, and that file
    then makes the next ``ray start`` (without it) fail: remove it when this sweep's Ray made it."""
    if not existed and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        RAY_TOKEN_FILE.unlink(missing_ok=True)


def _ray_worker(job: WorkerJob) -> list[TrialOutcome]:
    return run_worker(job)
