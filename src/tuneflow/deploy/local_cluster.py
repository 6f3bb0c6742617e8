"""The multi-worker topology on one machine, from Debian's and PyPI's packages (no Docker engine):
a PostgreSQL cluster for Optuna and MLflow, an MLflow tracking server backed by it, and N workers that
each run the same ``python -m tuneflow ... -m`` command. ``docker/compose.yaml`` is the same topology
in containers.

    python -m tuneflow.deploy.local_cluster up                      # PostgreSQL + MLflow server, in the background
    python -m tuneflow.deploy.local_cluster work -n 4 -- +arch=mlp -m hydra.sweeper.n_trials=40
    python -m tuneflow.deploy.local_cluster env                     # the settings for a worker in your own shell
    python -m tuneflow.deploy.local_cluster down
    python -m tuneflow.deploy.local_cluster run -n 4 -- +arch=mlp -m ...   # up, work, down

Needs ``apt-get install -y postgresql`` and ``pip install 'tuneflow[postgres]'``. Every server listens on
127.0.0.1 unless ``--host`` says otherwise. The database password is ``$PGPASSWORD`` when set, else a
random one kept in ``DIR/pgpass`` (mode 600, libpq's password-file format); it is handed to the servers
and workers through libpq's environment (``PGPASSWORD`` / ``PGPASSFILE``), never on a command line.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from tuneflow.storage.urls import http_problem

#: The database role every worker and the MLflow server use (the cluster's superuser; a local cluster only).
DB_USER = "tuneflow"
#: Optuna's and MLflow's tables live in separate databases: both keep an ``alembic_version`` table.
OPTUNA_DB, MLFLOW_DB = "optuna", "mlflow"


class ClusterError(RuntimeError):
    """A step of starting or stopping the cluster failed; the message says which and where its log is."""


@dataclass
class LocalCluster:
    directory: Path
    host: str = "127.0.0.1"
    pg_port: int = 55432
    mlflow_port: int = 5000
    mlflow_workers: int = 2
    #: Seconds to wait for a server to answer.
    timeout: float = 120.0
    #: The database password; None = $PGPASSWORD, else the one in DIR/pgpass. Never saved by tuneflow.
    password: str | None = field(default=None, repr=False)
    _mlflow: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # --- paths and settings ----------------------------------------------------------------------

    @property
    def pg_dir(self) -> Path:
        return self.directory / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def passfile(self) -> Path:
        return self.directory / "pgpass"

    @property
    def client_host(self) -> str:
        """Where clients on this machine reach the servers."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "*", "") else self.host

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.client_host}:{self.mlflow_port}"

    def database_url(self, database: str) -> str:
        """A URL without password: libpq adds it from the environment."""
        return f"postgresql+psycopg2://{DB_USER}@{self.client_host}:{self.pg_port}/{database}"

    def password_env(self) -> dict[str, str]:
        if self.password:
            return {"PGPASSWORD": self.password}
        if os.environ.get("PGPASSWORD"):
            return {"PGPASSWORD": os.environ["PGPASSWORD"]}
        return {"PGPASSFILE": str(self.passfile)}

    def worker_env(self) -> dict[str, str]:
        """What a worker needs beside its command: where the study and the runs go, and the password."""
        return {
            "PGHOST": self.client_host,
            "PGPORT": str(self.pg_port),
            "PGUSER": DB_USER,
            "PGDATABASE": OPTUNA_DB,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            **self.password_env(),
        }

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Not the password (it stays in the environment or DIR/pgpass), not the server's process handle.
        settings = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        settings.pop("password")
        settings["directory"] = str(self.directory)
        (self.directory / "cluster.json").write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> LocalCluster:
        path = directory / "cluster.json"
        if not path.exists():
            raise ClusterError(f"no cluster in {directory}: start one with `python -m tuneflow.deploy.local_cluster up`")
        settings = json.loads(path.read_text())
        settings["directory"] = Path(settings["directory"])
        return cls(**settings)

    # --- PostgreSQL ------------------------------------------------------------------------------

    def postgres_running(self) -> bool:
        status = subprocess.run(_as_db_owner([_pg_binary("pg_ctl"), "-D", str(self.pg_data), "status"]),
                                capture_output=True)
        return status.returncode == 0

    def start_postgres(self) -> None:
        if not (self.pg_data / "PG_VERSION").exists():
            self._init_postgres()
        elif self.postgres_running():
            self._create_databases()
            return
        command = [
            _pg_binary("pg_ctl"), "-D", str(self.pg_data), "-l", str(self.pg_dir / "server.log"),
            "-w", "-t", str(int(self.timeout)),
            "-o", f"-c listen_addresses={self.host} -p {self.pg_port}",
            "start",
        ]
        _run(_as_db_owner(command), "start PostgreSQL", log=self.pg_dir / "server.log")
        self._create_databases()

    def _init_postgres(self) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        _give_to_db_owner(self.pg_dir)
        password = self._new_password()
        pwfile = self.pg_dir / "initdb.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        _give_to_db_owner(pwfile)
        try:
            _run(
                _as_db_owner([
                    _pg_binary("initdb"), "-D", str(self.pg_data), "-U", DB_USER, f"--pwfile={pwfile}",
                    "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions",
                ]),
                "initialise PostgreSQL",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = [
            "# tuneflow.deploy.local_cluster: TCP only, no Unix socket (nothing outside DIR is written).",
            "unix_socket_directories = ''",
            "max_connections = 200",
        ]
        with (self.pg_data / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(settings) + "\n")
        if self.client_host != "127.0.0.1":
            with (self.pg_data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet scram-sha-256\n")

    def _new_password(self) -> str:
        given = self.password_env().get("PGPASSWORD")
        if given:
            return given
        password = secrets.token_urlsafe(24)
        self.passfile.parent.mkdir(parents=True, exist_ok=True)
        self.passfile.touch(mode=0o600)
        self.passfile.write_text(f"*:*:*:{DB_USER}:{password}\n")
        return password

    def _create_databases(self) -> None:
        import psycopg2

        env = self.password_env()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                connection = psycopg2.connect(
                    host=self.client_host, port=self.pg_port, user=DB_USER, dbname="postgres",
                    password=env.get("PGPASSWORD"), passfile=env.get("PGPASSFILE"), connect_timeout=5,
                )
                break
            except psycopg2.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ClusterError(f"PostgreSQL on port {self.pg_port} does not accept {DB_USER}: {error}") from None
                time.sleep(0.2)
        # CREATE DATABASE cannot run in a transaction (and psycopg2's `with connection` opens one).
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                for database in (OPTUNA_DB, MLFLOW_DB):
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        cursor.execute(f'CREATE DATABASE "{database}"')
        finally:
            connection.close()

    def stop_postgres(self, mode: str = "fast") -> None:
        """``mode="immediate"`` stops it as a crash would (recovery from the WAL on the next start)."""
        if (self.pg_data / "postmaster.pid").exists():
            _run(_as_db_owner([_pg_binary("pg_ctl"), "-D", str(self.pg_data), "-m", mode, "-w", "stop"]),
                 "stop PostgreSQL")

    # --- MLflow tracking server ------------------------------------------------------------------

    def mlflow_running(self) -> bool:
        return http_problem(f"{self.tracking_uri}/health", timeout=2) is None

    def start_mlflow(self) -> None:
        if self.mlflow_running():
            return
        artifacts = self.directory / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "mlflow.log").open("ab")
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", self.host, "--port", str(self.mlflow_port),
            "--backend-store-uri", self.database_url(MLFLOW_DB),
            "--artifacts-destination", str(artifacts.resolve()),
            "--workers", str(self.mlflow_workers),
        ]
        env = {**_clean_env(), **self.password_env()}
        # Its own process group: stopping the server stops its uvicorn workers too.
        self._mlflow = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        (self.directory / "mlflow.pid").write_text(f"{self._mlflow.pid}\n")
        self._wait_for_mlflow(self._mlflow)

    def _wait_for_mlflow(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ClusterError(f"the MLflow server exited with {process.returncode}; see {self.directory / 'mlflow.log'}")
            if self.mlflow_running():
                return
            time.sleep(0.3)
        raise ClusterError(f"the MLflow server did not answer within {self.timeout:.0f}s; see {self.directory / 'mlflow.log'}")

    def stop_mlflow(self, sig: int = signal.SIGTERM) -> None:
        pid_file = self.directory / "mlflow.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        if not _wait_gone(pid, self._mlflow, timeout=15):
            # uvicorn waits for open connections to close; a server that does not stop is killed.
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, self._mlflow, timeout=15)
        pid_file.unlink(missing_ok=True)

    # --- the whole topology -----------------------------------------------------------------------

    def up(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.save()
        self.start_postgres()
        self.start_mlflow()

    def down(self) -> None:
        self.stop_mlflow()
        self.stop_postgres()

    def start_worker(
        self, args: list[str], log: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        """One worker: ``python -m tuneflow ARGS`` on this cluster's study storage and tracking server."""
        storage = [] if any(a.startswith(("hydra/sweeper/storage=", "hydra.sweeper.storage")) for a in args) else [
            "hydra/sweeper/storage=postgres"
        ]
        out = log.open("w") if log is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-m", "tuneflow", *args, *storage],
            env={**_clean_env(), **self.worker_env(), **(env or {})},
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=cwd,
        )

    def work(self, n_workers: int, args: list[str]) -> int:
        """Run ``n_workers`` workers to the end, their output prefixed on stdout and kept in DIR/worker-N.log."""
        workers = [self.start_worker(args) for _ in range(n_workers)]
        threads = [
            threading.Thread(target=_relay, args=(w, f"[worker {i + 1}] ", self.directory / f"worker-{i + 1}.log"))
            for i, w in enumerate(workers)
        ]
        for thread in threads:
            thread.start()
        try:
            codes = [w.wait() for w in workers]
        except KeyboardInterrupt:
            for worker in workers:
                worker.send_signal(signal.SIGINT)
            codes = [w.wait() for w in workers]
        for thread in threads:
            thread.join()
        return next((code for code in codes if code != 0), 0)


# --- helpers ---------------------------------------------------------------------------------------


def _pg_binary(name: str) -> str:
    """Debian keeps initdb and pg_ctl out of PATH, under /usr/lib/postgresql/<version>/bin."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    found = candidates[-1] if candidates else shutil.which(name)
    if found is None:
        raise ClusterError(f"{name} not found: install PostgreSQL (apt-get install -y postgresql)")
    return found


def _as_db_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _give_to_db_owner(path: Path) -> None:
    if os.geteuid() != 0:
        return
    shutil.chown(path, user="postgres", group="postgres")
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(path)], capture_output=True)
    if probe.returncode != 0:
        raise ClusterError(
            f"the postgres user cannot reach {path}: put the cluster (--dir) under a folder every user may "
            "enter, such as /srv or /tmp"
        )


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        where = f"; see {log}" if log is not None else ""
        raise ClusterError(f"could not {what}: {detail[-1] if detail else result.returncode}{where}")


def _clean_env() -> dict[str, str]:
    """This process's environment without settings that would point a child elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MLFLOW_TRACKING_URI"))}


def _wait_gone(pid: int, child: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Whether process ``pid`` ended within ``timeout`` (reaped, when this process started it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.pid == pid:
            if child.poll() is not None:
                return True
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.1)
    return False


def _relay(process: subprocess.Popen[str], prefix: str, log: Path) -> None:
    assert process.stdout is not None
    with log.open("w") as out:
        for line in process.stdout:
            out.write(line)
            out.flush()
            print(prefix + line, end="", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneflow.deploy.local_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "work", "env", "down", "run"])
    parser.add_argument("--dir", type=Path, default=Path(".tuneflow-cluster"), help="where the cluster keeps its data and logs")
    parser.add_argument("--host", default="127.0.0.1", help="address the servers listen on (default 127.0.0.1)")
    parser.add_argument("--pg-port", type=int, default=55432)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("-n", "--workers", type=int, default=2, help="workers for work/run")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the tuneflow command's, untouched.
    args = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    directory = options.dir.resolve()
    try:
        if options.action in ("up", "run"):
            cluster = LocalCluster(directory, host=options.host, pg_port=options.pg_port, mlflow_port=options.mlflow_port)
            cluster.up()
            print(f"PostgreSQL on {cluster.client_host}:{cluster.pg_port}, MLflow server on {cluster.tracking_uri}", flush=True)
        else:
            cluster = LocalCluster.load(directory)
        if options.action == "env":
            for key, value in cluster.worker_env().items():
                if key != "PGPASSWORD":  # never print a secret; it stays in your environment
                    print(f"export {key}={value}")
            print("# then, in each shell: python -m tuneflow +arch=NAME -m hydra/sweeper/storage=postgres ...")
        if options.action in ("work", "run"):
            if not args:
                parser.error("give the tuneflow arguments after --, e.g. -- +arch=mlp -m hydra.sweeper.n_trials=40")
            try:
                return cluster.work(options.workers, args)
            finally:
                if options.action == "run":
                    cluster.down()
        if options.action == "down":
            cluster.down()
    except ClusterError as error:
        print(f"tuneflow: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
