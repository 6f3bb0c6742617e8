"""Passwords, wherever a user puts them (URL userinfo, a ``?password=`` query, the user field, the
environment, a conf file, a spec, a subcommand's URL): refused in one line that never echoes them, before
anything is written; nothing saved (``multirun.yaml``, ``.hydra/``) and the prepared project byte for byte as
it was. PGPASSWORD itself is the right place for a password: it is used, and still never echoed."""

from __future__ import annotations

import json

import pytest

from bad_input.conftest import PASSWORD, Case, Project, check, closed_port

#: Each case is quick (about 0.5 s in-process), but the suite runs ~290 of them: kept out of the fast subset.
pytestmark = pytest.mark.slow

Q = ["+arch=quadratic", "-m"]
PG = [*Q, "hydra/sweeper/storage=postgres"]
REFUSED = "the URL contains a password"
STORAGE_CONF = "# @package hydra.sweeper.storage\nkind: postgres\nurl: {url}\n"


def conf_storage(url: str) -> dict[str, str | bytes]:
    """A project's own storage config (``conf/hydra/sweeper/storage/prod.yaml``) with ``url`` in it."""
    return {"conf/hydra/sweeper/storage/prod.yaml": STORAGE_CONF.format(url=url)}


CASES: dict[str, Case] = {
    "userinfo in hydra.sweeper.storage": Case([*Q, f"hydra.sweeper.storage=postgresql://tuneflow:{PASSWORD}@127.0.0.1/optuna"],
                                              f"hydra.sweeper.storage: {REFUSED}; remove it and set PGPASSWORD"),
    "userinfo in storage.url": Case([*PG, f"hydra.sweeper.storage.url=postgresql://u:{PASSWORD}@h/db"], REFUSED),
    "userinfo with psycopg2 driver": Case([*Q, f"hydra.sweeper.storage=postgresql+psycopg2://u:{PASSWORD}@h/db"], REFUSED),
    "userinfo URL-encoded": Case([*Q, f"hydra.sweeper.storage=postgresql://u:{PASSWORD}%40x@h/db"], REFUSED),
    "query ?password=": Case([*Q, f"hydra.sweeper.storage=postgresql+psycopg2://tuneflow@127.0.0.1/optuna?password={PASSWORD}"],
                             "hydra.sweeper.storage: the URL contains a password"),
    "query ?password= in storage.url": Case(
        [*PG, f"hydra.sweeper.storage.url=postgresql+psycopg2://tuneflow@127.0.0.1/optuna?password={PASSWORD}"], REFUSED),
    "query ?sslmode=require&password=": Case(
        [*Q, f"hydra.sweeper.storage=postgresql://tuneflow@127.0.0.1/optuna?sslmode=require&password={PASSWORD}"], REFUSED),
    "query ?PASSWORD= in capitals": Case([*Q, f"hydra.sweeper.storage=postgresql://tuneflow@127.0.0.1/optuna?PASSWORD={PASSWORD}"],
                                         REFUSED),
    "query ?sslpassword=": Case([*Q, f"hydra.sweeper.storage=postgresql://tuneflow@127.0.0.1/optuna?sslpassword={PASSWORD}"], REFUSED),
    "query ?password= wrong (closed port)": Case(
        [*Q, f"hydra.sweeper.storage=postgresql+psycopg2://tuneflow@127.0.0.1:{closed_port()}/optuna?password={PASSWORD}"], REFUSED),
    "user:password in storage.user": Case([*PG, f"hydra.sweeper.storage.user=tuneflow:{PASSWORD}"],
                                          "contains ':'; give the user name only"),
    "user:password in PGUSER": Case(PG, "contains ':'; give the user name only", env={"PGUSER": f"tuneflow:{PASSWORD}"}),
    "PGPASSWORD with a closed port": Case(PG, "cannot connect", env={"PGPASSWORD": PASSWORD, "PGPORT": str(closed_port())}),
    "userinfo in a conf file": Case([*Q, "hydra/sweeper/storage=prod"], REFUSED,
                                    files=conf_storage(f"postgresql+psycopg2://tuneflow:{PASSWORD}@127.0.0.1/optuna")),
    "query ?password= in a conf file": Case([*Q, "hydra/sweeper/storage=prod"], REFUSED,
                                            files=conf_storage(f"postgresql+psycopg2://tuneflow@127.0.0.1/optuna?password={PASSWORD}")),
    "password in tracking.uri": Case([*Q, f"tracking.uri=http://me:{PASSWORD}@127.0.0.1:5000"], f"tracking.uri: {REFUSED}"),
    "password query in tracking.uri": Case([*Q, f"tracking.uri=postgresql://me@127.0.0.1/mlflow?password={PASSWORD}"], REFUSED),
    "password in MLFLOW_TRACKING_URI": Case(Q, "the MLflow tracking URI contains a password",
                                            env={"MLFLOW_TRACKING_URI": f"postgresql://tuneflow:{PASSWORD}@127.0.0.1/mlflow"}),
    "password query in MLFLOW_TRACKING_URI": Case(Q, "the MLflow tracking URI contains a password",
                                                  env={"MLFLOW_TRACKING_URI": f"postgresql://tuneflow@127.0.0.1/mlflow?password={PASSWORD}"}),
    "password in MLFLOW_TRACKING_URI, single run": Case(["+arch=quadratic"], "the MLflow tracking URI contains a password",
                                                        env={"MLFLOW_TRACKING_URI": f"http://me:{PASSWORD}@127.0.0.1:5000"}),
    "password in a spec override": Case(["spec", "spec.json"], REFUSED, files={"spec.json": json.dumps(
        {"architecture": "quadratic", "parameters": {"x": [1, 2]},
         "overrides": {"hydra.sweeper.storage": f"postgresql://u@h/db?password={PASSWORD}"}})}),
    "report --storage with a password": Case(["report", "quadratic", "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1/optuna"],
                                             f"--storage: {REFUSED}"),
    "report --storage with ?password=": Case(["report", "quadratic", "--storage", f"postgresql://u@127.0.0.1/optuna?password={PASSWORD}"],
                                             f"--storage: {REFUSED}"),
    "report --tracking-uri with a password": Case(["report", "quadratic", "--tracking-uri", f"http://u:{PASSWORD}@127.0.0.1:1"],
                                                  "contains a password"),
    "repeat --tracking-uri with a password": Case(["repeat", "quadratic", "--tracking-uri", f"http://u:{PASSWORD}@127.0.0.1:1"],
                                                  "contains a password"),
    "ui --storage with ?password=": Case(["ui", "quadratic", "--storage", f"postgresql://u@127.0.0.1/optuna?password={PASSWORD}"],
                                         f"--storage: {REFUSED}"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_password_is_refused_and_never_echoed(project_copy: Project, case: Case) -> None:
    check(project_copy, case)
    written_by_the_user = {project_copy.path / name for name in case.files}
    assert not [p for p in project_copy.path.rglob("*")
                if p.is_file() and p not in written_by_the_user and PASSWORD.encode() in p.read_bytes()]
