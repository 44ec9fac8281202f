"""The sidecar's own knobs, read from the environment once at startup."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class SidecarSettings:
    """Limits that keep one query from taking the service down, and the optional API token.

    `max_rows` caps a JSON result (the response says `truncated`); `max_stream_rows` caps CSV and Arrow
    streams; `query_timeout` is the wall-clock deadline of a query, streaming included. `threads` is the
    engine's DuckDB thread count (None: one per core; `serve --workers N` gives each worker its share).
    """

    token: str | None = None
    query_timeout: float = 5.0
    max_rows: int = 1_000
    max_stream_rows: int = 1_000_000
    refresh_interval: float = 2.0
    memory_limit: str = "1GB"
    threads: int | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SidecarSettings:
        env = os.environ if environ is None else environ
        return cls(
            token=env.get("LAKEHOUSE_API_TOKEN") or None,
            query_timeout=float(env.get("LAKEHOUSE_SQL_TIMEOUT") or cls.query_timeout),
            max_rows=int(env.get("LAKEHOUSE_SQL_MAX_ROWS") or cls.max_rows),
            max_stream_rows=int(env.get("LAKEHOUSE_SQL_MAX_STREAM_ROWS") or cls.max_stream_rows),
            refresh_interval=float(env.get("LAKEHOUSE_VIEW_REFRESH_SECONDS") or cls.refresh_interval),
            memory_limit=env.get("LAKEHOUSE_SQL_MEMORY_LIMIT") or cls.memory_limit,
            threads=int(env["LAKEHOUSE_SQL_THREADS"]) if env.get("LAKEHOUSE_SQL_THREADS") else None,
        )
