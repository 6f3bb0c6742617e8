"""Where workers run in the tests: the embedded default (Optuna's journal file and MLflow's SQLite in the
project), Optuna's SQLite file instead (``hydra/sweeper/storage=sqlite``) or the
multi-worker topology of ``tuneflow.deploy.local_cluster`` (PostgreSQL + an MLflow server), behind one face:
start a worker, read the study back from Optuna, read its runs back from MLflow."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, mlflow_client, tuneflow_env

#: Set by .ci/run: there, a PostgreSQL that cannot start fails the tests instead of skipping them.
CI_MARKER = "TUNEFLOW_CI"


@contextmanager
def local_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster and an MLflow server started by ``tuneflow.deploy.local_cluster`` in a fresh
    folder, on free ports, with a random password; stopped and removed afterwards."""
    from tuneflow.deploy.local_cluster import ClusterError, LocalCluster, free_port

    # Under /tmp and enterable by everyone: PostgreSQL runs as the postgres user.
    directory = Path(tempfile.mkdtemp(prefix="tuneflow-cluster-"))
    directory.chmod(0o711)
    cluster = LocalCluster(
        directory / "cluster", pg_port=free_port(), mlflow_port=free_port(), mlflow_workers=1,
        password="pw-" + secrets.token_hex(12),
    )
    try:
        try:
            cluster.up()
        except (ClusterError, OSError, subprocess.SubprocessError) as error:
            if os.environ.get(CI_MARKER):
                pytest.fail(f"CI must start PostgreSQL and an MLflow server: {error}")
            pytest.skip(f"PostgreSQL / MLflow server unavailable here ({error}); CI runs these tests")
        yield cluster
    finally:
        try:
            cluster.down()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def finished(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    """Wait for a worker; its return code and everything it printed (kept in its log file)."""
    process.wait(timeout=timeout)
    return process.returncode, output_of(process)


def output_of(process: subprocess.Popen[str]) -> str:
    return _LOGS[process.pid].read_text()


#: Worker process id -> its log file (workers write to files: a full pipe would block them).
_LOGS: dict[int, Path] = {}


@dataclass
class Topology:
    """Workers on one study in ``project``; subclasses say where the study and the runs live."""

    project: Path
    name: str = "embedded"
    n_workers: int = 2
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        import sys

        log = self.next_log()
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, "-m", "tuneflow", *args], cwd=self.project,
                                       env=tuneflow_env(), stdout=out, stderr=subprocess.STDOUT, text=True)
        return self.started(process, log)

    def next_log(self) -> Path:
        return self.project / f"worker-{len(list(self.project.glob('worker-*.log'))) + 1}.log"

    def started(self, process: subprocess.Popen[str], log: Path) -> subprocess.Popen[str]:
        _LOGS[process.pid] = log
        self.workers.append(process)
        return process

    def worker_running(self, trial_number: int) -> subprocess.Popen[str]:
        """The worker that trains trial ``trial_number``: its console shows ``trial N running: step ...``
        once the trial has reported (before the report reaches the study; with a progress interval
        shorter than a step, at every report)."""
        marker = f"trial {trial_number} running: "
        (worker,) = [w for w in self.workers if w.poll() is None and marker in output_of(w)]
        return worker

    def study(self, name: str) -> Any:
        return load_study(self.project, name)

    def client(self) -> Any:
        return mlflow_client(self.project)

    def runs(self, study: str, role: str = "trial") -> list[Any]:
        client = self.client()
        experiment = client.get_experiment_by_name(study)
        assert experiment is not None, f"no MLflow experiment {study!r}"
        return client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`tuneflow.role` = '{role}'", max_results=10_000
        )

    def kill_everything(self) -> None:
        """kill -9 every worker (and, with servers, the servers)."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
            worker.wait()

    def restart(self) -> None:
        """Bring back whatever ``kill_everything`` stopped, except the workers."""

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


@dataclass
class SqliteTopology(Topology):
    """The embedded stores with the Optuna study in an SQLite file (``hydra/sweeper/storage=sqlite``, the
    default before the journal): two workers on one machine sharing ``mlruns/optuna.db``, with heartbeats."""

    name: str = "sqlite"

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        return super().start_worker(*args, "hydra/sweeper/storage=sqlite")

    def study(self, name: str) -> Any:
        import optuna

        path = self.project / "mlruns" / "optuna.db"
        if not path.is_file():  # Optuna's RDBStorage would create it: reading must not
            raise FileNotFoundError(path)
        return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


@dataclass
class ServerTopology(Topology):
    """The local cluster: PostgreSQL for Optuna and MLflow, an MLflow server, workers started as
    ``tuneflow.deploy.local_cluster`` starts them."""

    cluster: Any = None
    name: str = "postgres"
    n_workers: int = 4

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        log = self.next_log()
        process = self.cluster.start_worker(list(args), log=log, cwd=self.project, env=_test_env())
        return self.started(process, log)

    def study(self, name: str) -> Any:
        import optuna

        storage = optuna.storages.RDBStorage(
            self.cluster.database_url("optuna"),
            engine_kwargs={"connect_args": {"password": self.cluster.password}},
        )
        return optuna.load_study(study_name=name, storage=storage)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.cluster.tracking_uri)

    def kill_everything(self) -> None:
        super().kill_everything()
        self.cluster.stop_mlflow(signal.SIGKILL)
        # "immediate" = no shutdown checkpoint: the next start recovers from the WAL, as after a crash.
        self.cluster.stop_postgres(mode="immediate")

    def restart(self) -> None:
        self.cluster.up()


def _test_env() -> dict[str, str]:
    """What tests give every worker (one thread each: several share 2 cores), minus MLflow/Hydra settings."""
    env = tuneflow_env()
    return {k: env[k] for k in ("PYTHONUNBUFFERED", "OMP_NUM_THREADS")}


def wait_until(condition: Any, what: str, timeout: float = 300, workers: Sequence[Any] = ()) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail (with the workers' output) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the study or experiment may not exist yet
            value = None
        if value:
            return value
        if workers and all(w.poll() is not None for w in workers):
            outputs = [finished(w)[1][-3000:] for w in workers]
            raise AssertionError(f"every worker exited before {what}:\n" + "\n---\n".join(outputs))
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
