"""Odd environments: the MLflow tracking URI and the PostgreSQL variables a shell may hold. Each is one line,
exit 2, and the prepared project byte for byte as it was."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from bad_input.conftest import Case, Project, check, closed_port

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

Q = ["+arch=quadratic", "-m"]
PG = [*Q, "hydra/sweeper/storage=postgres"]


class _HealthOnly(http.server.BaseHTTPRequestHandler):
    """A web server that says OK to everything, as a reverse proxy or another app on the port would."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"OK" if self.path.startswith("/health") else b"<html>not mlflow</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="module")
def not_mlflow() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def tracking(uri: str, message: str, args: list[str] | None = None) -> Case:
    return Case(args or Q, message, env={"MLFLOW_TRACKING_URI": uri})


CASES: dict[str, Case] = {
    # --- MLFLOW_TRACKING_URI ------------------------------------------------------------------------
    "tracking server not running": tracking(f"http://127.0.0.1:{closed_port()}", "the MLflow tracking server http://127.0.0.1:"),
    "tracking server not running, https": tracking(f"https://127.0.0.1:{closed_port()}", "the MLflow tracking server https://127.0.0.1:"),
    "tracking server not running, single run": tracking(f"http://127.0.0.1:{closed_port()}", "the MLflow tracking server",
                                                        ["+arch=quadratic"]),
    "tracking port not a number": tracking("http://127.0.0.1:notaport", "MLFLOW_TRACKING_URI"),
    "tracking port out of range": tracking("http://127.0.0.1:99999", "MLFLOW_TRACKING_URI"),
    "tracking IPv6 host unclosed": tracking("http://[::1", "MLFLOW_TRACKING_URI"),
    "tracking URI http:// without a host": tracking("http://", "MLFLOW_TRACKING_URI"),
    "tracking URI blank": tracking("   ", "MLFLOW_TRACKING_URI is blank"),
    "tracking URI a tab": tracking("\t", "MLFLOW_TRACKING_URI is blank"),
    "tracking URI with spaces around": tracking(" http://127.0.0.1:1 ", "MLFLOW_TRACKING_URI"),
    "tracking URI /etc/passwd": tracking("file:///etc/passwd", "MLFLOW_TRACKING_URI is 'file:///etc/passwd', a file store"),
    "tracking URI a file path": tracking("/etc/passwd", "MLFLOW_TRACKING_URI"),
    # With MLflow's file store allowed again, it must still be a folder tuneflow can write.
    "tracking file store under a file": Case(Q, "blocker is not a writable folder",
                                             env={"MLFLOW_TRACKING_URI": "file:./blocker/mlruns", "MLFLOW_ALLOW_FILE_STORE": "true"}),
    "tracking file store unwritable": Case(Q, "/proc is not a writable folder",
                                           env={"MLFLOW_TRACKING_URI": "file:///proc/tuneflow-mlruns", "MLFLOW_ALLOW_FILE_STORE": "true"}),
    "tracking file store a file": Case(Q, "a file; MLflow's file store is a folder",
                                       env={"MLFLOW_TRACKING_URI": "file:///etc/passwd", "MLFLOW_ALLOW_FILE_STORE": "true"}),
    "tracking sqlite under a file": tracking("sqlite:///blocker/mlflow.db", "MLFLOW_TRACKING_URI"),
    "tracking sqlite unwritable": tracking("sqlite:////proc/tuneflow/mlflow.db", "MLFLOW_TRACKING_URI"),
    "tracking sqlite in memory": tracking("sqlite://", "MLFLOW_TRACKING_URI"),
    "tracking databricks without credentials": tracking("databricks", "no Databricks credentials are set"),
    "tracking databricks profile without credentials": tracking("databricks://nobody", "no Databricks credentials are set"),
    "tracking URI scheme unknown": tracking("ftp://127.0.0.1/mlflow", "has scheme 'ftp'"),
    "tracking URI scheme made up": tracking("mlflow://127.0.0.1", "has scheme 'mlflow'"),
    "tracking postgres:// scheme": tracking("postgres://tuneflow@127.0.0.1/mlflow", "postgresql://, not postgres://"),
    "tracking database nothing listens": tracking(f"postgresql+psycopg2://tuneflow@127.0.0.1:{closed_port()}/mlflow",
                                                  "cannot connect"),
    "tracking database driver missing": tracking("mysql://tuneflow@127.0.0.1/mlflow", "the mysql driver is not installed"),
    "tracking.uri override, server not running": Case([*Q, f"tracking.uri=http://127.0.0.1:{closed_port()}"],
                                                      "the MLflow tracking server"),
    "tracking.uri override, port not a number": Case([*Q, "tracking.uri=http://127.0.0.1:notaport"], "tracking.uri"),
    "tracking.uri override, /etc/passwd": Case([*Q, "tracking.uri=file:///etc/passwd"], "tracking.uri"),
    "tracking.uri override, blank": Case([*Q, "tracking.uri=' '"], "tracking.uri is blank"),
    "resume with MLFLOW_TRACKING_URI at another store": tracking("sqlite:///elsewhere/mlflow.db",
                                                                 "study 'quadratic' was tracked in another MLflow store"),
    "resume with tracking.uri at another store": Case([*Q, "tracking.uri=sqlite:///elsewhere/mlflow.db"],
                                                      "study 'quadratic' was tracked in another MLflow store"),
    "resume with tracking.uri at another store, absolute": Case([*Q, "tracking.uri=sqlite:////tmp/tuneflow-nowhere/mlflow.db"],
                                                                "study 'quadratic' was tracked in another MLflow store"),
    # --- PostgreSQL variables -----------------------------------------------------------------------
    "PGPORT not a number": Case(PG, "hydra.sweeper.storage.port is 'x5432' (from the config or $PGPORT)", env={"PGPORT": "x5432"}),
    "PGPORT zero": Case(PG, "hydra.sweeper.storage.port is '0'", env={"PGPORT": "0"}),
    "PGPORT too large": Case(PG, "hydra.sweeper.storage.port is '70000'", env={"PGPORT": "70000"}),
    "PGHOST where nothing listens": Case(PG, "cannot connect to postgresql+psycopg2://tuneflow@127.0.0.1:",
                                         env={"PGHOST": "127.0.0.1", "PGPORT": str(closed_port())}),
    "PGHOST blank": Case(PG, "hydra.sweeper.storage.host", env={"PGHOST": " "}),
    "PGSSLMODE unknown": Case(PG, 'invalid sslmode value: "sometimes"', env={"PGSSLMODE": "sometimes"}),
    "PGDATABASE with a slash": Case(PG, "cannot connect", env={"PGDATABASE": "a/b", "PGPORT": str(closed_port())}),
    "PGUSER with an @": Case(PG, "hydra.sweeper.storage.user", env={"PGUSER": "ann@evil"}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_odd_environment(project_copy: Project, case: Case) -> None:
    check(project_copy, case)


def test_a_web_server_that_is_not_mlflow(project_copy: Project, not_mlflow: str) -> None:
    """It answers /health with 200 as MLflow does, but not MLflow's API."""
    check(project_copy, tracking(not_mlflow, f"{not_mlflow} answers /health but is not an MLflow tracking server"))


def test_a_web_server_that_is_not_mlflow_given_as_tracking_uri(project_copy: Project, not_mlflow: str) -> None:
    check(project_copy, Case([*Q, f"tracking.uri={not_mlflow}"], "is not an MLflow tracking server"))
