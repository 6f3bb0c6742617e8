"""Workers get killed (pre-emption, out of memory): nothing completed is lost, a killed worker's trial is
failed by its stale heartbeat and retried with the same params by another worker, and the study still
ends with exactly n_trials finished trials. The same story on the embedded default (Optuna's journal file
with file heartbeats, two workers on one machine), on SQLite (hydra/sweeper/storage=sqlite) and on the local
cluster (PostgreSQL + an MLflow server, four workers)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from topology import ServerTopology, SqliteTopology, Topology, finished, wait_until

pytestmark = pytest.mark.slow

N_TRIALS = 8


def worker_args(study: str) -> list[str]:
    # 20 epochs of 0.2 s: a trial seen in training is still training seconds later, when it is killed (a
    # loaded machine takes its time between the check and the kill). Heartbeats every 2 s: a dead worker's
    # trial is failed 4 s after its last beat. A progress line at every report: the console says which
    # worker trains which trial (Topology.worker_running).
    return ["+arch=quadratic", "-m", f"hydra.sweeper.n_trials={N_TRIALS}", "hydra/sweeper/pruner=none",
            "hydra.sweeper.heartbeat_interval=2", "params.seconds_per_epoch=0.2", "tracking.log_model=false",
            "hydra.sweeper.progress_interval=0.1", f"hydra.sweeper.study_name={study}"]


@pytest.fixture(params=["embedded", "sqlite", "postgres"])
def topology(request: pytest.FixtureRequest, project: Path) -> Any:
    if request.param == "embedded":
        topology = Topology(project)
    elif request.param == "sqlite":
        topology = SqliteTopology(project)
    else:
        topology = ServerTopology(project, cluster=request.getfixturevalue("cluster"))
    yield topology
    topology.stop_workers()


def trial_in_training(topology: Topology, study: str) -> Any:
    """A running trial that has reported at least one epoch (so it is mid-trial, not starting up)."""
    return next((t for t in topology.study(study).trials
                 if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2), None)


def finished_trials(study: Any) -> dict[int, tuple[str, float | None]]:
    return {t.number: (t.state.name, t.value) for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}


def assert_clean_output(outputs: list[str]) -> None:
    for out in outputs:
        assert "database is locked" not in out, out[-3000:]
        assert "Traceback" not in out, out[-3000:]


def assert_each_killed_trial_was_retried(topology: Topology, study_name: str, killed: set[int]) -> None:
    """Every killed trial: FAIL in Optuna, its MLflow run FAILED, and a COMPLETE retry with the same
    params whose own run is tagged as the retry."""
    study = topology.study(study_name)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == N_TRIALS, states
    failed = {t.number: t for t in study.trials if t.state.name == "FAIL"}
    assert set(failed) == killed, f"only the killed trials failed: {sorted(failed)} vs {sorted(killed)}"
    assert not any(t.user_attrs.get("tuneflow_surplus") for t in study.trials), "no worker asked for too many"
    runs = {r.info.run_id: r for r in topology.runs(study_name)}
    assert all(r.info.status != "RUNNING" for r in runs.values()), "no zombie RUNNING run"
    numbers = [r.data.tags["tuneflow.trial_number"] for r in runs.values()]
    assert len(numbers) == len(set(numbers)), "at most one MLflow run per trial"
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            assert runs[trial.user_attrs["mlflow_run_id"]].info.status == "FINISHED"
    for number, dead in failed.items():
        (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
        assert retry.state.name == "COMPLETE"
        if dead.params:
            assert retry.params == dead.params
        else:
            # Killed inside Optuna's ask, after the trial row was created and before its params were
            # written: adopted by the next worker (one beat), it went stale and was retried as a fresh
            # trial; there were no params to keep. It never ran, so it has no run and no values.
            assert not dead.intermediate_values and retry.params
        retry_run = runs[retry.user_attrs["mlflow_run_id"]]
        assert retry_run.data.tags["tuneflow.retry_of_trial"] == str(number)
        dead_runs = [r for r in runs.values() if r.data.tags["tuneflow.trial_number"] == str(number)]
        if not dead_runs:
            # Killed after it was asked for, before its job created a run: there is nothing to end.
            assert not dead.intermediate_values and retry_run.data.tags["tuneflow.retry_of_run"] == ""
            continue
        (dead_run,) = dead_runs
        assert dead_run.info.status in ("FAILED", "KILLED")
        assert dead_run.data.tags["tuneflow.state"] == "FAIL"
        assert retry_run.data.tags["tuneflow.retry_of_run"] == dead.user_attrs.get("mlflow_run_id", "")
    (parent,) = topology.runs(study_name, role="study")
    assert parent.info.status == "FINISHED"


def test_a_worker_killed_mid_trial_loses_nothing_and_its_trial_is_retried(topology: Topology) -> None:
    study_name = f"kill-one-{topology.name}"
    workers = [topology.start_worker(*worker_args(study_name)) for _ in range(topology.n_workers)]
    victim_trial = wait_until(lambda: trial_in_training(topology, study_name), "a trial in training",
                              workers=workers)
    victim = topology.worker_running(victim_trial.number)
    before = finished_trials(topology.study(study_name))
    victim.send_signal(signal.SIGKILL)
    victim.communicate()

    survivors = [w for w in workers if w is not victim]
    results = [finished(w) for w in survivors]
    assert [code for code, _ in results] == [0] * len(survivors), [out[-3000:] for _, out in results]
    assert_clean_output([out for _, out in results])

    after = topology.study(study_name)
    assert {n: finished_trials(after)[n] for n in before} == before, "completed trials are kept as they were"
    assert_each_killed_trial_was_retried(topology, study_name, killed={victim_trial.number})


def test_kill_every_process_then_the_same_command_resumes_where_it_stopped(topology: Topology) -> None:
    study_name = f"kill-all-{topology.name}"
    workers = [topology.start_worker(*worker_args(study_name)) for _ in range(topology.n_workers)]
    wait_until(lambda: len(finished_trials(topology.study(study_name))) >= 2
               and trial_in_training(topology, study_name), "two finished trials and one in training",
               workers=workers)
    topology.kill_everything()  # workers, and with servers: the MLflow server and PostgreSQL too
    topology.restart()
    study = topology.study(study_name)
    before = finished_trials(study)
    killed = {t.number for t in study.trials if t.state.name == "RUNNING"}
    assert killed and len(before) < N_TRIALS

    topology.workers = []
    again = [topology.start_worker(*worker_args(study_name)) for _ in range(topology.n_workers)]
    results = [finished(w) for w in again]
    assert [code for code, _ in results] == [0] * len(again), [out[-3000:] for _, out in results]
    assert_clean_output([out for _, out in results])

    after = topology.study(study_name)
    assert {n: finished_trials(after)[n] for n in before} == before, "completed trials are kept as they were"
    assert_each_killed_trial_was_retried(topology, study_name, killed=killed)


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried_too(project: Path) -> None:
    """A worker killed between asking for a trial and its first heartbeat leaves a RUNNING trial with
    no heartbeat at all, which Optuna never finds stale; the next worker must not wait for it forever."""
    import optuna
    from optuna.distributions import FloatDistribution

    from tuneflow.storage.study import open_storage

    topology = Topology(project)
    storage = open_storage(f"journal://{project / 'mlruns' / 'optuna.journal'}")  # the embedded default's
    orphan_study = optuna.create_study(study_name="orphan", storage=storage, direction="minimize")
    orphan = orphan_study.ask({"x": FloatDistribution(-5.0, 5.0), "y": FloatDistribution(-5.0, 5.0)})

    worker = topology.start_worker("+arch=quadratic", "-m", "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=none",
                                   "hydra.sweeper.heartbeat_interval=1", "tracking.log_model=false",
                                   "hydra.sweeper.study_name=orphan")
    code, out = finished(worker, timeout=300)
    assert code == 0, out[-3000:]
    study = topology.study("orphan")
    states = {t.number: t.state.name for t in study.trials}
    assert states[orphan.number] == "FAIL" and list(states.values()).count("COMPLETE") == 2, states
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert retry.state.name == "COMPLETE" and retry.params == orphan.params
