"""Running the sidecar: uvicorn with uvloop + httptools, refusing an open bind without a token.

uvloop + httptools are not a nicety on 2 cores: plain uvicorn with several workers hits a Nagle bug
(uvicorn #3149, ~227 req/s at 40 ms), and they roughly double single-worker throughput.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import os
import sys
import threading
import time

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
    configure_access_log()  # the single process's; each worker of several configures its own (worker_app)
    uvicorn.run(
        "lakehouse_pipelines.sidecar.server:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the sidecar logs structured lines with request ids itself
        log_level="info",
    )


def worker_app():
    """The app a uvicorn worker serves: its access log first (a spawned worker inherits no logging setup:
    with `--workers 2` the access lines used to be dropped), then `create_app()` from the environment."""
    from lakehouse_pipelines.sidecar.app import create_app

    configure_access_log()
    return create_app()


def configure_access_log() -> None:
    """JSON lines of `lakehouse.access` to stderr, written in batches (`BatchedLines`), unless configured."""
    access = logging.getLogger("lakehouse.access")
    if access.handlers:
        return
    handler = BatchedLines(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO if LakehouseSettings().sidecar.access_log else logging.WARNING)
    access.propagate = False


class BatchedLines(logging.Handler):
    """Log lines written to `stream` every `interval` seconds (or every `max_lines`), not one write and flush
    per request: the access log's syscalls were a visible share of a cheap request. A line is at most
    `interval` late; lines still buffered are written when the app shuts down (a SIGKILL loses them). `close()` only flushes:
    uvicorn's logging setup closes every existing handler and then keeps using ours."""

    def __init__(self, stream, interval: float = 0.5, max_lines: int = 512):
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._thread: threading.Thread | None = None
        atexit.register(self.flush)  # uvicorn ends on a re-raised SIGTERM: the app's shutdown flushes too

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        try:
            self._lines.append(self.format(record))
            if len(self._lines) >= self.max_lines:
                self._write()
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, name="lakehouse-access-log", daemon=True)
                self._thread.start()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:
            self._write()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.flush()
        super().close()

    def _write(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def _tick(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except (OSError, ValueError):  # the stream went away (closed at shutdown)
                return
