"""Many workers on PostgreSQL and an MLflow server, started as a user starts them: the local cluster
(``python -m tuneflow.deploy.local_cluster``) runs four copies of the same ``python -m tuneflow ... -m`` command.
Together they run exactly n_trials trials, one MLflow run each; the database password (in the
environment only) is nowhere in MLflow, the outputs, the logs or the CSV; the servers listen on
127.0.0.1 only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import tuneflow_env
from topology import ServerTopology

pytestmark = pytest.mark.slow

N_TRIALS = 12
STUDY = "four-workers"


@pytest.fixture(scope="module")
def four_workers(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``local_cluster work -n 4``, the password given the way a user gives it: $PGPASSWORD."""
    project = tmp_path_factory.mktemp("four-workers")
    result = subprocess.run(
        [sys.executable, "-m", "tuneflow.deploy.local_cluster", "work", "--dir", str(cluster.directory), "-n", "4", "--",
         "+arch=quadratic", "-m", f"hydra.sweeper.n_trials={N_TRIALS}", f"hydra.sweeper.study_name={STUDY}",
         "params.seconds_per_epoch=0.05"],
        cwd=project, env={**tuneflow_env(), "PGPASSWORD": cluster.password},
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return project, result.stdout + result.stderr


def test_four_workers_run_exactly_n_trials_with_one_mlflow_run_each(
    cluster: Any, four_workers: tuple[Path, str]
) -> None:
    project, output = four_workers
    topology = ServerTopology(project, cluster=cluster)
    study = topology.study(STUDY)
    assert len(study.trials) == N_TRIALS, "no surplus trial: workers ask under the study's lock"
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    runs = topology.runs(STUDY)
    assert sorted(r.info.run_id for r in runs) == sorted(t.user_attrs["mlflow_run_id"] for t in study.trials)
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    (parent,) = topology.runs(STUDY, role="study")
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    # Every worker printed the same total, and the work was shared.
    assert output.count(f"study '{STUDY}': {N_TRIALS} finished, 0 failed") == 4
    workers_with_trials = set(re.findall(r"^\[worker (\d)\] \[\d+/\d+\] trial \d+ ", output, re.MULTILINE))
    assert len(workers_with_trials) >= 2, output[-3000:]
    for bad in ("Traceback", "database is locked", "tuneflow: error"):
        assert bad not in output


def test_the_password_is_nowhere_in_mlflow_outputs_logs_or_csv(cluster: Any, four_workers: tuple[Path, str]) -> None:
    import psycopg2

    project, output = four_workers
    password = cluster.password
    # The password is real: without it the database refuses the connection.
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=cluster.pg_port, user="tuneflow", dbname="optuna",
                         passfile="/nonexistent", password="")
    topology = ServerTopology(project, cluster=cluster)
    client = topology.client()
    runs = topology.runs(STUDY) + topology.runs(STUDY, role="study")
    assert runs
    for run in runs:
        for key, value in [*run.data.params.items(), *run.data.tags.items()]:
            assert password not in key and password not in str(value), (run.info.run_id, key)
        assert not any(password in key for key in run.data.metrics)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts, "each run has artifacts (config.yaml, model, trials.csv)"
    study = topology.study(STUDY)
    attrs = [study.user_attrs] + [(t.user_attrs, t.system_attrs) for t in study.trials]
    assert password not in repr(attrs)
    # Files: every artifact the MLflow server stored, the project (Hydra's .hydra/*.yaml, multirun.yaml,
    # the CSV), and the logs of the workers, the MLflow server and PostgreSQL.
    scanned = 0
    for folder in (cluster.directory / "mlartifacts", project, cluster.directory):
        for path in folder.rglob("*"):
            if path.is_file() and "pg/data" not in str(path) and path.name != "pgpass":
                assert password.encode() not in path.read_bytes(), path
                scanned += 1
    assert scanned > 50, "the folders were really there"
    assert list(project.rglob("trials.csv")) and list(project.rglob("multirun.yaml"))
    assert password not in output


def test_servers_listen_on_127_0_0_1_only(cluster: Any) -> None:
    listening = listening_addresses()
    for port in (cluster.pg_port, cluster.mlflow_port):
        assert listening.get(port) == {"127.0.0.1"}, (port, listening.get(port))


def test_a_wrong_password_is_one_line_and_leaves_the_study_as_it_was(
    cluster: Any, four_workers: tuple[Path, str]
) -> None:
    project, _ = four_workers
    topology = ServerTopology(project, cluster=cluster)
    before = [(t.number, t.state.name, t.value) for t in topology.study(STUDY).trials]
    runs_before = sorted((r.info.run_id, r.info.status) for r in topology.runs(STUDY))
    env = {**tuneflow_env(), **cluster.worker_env(), "PGPASSWORD": "not-the-password"}
    result = subprocess.run(
        [sys.executable, "-m", "tuneflow", "+arch=quadratic", "-m", "hydra/sweeper/storage=postgres",
         f"hydra.sweeper.study_name={STUDY}", f"hydra.sweeper.n_trials={N_TRIALS + 4}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("tuneflow: error: hydra.sweeper.storage: cannot connect to ")
    assert 'password authentication failed for user "tuneflow"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert [(t.number, t.state.name, t.value) for t in topology.study(STUDY).trials] == before
    assert sorted((r.info.run_id, r.info.status) for r in topology.runs(STUDY)) == runs_before


def listening_addresses() -> dict[int, set[str]]:
    """Port -> addresses with a listening TCP socket, from /proc/net/tcp and tcp6."""
    found: dict[int, set[str]] = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            address, port = local.split(":")
            found.setdefault(int(port, 16), set()).add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "::" if set(hex_address) == {"0"} else hex_address


def test_a_worker_checking_a_study_waits_while_another_worker_creates_the_tables(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna's RDBStorage stamps alembic_version when it finds Optuna's tables without it, even with
    skip_table_creation: a worker's resume check must not do that while another creates the tables (CI saw
    "duplicate key ... alembic_version" with four workers), so it waits for that worker's open lock."""
    import threading
    from types import SimpleNamespace

    from tuneflow.storage import locks
    from tuneflow.sweeper.plan import check_parent_run_reachable

    monkeypatch.setenv("PGPASSWORD", cluster.password)
    url = cluster.database_url("optuna")
    settings: Any = SimpleNamespace(storage_url=url, root_dir=str(tmp_path / "mlruns"), name="being-created",
                                    tracking_uri=cluster.tracking_uri)
    checker = threading.Thread(target=check_parent_run_reachable, args=(settings,), daemon=True)
    with locks.study_lock(url, settings.root_dir, settings.name, "open"):
        checker.start()
        checker.join(timeout=3)
        assert checker.is_alive(), "the check read the database while another worker held the open lock"
    checker.join(timeout=60)
    assert not checker.is_alive()
