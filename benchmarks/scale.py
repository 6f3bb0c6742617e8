"""Scale: what one suggestion, the sweeper's per-trial bookkeeping, the CSV export and an MLflow search over
all runs cost when a study holds 100, 1,000 and 10,000 trials, and how much memory that takes.

The study is tuneflow's: the sampler ``tuneflow.search.samplers.default_sampler`` on SQLite
(``hydra/sweeper/storage=sqlite``, the default before the journal: under the project folder, built by
``tuneflow.storage.study.open_storage`` as the sweeper builds it, with heartbeats; the journal copy below is
the default now), over the MLP's default search space (8 hyperparameters). Its trials look like tuneflow's:
8 params, a value, 20 per-epoch intermediate values, the user attributes the trial runner sets (MLflow run
id, final metrics). The MLflow store holds one run per trial, shaped like tuneflow's trial runs (tags,
12 params, 20 steps of 3 metrics, 5 final metrics).

Filling. Written one by one through the public APIs, 10,000 trials and 10,000 runs take close to
two hours on this machine (the first trials and runs are written that way and timed: see the fill line).
So the rest are written in batches, 1,000 per transaction, with the libraries' own ORM models
(``optuna.storages._rdb.models``, ``mlflow.store.tracking.dbmodels.models``) and serialisers: the rows are
the ones the public calls write. The benchmark checks this: a bulk-written trial, read back through
``optuna.load_study``, equals the trial it was built from, as one written by ``study.add_trial`` does; a
bulk-written run, read back by ``MlflowClient.get_run``, has the same params, metrics and tags as the run
written through ``MlflowClient`` that it copies. Only what is measured afterwards matters, and that all
goes through the public APIs.

Measured at each size (after filling up to it):
  ask / tell         the live sweeper (``tuneflow.sweeper.asking.TrialAsker``, batches of one trial): Optuna's
                     ``study.ask`` inside ``read_and_ask`` (the sampler with its storage reads and writes), wall
                     and CPU, then ``study.tell``; median over the next 20 trials (Optuna caches finished trials).
  bookkeeping        the rest of ``read_and_ask``: the study lock, ``fail_stale_trials``, one read of the study,
                     counts and best so far (``tuneflow.storage.tally``), the surplus check, the first heartbeat.
  joining worker     a new worker's view: a fresh storage (``open_storage`` with heartbeats), ``load_study`` and
                     its read of every trial (cold read), then its first ``read_and_ask`` (its first suggestion);
                     wall and CPU seconds (CPU: what it takes on an idle core; the machine is shared).
  its first report   that worker's first trial run as its job in the worker's process (``load_study_for_job``,
                     tuneflow's default MedianPruner): 20 ``trial.report`` + ``should_prune``, as
                     ``tuneflow.report`` does; the first includes loading the job's study, "report" is the
                     median of the others.
  journal            the same trials in Optuna's journal file (35 operations per trial as the sweeper writes
                     them), opened as tuneflow opens ``journal:///PATH`` (``open_storage``: Optuna's
                     ``JournalStorage`` with tuneflow's file heartbeats): a worker joining replays the file, its
                     first ``read_and_ask``, its first job's reports; then the live sweeper's ask / tell /
                     bookkeeping on that storage, as above; file size.
  CSV                ``tuneflow.tracking.trials_csv.write_trials_csv`` of the whole study; the sweeper rewrites it
                     at most once per max(2 s, 20 x its duration), so its share of the sweeper's time is
                     bounded (the share column: the most it can be at that size).
  MLflow search      ``MlflowClient.search_runs`` over the experiment with tuneflow's trial filter, 1,000
                     per page, every page.
  best run           the best trial's run as tuneflow finds it: the best trial from Optuna, its run by tag
                     (MLflow's ``order_by=metrics.objective`` search took 50 s at 10,000 runs; tuneflow
                     never makes it).
  log one run        one more trial's MLflow run written through the public API (create_run, log_batch,
                     set_terminated): does writing get slower as the store grows?
  RSS                resident memory of this process after the size's measurements, and its peak so far
                     (Optuna's cache holds every trial; MLflow's searches hold their pages).

Usage: python benchmarks/scale.py [--sizes 100,1000,10000] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from _common import markdown_table, progress
from optuna.distributions import BaseDistribution
from optuna.storages.journal import BaseJournalBackend as JournalBackendBase
from optuna.trial import FrozenTrial, TrialState

from tuneflow.search.samplers import default_sampler
from tuneflow.storage.study import (
    StudySettings,
    best_trial_or_none,
    open_storage,
)
from tuneflow.storage.urls import sqlite_storage_url
from tuneflow.sweeper.asking import TrialAsker
from tuneflow.sweeper.plan import SweepPlan
from tuneflow.tracking import trials_csv as tuneflow_results

STUDY = "scale"
STEPS = 20
TIMED_SUGGESTIONS = 20
BATCH = 1000
PUBLIC_API_FILL = 20  # trials and runs written one by one through the public APIs, timed


def seconds_of(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def mlp_search_space() -> dict[str, BaseDistribution]:
    from omegaconf import OmegaConf

    from tuneflow.analysis.recompose import compose
    from tuneflow.search.space import PARAMS_NODE, parse_search_space

    cfg = compose(["+arch=mlp"], with_hydra=True)
    distributions, _ = parse_search_space(OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True), PARAMS_NODE)
    return distributions


# --- Optuna trials like tuneflow's ----------------------------------------------------------


def tuneflow_like_trials(space: dict[str, BaseDistribution], count: int, seed: int) -> Iterator[FrozenTrial]:
    """Finished trials with random params over ``space``, a learning curve of STEPS values, and the user
    attributes tuneflow's trial runner sets."""
    points = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    now = datetime.datetime.now()
    for index in range(count):
        params = points.ask(space).params
        final = 1.0 - 0.5 * math.exp(-((math.log10(params["lr"]) + 2.5) ** 2)) + 0.01 * params["dropout"]
        curve = {step: final + 1.0 / step for step in range(1, STEPS + 1)}
        yield optuna.trial.create_trial(
            state=TrialState.COMPLETE,
            params=params,
            distributions=space,
            value=final,
            intermediate_values=curve,
            user_attrs={"mlflow_run_id": uuid.uuid4().hex, "val_loss": final, "val_accuracy": 1.0 - final},
        )
        _ = index, now


