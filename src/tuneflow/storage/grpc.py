"""Optuna's gRPC storage proxy as a study's storage: ``grpc://HOST:PORT``.

Optuna's answer for many workers on one database (``optuna.storages.GrpcStorageProxy``; the server is
``optuna.storages.run_grpc_proxy_server`` in front of an RDB storage, see ``tuneflow.deploy.grpc_proxy``).
What tuneflow needs from a storage, and how the proxy provides it:

- **Exact n_trials.** The proxy offers no lock a worker could take, so workers ask without one and rely
  on the surplus-safe half of the protocol (``tuneflow.sweeper.asking``): a trial asked past
  ``n_trials`` is marked surplus and failed at once, and counts for nothing.
- **Dead workers.** The proxy has no heartbeats (``GrpcStorageProxy`` is no ``BaseHeartbeat``): heartbeats
  are off with it, and a killed worker's trial stays RUNNING. The other workers count it as running and
  end; the study then holds one finished trial fewer than n_trials and that trial RUNNING. Fail it
  (``optuna`` CLI or ``study.tell(number, state=FAIL)``) and run the command again to have it retried.
  Use PostgreSQL directly where workers are killed often (pre-emptible nodes).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tuneflow.errors import ConfigError

#: Seconds to wait for the proxy to answer before saying it does not.
CONNECT_TIMEOUT = 5


def is_grpc(url: str) -> bool:
    return url.startswith("grpc://")


def address(url: str, what: str = "hydra.sweeper.storage") -> tuple[str, int]:
    """``grpc://HOST:PORT`` -> (HOST, PORT)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"{what} is {url!r}; Optuna's gRPC proxy is given as grpc://HOST:PORT")
    return parts.hostname, port


def open_proxy(url: str, timeout: float | None = CONNECT_TIMEOUT) -> Any:
    """A client of the proxy at ``url`` (it answered within ``timeout`` seconds)."""
    import optuna

    host, port = address(url)
    proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
    proxy.wait_server_ready(timeout=timeout)
    return proxy


def check(url: str, what: str = "hydra.sweeper.storage") -> None:
    """grpcio installed, a well-formed address, a proxy that answers: or one line saying which is not."""
    address(url, what)
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what}: Optuna's gRPC proxy needs grpcio; pip install 'tuneflow[grpc]'") from None
    try:
        open_proxy(url).close()
    except Exception as error:  # noqa: BLE001 - gRPC raises its own types and timeouts
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"{what}: Optuna's gRPC proxy at {url} does not answer ({first}); start it "
            "(python -m tuneflow.deploy.grpc_proxy --storage URL --port PORT)"
        ) from None
