"""Running the sidecar: uvicorn with uvloop + httptools, refusing an open bind without a token.

uvloop + httptools are not a nicety on 2 cores: plain uvicorn with several workers hits a Nagle bug
(uvicorn #3149, ~227 req/s at 40 ms), and they roughly double single-worker throughput.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.settings import LakehouseSettings


class UnsafeBind(LakehouseError):
    """A non-loopback bind without LAKEHOUSE_API_TOKEN and without an explicit allow."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, token: str | None, allow_remote: bool) -> None:
    """Anyone who can reach a non-loopback address could read every dataset: demand a token or consent."""
    if not is_loopback(host) and not token and not allow_remote:
        raise UnsafeBind(
            f"refusing to listen on {host} without LAKEHOUSE_API_TOKEN: set a token, bind 127.0.0.1, "
            "or pass --allow-remote to serve the lake unauthenticated"
        )


def engine_threads(workers: int) -> int:
    """Each worker's share of the cores for its DuckDB engine (at least one thread)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, allow_remote: bool = False) -> None:
    """Serve the sidecar until interrupted; each worker process opens its own DuckDB engine."""
    import uvicorn

    limits = LakehouseSettings().sidecar
    check_bind(host, token=limits.token, allow_remote=allow_remote)
    # Each worker builds its app from the environment it inherits: N engines of one thread per core each
    # would fight over the cores, so the workers' share goes into that environment.
    os.environ.setdefault("LAKEHOUSE_SQL_THREADS", str(engine_threads(workers)))
    access = logging.getLogger("lakehouse.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO if limits.access_log else logging.WARNING)
        access.propagate = False
    uvicorn.run(
        "lakehouse_pipelines.sidecar.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the sidecar logs structured lines with request ids itself
        log_level="info",
    )