def bulk_add_trials(storage: optuna.storages.RDBStorage, study_id: int, first_number: int,
                    trials: list[FrozenTrial]) -> None:
    """The rows ``study.add_trials`` writes, in one transaction (Optuna's own ORM models and serialisers)."""
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        next_id = (session.query(models.TrialModel.trial_id).order_by(models.TrialModel.trial_id.desc()).first()
                   or (0,))[0] + 1
        rows: list[Any] = []
        for offset, trial in enumerate(trials):
            trial_id = next_id + offset
            row = models.TrialModel(trial_id=trial_id, number=first_number + offset, study_id=study_id,
                                    state=trial.state)
            row.datetime_start, row.datetime_complete = trial.datetime_start, trial.datetime_complete
            rows.append(row)
            for name, value in trial.params.items():
                distribution = trial.distributions[name]
                rows.append(models.TrialParamModel(
                    trial_id=trial_id, param_name=name, param_value=distribution.to_internal_repr(value),
                    distribution_json=distribution_to_json(distribution)))
            stored, value_type = models.TrialValueModel.value_to_stored_repr(trial.value)
            rows.append(models.TrialValueModel(trial_id=trial_id, objective=0, value=stored, value_type=value_type))
            for step, value in trial.intermediate_values.items():
                stored, value_type = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                rows.append(models.TrialIntermediateValueModel(
                    trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=value_type))
            for key, value in trial.user_attrs.items():
                rows.append(models.TrialUserAttributeModel(trial_id=trial_id, key=key, value_json=json.dumps(value)))
        session.add_all(rows)
        session.commit()
    finally:
        session.close()


def same_trial(read: FrozenTrial, written: FrozenTrial) -> bool:
    return (read.state == written.state and read.params == written.params and read.value == written.value
            and read.intermediate_values == written.intermediate_values and read.user_attrs == written.user_attrs
            and read.distributions == written.distributions)


