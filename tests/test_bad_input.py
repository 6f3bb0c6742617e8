"""Bad input, of every kind a user types: one line ``tuneflow: error: ...`` that names what to fix, exit
status 2, and the study already in the project, its MLflow runs and its files exactly as they were.

Every case runs in one project that holds a finished study (``quadratic``, 2 trials): before and after
each case the Optuna trials, the MLflow experiments, runs, params, metrics and tags and the project's
files are read back and compared (as values, not database bytes).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import mlflow_client, run_tuneflow, tuneflow_env

pytestmark = pytest.mark.slow

RANGES_BASE = ["+arch=lstm_attention", "-m", "mode=fast"]
SPEC = {"architecture": "lstm_attention", "parameters": {"num_of_attentions": [1, 2]}}
Q = ["+arch=quadratic", "-m"]


#: Sockets bound for the whole test session and never listening: their ports refuse connections, and no
#: other process can take them meanwhile (a port bound and released could be reused before the case runs).
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A local port that refuses connections for as long as the tests run."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Case:
    args: list[str]
    message: str
    env: dict[str, str] = field(default_factory=dict)
    #: Run ``python -m tuneflow spec spec.json`` with this spec (a dict, or raw text) instead of tuneflow.
    spec: Any = None


CASES: dict[str, Case] = {
    # --- overrides ------------------------------------------------------------------------------
    "unknown architecture": Case(["+arch=transformer", "-m"], "unknown arch 'transformer': choose one of"),
    "unknown sampler": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=tpee"], "unknown hydra/sweeper/sampler 'tpee'"),
    "sampler Optuna removed": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=motpe"],
                                   "unknown hydra/sweeper/sampler 'motpe': MOTPESampler was removed from Optuna; use hydra/sweeper/sampler=tpe"),
    "threshold pruner without a bound": Case([*Q, "hydra/sweeper/pruner=threshold"],
                                             "hydra.sweeper.pruner: cannot build ThresholdPruner: Either lower or upper must be specified"),
    "unknown pruner": Case(["+arch=mlp", "-m", "hydra/sweeper/pruner=medain"], "unknown hydra/sweeper/pruner 'medain'"),
    "unknown mode": Case([*Q, "mode=turbo"], "unknown mode 'turbo': choose one of fast, full"),
    "typo in a fixed override": Case(["+arch=mlp", "-m", "params.epochz=3"], "Could not override 'params.epochz'"),
    "no architecture": Case(["-m"], "no architecture chosen: add +arch=NAME, one of cnn, lightgbm"),
    "no architecture, single run": Case([], "no architecture chosen: add +arch=NAME"),
    "zero trials": Case([*Q, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials is 0"),
    "trials not a number": Case([*Q, "hydra.sweeper.n_trials=many"], "Value 'many' of type 'str' could not be converted to Integer"),
    "zero jobs": Case([*Q, "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs is 0, but must be at least 1"),
    "bad direction": Case([*Q, "hydra.sweeper.direction=up"], "hydra.sweeper.direction is 'up'"),
    "direction of the existing study flipped": Case(
        [*Q, "hydra.sweeper.direction=maximize"], "study 'quadratic' already exists with direction minimize"),
    "bad failure rate": Case([*Q, "hydra.sweeper.max_failure_rate=2"], "max_failure_rate is 2.0"),
    "negative heartbeat": Case([*Q, "hydra.sweeper.heartbeat_interval=-1"], "hydra.sweeper.heartbeat_interval is -1"),
    "zoom in on a study that does not exist": Case([*Q, "hydra.sweeper.zoom.study=screen"], "hydra.sweeper.zoom.study: no study 'screen'"),
    "a GPU this machine lacks": Case(["+arch=mlp", "-m", "device=cuda:7"], "device is 'cuda:7'"),
    "not a device": Case(["+arch=mlp", "-m", "device=gpu"], "device is 'gpu', but must be auto, cpu, cuda or cuda:N"),
    "zero torch threads": Case(["+arch=mlp", "-m", "torch_threads=0"], "torch_threads is 0, but must be"),
    "torch threads as text, single run": Case(["+arch=mlp", "torch_threads=two"], "torch_threads is 'two', but must be"),
    # --- search spaces --------------------------------------------------------------------------
    "low > high": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lr=interval(0.1, 0.01)"], "params.lr: interval(0.1, 0.01) has low > high"),
    "low > high in the existing study's space": Case([*Q, "hydra.sweeper.params.x=interval(3, 1)"], "params.x: interval(3.0, 1.0) has low > high"),
    "log with low <= 0": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lr=tag(log, interval(0, 0.1))"], "log scale needs low > 0"),
    "empty choice": Case(["+arch=mlp", "-m", "hydra.sweeper.params.batch_size=choice()"], "empty choice is not legal"),
    "empty range": Case(["+arch=mlp", "-m", "hydra.sweeper.params.n_layers=range(3, 1)"], "range(3, 1) is empty"),
    "parameter the arch lacks": Case(["+arch=mlp", "-m", "hydra.sweeper.params.lrr=interval(0.1, 0.2)"], "search space: not in the app's config: 'lrr' (no params.lrr); known names under params: batch_size"),
    "sweep on a parameter the arch lacks": Case(["+arch=mlp", "-m", "params.lrr=interval(0.1, 0.2)"],
                                                "not in the app's config: 'lrr' (no params.lrr)"),
    "text choices for a number": Case(["+arch=mlp", "-m", "hydra.sweeper.params.hidden_size=choice(a, b)"], "params.hidden_size is a number"),
    "grid over an interval": Case(["+arch=mlp", "-m", "hydra/sweeper/sampler=grid"], "grid sampler cannot enumerate"),
    "unknown tag": Case([*Q, "hydra.sweeper.params.x=tag(foo, interval(1, 2))"], "params.x has tag(s) ['foo']; supported tags are log and int"),
    "interval of words": Case([*Q, "hydra.sweeper.params.x=interval(a, b)"], "cannot parse params.x='interval(a, b)'"),
    # --- date ranges ----------------------------------------------------------------------------
    "date range ends before it starts": Case([*RANGES_BASE, "data.date_ranges=[[2014-04-01,2014-01-01]]"],
                                             "data.date_ranges[0] 2014-04-01..2014-01-01 ends on or before it starts"),
    "date range not a date": Case([*RANGES_BASE, "data.date_ranges=[[2014-13-01,2014-14-01]]"], "is not a date, write YYYY-MM-DD"),
    "date range outside the data": Case([*RANGES_BASE, "data.date_ranges=[[2016-01-01,2016-02-01]]"], "lies outside the data (2012-01-01..2015-12-31"),
    "date range not a pair": Case([*RANGES_BASE, "data.date_ranges=[[2014-01-01]]"], "data.date_ranges[0] is ['2014-01-01'], but must be a [start, end] pair"),
    "window longer than a date range": Case(["+arch=lstm_attention", "-m", "data.date_ranges=[[2014-01-01,2014-01-10]]"],
                                            "params.window is 28 days, but date range 2014-01-01..2014-01-10 holds only 9 days"),
    "unknown way to combine ranges": Case(["+arch=lstm_attention", "-m", "data.objective_over_ranges=max"],
                                          "data.objective_over_ranges is 'max'"),
    # --- JSON specs (python -m tuneflow spec) ---------------------------------------------------
    "spec: malformed JSON": Case([], "malformed JSON at line 1", spec='{"architecture": "mlp",'),
    "spec: unknown key": Case([], "unknown key 'date' in the experiment spec", spec={**SPEC, "date": 1}),
    "spec: unknown architecture": Case([], "unknown architecture 'lstm'", spec={**SPEC, "architecture": "lstm"}),
    "spec: range ends before it starts": Case([], "date-range[0] 2014-04-01..2014-01-01 ends on or before it starts",
                                              spec={**SPEC, "date-range": [["2014-04-01", "2014-01-01"]]}),
    "spec: password in an override": Case([], "hydra.sweeper.storage: the URL contains a password",
                                          spec={**SPEC, "overrides": {"hydra.sweeper.storage": "postgresql://u:hunter2@h/db"}}),
    # --- storage URLs ---------------------------------------------------------------------------
    "storage: postgres:// scheme": Case([*Q, "hydra.sweeper.storage=postgres://tuneflow@127.0.0.1/optuna"], "postgresql://, not postgres://"),
    "storage: password in the URL": Case([*Q, "hydra.sweeper.storage=postgresql://tuneflow:hunter2@127.0.0.1/optuna"],
                                         "hydra.sweeper.storage: the URL contains a password; remove it and set PGPASSWORD"),
    "storage: password in storage.url": Case([*Q, "hydra/sweeper/storage=postgres", "hydra.sweeper.storage.url=postgresql://u:hunter2@h/db"],
                                             "the URL contains a password"),
    "storage: unknown storage": Case([*Q, "hydra/sweeper/storage=postgress"], "unknown hydra/sweeper/storage 'postgress': choose one of postgres, sqlite"),
    "storage: in-memory SQLite": Case([*Q, "hydra.sweeper.storage=sqlite://"], "sqlite:// (in memory): workers and resumed runs cannot share it"),
    "storage: no such database kind": Case([*Q, "hydra.sweeper.storage=redis://127.0.0.1/0"], "'redis' is not a database SQLAlchemy knows"),
    "storage: driver not installed": Case([*Q, "hydra.sweeper.storage=mysql://tuneflow@127.0.0.1/optuna"], "the mysql driver is not installed"),
    "storage: nothing listens there": Case([*Q, "hydra/sweeper/storage=postgres", f"hydra.sweeper.storage.port={closed_port()}"],
                                           "hydra.sweeper.storage: cannot connect to postgresql+psycopg2://tuneflow@127.0.0.1:"),
    "storage: SQLite file under a file": Case([*Q, "hydra.sweeper.storage=sqlite:///blocker/optuna.db"], "cannot create blocker/optuna.db"),
    "storage: port not a number": Case([*Q, "hydra/sweeper/storage=postgres", "hydra.sweeper.storage.port=fivefourthreetwo"],
                                       "hydra.sweeper.storage.port is 'fivefourthreetwo'"),
    "tracking: password in tracking.uri": Case([*Q, "tracking.uri=http://me:hunter2@127.0.0.1:5000"], "tracking.uri: the URL contains a password"),
    # --- environment settings -------------------------------------------------------------------
    "env: tracking server not running": Case(Q, "the MLflow tracking server http://127.0.0.1:", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}"}),
    "env: tracking URI scheme unknown": Case(Q, "has scheme 'ftp'", env={"MLFLOW_TRACKING_URI": "ftp://127.0.0.1/mlflow"}),
    "env: password in MLFLOW_TRACKING_URI": Case(Q, "the MLflow tracking URI contains a password",
                                                  env={"MLFLOW_TRACKING_URI": "postgresql://tuneflow:hunter2@127.0.0.1/mlflow"}),
    "env: PGPORT not a number": Case([*Q, "hydra/sweeper/storage=postgres"], "hydra.sweeper.storage.port is 'x5432' (from the config or $PGPORT)",
                                     env={"PGPORT": "x5432"}),
    "env: PGHOST where nothing listens": Case([*Q, "hydra/sweeper/storage=postgres"], "cannot connect to postgresql+psycopg2://tuneflow@127.0.0.1:",
                                              env={"PGHOST": "127.0.0.1", "PGPORT": str(closed_port())}),
    "env: PGSSLMODE unknown": Case([*Q, "hydra/sweeper/storage=postgres"], 'invalid sslmode value: "sometimes"', env={"PGSSLMODE": "sometimes"}),
}

PASSWORD = "hunter2"


def snapshot(project: Path) -> dict[str, Any]:
    """Everything a user has recorded in ``project``, as values."""
    import optuna

    storage = f"sqlite:///{project / 'mlruns' / 'optuna.db'}"
    studies = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        studies[summary.study_name] = (
            study.direction.name, study.user_attrs,
            [(t.number, t.state.name, t.value, t.params, t.user_attrs, t.intermediate_values) for t in study.trials],
        )
    client = mlflow_client(project)
    experiments = {e.name: e.lifecycle_stage for e in client.search_experiments(view_type=3)}
    runs = {
        r.info.run_id: (r.info.status, r.info.end_time, r.data.params, r.data.metrics, r.data.tags)
        for r in client.search_runs([e.experiment_id for e in client.search_experiments(view_type=3)],
                                    run_view_type=3, max_results=10_000)
    }
    histories = {(run_id, key): [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                 for run_id, (_, _, _, metrics, _) in runs.items() for key in metrics}
    files = sorted(
        str(p.relative_to(project)) for p in project.rglob("*")
        # Database side files and locks come and go with every reader; Hydra writes a plain run's
        # output folder before its task starts.
        if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock")) and p.parts[len(project.parts)] != "outputs"
    )
    return {"studies": studies, "experiments": experiments, "runs": runs, "histories": histories, "files": files}


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A project whose study already ran 2 trials, and what it recorded."""
    project = tmp_path_factory.mktemp("existing")
    done = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=2")
    assert done.returncode == 0, done.output
    (project / "blocker").write_text("a file where a folder is expected\n")
    return project, snapshot(project)


