"""Where a study's records live: the Optuna storage URL and the MLflow tracking server, checked.

- ``storage_url``: the storage URL a ``hydra/sweeper/storage`` config names (embedded SQLite under
  ``root_dir``, PostgreSQL from host/port/user/database, or a raw URL).
- ``check_storage`` / ``check_tracking``: refuse a URL that cannot work (wrong scheme, missing driver,
  a password written into it, a server that does not answer) before anything is created.

Passwords never pass through tuneflow: libpq (psycopg2) reads ``PGPASSWORD`` or ``~/.pgpass`` itself,
so a URL tuneflow builds, logs or saves has none. A URL given with a password is refused, because
Hydra would write it into ``.hydra/*.yaml`` and ``multirun.yaml``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuneflow.errors import ConfigError

#: Seconds to wait for a database or tracking server to answer before saying it does not.
CONNECT_TIMEOUT = 5

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^/@:\s]*:)(?P<password>[^@/\s]+)@")
_SHORTHAND = re.compile(r"^(?P<plus>\+{0,2})hydra\.sweeper\.storage=(?P<value>.*)$")
_PASSWORD_HINT = "remove it and set PGPASSWORD (or write it in ~/.pgpass); libpq reads it from there"


def redact(text: str) -> str:
    """``postgresql://user:secret@host`` -> ``postgresql://user:***@host``, anywhere in ``text``."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}***@", text)


def has_password(text: str) -> bool:
    return _PASSWORD_IN_URL.search(text) is not None


def refuse_passwords_in_arguments(argv: list[str]) -> None:
    """Hydra saves every override (``.hydra/overrides.yaml``, ``multirun.yaml``, the trial's
    ``config.yaml`` in MLflow): an override that carries a password would land in all of them."""
    for argument in argv:
        if has_password(argument):
            key = argument.split("=", 1)[0] if "=" in argument else "an argument"
            raise ConfigError(f"{key}: the URL contains a password; {_PASSWORD_HINT}")


def expand_storage_shorthand(argv: list[str]) -> list[str]:
    """``hydra.sweeper.storage=postgresql://...`` (a URL, as before the storage group existed) means
    ``hydra.sweeper.storage.url=...``; ``hydra.sweeper.storage=postgres`` picks the config group."""
    expanded = []
    for argument in argv:
        match = _SHORTHAND.match(argument)
        if match:
            value = match.group("value")
            if "://" in value or value.startswith(("'", '"')):
                argument = f"++hydra.sweeper.storage.url={value}"
            elif value not in ("null", ""):
                argument = f"hydra/sweeper/storage={value}"
        expanded.append(argument)
    return expanded


# --- the storage URL ----------------------------------------------------------------------------


def default_storage_url(root_dir: str | Path) -> str:
    """The embedded default: one SQLite file under the project's ``root_dir``."""
    path = Path(root_dir).resolve() / "optuna.db"
    return f"sqlite:///{path}"


def storage_url(node: Any, root_dir: str | Path) -> str:
    """The Optuna storage URL of a ``hydra.sweeper.storage`` config (see the sweeper's config.py).

    ``url`` wins when set; otherwise a ``postgres`` node is assembled from host, port, user and
    database (without a password: libpq adds it), and a ``sqlite`` node is the file under root_dir.
    """
    if node is None or node == "":
        return default_storage_url(root_dir)
    if isinstance(node, str):
        return node
    if not isinstance(node, Mapping):
        raise ConfigError(f"hydra.sweeper.storage is {node!r}, but must be a storage config or a URL")
    if node.get("url"):
        return str(node["url"])
    if node.get("kind") == "postgres":
        return _postgres_url(node)
    return default_storage_url(root_dir)


def _postgres_url(node: Mapping[str, Any]) -> str:
    from sqlalchemy.engine import URL

    port = str(node.get("port") or "5432")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"hydra.sweeper.storage.port is {port!r} (from the config or $PGPORT), but must be a port number"
        )
    for key, variable in (("host", "PGHOST"), ("user", "PGUSER"), ("database", "PGDATABASE")):
        if not node.get(key):
            raise ConfigError(f"hydra.sweeper.storage.{key} is empty; set it or ${variable}")
    url = URL.create(
        str(node.get("driver") or "postgresql+psycopg2"),
        username=str(node["user"]),
        host=str(node["host"]),
        port=int(port),
        database=str(node["database"]),
    )
    return url.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def shown(url: str) -> str:
    """A URL as it may appear in messages and logs."""
    return redact(url)