# --- MLflow runs like tuneflow's ------------------------------------------------------------


def log_tuneflow_like_run(client: Any, experiment_id: str, number: int) -> str:
    """One trial's MLflow run the way the trial runner writes it, through the public API."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment_id, run_name=f"{STUDY}-trial-{number}", tags={
        "tuneflow.study": STUDY, "tuneflow.role": "trial", "tuneflow.trial_number": str(number),
        "tuneflow.arch": "mlp", "tuneflow.state": "RUNNING"})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, str(v)) for k, v in {
        "lr": 0.001, "batch_size": 64, "lr_schedule": "plateau", "lr_decay": 0.5, "patience": 5,
        "hidden_size": 128, "n_layers": 2, "dropout": 0.1, "data.name": "digits", "data.val_fraction": 0.25,
        "data.split_seed": 0, "seed": 0}.items()]
    metrics = [Metric(key, 1.0 / step + number * 1e-6, now, step)
               for step in range(1, STEPS + 1) for key in ("val_loss", "val_accuracy", "lr")]
    metrics += [Metric(key, 0.5 + number * 1e-6, now, 0)
                for key in ("best_val_loss", "best_val_accuracy", "objective", "epochs_run", "train_seconds")]
    client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("tuneflow.state", "COMPLETE")])
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def bulk_copy_runs(tracking_uri: str, template_run_id: str, first_number: int, count: int) -> None:
    """``count`` copies of a run written through the public API, each with its own id, name, trial number
    and objective, in one transaction through MLflow's own ORM models."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels import models
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(tracking_uri)
    with Session(engine) as session:
        template = session.get(models.SqlRun, template_run_id)
        columns = [c.name for c in models.SqlRun.__table__.columns]
        run_row = {name: getattr(template, name) for name in columns}

        def rows_of(model: Any) -> list[dict[str, Any]]:
            names = [c.name for c in model.__table__.columns]
            found = session.query(model).filter(model.run_uuid == template_run_id).all()
            return [{name: getattr(row, name) for name in names} for row in found]

        children = {model: rows_of(model) for model in
                    (models.SqlTag, models.SqlParam, models.SqlMetric, models.SqlLatestMetric)}
        for number in range(first_number, first_number + count):
            run_id = uuid.uuid4().hex
            artifact_uri = str(run_row["artifact_uri"]).replace(template_run_id, run_id)
            session.execute(sqlalchemy.insert(models.SqlRun), [
                {**run_row, "run_uuid": run_id, "name": f"{STUDY}-trial-{number}", "artifact_uri": artifact_uri}])
            for model, rows in children.items():
                copies = []
                for row in rows:
                    copy = {**row, "run_uuid": run_id}
                    if model is models.SqlTag and row["key"] == "tuneflow.trial_number":
                        copy["value"] = str(number)
                    if model is models.SqlTag and row["key"] == "mlflow.runName":
                        copy["value"] = f"{STUDY}-trial-{number}"
                    if "value" in copy and isinstance(copy["value"], float):
                        copy["value"] = copy["value"] + number * 1e-6
                    copies.append(copy)
                session.execute(sqlalchemy.insert(model), copies)
        session.commit()
    engine.dispose()


def same_run(client: Any, original_id: str, copy_id: str) -> bool:
    original, copy = client.get_run(original_id).data, client.get_run(copy_id).data
    skip = {"tuneflow.trial_number", "mlflow.runName"}
    return (original.params == copy.params and set(original.metrics) == set(copy.metrics)
            and {k: v for k, v in original.tags.items() if k not in skip}
            == {k: v for k, v in copy.tags.items() if k not in skip})


# --- the same trials in Optuna's journal file -------------------------------------------------


