"""``tuneflow ui STUDY``: the MLflow UI and optuna-dashboard on one study's stores, both on 127.0.0.1.

Starts ``mlflow ui`` on the study's tracking store and ``optuna-dashboard`` on its Optuna storage, each on
a free port (or ``--mlflow-port`` / ``--dashboard-port``), waits until both answer, and prints the two
addresses, each opened on the study. Ctrl-C (or SIGTERM) stops both, with every process they started:
each runs in its own process group, which is ended as a whole. When the tracking URI is already a
server (``http://...``), no MLflow UI is started; its address is printed instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneflow.errors import ConfigError
from tuneflow.storage.readers import (
    Parser,
    StudyLocation,
    add_store_arguments,
    fail,
    load_study,
    parent_run_id,
    read_storage,
)
from tuneflow.storage.urls import http_problem

if TYPE_CHECKING:
    import optuna

HOST = "127.0.0.1"
#: Seconds a server may take to answer its first request (MLflow's first start migrates its schema).
START_TIMEOUT = 120.0


@dataclass
class Server:
    name: str
    command: list[str]
    #: Where it answers once ready.
    probe_url: str
    #: What the user opens: the study's page.
    study_url: str
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def dashboard_executable() -> str:
    """optuna-dashboard from the same environment as tuneflow, else from PATH."""
    beside = Path(sys.executable).with_name("optuna-dashboard")
    found = str(beside) if beside.exists() else shutil.which("optuna-dashboard")
    if not found:
        raise ConfigError("optuna-dashboard is not installed in this environment; pip install optuna-dashboard")
    return found


def mlflow_server(location: StudyLocation, port: int, page: str, logs: Path) -> Server:
    artifacts = (location.root_dir.resolve() / "artifacts").as_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", location.tracking_uri,
               "--default-artifact-root", artifacts, "--host", HOST, "--port", str(port), "--workers", "1"]
    base = mlflow_base(port)
    # MLflow's job runner (GenAI evaluation jobs) starts half a dozen worker processes a tuning study
    # never uses; the user's environment can still turn it back on.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    return Server("MLflow UI", command, f"{base}/health", f"{base}/{page}", logs / "mlflow.log", env)


def mlflow_base(port: int) -> str:
    return f"http://{HOST}:{port}"


def searched_params(study: optuna.Study) -> list[str]:
    """The study's searched parameters, in the order its trials first sampled them."""
    names: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        names.update(dict.fromkeys(trial.params))
    return list(names)


def study_view(study: optuna.Study) -> dict[str, Any]:
    """The MLflow runs page of the study as ``tuneflow ui`` opens it: the study's trial (and repeat) runs
    as rows, not folded under the study's parent run (the filter leaves the parent out, so MLflow shows
    its children at the top level), best objective first, and as columns the objective, the trial's
    state (COMPLETE, PRUNED, FAIL: MLflow's own status says KILLED or FAILED only with an icon) and the
    searched params."""
    from optuna.study import StudyDirection

    from tuneflow.tracking.runs import ROLE_TAG, STATE_TAG, STUDY_TAG, filter_value

    name = study.study_name.replace("'", "\\'")
    return {
        "searchFilter": f"tags.`{STUDY_TAG}` = {filter_value(name)} AND tags.`{ROLE_TAG}` != 'study'",
        "orderByKey": "metrics.`objective`",
        "orderByAsc": study.directions[0] == StudyDirection.MINIMIZE,
        "selectedColumns": ["metrics.`objective`", f"tags.`{STATE_TAG}`",
                            *(f"params.`{param}`" for param in searched_params(study))],
    }


#: MLflow's "share view": an experiment tag ``mlflow.sharedViewState.<key>`` holds a runs page's search
#: and columns, which the URL ``...?viewStateShareKey=<key>`` opens (its UI keeps columns nowhere else but
#: in the browser's local storage).
SHARED_VIEW_TAG = "mlflow.sharedViewState."


def share_study_view(client: Any, experiment_id: str, study: optuna.Study) -> str:
    """Save the study's view in its MLflow experiment (unless saved as is) and return the page's path."""
    view = json.dumps(study_view(study), sort_keys=True)
    key = "tuneflow-" + hashlib.sha256(study.study_name.encode()).hexdigest()[:12]
    if client.get_experiment(experiment_id).tags.get(SHARED_VIEW_TAG + key) != view:
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, view)
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={key}"


def link_trials_to_runs(study: optuna.Study, storage: Any, study_id: int, mlflow_url: str, experiment_id: str) -> int:
    """Each trial's note in optuna-dashboard links to its MLflow run (the dashboard shows notes as
    Markdown; a user attribute would be plain text). The links hold the MLflow UI's address, so a note
    is rewritten when that changed; returns how many were."""
    from optuna.trial import Trial
    from optuna_dashboard import save_note

    from tuneflow.storage.study import RUN_ID_ATTR

    # Where optuna-dashboard keeps notes: the study's system attributes.
    saved = "\n".join(str(value) for value in storage.get_study_system_attrs(study_id).values())
    written = 0
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if not run_id:
            continue
        url = f"{mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}"
        if url in saved:
            continue
        save_note(Trial(study, trial._trial_id),  # noqa: SLF001 - the id of a stored trial
                  f"MLflow run of trial {trial.number}: [{run_id}]({url})")
        written += 1
    return written


