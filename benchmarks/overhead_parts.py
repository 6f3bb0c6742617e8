"""Where a tuneflow trial's time goes, part by part, timed without a profiler.

One process runs the pieces of a no-op tuneflow trial (the quadratic arch, 20 reported values) on the
embedded stores, with tuneflow's own functions, N times each, in rounds (every part once per round, so
a change of machine load hits every part alike); the table shows the median ms per trial over rounds.

  optuna               ask (TPE, tuneflow's settings) + 20 trial.report + tell on tuneflow's SQLite
                       storage: what the optuna-sqlite-tuned row of overhead.py pays.
  optuna extras        what a tuneflow trial adds on the Optuna side: the sweeper's heartbeat at ask (the
                       only one a short trial writes) and its reads of the study (counts before asking,
                       progress after telling), the job's study, trial handle, study attributes, retry
                       check, run-id and metric user attributes, 20 should_prune calls.
  mlflow               the trial's run: create_run with tags, params, config.yaml, one end batch (20 step
                       metrics, final metrics, state tag), set_terminated.
  mlflow model         the pickled model artifact.
  hydra (tuneflow)     the job's config (tuneflow.sweeper.job_configs: a copy of the composed config) and the
                       job's bookkeeping (tuneflow.sweeper.launcher.run_job: output folder, .hydra/ files, job
                       logging) around a task that does nothing.
  hydra (basic)        the same with Hydra's own load_sweep_config and run_job (hydra/launcher=basic).

Usage: python benchmarks/overhead_parts.py [--trials 100] [--rounds 3] [--storage sqlite|journal]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

STEPS = 20


class Parts:
    def __init__(self, folder: Path, storage: str = "sqlite") -> None:
        import optuna
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.utils import setup_globals
        from hydra.types import RunMode

        from tuneflow.storage.study import StudySettings, open_storage
        from tuneflow.sweeper.job_configs import JobConfigs
        from tuneflow.tracking import runs as tracking

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        os.chdir(folder)
        root = folder / "mlruns"
        self.settings = StudySettings(
            name="quadratic", direction="minimize",
            storage_url=f"sqlite:///{root / 'optuna.db'}" if storage == "sqlite" else f"journal://{root / 'optuna.journal'}",
            objective="val_loss", n_trials=10**6, root_dir=str(root), heartbeat_interval=60,
            pruner={"_target_": "optuna.pruners.NopPruner"}, params_node="params",
            log_params=("params", "data", "seed"),
        )
        self.storage = open_storage(self.settings.storage_url, heartbeat_interval=60)
        self.study = optuna.create_study(
            study_name="quadratic", storage=self.storage,
            sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True),
        )
        self.distributions = {"x": optuna.distributions.FloatDistribution(-5, 5),
                              "y": optuna.distributions.FloatDistribution(-5, 5)}
        self.client = tracking.client_for(tracking.resolve_tracking_uri(None, root))
        self.experiment_id = tracking.experiment_id_for(
            self.client, "quadratic", tracking.default_artifact_location(self.client.tracking_uri, root)
        )
        setup_globals()
        self._hydra = initialize_config_module(config_module="tuneflow.conf", version_base="1.3")
        self._hydra.__enter__()
        self.loader = GlobalHydra.instance().config_loader()
        self.master = self.loader.load_configuration(
            "config", ["+arch=quadratic", "hydra/sweeper/pruner=none", f"hydra.sweep.dir={folder / 'multirun'}"],
            RunMode.MULTIRUN,
        )
        self.job_configs = JobConfigs(self.loader, self.master)
        callbacks = SimpleNamespace(on_job_start=lambda **_: None, on_job_end=lambda **_: None)
        self.hydra_context = SimpleNamespace(config_loader=self.loader, callbacks=callbacks)
        self.number = 0
        from tuneflow.sweeper.launcher import task_part

        self.cfg = task_part(self.job_config(0))  # what the task function gets

    def job_config(self, number: int) -> Any:
        return self.job_configs.load(["+arch=quadratic", f"params.x={number % 5}.0", "params.y=-1.0"])

    # --- the parts; each returns the seconds it took -------------------------------------------

    def optuna_and_extras(self) -> tuple[float, float]:
        """(optuna, optuna extras) of one trial, timed segment by segment."""
        from tuneflow.storage.study import (
            count_trials,
            load_study_for_job,
            trial_handle,
        )

        study, storage = self.study, self.storage
        t0 = time.perf_counter()
        trial = study.ask(self.distributions)
        t1 = time.perf_counter()
        count_trials(study)  # the sweeper's count before asking
        study_id = storage.get_study_id_from_name("quadratic")
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.record_heartbeat(trial_id)
        job_study, job_storage = load_study_for_job(self.settings)
        handle, handle_id = trial_handle(job_study, job_storage, trial.number)
        _ = job_study.user_attrs  # the job's one read of the study's attributes
        job_storage.get_trial(handle_id)  # the job's retry check; it adds no heartbeat (the sweeper beats)
        handle.set_user_attr("mlflow_run_id", "0" * 32)
        t2 = time.perf_counter()
        value = 0.0
        for step in range(1, STEPS + 1):
            value = (handle.params["x"] - 2) ** 2 + 10.0 / step
            handle.report(value, step)
        t3 = time.perf_counter()
        for _ in range(STEPS):
            handle.should_prune()
        handle.set_user_attr("val_loss", value)
        t4 = time.perf_counter()
        study.tell(trial, value)
        t5 = time.perf_counter()
        study.get_trials(deepcopy=False)  # the sweeper's read for the progress line and the CSV
        t6 = time.perf_counter()
        return (t1 - t0) + (t3 - t2) + (t5 - t4), (t2 - t1) + (t4 - t3) + (t6 - t5)

    def mlflow_run(self) -> float:
        from tuneflow.tracking import runs as tracking
        from tuneflow.trial.job import run_params, start_run_record

        start = time.perf_counter()
        run = self.client.create_run(
            self.experiment_id, run_name="trial",
            tags={tracking.STUDY_TAG: "quadratic", tracking.ROLE_TAG: "trial", tracking.TRIAL_TAG: "0",
                  tracking.ARCH_TAG: "quadratic", tracking.STATE_TAG: "RUNNING"},
        )
        run_id = run.info.run_id
        self.last_store = tracking.artifact_store(self.client, run.info.artifact_uri)
        start_run_record(self.client, run_id, self.last_store, self.cfg, run_params(self.cfg, {}, self.settings))
        buffer = tracking.MetricBuffer(self.client, run_id)
        for step in range(1, STEPS + 1):
            buffer.add(step, {"val_loss": 1.0 / step})
        buffer.flush(metrics=[("best_val_loss", 0.05, 0), ("objective", 0.05, 0), ("epochs_run", 20.0, 0),
                              ("train_seconds", 0.01, 0)], tags={tracking.STATE_TAG: "COMPLETE"})
        tracking.terminate(self.client, run_id, "COMPLETE")
        return time.perf_counter() - start

    def mlflow_model(self) -> float:
        from tuneflow.models.synthetic import QuadraticModel
        from tuneflow.tracking import runs as tracking

        start = time.perf_counter()
        tracking.log_model(self.last_store, QuadraticModel(0.05), "pyfunc")
        return time.perf_counter() - start

    def hydra_tuneflow(self) -> float:
        from omegaconf import open_dict

        from tuneflow.sweeper.launcher import run_job

        self.number += 1
        start = time.perf_counter()
        config = self.job_config(self.number)
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = self.number
        run_job(self.hydra_context, lambda cfg: None, config)  # type: ignore[arg-type]
        return time.perf_counter() - start

    def hydra_basic(self) -> float:
        from hydra.core.utils import run_job
        from omegaconf import open_dict

        self.number += 1
        start = time.perf_counter()
        config = self.loader.load_sweep_config(
            self.master, ["+arch=quadratic", "params.x=1.0", "params.y=-1.0"]
        )
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = self.number
        run_job(hydra_context=self.hydra_context, task_function=lambda cfg: None, config=config,  # type: ignore[arg-type]
                job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100, help="trials per part and round (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (3)")
    parser.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite",
                        help="the Optuna storage: the default SQLite file, or hydra/sweeper/storage=journal's file")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import warnings

    warnings.filterwarnings("ignore")  # heartbeats outside Study.optimize, experimental APIs
    with tempfile.TemporaryDirectory(prefix="tuneflow-parts-") as tmp:
        parts = Parts(Path(tmp), args.storage)
        timers: dict[str, Callable[[], Any]] = {
            "optuna + optuna extras": parts.optuna_and_extras,
            "mlflow": parts.mlflow_run,
            "mlflow model": parts.mlflow_model,
            "hydra (tuneflow)": parts.hydra_tuneflow,
            "hydra (basic)": parts.hydra_basic,
        }
        for timer in timers.values():  # warm-up: first-use costs
            for _ in range(3):
                timer()
        per_round: dict[str, list[float]] = {}
        for round_ in range(1, args.rounds + 1):
            for name, timer in timers.items():
                totals = [timer() for _ in range(args.trials)]
                if name == "optuna + optuna extras":
                    per_round.setdefault("optuna", []).append(1000 * sum(t[0] for t in totals) / args.trials)
                    per_round.setdefault("optuna extras", []).append(1000 * sum(t[1] for t in totals) / args.trials)
                else:
                    per_round.setdefault(name, []).append(1000 * sum(totals) / args.trials)
            print(f"round {round_}/{args.rounds} done", file=sys.stderr, flush=True)
        print(f"{args.trials} trials per part and round, median of {args.rounds} rounds (ms per trial)\n")
        print("| part | ms per trial | per round |")
        print("|---|---:|---|")
        for name, values in per_round.items():
            print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
        parts._hydra.__exit__(None, None, None)


if __name__ == "__main__":
    main()