class _ListBackend(JournalBackendBase):  # type: ignore[misc,valid-type]
    """Optuna's journal operations kept in a list (written to the file in one go: a file append with its
    lock and fsync per operation would take hours for 350,000 operations)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


class JournalCopy:
    """The study's trials as Optuna's ``JournalStorage`` logs them when the sweeper writes them one call at a
    time (ask, the constant liar's relative params, 8 params, overrides, run id, 20 intermediate values, final
    metrics, tell): 35 operations per trial, the journal file ``JournalFileBackend`` writes (one JSON line each,
    as its ``append_logs`` serialises them)."""

    def __init__(self, path: Path) -> None:
        from optuna.storages.journal import JournalStorage

        self.path = path
        self.backend = _ListBackend()
        self.storage = JournalStorage(self.backend)
        self.study_id = self.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], STUDY)
        self.written = 0

    def add(self, trials: list[FrozenTrial]) -> None:
        storage = self.storage
        for trial in trials:
            trial_id = storage.create_new_trial(self.study_id)
            storage.set_trial_system_attr(trial_id, "tpe:relative_params:0", json.dumps(trial.params))
            for name, value in trial.params.items():
                distribution = trial.distributions[name]
                storage.set_trial_param(trial_id, name, distribution.to_internal_repr(value), distribution)
            storage.set_trial_user_attr(trial_id, "tuneflow_overrides", ["+arch=mlp"])
            for key, value in trial.user_attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
            for step, value in trial.intermediate_values.items():
                storage.set_trial_intermediate_value(trial_id, step, value)
            storage.set_trial_state_values(trial_id, trial.state, [trial.value] if trial.value is not None else None)
        with self.path.open("ab") as handle:
            for log in self.backend.logs[self.written:]:
                handle.write((json.dumps(log, separators=(",", ":")) + "\n").encode("utf-8"))
        self.written = len(self.backend.logs)


# --- measuring --------------------------------------------------------------------------------


class TimedAsker(TrialAsker):
    """tuneflow's sweeper side of an ask (``TrialAsker.read_and_ask``), with the time spent in Optuna's
    ``study.ask`` (the sampler and its storage reads and writes) kept apart from the rest (tuneflow's
    bookkeeping: the stale-trial check, the study lock, counts, best so far, first heartbeat)."""

    ask_wall = 0.0
    ask_cpu = 0.0

    def ask_one(self) -> optuna.trial.Trial:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return super().ask_one()
        finally:
            self.ask_wall += time.perf_counter() - wall
            self.ask_cpu += time.process_time() - cpu


def sweeper_plan(url: str, root: Path, space: dict[str, BaseDistribution], sampler: optuna.samplers.BaseSampler,
                 heartbeat: int | None) -> SweepPlan:
    """A sweep of ``space`` whose n_trials lies far ahead (no trial is surplus), as the sweeper builds it."""
    settings = StudySettings(name=STUDY, storage_url=url, direction="minimize", objective=None, n_trials=10**9,
                             root_dir=str(root), heartbeat_interval=heartbeat)
    return SweepPlan(settings=settings, distributions=space, fixed_overrides=["+arch=mlp"], sampler=sampler)


def join_study(open_store: Callable[[], Any], plan: SweepPlan, run_job: bool = True) -> tuple[dict[str, float], optuna.Study]:
    """A worker joining the study: its storage (a journal is replayed here), ``load_study`` and the first
    ``read_and_ask`` (its first suggestion); the trial it got is told at once. Wall and CPU seconds, the read
    of every trial apart."""
    row: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    storage = open_store()
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=plan.sampler)
    study.get_trials(deepcopy=False)
    row["read_s"], row["read_cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
    asker = TrialAsker(study, storage, plan)
    asked = asker.read_and_ask(0).asked
    row["first_s"], row["first_cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
    for trial in asked:
        if run_job:
            row.update(job_reports(study, plan.settings, trial.number))
        study.tell(trial, 1.0)
    return row, study


def job_reports(study: optuna.Study, settings: StudySettings, number: int) -> dict[str, float]:
    """The joining worker's first trial run as its job (tuneflow's launcher runs it in the worker's process,
    as ``tuneflow.trial.job.run_trial``): the job's study (``load_study_for_job``, with tuneflow's default
    pruner) and STEPS reports, each followed by the pruner's ``should_prune``, as ``tuneflow.report`` does.
    The first report's time includes loading the job's study; "report ms" is the median of the others."""
    import dataclasses

    from tuneflow.search.configs import DEFAULT_PRUNER, PRUNERS
    from tuneflow.storage import study as study_module

    settings = dataclasses.replace(settings, pruner=dataclasses.asdict(PRUNERS[DEFAULT_PRUNER]()))
    study_module.forget_job_studies()
    if hasattr(study_module, "share_with_jobs"):  # the sweeper's loop does this (a checkout from before: no)
        study_module.share_with_jobs(settings.storage_url, study)
    times: list[tuple[float, float]] = []
    wall, cpu = time.perf_counter(), time.process_time()
    job_study, storage = study_module.load_study_for_job(settings)
    trial, _ = study_module.trial_handle(job_study, storage, number)
    for step in range(1, STEPS + 1):
        trial.report(1.0 + 1.0 / step, step)
        trial.should_prune()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
        wall, cpu = time.perf_counter(), time.process_time()
    study_module.forget_job_studies()
    return {"first_report_s": times[0][0], "first_report_cpu_s": times[0][1],
            "report_ms": 1000 * statistics.median(t[0] for t in times[1:]),
            "report_cpu_ms": 1000 * statistics.median(t[1] for t in times[1:])}



def timed_asks(study: optuna.Study, storage: Any, plan: SweepPlan, suggestions: int, prefix: str = "") -> dict[str, float]:
    """The live sweeper on ``study``: ``suggestions`` batches of one trial, each a ``read_and_ask`` (Optuna's
    ask inside, timed apart from tuneflow's bookkeeping) and a tell; medians, wall and CPU."""
    asker = TimedAsker(study, storage, plan)
    if hasattr(asker, "tally"):  # the sweeper has been running (a checkout from before the tally has none)
        asker.tally.update(study.get_trials(deepcopy=False))
    asks, ask_cpus, tells, bookkeeping, bookkeeping_cpus = [], [], [], [], []
    for _ in range(suggestions):
        asker.ask_wall = asker.ask_cpu = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        read = asker.read_and_ask(0)
        total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
        asks.append(asker.ask_wall)
        ask_cpus.append(asker.ask_cpu)
        bookkeeping.append(total_wall - asker.ask_wall)
        bookkeeping_cpus.append(total_cpu - asker.ask_cpu)
        for trial in read.asked:
            tells.append(seconds_of(lambda: study.tell(trial, 1.0)))  # noqa: B023 - called at once
    return {f"{prefix}ask_ms": 1000 * statistics.median(asks), f"{prefix}ask_cpu_ms": 1000 * statistics.median(ask_cpus),
            f"{prefix}tell_ms": 1000 * statistics.median(tells),
            f"{prefix}bookkeeping_ms": 1000 * statistics.median(bookkeeping),
            f"{prefix}bookkeeping_cpu_ms": 1000 * statistics.median(bookkeeping_cpus)}


class Scale:
    def __init__(self, folder: Path) -> None:
        from tuneflow.tracking import runs as tracking

        self.folder = folder
        self.root = folder / "mlruns"
        self.space = mlp_search_space()
        # SQLite (hydra/sweeper/storage=sqlite, the default before the journal): the journal copy beside it
        # is what the default costs now.
        self.url = sqlite_storage_url(self.root)
        self.storage = open_storage(self.url, heartbeat_interval=60)
        self.study = optuna.create_study(study_name=STUDY, storage=self.storage, sampler=default_sampler(seed=0))
        self.study_id = self.storage.get_study_id_from_name(STUDY)
        self.tracking_uri = tracking.resolve_tracking_uri(None, self.root)
        self.client = tracking.client_for(self.tracking_uri)
        self.experiment_id = tracking.experiment_id_for(
            self.client, STUDY, tracking.default_artifact_location(self.tracking_uri, self.root))
        self.template_run: str | None = None
        self.runs = 0
        self.fill_seconds = {"optuna public": 0.0, "optuna bulk": 0.0, "mlflow public": 0.0, "mlflow bulk": 0.0}
        self.fill_counts = {key: 0 for key in self.fill_seconds}
        self.checked = {"trials": False, "runs": False}
        self.journal = JournalCopy(folder / "journal.log")

    # filling

    def fill_trials(self, size: int) -> None:
        have = len(self.study.get_trials(deepcopy=False))
        missing = size - have
        trials = tuneflow_like_trials(self.space, missing, seed=size)
        if have == 0:
            first = [next(trials) for _ in range(min(PUBLIC_API_FILL, missing))]
            self.fill_seconds["optuna public"] += seconds_of(lambda: [self.study.add_trial(t) for t in first])
            self.fill_counts["optuna public"] += len(first)
            self.journal.add(first)
            have += len(first)
        while have < size:
            batch = [next(trials) for _ in range(min(BATCH, size - have))]
            self.fill_seconds["optuna bulk"] += seconds_of(
                lambda: bulk_add_trials(self.storage, self.study_id, have, batch))
            self.fill_counts["optuna bulk"] += len(batch)
            self.journal.add(batch)
            if not self.checked["trials"]:
                read = optuna.load_study(study_name=STUDY, storage=self.url).trials
                if not (same_trial(read[have], batch[0]) and same_trial(read[0], read[0])):
                    raise SystemExit("scale: error: a bulk-written trial does not read back as written")
                self.checked["trials"] = True
            have += len(batch)
        # The live study's cache has not seen the bulk rows: reopen it as a running sweeper would be.
        self.study = optuna.load_study(study_name=STUDY, storage=self.storage, sampler=default_sampler(seed=size))

    def fill_runs(self, size: int) -> None:
        if self.template_run is None:
            count = min(PUBLIC_API_FILL, size)
            started = time.perf_counter()
            ids = [log_tuneflow_like_run(self.client, self.experiment_id, n) for n in range(count)]
            self.fill_seconds["mlflow public"] += time.perf_counter() - started
            self.fill_counts["mlflow public"] += count
            self.template_run, self.runs = ids[0], count
        while self.runs < size:
            count = min(BATCH, size - self.runs)
            self.fill_seconds["mlflow bulk"] += seconds_of(
                lambda: bulk_copy_runs(self.tracking_uri, self.template_run, self.runs, count))
            self.fill_counts["mlflow bulk"] += count
            if not self.checked["runs"]:
                copy = self.client.search_runs([self.experiment_id],
                                               filter_string=f"tags.`tuneflow.trial_number` = '{self.runs}'")
                if len(copy) != 1 or not same_run(self.client, self.template_run, copy[0].info.run_id):
                    raise SystemExit("scale: error: a bulk-written run does not read back like its template")
                self.checked["runs"] = True
            self.runs += count

    # measuring

    def measure(self, size: int, suggestions: int) -> dict[str, float]:
        row: dict[str, float] = {"trials": size}
        # A worker joining the study on the default storage (SQLite, heartbeats), as the sweeper opens it.
        joined, _ = join_study(lambda: open_storage(self.url, heartbeat_interval=60),
                               sweeper_plan(self.url, self.root, self.space, default_sampler(seed=1), 60))
        row.update({f"cold_{key}": value for key, value in joined.items() if "report" not in key})
        row.update({key: value for key, value in joined.items() if "report" in key})
        row.update(self.measure_journal(suggestions))
        # The live sweeper: each batch of one trial is a read_and_ask (Optuna's ask inside), then a tell.
        row.update(timed_asks(self.study, self.storage,
                              sweeper_plan(self.url, self.root, self.space, self.study.sampler, 60), suggestions))
        csv_path = tuneflow_results.results_csv_path(self.root, STUDY)
        row["csv_s"] = seconds_of(lambda: tuneflow_results.write_trials_csv(self.study, csv_path))
        row["csv_rows"] = sum(1 for _ in csv_path.open()) - 1
        # The sweeper rewrites it at most once per max(CSV_EVERY_S, CSV_COST_FACTOR x its duration): its
        # share of the sweeper's time is at most this, whatever the trials cost.
        interval = max(tuneflow_results.CSV_EVERY_S, tuneflow_results.CSV_COST_FACTOR * row["csv_s"])
        row["csv_share_pct"] = 100 * row["csv_s"] / (interval + row["csv_s"])
        row.update(self.measure_mlflow(size))
        row["rss_mb"], row["peak_rss_mb"] = rss_mb(), peak_rss_mb()
        return row

    def measure_journal(self, suggestions: int) -> dict[str, float]:
        """The same trials in Optuna's journal file, opened as tuneflow opens ``hydra/sweeper/storage=journal``
        (``open_storage``: ``HeartbeatJournalStorage``, file heartbeats): a worker joining replays the whole
        file, asks, runs its first job's reports; then the live sweeper's asks and tells on that storage. All on
        a copy, so these trials do not end up in the journal the next size appends to."""
        import shutil

        from tuneflow.storage.journal import heartbeat_dir, journal_url

        copy = self.journal.path.with_name("joining.log")
        shutil.copyfile(self.journal.path, copy)
        url = journal_url(copy)
        joined, study = join_study(lambda: open_storage(url, heartbeat_interval=60),
                                   sweeper_plan(url, self.root, self.space, default_sampler(seed=1), 60))
        row = {"journal_first_s": joined["first_s"], "journal_first_cpu_s": joined["first_cpu_s"],
               "journal_read_cpu_s": joined["read_cpu_s"], "journal_mb": self.journal.path.stat().st_size / 2**20,
               "journal_first_report_cpu_s": joined["first_report_cpu_s"],
               "journal_report_cpu_ms": joined["report_cpu_ms"]}
        row.update(timed_asks(study, study._storage, sweeper_plan(url, self.root, self.space, study.sampler, 60),
                              suggestions, prefix="journal_"))
        copy.unlink()
        shutil.rmtree(heartbeat_dir(copy), ignore_errors=True)
        return row

    def best_run(self) -> list[Any]:
        """The best trial's MLflow run the way tuneflow finds it (the parent run's summary, ``tuneflow report``):
        the best trial from Optuna (one indexed query), then its run by the trial-number tag. MLflow's
        ``order_by=metrics.objective`` (50 s at 10,000 runs in an earlier table) is never used."""
        best = best_trial_or_none(optuna.load_study(study_name=STUDY, storage=self.storage))
        assert best is not None
        return list(self.client.search_runs(
            [self.experiment_id], max_results=2,
            filter_string=f"tags.`tuneflow.study` = '{STUDY}' and tags.`tuneflow.trial_number` = '{best.number}'"))

    def measure_mlflow(self, size: int) -> dict[str, float]:
        row: dict[str, float] = {}
        self.fill_runs(size)
        found: list[Any] = []

        def paged() -> None:
            token = None
            while True:
                page = self.client.search_runs([self.experiment_id], filter_string="tags.`tuneflow.role` = 'trial'",
                                               max_results=1000, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    return

        row["search_paged_s"] = seconds_of(paged)
        row["search_found"] = len(found)
        found.clear()
        found_best: list[Any] = []
        row["best_run_ms"] = 1000 * seconds_of(lambda: found_best.extend(self.best_run()))
        if len(found_best) != 1:
            raise SystemExit(f"scale: error: the best trial's run was found {len(found_best)} times, not once")
        row["log_run_ms"] = 1000 * seconds_of(lambda: log_tuneflow_like_run(self.client, self.experiment_id, self.runs))
        self.runs += 1
        return row


def growth(rows: list[dict[str, float]], key: str) -> str:
    """How the cost grows per 10x trials: ratio of each size's value to the previous size's."""
    ratios = [f"{b[key] / a[key]:.1f}x" for a, b in zip(rows, rows[1:]) if a[key] > 0]
    return ", ".join(ratios) if ratios else "-"


def results_table(rows: list[dict[str, float]]) -> str:
    columns = [
        ("ask ms", "ask_ms", "{:.1f}"), ("ask CPU ms", "ask_cpu_ms", "{:.1f}"), ("tell ms", "tell_ms", "{:.1f}"),
        ("sweeper bookkeeping ms/trial", "bookkeeping_ms", "{:.1f}"),
        ("bookkeeping CPU ms", "bookkeeping_cpu_ms", "{:.1f}"),
        ("cold read s", "cold_read_s", "{:.2f}"), ("cold read CPU s", "cold_read_cpu_s", "{:.2f}"),
        ("cold read+first ask s", "cold_first_s", "{:.2f}"), ("same, CPU s", "cold_first_cpu_s", "{:.2f}"),
        ("its first report s", "first_report_s", "{:.2f}"), ("first report CPU s", "first_report_cpu_s", "{:.2f}"),
        ("report ms", "report_ms", "{:.1f}"), ("report CPU ms", "report_cpu_ms", "{:.1f}"),
        ("journal: first ask s", "journal_first_s", "{:.2f}"), ("journal CPU s", "journal_first_cpu_s", "{:.2f}"),
        ("journal replay CPU s", "journal_read_cpu_s", "{:.2f}"), ("journal MB", "journal_mb", "{:.1f}"),
        ("journal: first report CPU s", "journal_first_report_cpu_s", "{:.2f}"),
        ("journal: report CPU ms", "journal_report_cpu_ms", "{:.1f}"),
        ("journal: ask ms", "journal_ask_ms", "{:.1f}"), ("journal: ask CPU ms", "journal_ask_cpu_ms", "{:.1f}"),
        ("journal: tell ms", "journal_tell_ms", "{:.1f}"),
        ("journal: bookkeeping CPU ms", "journal_bookkeeping_cpu_ms", "{:.1f}"),
        ("CSV export s", "csv_s", "{:.2f}"),
        ("CSV share of sweeper time %", "csv_share_pct", "{:.1f}"),
        ("MLflow search, paged s", "search_paged_s", "{:.2f}"),
        ("best run ms", "best_run_ms", "{:.0f}"), ("log one run ms", "log_run_ms", "{:.0f}"),
        ("RSS MB", "rss_mb", "{:.0f}"), ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    ]
    body = [[f"{int(row['trials']):,}", *[fmt.format(row[key]) for _, key, fmt in columns]] for row in rows]
    if len(rows) > 1:
        body.append(["growth per step", *[growth(rows, key) for _, key, _ in columns]])
    return markdown_table(["trials in study", *[title for title, _, _ in columns]], body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="study sizes, increasing (100,1000,10000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 30 and 100, 5 suggestions each")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    suggestions = TIMED_SUGGESTIONS
    if args.quick:
        sizes, suggestions = [30, 100], 5
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")  # ask/tell with heartbeats, as tuneflow
    rows = []
    with tempfile.TemporaryDirectory(prefix="tuneflow-scale-") as folder:
        scale = Scale(Path(folder))
        for size in sizes:
            progress(f"filling to {size:,} trials")
            scale.fill_trials(size)
            progress(f"measuring at {size:,} trials")
            rows.append(scale.measure(size, suggestions))
            progress(f"{size:,}: " + ", ".join(f"{k}={v:.4g}" for k, v in rows[-1].items()))
            # The measured suggestions and the extra run are part of the study from now on.
    fills = scale.fill_seconds
    counts = scale.fill_counts

    def per_item(key: str) -> str:
        return f"{1000 * fills[key] / counts[key]:.0f} ms" if counts[key] else "-"

    print(f"Study of the MLP's default space, tuneflow's default sampler on SQLite (hydra/sweeper/storage=sqlite); "
          f"the journal columns: the same trials on the journal, the embedded default; "
          f"{suggestions} timed suggestions per size (medians). All {rows[-1]['search_found']:.0f} MLflow runs "
          f"found by the paged search at the last size; every CSV row written ({rows[-1]['csv_rows']:.0f}).\n")
    print(results_table(rows))
    print(f"\nFilling (not part of the results): through the public APIs, one by one, {per_item('optuna public')} "
          f"per trial (`study.add_trial`) and {per_item('mlflow public')} per run (create_run, log_batch, "
          f"set_terminated); in batches of {BATCH}, {per_item('optuna bulk')} per trial and "
          f"{per_item('mlflow bulk')} per run. Bulk rows checked to read back as written.")


if __name__ == "__main__":
    main()