def dashboard_server(location: StudyLocation, port: int, study_id: int, logs: Path) -> Server:
    from tuneflow.storage.journal import journal_path_of

    journal = journal_path_of(location.storage_url)
    # optuna-dashboard opens a journal file by its path, with the same file lock as the sweeper's.
    storage = [str(journal), "--storage-class", "JournalFileStorage"] if journal else [location.storage_url]
    command = [dashboard_executable(), *storage, "--host", HOST, "--port", str(port)]
    base = f"http://{HOST}:{port}"
    return Server("optuna-dashboard", command, f"{base}/api/studies", f"{base}/dashboard/studies/{study_id}",
                  logs / "optuna-dashboard.log")


def start(server: Server) -> None:
    log = server.log_path.open("wb")
    server.process = subprocess.Popen(
        server.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server.env,
        start_new_session=True,  # its own process group: stopped as a whole, workers included
    )
    log.close()


def wait_until_serving(servers: Sequence[Server], timeout: float = START_TIMEOUT) -> None:
    """Until every server answers; a server that exits or stays silent is an error with its log's tail."""
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            assert server.process is not None
            if server.process.poll() is not None:
                raise ConfigError(f"{server.name} exited with status {server.process.returncode}: {log_tail(server)}")
            if answers(server.probe_url):
                waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            raise ConfigError(f"{waiting[0].name} did not answer within {timeout:.0f}s: {log_tail(waiting[0])}")
        time.sleep(0.3)


def answers(url: str) -> bool:
    return http_problem(url, timeout=2) is None


def log_tail(server: Server, lines: int = 3) -> str:
    try:
        text = server.log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(text[-lines:]) or "no output"


def stop(servers: Sequence[Server], grace: float = 10.0) -> None:
    """SIGTERM to each server's process group, SIGKILL to what is left after ``grace`` seconds."""
    running = [s.process for s in servers if s.process is not None and s.process.poll() is None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for server in servers:
        if server.process is not None:
            # The group may outlive its leader (a server's workers): end what is left of it.
            _signal_group(server.process, signal.SIGKILL)
            server.process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def parse_arguments(argv: Sequence[str]) -> Any:
    parser = Parser(prog="tuneflow ui", description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_store_arguments(parser)
    parser.add_argument("--mlflow-port", type=int, default=0, help="port of the MLflow UI (default: a free one)")
    parser.add_argument("--dashboard-port", type=int, default=0, help="port of optuna-dashboard (default: a free one)")
    return parser.parse_args(list(argv))


def plan(location: StudyLocation, args: Any, logs: Path) -> tuple[list[Server], str | None]:
    """The servers to start, and the study's page on an MLflow server that already runs (if any).

    Before they start: the study's view saved in its MLflow experiment, and each trial's note in
    optuna-dashboard linked to the trial's MLflow run."""
    study = load_study(location)
    storage = read_storage(location)
    study_id = storage.get_study_id_from_name(study.study_name)
    servers = [dashboard_server(location, args.dashboard_port or free_port(), study_id, logs)]
    parent = parent_run_id(study)
    remote = location.tracking_uri.rstrip("/") if location.tracking_uri.startswith(("http://", "https://")) else None
    port = args.mlflow_port or free_port()
    base = remote or mlflow_base(port)
    page = ""
    if parent:
        from tuneflow.storage.readers import mlflow_client

        client = mlflow_client(location)
        experiment_id = client.get_run(parent).info.experiment_id
        page = share_study_view(client, experiment_id, study)
        link_trials_to_runs(study, storage, study_id, base, experiment_id)
    if remote:
        return servers, f"{remote}/{page}"
    servers.insert(0, mlflow_server(location, port, page, logs))
    return servers, None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        location = StudyLocation.from_arguments(args)
    except ConfigError as error:
        return fail(error)
    logs = Path(tempfile.mkdtemp(prefix="tuneflow-ui-"))
    servers: list[Server] = []
    # Ctrl-C even when started in the background (where a shell ignores SIGINT), and SIGTERM alike.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        servers, remote_mlflow = plan(location, args, logs)
        for server in servers:
            start(server)
        wait_until_serving(servers)
        for server in servers:
            print(f"{server.name + ':':<18} {server.study_url}", flush=True)
        if remote_mlflow:
            print(f"{'MLflow server:':<18} {remote_mlflow}", flush=True)
        print(f"study {location.name!r}; Ctrl-C stops {' and '.join(s.name for s in servers)}", flush=True)
        while all(s.process is not None and s.process.poll() is None for s in servers):
            time.sleep(0.5)
        gone = next(s for s in servers if s.process is not None and s.process.poll() is not None)
        print(f"tuneflow: error: {gone.name} stopped: {log_tail(gone)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the servers", file=sys.stderr, flush=True)
        return 0
    except Exception as error:  # noqa: BLE001 - fixable errors become one line, bugs keep their traceback
        return fail(error)
    finally:
        stop(servers)
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
