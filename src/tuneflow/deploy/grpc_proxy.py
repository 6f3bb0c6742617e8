"""Optuna's gRPC storage proxy in front of a study database, bound to 127.0.0.1 unless told otherwise:

    python -m tuneflow.deploy.grpc_proxy --storage postgresql://tuneflow@127.0.0.1/optuna --port 13000

Workers then use ``hydra.sweeper.storage.url=grpc://HOST:13000`` (see ``tuneflow.storage.grpc`` for what
the proxy gives a study and what it does not: heartbeats). The database password comes from libpq's
environment (``PGPASSWORD`` / ``~/.pgpass``), never from the command line.
"""

from __future__ import annotations

import argparse
import sys


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 13000) -> None:
    """Serve ``storage_url`` until interrupted (Optuna's server; its in-process cache, as Optuna advises)."""
    import optuna

    from tuneflow.storage.study import open_storage

    optuna.storages.run_grpc_proxy_server(optuna.storages.get_storage(open_storage(storage_url)), host=host, port=port)


def main(argv: list[str] | None = None) -> int:
    from tuneflow.console import one_line_errors, terminate_like_interrupt
    from tuneflow.storage import urls

    parser = argparse.ArgumentParser(prog="python -m tuneflow.deploy.grpc_proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="the database URL the proxy serves (SQLite or PostgreSQL)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=13000)
    args = parser.parse_args(argv)
    terminate_like_interrupt()
    with one_line_errors():
        urls.check_storage(args.storage, what="--storage")
        print(f"tuneflow: Optuna's gRPC proxy for {urls.shown(args.storage)} on grpc://{args.host}:{args.port}",
              file=sys.stderr, flush=True)
        serve(args.storage, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