def run_case(project: Path, case: Case) -> subprocess.CompletedProcess[str]:
    env = {**tuneflow_env(), **case.env}
    if case.spec is None:
        command = [sys.executable, "-m", "tuneflow", *case.args]
    else:
        text = case.spec if isinstance(case.spec, str) else json.dumps(case.spec)
        (project / "spec.json").write_text(text)
        command = [sys.executable, "-m", "tuneflow", "spec", "spec.json"]
    try:
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    finally:
        (project / "spec.json").unlink(missing_ok=True)


def test_the_suite_covers_every_kind_of_input() -> None:
    kinds = ["spec:", "storage:", "env:", "date range"]
    assert len(CASES) >= 30
    assert all(any(name.startswith(kind) for name in CASES) for kind in kinds)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_leaves_the_study_as_it_was(
    existing: tuple[Path, dict[str, Any]], case: Case
) -> None:
    project, before = existing
    result = run_case(project, case)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tuneflow: error: ")
    assert case.message in lines[0]
    assert PASSWORD not in result.stdout + result.stderr, "a password is never echoed"
    assert snapshot(project) == before


def test_bad_input_in_a_fresh_folder_creates_nothing(project: Path) -> None:
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.params.x=interval(3, 1)")
    assert result.returncode == 2
    assert list(project.iterdir()) == []


def test_the_storage_url_shorthand_of_earlier_versions_still_means_the_url(project: Path) -> None:
    from tuneflow.storage.urls import expand_storage_shorthand

    assert expand_storage_shorthand(["hydra.sweeper.storage=postgresql://u@h/db", "hydra.sweeper.storage=postgres",
                                     "hydra.sweeper.storage=null", "x=1"]) == [
        "++hydra.sweeper.storage.url=postgresql://u@h/db", "hydra/sweeper/storage=postgres",
        "hydra.sweeper.storage=null", "x=1"]
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=1", "tracking.log_model=false",
                          f"hydra.sweeper.storage=sqlite:///{project / 'elsewhere.db'}")
    assert result.returncode == 0, result.output
    assert (project / "elsewhere.db").exists() and not (project / "mlruns" / "optuna.db").exists()

