"""Where a study's records live: the Optuna storage URL and the MLflow tracking server, checked.

- ``storage_url``: the storage URL a ``hydra/sweeper/storage`` config names (the embedded journal file
  under ``root_dir``, SQLite there, PostgreSQL from host/port/user/database, or a raw URL).
- ``check_storage`` / ``check_tracking``: refuse a URL that cannot work (wrong scheme, missing driver,
  a password written into it, a server that does not answer or is not MLflow, a folder that cannot be
  written) before anything is created; ``with_installed_driver`` reads ``postgresql://`` as the installed driver.

Passwords never pass through tuneflow: libpq (psycopg2) reads ``PGPASSWORD`` or ``~/.pgpass`` itself,
so a URL tuneflow builds, logs or saves has none. A URL given with a password (``user:secret@``, or a
``?password=`` query) is refused, because Hydra would write it into ``.hydra/*.yaml`` and
``multirun.yaml``; this module is the one place that finds and masks them (``has_password``, ``redact``).
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
#: Query parameters libpq, SQLAlchemy's drivers and HTTP clients take a secret from (``?password=...``).
_PASSWORD_IN_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|sslpassword|secret|token|access_token|api_key)=)(?P<password>[^&;#\s'\"]+)",
    re.IGNORECASE,
)
_SHORTHAND = re.compile(r"^(?P<plus>\+{0,2})hydra\.sweeper\.storage=(?P<value>.*)$")
_PASSWORD_HINT = "remove it and set PGPASSWORD (or write it in ~/.pgpass); libpq reads it from there"


def redact(text: str) -> str:
    """``postgresql://user:secret@host`` -> ``postgresql://user:***@host`` and ``?password=secret`` ->
    ``?password=***``, anywhere in ``text``."""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}***@", text)
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m.group('head')}***", text)


def has_password(text: str) -> bool:
    """Whether ``text`` holds a URL with a password in its userinfo or its query."""
    return _PASSWORD_IN_URL.search(text) is not None or _PASSWORD_IN_QUERY.search(text) is not None


def refuse_password(url: str, what: str) -> None:
    """The one refusal of a URL that carries a password (``what`` names the setting); never echoes it."""
    if has_password(url):
        raise ConfigError(f"{what}: the URL contains a password; {_PASSWORD_HINT}")


def check_user_name(user: str, what: str) -> None:
    """``user:secret`` in a user field (or $PGUSER) would become the URL's password, URL-encoded."""
    for character in (":", "@", "/"):
        if character in user:
            raise ConfigError(
                f"{what} contains {character!r}; give the user name only ({_PASSWORD_HINT})"
            )


def refuse_passwords_in_arguments(argv: list[str]) -> None:
    """Hydra saves every override (``.hydra/overrides.yaml``, ``multirun.yaml``, the trial's
    ``config.yaml`` in MLflow): an override that carries a password would land in all of them."""
    for argument in argv:
        key = argument.split("=", 1)[0] if "=" in argument else "an argument"
        refuse_password(argument, key.lstrip("+~"))


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


#: The embedded default's file under ``root_dir``: Optuna's journal (``tuneflow.storage.journal``).
JOURNAL_FILE = "optuna.journal"
#: ``hydra/sweeper/storage=sqlite``'s file under ``root_dir``; the default of tuneflow before the journal's.
SQLITE_FILE = "optuna.db"


def embedded_file(root_dir: str | Path) -> Path:
    """The embedded default's file, ``<root_dir>/optuna.journal``; but ``<root_dir>/optuna.db`` where only
    that exists (a project an earlier tuneflow made: its studies resume there). As given, not resolved."""
    root = Path(root_dir)
    if (root / SQLITE_FILE).exists() and not (root / JOURNAL_FILE).exists():
        return root / SQLITE_FILE
    return root / JOURNAL_FILE


def default_storage_url(root_dir: str | Path) -> str:
    """The embedded default (``embedded_file``), as a storage URL: ``journal:///...`` (or ``sqlite:///...``)."""
    path = embedded_file(root_dir)
    return sqlite_storage_url(root_dir) if path.name == SQLITE_FILE else default_journal_url(root_dir)


def sqlite_storage_url(root_dir: str | Path) -> str:
    """``hydra/sweeper/storage=sqlite``: one SQLite file under ``root_dir``."""
    return f"sqlite:///{Path(root_dir).resolve() / SQLITE_FILE}"


