"""Asynchronous workers with one command (``hydra.sweeper.workers``): the driver submits N workers
through submitit's local executor or a local Ray (bound to 127.0.0.1), each runs tuneflow's own loop one
trial at a time on the driver's stores; together they run exactly n_trials, prune, and retry the trial
of a worker that was killed. SIGTERM to the driver ends it like Ctrl-C (143, parent run KILLED), Ray's
own handler notwithstanding. Optuna's gRPC storage proxy serves two workers, exactly n_trials."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, start_tuneflow, study_runs, tuneflow_env
from topology import wait_until

pytestmark = pytest.mark.slow

FAST = ["+arch=quadratic", "-m", "params.seconds_per_epoch=0.01", "tracking.log_model=false"]


def workers(engine: str, n: int = 2) -> list[str]:
    return [f"hydra.sweeper.workers.engine={engine}", f"hydra.sweeper.workers.n={n}"]


def finish(process: subprocess.Popen[str], timeout: float = 400) -> tuple[int, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout + stderr


def worker_logs(project: Path) -> dict[int, str]:
    """submitit's local jobs of the latest sweep: job id (its local controller's process id) -> what it printed."""
    folders = sorted(project.glob("multirun/*/*/.workers"), key=lambda folder: folder.stat().st_mtime)
    logs = folders[-1].glob("*_0_log.out") if folders else []
    return {int(log.name.split("_")[0]): log.read_text() for log in logs}


def states(study: Any) -> list[str]:
    return [t.state.name for t in study.trials]


def test_two_local_workers_run_exactly_n_trials_and_prune(project: Path) -> None:
    # The threshold pruner stops every trial whose loss is above 20 at its first report: both outcomes
    # (complete and pruned) come from the workers' own loops.
    code, output = finish(start_tuneflow(project, *FAST, "hydra.sweeper.n_trials=8", "hydra.sweeper.study_name=two",
                                         "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=20",
                                         *workers("local")))
    assert code == 0, output[-3000:]
    study = load_study(project, "two")
    assert len(study.trials) == 8 and set(states(study)) <= {"COMPLETE", "PRUNED"}, states(study)
    assert "PRUNED" in states(study) and "COMPLETE" in states(study), states(study)
    assert "study 'two': 8 finished, 0 failed" in output
    logs = worker_logs(project)
    assert len(logs) == 2, "one job per worker, each started once"
    launched = sum(len(re.findall(r"trial \d+ started in this worker", log)) for log in logs.values())
    assert launched == 8, "every trial ran in a worker, one at a time"
    (parent,) = study_runs(project, "two", role="study")
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.run_id for r in study_runs(project, "two")) == sorted(
        t.user_attrs["mlflow_run_id"] for t in study.trials)


def trial_in_training(project: Path, study: str) -> Any:
    return next((t for t in load_study(project, study).trials
                 if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2), None)


def test_a_killed_worker_s_trial_is_retried_by_the_other(project: Path) -> None:
    driver = start_tuneflow(project, "+arch=quadratic", "-m", "params.seconds_per_epoch=0.2", "tracking.log_model=false",
                            "hydra/sweeper/pruner=none", "hydra.sweeper.heartbeat_interval=1",
                            "hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=kill", *workers("local"))
    try:
        victim = wait_until(lambda: trial_in_training(project, "kill"), "a trial in training", workers=[driver])
        (job,) = [pid for pid, log in worker_logs(project).items() if f"trial {victim.number} started in this worker" in log]
        # submitit's job id is its local controller; the worker is the controller's child.
        (pid,) = Path(f"/proc/{job}/task/{job}/children").read_text().split()
        os.kill(int(pid), signal.SIGKILL)
        code, output = finish(driver)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == 0, output[-3000:]
    assert "a worker ended without finishing" in output
    study = load_study(project, "kill")
    assert states(study).count("COMPLETE") == 4, states(study)
    assert [t.number for t in study.trials if t.state.name == "FAIL"] == [victim.number]
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state.name == "COMPLETE" and retry.params == victim.params


def test_sigterm_to_the_driver_ends_like_ctrl_c_and_cancels_the_workers(project: Path) -> None:
    driver = start_tuneflow(project, "+arch=quadratic", "-m", "params.seconds_per_epoch=0.2", "tracking.log_model=false",
                            "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=term",
                            *workers("local"))
    wait_until(lambda: trial_in_training(project, "term"), "a trial in training", workers=[driver])
    driver.send_signal(signal.SIGTERM)
    code, output = finish(driver, timeout=120)
    assert code == 143, output[-3000:]
    assert "tuneflow: terminated" in output
    (parent,) = study_runs(project, "term", role="study")
    assert parent.info.status == "KILLED"
    # The cancelled workers end their trials too (FAIL at once, not RUNNING until a heartbeat is stale).
    wait_until(lambda: "RUNNING" not in states(load_study(project, "term")), "no trial left RUNNING", timeout=60)


def test_a_relative_sqlite_file_is_refused_on_slurm_and_nothing_is_created(project: Path) -> None:
    code, output = finish(start_tuneflow(project, *FAST, *workers("slurm")))
    assert code == 2, output[-3000:]
    assert ("tuneflow: error: hydra.sweeper.storage is SQLite at a relative path (mlruns/optuna.db), which "
            "workers.engine=slurm resolves on each node; use hydra/sweeper/storage=postgres") in output
    assert "Traceback" not in output
    assert not (project / "mlruns").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["hydra.sweeper.workers.engine=kubernetes"], "hydra.sweeper.workers.engine is 'kubernetes'; use one of local, slurm, ray"),
    ([*workers("local", 0)], "hydra.sweeper.workers.n is 0, but must be at least 1"),
    ([*workers("local"), "hydra.sweeper.n_jobs=2"], "hydra.sweeper.n_jobs is 2 with hydra.sweeper.workers.engine=local"),
    (["hydra.sweeper.storage.url=grpc://127.0.0.1"], "Optuna's gRPC proxy is given as grpc://HOST:PORT"),
    (["hydra.sweeper.storage.url=grpc://127.0.0.1:9"], "Optuna's gRPC proxy at grpc://127.0.0.1:9 does not answer"),
])
def test_bad_worker_and_proxy_settings_are_one_line(project: Path, args: list[str], message: str) -> None:
    code, output = finish(start_tuneflow(project, *FAST, *args))
    assert code == 2, output[-3000:]
    assert output.startswith("tuneflow: error: ") and message in output and "Traceback" not in output
    assert not (project / "mlruns").exists()


def free_port() -> int:
    from tuneflow.deploy.local_cluster import free_port as port

    return port()


def test_two_workers_on_optunas_grpc_proxy_run_exactly_n_trials(project: Path, tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "behind-the-proxy.db"
    proxy = subprocess.Popen([sys.executable, "-m", "tuneflow.deploy.grpc_proxy", "--storage", f"sqlite:///{database}",
                              "--port", str(port)], env=tuneflow_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        import optuna

        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=60)
        code, output = finish(start_tuneflow(project, *FAST, "hydra.sweeper.n_trials=8", "hydra.sweeper.study_name=proxied",
                                             f"hydra.sweeper.storage.url=grpc://127.0.0.1:{port}", *workers("local")))
        assert code == 0, output[-3000:]
        study = optuna.load_study(study_name="proxied", storage=client)
        # No lock through the proxy: a trial asked past n_trials is surplus, failed at once, counted for nothing.
        counted = [t for t in study.trials if not t.user_attrs.get("tuneflow_surplus")]
        assert len(counted) == 8 and {t.state.name for t in counted} <= {"COMPLETE", "PRUNED"}, states(study)
        assert all(t.state.name == "FAIL" for t in study.trials if t.user_attrs.get("tuneflow_surplus"))
        assert "study 'proxied': 8 finished, 0 failed" in output

        # The proxy has no heartbeats: a killed worker's trial stays RUNNING, the other worker ends the
        # study one short (the README says so, and how to retry that trial).
        driver = start_tuneflow(project, "+arch=quadratic", "-m", "params.seconds_per_epoch=0.2",
                                "tracking.log_model=false", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=4",
                                "hydra.sweeper.study_name=proxied-kill",
                                f"hydra.sweeper.storage.url=grpc://127.0.0.1:{port}", *workers("local"))

        def in_training() -> Any:
            trials = optuna.load_study(study_name="proxied-kill", storage=client).trials
            return next((t for t in trials if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2), None)

        victim = wait_until(in_training, "a trial in training", workers=[driver])
        (job,) = [pid for pid, log in worker_logs(project).items() if f"trial {victim.number} started in this worker" in log]
        (pid,) = Path(f"/proc/{job}/task/{job}/children").read_text().split()
        os.kill(int(pid), signal.SIGKILL)
        code, output = finish(driver)
        assert code == 0, output[-3000:]
        after = optuna.load_study(study_name="proxied-kill", storage=client).trials
        assert [t.number for t in after if t.state.name == "RUNNING"] == [victim.number]
        assert sum(t.state.name == "COMPLETE" for t in after) == 3
        client.close()
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)


def test_two_workers_on_a_local_ray_run_exactly_n_trials_and_sigterm_ends_like_ctrl_c(project: Path) -> None:
    """One Ray start (slow): two workers finish a study; a second study is then stopped with SIGTERM."""
    if not os.environ.get("TUNEFLOW_CI"):
        pytest.importorskip("ray", reason="pip install 'tuneflow[ray]' (CI installs it)")
    home = project.parent / "home"
    home.mkdir()
    env = {**tuneflow_env(), "HOME": str(home)}

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tuneflow", *args], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    code, output = finish(start(*FAST, "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=on-ray", *workers("ray")))
    assert code == 0, output[-3000:]
    study = load_study(project, "on-ray")
    assert len(study.trials) == 6 and set(states(study)) <= {"COMPLETE", "PRUNED"}, states(study)
    assert "study 'on-ray': 6 finished, 0 failed" in output
    assert not (home / ".ray" / "auth_token").exists(), "the local Ray's token file is removed with it"

    driver = start("+arch=quadratic", "-m", "params.seconds_per_epoch=0.2", "tracking.log_model=false",
                   "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=6", "hydra.sweeper.study_name=ray-term",
                   *workers("ray"))
    wait_until(lambda: trial_in_training(project, "ray-term"), "a trial in training", workers=[driver])
    driver.send_signal(signal.SIGTERM)
    code, output = finish(driver, timeout=120)
    assert code == 143, output[-3000:]
    (parent,) = study_runs(project, "ray-term", role="study")
    assert parent.info.status == "KILLED"
