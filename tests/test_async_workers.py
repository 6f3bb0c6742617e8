"""Asynchronous workers with one command (``hydra.sweeper.workers``): the driver submits N workers
through submitit's local executor or a local Ray (bound to 127.0.0.1), each runs tuneflow's own loop one
trial at a time on the driver's stores; together they run exactly n_trials, prune, and retry the trial
of a worker that was killed. SIGTERM and Ctrl-C to the driver end it at once on either engine (143 / 130,
every worker's trial FAIL, the parent run KILLED; Ray's own handler notwithstanding), and the same
command resumes to exactly n_trials. Optuna's gRPC storage proxy serves two workers, exactly n_trials."""

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


def start_in_own_group(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """The driver in a process group of its own, as a shell starts a command: a terminal's Ctrl-C goes to
    the whole group (the driver and every process it started), as ``os.killpg`` sends it here."""
    return subprocess.Popen([sys.executable, "-m", "tuneflow", *args], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


STOPPABLE = ["+arch=quadratic", "-m", "params.seconds_per_epoch=0.2", "tracking.log_model=false",
             "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=6"]


def stop_twice_then_resume(project: Path, env: dict[str, str], study: str, engine: str) -> str:
    """SIGTERM to the driver, then Ctrl-C, each while the workers train: the command ends with 143 / 130,
    every worker's trial FAIL with its MLflow run KILLED by then, the parent run KILLED; the same command
    then finishes the study with exactly n_trials. The last run's output."""
    args = [*STOPPABLE, f"hydra.sweeper.study_name={study}", *workers(engine)]
    stopped: list[int] = []
    for signum, status, word in ((signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")):
        driver = start_in_own_group(project, env, *args)
        try:
            wait_until(lambda: trial_in_training(project, study), "a trial in training", workers=[driver])
            if signum == signal.SIGTERM:
                driver.send_signal(signum)  # a scheduler, kill: the driver alone
            else:
                os.killpg(driver.pid, signum)  # Ctrl-C: the driver and its workers
            code, output = finish(driver, timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        assert code == status, output[-3000:]
        assert f"tuneflow: {word}" in output
        trials = load_study(project, study).trials
        # When the command ends, not once a later run finds a heartbeat stale.
        assert "RUNNING" not in [t.state.name for t in trials], [t.state.name for t in trials]
        new = [t for t in trials if t.state.name == "FAIL" and t.number not in stopped]
        assert new, [t.state.name for t in trials]
        stopped += [t.number for t in new]
        runs = {run.info.run_id: run.info.status for run in study_runs(project, study)}
        started = [t.user_attrs["mlflow_run_id"] for t in new if "mlflow_run_id" in t.user_attrs]
        assert started and all(runs[run_id] == "KILLED" for run_id in started), runs
        assert {run.info.status for run in study_runs(project, study, role="study")} == {"KILLED"}
    code, output = finish(start_in_own_group(project, env, *args))
    assert code == 0, output[-3000:]
    trials = load_study(project, study).trials
    assert [t.state.name for t in trials].count("COMPLETE") == 6, [t.state.name for t in trials]
    assert sorted(t.number for t in trials if t.state.name != "COMPLETE") == sorted(stopped)
    assert f"study {study!r}: 6 finished, {len(stopped)} failed" in output
    return output


def test_sigterm_and_ctrl_c_to_the_driver_stop_the_workers_and_the_same_command_resumes(project: Path) -> None:
    stop_twice_then_resume(project, tuneflow_env(), "term", "local")


def test_a_relative_journal_file_is_refused_on_slurm_and_nothing_is_created(project: Path) -> None:
    code, output = finish(start_tuneflow(project, *FAST, *workers("slurm")))
    assert code == 2, output[-3000:]
    assert ("tuneflow: error: hydra.sweeper.storage is a journal file at a relative path (mlruns/optuna.journal), which "
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


def test_workers_on_a_local_ray_stop_like_ctrl_c_and_resume_to_exactly_n_trials(project: Path) -> None:
    """Three Ray starts (slow): SIGTERM, Ctrl-C, then the same command finishes the study."""
    if not os.environ.get("TUNEFLOW_CI"):
        pytest.importorskip("ray", reason="pip install 'tuneflow[ray]' (CI installs it)")
    home = project.parent / "home"
    home.mkdir()
    output = stop_twice_then_resume(project, {**tuneflow_env(), "HOME": str(home)}, "on-ray", "ray")
    assert "2 workers submitted to Ray (local, 127.0.0.1)" in output
    assert not (home / ".ray" / "auth_token").exists(), "the local Ray's token file is removed with it"