def storage_url(node: Any, root_dir: str | Path) -> str:
    """The Optuna storage URL of a ``hydra.sweeper.storage`` config (see the sweeper's config.py).

    ``url`` wins when set; otherwise a ``postgres`` node is assembled from host, port, user and
    database (without a password: libpq adds it), a ``sqlite`` node is the SQLite file under root_dir, and
    the ``journal`` node (the default) is the embedded default (``embedded_file``).
    """
    if node is None or node == "":
        return default_storage_url(root_dir)
    if isinstance(node, str):
        return with_installed_driver(node)
    if not isinstance(node, Mapping):
        raise ConfigError(f"hydra.sweeper.storage is {node!r}, but must be a storage config or a URL")
    if node.get("url"):
        return with_installed_driver(str(node["url"]))
    if node.get("kind") == "postgres":
        return _postgres_url(node)
    if node.get("kind") == "sqlite":
        return sqlite_storage_url(root_dir)
    return default_storage_url(root_dir)


def default_journal_url(root_dir: str | Path) -> str:
    """Optuna's journal file under ``root_dir`` (``tuneflow.storage.journal``)."""
    from tuneflow.storage.journal import journal_url

    return journal_url(Path(root_dir).resolve() / JOURNAL_FILE)


def _postgres_url(node: Mapping[str, Any]) -> str:
    from sqlalchemy.engine import URL

    port = str(node.get("port") or "5432")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"hydra.sweeper.storage.port is {port!r} (from the config or $PGPORT), but must be a port number"
        )
    for key, variable in (("host", "PGHOST"), ("user", "PGUSER"), ("database", "PGDATABASE")):
        if not str(node.get(key) or "").strip():
            raise ConfigError(f"hydra.sweeper.storage.{key} is empty; set it or ${variable}")
    check_user_name(str(node["user"]), "hydra.sweeper.storage.user (from the config or $PGUSER)")
    url = URL.create(
        str(node.get("driver") or "postgresql+psycopg2"),
        username=str(node["user"]),
        host=str(node["host"]),
        port=int(port),
        database=str(node["database"]),
    )
    return url.render_as_string(hide_password=False)


def with_installed_driver(url: str) -> str:
    """A journal URL with a relative path is made absolute here (as the workers' folders differ).
``postgresql://...`` names no driver, and SQLAlchemy 2.1 then picks psycopg 3; where only psycopg2 is
    installed (tuneflow's ``postgres`` extra), the URL is read as ``postgresql+psycopg2://...``. Every URL a
    user gives goes through here (the sweeper's storage, ``--storage``, the tracking URI)."""
    import importlib.util

    from tuneflow.storage.journal import journal_path_of, journal_url

    journal = journal_path_of(url)
    if journal is not None and str(journal):
        return journal_url(journal.resolve())
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


#: The package to install for each PostgreSQL driver SQLAlchemy may pick.
_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary (pip install 'tuneflow[postgres]')",
    "psycopg": "psycopg 3 (pip install 'psycopg[binary]'), or write postgresql+psycopg2:// to use psycopg2",
}


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

    refuse_password(url, what)
    from tuneflow.storage import grpc

    if grpc.is_grpc(url):  # Optuna's gRPC storage proxy, not a database
        grpc.check(url, what)
        return
    from tuneflow.storage.journal import journal_path_of

    journal = journal_path_of(url)
    if journal is not None:  # Optuna's journal file (tuneflow.storage.journal)
        if not str(journal) or journal.is_dir():
            raise ConfigError(f"{what} is {url!r}, which names no file; give journal:///PATH/optuna.journal")
        _check_sqlite_folder(journal, what)
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
            "use sqlite:///path, journal:///path, postgresql://user@host/db, mysql+pymysql://user@host/db or grpc://host:port"
        ) from None
    except ImportError as error:
        package = _DRIVER_PACKAGES.get(parsed.get_driver_name(), "its driver")
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
    if not can_create_in(existing):
        raise ConfigError(f"{what}: cannot create {path} ({existing} is not a writable folder)")


def check_root_dir(root_dir: str | Path, what: str = "root_dir") -> None:
    """The embedded stores, artifacts and CSVs go under ``root_dir``: it is a folder, or can be made."""
    path = Path(root_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} is {str(root_dir)!r}, a file; give a folder")
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), Path("/"))
    if not can_create_in(existing):
        raise ConfigError(f"{what} is {str(root_dir)!r}, but {existing} is not a writable folder")


def can_create_in(folder: Path) -> bool:
    """Whether a folder can be made inside ``folder``. Tried (an empty folder, removed at once) rather
    than asked of ``os.access``, which says yes to root even where the kernel refuses (``/proc``)."""
    import tempfile

    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tuneflow-check-", dir=folder))
    except OSError:
        return False
    return True


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