def check_storage(url: str, what: str = "hydra.sweeper.storage") -> None:
    """Refuse a storage URL that cannot work, with one line that says what to change; ``what``
    names the setting the URL came from."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if has_password(url):
        raise ConfigError(f"{what}: the URL contains a password; {_PASSWORD_HINT}")
    from tuneflow.storage import grpc

    if grpc.is_grpc(url):  # Optuna's gRPC storage proxy, not a database
        grpc.check(url, what)
        return
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise ConfigError(
            f"{what} is {shown(url)!r}, which is not a database URL ({redact(str(error))}); use "
            "hydra/sweeper/storage=postgres or a URL such as postgresql://user@host:5432/optuna"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        raise ConfigError(
            f"{what} is {shown(url)!r}: SQLAlchemy calls PostgreSQL postgresql://, not postgres://"
        )
    if backend == "sqlite" and not parsed.database:
        raise ConfigError(
            f"{what} is sqlite:// (in memory): workers and resumed runs cannot share it; "
            "give a file, sqlite:///path/optuna.db"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(
            f"{what}: {backend!r} is not a database SQLAlchemy knows; "
            "use sqlite:///path, postgresql://user@host/db, mysql+pymysql://user@host/db or grpc://host:port"
        ) from None
    except ImportError as error:
        package = "psycopg2-binary (pip install 'tuneflow[postgres]')" if backend == "postgresql" else "its driver"
        raise ConfigError(
            f"{what}: the {parsed.drivername} driver is not installed ({error}); install {package}"
        ) from None
    if backend == "sqlite":
        _check_sqlite_folder(Path(str(parsed.database)), what)
    else:
        _check_server(url, what)


def _check_sqlite_folder(path: Path, what: str) -> None:
    folder = path.resolve().parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: cannot create {path} ({existing} is not a writable folder)")


def _check_server(url: str, what: str) -> None:
    """Connect once, so that a wrong host, port, password or database is one line now, not a
    traceback later."""
    from sqlalchemy import text

    try:
        with engine_for(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - drivers raise many types; all mean "cannot connect"
        raise ConfigError(f"{what}: cannot connect to {shown(url)}: {first_line(error)}") from None


def first_line(error: BaseException) -> str:
    """The driver's own first line (without SQLAlchemy's wrapping and links), passwords masked."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return redact(" ".join(lines[:2]) if lines else type(cause).__name__)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Any:
    """One small connection pool per server URL and process, for checks and locks (not for Optuna,
    which has its own)."""
    import sqlalchemy

    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "tuneflow"}
    return sqlalchemy.create_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True, connect_args=connect_args)


# --- the tracking server -----------------------------------------------------------------------


def check_tracking(uri: str) -> None:
    """Refuse a tracking URI that cannot work. A server must answer its ``/health`` now: MLflow's
    client would otherwise retry for minutes, and fail only after the study was created."""
    if has_password(uri):
        raise ConfigError(
            "the MLflow tracking URI contains a password; set MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD (a server) or PGPASSWORD (a database) instead"
        )
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if scheme in ("http", "https"):
        _check_tracking_server(uri)
    elif scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        check_storage(uri, what="the MLflow tracking URI")
    elif scheme not in _MLFLOW_SCHEMES:
        raise ConfigError(
            f"the MLflow tracking URI {shown(uri)!r} has scheme {scheme!r}; use http(s)://HOST:PORT of a "
            "tracking server, sqlite:///PATH, postgresql://USER@HOST/DB or file:///PATH"
        )


#: Tracking URI schemes MLflow's own stores or its usual plugins handle.
_MLFLOW_SCHEMES = ("file", "sqlite", "databricks", "databricks-uc", "uc")


def http_problem(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when ``url`` answers HTTP 200 within ``timeout`` seconds, else what went wrong (one phrase).
    The one health probe of tuneflow: the tracking-server check, ``tuneflow ui`` and the local cluster."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def _check_tracking_server(uri: str) -> None:
    problem = http_problem(uri.rstrip("/") + "/health")
    if problem is None:
        return
    raise ConfigError(
        f"the MLflow tracking server {shown(uri)} does not answer ({problem}); start it "
        "(python -m tuneflow.deploy.local_cluster up, or docker compose in docker/) or fix MLFLOW_TRACKING_URI / tracking.uri"
    )
