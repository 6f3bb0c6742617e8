"""Bad arguments to ``tuneflow report``, ``repeat``, ``fidelity`` and ``ui``: one line, exit 2, and the
prepared project byte for byte as it was (no report written, nothing logged to MLflow)."""

from __future__ import annotations

import pytest

from bad_input.conftest import Case, Project, check, closed_port

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

CASES: dict[str, Case] = {
    # --- report -------------------------------------------------------------------------------------
    "report: no study named": Case(["report"], "the following arguments are required: study"),
    "report: unknown study": Case(["report", "quadratc"], "no study 'quadratc'"),
    "report: unknown option": Case(["report", "quadratic", "--colour"], "unrecognized arguments: --colour"),
    "report: --top zero": Case(["report", "quadratic", "--top", "0"], "--top is 0"),
    "report: --top as text": Case(["report", "quadratic", "--top", "all"], "--top"),
    "report: root dir missing": Case(["report", "quadratic", "--root-dir", "elsewhere"], "no Optuna storage"),
    "report: root dir a file": Case(["report", "quadratic", "--root-dir", "blocker"], "no Optuna storage"),
    "report: --storage not a URL": Case(["report", "quadratic", "--storage", "optuna.db"], "--storage"),
    "report: --storage wrong scheme": Case(["report", "quadratic", "--storage", "postgres://tuneflow@127.0.0.1/optuna"],
                                           "postgresql://, not postgres://"),
    "report: --storage unknown database": Case(["report", "quadratic", "--storage", "redis://127.0.0.1/0"],
                                               "'redis' is not a database SQLAlchemy knows"),
    "report: --storage driver missing": Case(["report", "quadratic", "--storage", "mysql://tuneflow@127.0.0.1/optuna"],
                                             "the mysql driver is not installed"),
    "report: --storage port closed": Case(
        ["report", "quadratic", "--storage", f"postgresql+psycopg2://tuneflow@127.0.0.1:{closed_port()}/optuna"], "cannot connect"),
    "report: --storage in memory": Case(["report", "quadratic", "--storage", "sqlite://"], "sqlite://"),
    "report: --storage a missing file": Case(["report", "quadratic", "--storage", "sqlite:///nowhere.db"], "no Optuna storage"),
    "report: --storage a file that is not a database": Case(["report", "quadratic", "--storage", "sqlite:///blocker"], "blocker"),
    "report: --tracking-uri closed port": Case(["report", "quadratic", "--tracking-uri", f"http://127.0.0.1:{closed_port()}"],
                                               "the MLflow tracking server", subprocess=True),
    "report: --tracking-uri another store": Case(["report", "quadratic", "--tracking-uri", "sqlite:///other.db"],
                                                 "no MLflow store at"),
    "report: --tracking-uri port not a number": Case(["report", "quadratic", "--tracking-uri", "http://127.0.0.1:notaport"],
                                                     "--tracking-uri"),
    "report: --out a file": Case(["report", "quadratic", "--out", "blocker"], "--out blocker"),
    "report: --out under a file": Case(["report", "quadratic", "--out", "blocker/report"], "--out blocker/report"),
    "report: --out unwritable": Case(["report", "quadratic", "--out", "/proc/tuneflow-report"], "--out /proc/tuneflow-report"),
    "report: --conf-dir a file": Case(["report", "quadratic", "--conf-dir", "blocker"], "--conf-dir blocker"),
    "report: --conf-dir unwritable": Case(["report", "quadratic", "--conf-dir", "/proc/tuneflow-conf"], "--conf-dir /proc/tuneflow-conf"),
    "report: study name climbs out": Case(["report", "../../etc"], "no study '../../etc'"),
    "report: study name with a quote": Case(["report", "it's"], "no study \"it's\""),
    # --- repeat -------------------------------------------------------------------------------------
    "repeat: no study named": Case(["repeat"], "the following arguments are required: study"),
    "repeat: unknown study": Case(["repeat", "quadratc"], "no study 'quadratc'"),
    "repeat: --seeds 100000000": Case(["repeat", "quadratic", "--seeds", "100000000"], "--seeds is 100000000", subprocess=True),
    "repeat: --seeds one": Case(["repeat", "quadratic", "--seeds", "1"], "--seeds is 1"),
    "repeat: --seeds negative": Case(["repeat", "quadratic", "--seeds", "-4"], "--seeds is -4"),
    "repeat: --seeds as text": Case(["repeat", "quadratic", "--seeds", "many"], "--seeds"),
    "repeat: --top one": Case(["repeat", "quadratic", "--top", "1"], "--top is 1"),
    "repeat: --top 100000000": Case(["repeat", "quadratic", "--top", "100000000"], "--top is 100000000"),
    "repeat: --tracking-uri closed port": Case(["repeat", "quadratic", "--tracking-uri", f"http://127.0.0.1:{closed_port()}"],
                                               "the MLflow tracking server", subprocess=True),
    "repeat: --tracking-uri another store": Case(["repeat", "quadratic", "--tracking-uri", "sqlite:///other.db"], "no MLflow store at"),
    "repeat: --storage with a password": Case(["repeat", "quadratic", "--storage", "postgresql://u:hunter2@127.0.0.1/optuna"],
                                              "--storage: the URL contains a password"),
    "repeat: --conf-dir a file": Case(["repeat", "quadratic", "--conf-dir", "blocker"], "--conf-dir blocker"),
    "repeat: root dir missing": Case(["repeat", "quadratic", "--root-dir", "elsewhere"], "no Optuna storage"),
    # --- fidelity and ui ------------------------------------------------------------------------------
    "fidelity: too few configs": Case(["fidelity", "+arch=quadratic", "--configs", "2"], "--configs is 2"),
    "fidelity: no architecture": Case(["fidelity"], "no architecture chosen"),
    "fidelity: unknown architecture": Case(["fidelity", "+arch=transformer"], "transformer"),
    "fidelity: unknown option": Case(["fidelity", "+arch=quadratic", "--colour"], "unknown option --colour"),
    "ui: unknown study": Case(["ui", "quadratc"], "no study 'quadratc'"),
    "ui: port as text": Case(["ui", "quadratic", "--mlflow-port", "http"], "--mlflow-port"),
    "ui: unknown option": Case(["ui", "quadratic", "--colour"], "--colour"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_subcommand_arguments(project_copy: Project, case: Case) -> None:
    check(project_copy, case)