def check_tracking(uri: str, what: str = "MLFLOW_TRACKING_URI") -> None:
    """Refuse a tracking URI that cannot work; ``what`` names the setting it came from. A server must
    answer its ``/health`` now, and be MLflow: MLflow's client would otherwise retry for minutes, and fail
    only after the study was created."""
    if not uri.strip():
        raise ConfigError(f"{what} is blank; unset it for the embedded store, or give a URI such as http://127.0.0.1:5000")
    if uri != uri.strip():
        raise ConfigError(f"{what} is {shown(uri)!r}, with spaces around it; remove them")
    if has_password(uri):
        raise ConfigError(
            f"{what}: the MLflow tracking URI contains a password; set MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD (a server) or PGPASSWORD (a database) instead"
        )
    # "databricks" alone (its default profile) is a scheme too; any other text without one is a path.
    scheme = (uri.split("://", 1)[0] if "://" in uri else uri.split(":", 1)[0] if ":" in uri else uri).lower()
    if ":" not in uri and scheme not in _MLFLOW_SCHEMES:
        scheme = "file"
    if scheme in ("http", "https"):
        _check_tracking_server(uri, what)
    elif scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mssql", "sqlite"):
        check_storage(with_installed_driver(uri), what=what)
    elif scheme == "file":
        _check_file_store(uri, what)
    elif scheme.startswith("databricks"):
        _check_databricks(uri, what)
    elif scheme not in _MLFLOW_SCHEMES:
        raise ConfigError(
            f"the MLflow tracking URI {shown(uri)!r} ({what}) has scheme {scheme!r}; use http(s)://HOST:PORT of a "
            "tracking server, sqlite:///PATH, postgresql://USER@HOST/DB or file:///PATH"
        )


def _check_file_store(uri: str, what: str) -> None:
    """A file store is a folder MLflow writes into: it must be one, or be creatable."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE

    if not MLFLOW_ALLOW_FILE_STORE.get():  # type: ignore[no-untyped-call]
        raise ConfigError(
            f"{what} is {shown(uri)!r}, a file store, which MLflow 3 no longer opens; use sqlite:///PATH/mlflow.db "
            "(or set MLFLOW_ALLOW_FILE_STORE=true)"
        )
    path = Path(url2pathname(urlparse(uri).path) if uri.startswith("file:") else uri)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} is {uri!r}, a file; MLflow's file store is a folder (or use sqlite:///PATH/mlflow.db)")
    existing = next((p for p in (path, *path.resolve().parents) if p.exists()), Path("/"))
    if not can_create_in(existing):
        raise ConfigError(f"{what} is {uri!r}, but {existing} is not a writable folder")


def _check_databricks(uri: str, what: str) -> None:
    """Databricks needs credentials (host and token, or a profile in ~/.databrickscfg); without them
    MLflow fails at the first call, after the study was created."""
    profile = uri.split("://", 1)[1] if "://" in uri else "DEFAULT"
    if os.environ.get("DATABRICKS_HOST") and (os.environ.get("DATABRICKS_TOKEN") or os.environ.get("DATABRICKS_CLIENT_ID")):
        return
    config = Path(os.environ.get("DATABRICKS_CONFIG_FILE") or Path.home() / ".databrickscfg")
    if config.is_file() and f"[{profile.split(':')[0] or 'DEFAULT'}]" in config.read_text(errors="replace"):
        return
    raise ConfigError(
        f"{what} is {shown(uri)!r}, but no Databricks credentials are set: set DATABRICKS_HOST and "
        f"DATABRICKS_TOKEN, or run databricks configure (profile {profile!r} in {config})"
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


def _check_tracking_server(uri: str, what: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        port = parts.port  # parsed here: a port that is not a number raises
    except ValueError as error:
        raise ConfigError(f"{what} is {shown(uri)!r}, which is not a URL ({error}); write http://HOST:PORT") from None
    if not parts.hostname:
        raise ConfigError(f"{what} is {shown(uri)!r}, which names no host; write http://HOST:PORT")
    problem = http_problem(uri.rstrip("/") + "/health")
    if problem is not None:
        raise ConfigError(
            f"the MLflow tracking server {shown(uri)} does not answer ({problem}); start it "
            f"(python -m tuneflow.deploy.local_cluster up, or docker compose in docker/) or fix {what}"
        )
    if not _is_mlflow(uri):
        raise ConfigError(
            f"{what}: {shown(uri)} answers /health but is not an MLflow tracking server (its /version is no "
            f"MLflow version); check the host and port{'' if port else ' (none given)'}"
        )


def _is_mlflow(uri: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """An MLflow server answers ``/version`` with its version number (mlflow/server/__init__.py)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/version", timeout=timeout) as response:  # noqa: S310 - http(s) only
            text = response.read(64).decode("utf-8", errors="replace").strip()
    except urllib.error.HTTPError as error:
        # MLflow's basic-auth app guards /version (not /health); MLflow's client brings the credentials.
        return error.code in (401, 403)
    except (urllib.error.URLError, OSError):
        return False
    return re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", text) is not None
