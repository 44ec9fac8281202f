"""Running one read query on the engine: a deadline enforced by interrupting DuckDB, and a row cap.

Each query gets its own cursor, armed with a deadline: the watchdog calls `interrupt()` on it when the
deadline passes, so a runaway query stops inside DuckDB instead of holding a thread forever. Results come back as Arrow batches:
JSON reads at most `max_rows + 1` rows (the extra one says `truncated`), CSV and Arrow stream batch by batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.csv_file import quote_ident
from lakehouse_pipelines.sql import formats
from lakehouse_pipelines.sql.deadlines import Deadlines
from lakehouse_pipelines.sql.guard import check_read_only, first_line
from lakehouse_pipelines.sql.versions import VersionViews
from lakehouse_pipelines.sql.views import ViewManager

BATCH_ROWS = 2_048
TIMETZ = "TIME WITH TIME ZONE"
DEADLINES = Deadlines()  # one watchdog thread per process, shared by every engine in it
_UNKNOWN_TABLE = re.compile(r'Table with name "?([^"!\s]+)"? does not exist')
_PATH = re.compile(r"""(["'])(/|s3://|https?://)[^"']*\1""")


class QueryFailed(LakehouseError):
    """DuckDB rejected or could not finish a read query (the user's SQL is at fault): HTTP 400."""


class QueryTimeout(QueryFailed):
    """The query ran past its deadline and was interrupted."""


class DataUnavailable(LakehouseError):
    """The dataset's files could not be read (storage down, object missing): HTTP 503."""


@dataclass
class Running:
    """A query under way: its cursor, deadline ticket and Arrow reader; `close()` releases them."""

    cursor: duckdb.DuckDBPyConnection
    ticket: int
    reader: pa.RecordBatchReader
    duckdb_types: list[str]
    timeout: float
    views: ViewManager  # the cursor goes back to it; its datasets name an unknown table's alternatives
    reusable: bool = True  # the cursor may serve another request (nothing registered on it, no error)

    @property
    def names(self) -> list[str]:
        return self.reader.schema.names

    def batches(self, max_rows: int) -> Iterator[pa.RecordBatch]:
        """Up to `max_rows` rows in batches; reading is where a deadline interrupt lands."""
        left = max_rows
        while left > 0:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, OSError, pa.ArrowException) as exc:
                self.reusable = False
                raise translate(exc, self.timeout, self.views.datasets, self.views.versions) from None
            yield batch.slice(0, left) if batch.num_rows > left else batch
            left -= batch.num_rows

    def close(self) -> None:
        armed = DEADLINES.disarm(self.ticket)
        self.reader.close()  # ends the query if its rows were not all read
        self.views.release(self.cursor, armed and self.reusable)


def start(
    views: ViewManager, sql: str, *, timeout: float, relations: Mapping[str, pa.Table] | None = None
) -> Running:
    """Check the SQL, then execute it on a fresh cursor with the deadline armed.

    `relations` (hybrid search hits, `hybrid.py`) are registered on that cursor only: visible to this one
    statement, gone when the cursor closes, and read-only (DuckDB refuses to write to a registered table).
    """
    check_read_only(sql)
    cursor = views.cursor()
    ticket = DEADLINES.arm(cursor, timeout)
    try:
        for name, table in (relations or {}).items():
            cursor.register(name, table)
        cursor.execute(sql)
        types = [str(d[1]) for d in cursor.description or []]
        if TIMETZ in types:
            cursor.execute(_timetz_as_text(sql, cursor.description))
            types = [str(d[1]) for d in cursor.description or []]
        reader = cursor.to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, OSError) as exc:
        DEADLINES.disarm(ticket)
        views.release(cursor, False)
        raise translate(exc, timeout, views.datasets, views.versions) from None
    return Running(cursor, ticket, reader, types, timeout, views, reusable=not relations)


def _timetz_as_text(sql: str, description: list) -> str:
    """The query again with its TIME WITH TIME ZONE columns as text: DuckDB's Arrow export drops the offset."""
    columns = ", ".join(
        f"CAST({quote_ident(d[0])} AS VARCHAR) AS {quote_ident(d[0])}"
        if str(d[1]) == TIMETZ
        else quote_ident(d[0])
        for d in description
    )
    # the newline ends a trailing `--` comment before the closing parenthesis
    return f"SELECT {columns} FROM ({sql.rstrip().rstrip(';')}\n)"


def run_json(
    views: ViewManager,
    sql: str,
    *,
    timeout: float,
    max_rows: int,
    relations: Mapping[str, pa.Table] | None = None,
) -> dict:
    """The `/sql` JSON body: columns with DuckDB types, at most `max_rows` rows, and `truncated`."""
    running = start(views, sql, timeout=timeout, relations=relations)
    try:
        rows: list[list] = []
        for batch in running.batches(max_rows + 1):
            rows.extend(formats.batch_rows(batch, running.duckdb_types))
    finally:
        running.close()
    truncated = len(rows) > max_rows
    del rows[max_rows:]
    return {
        "columns": [{"name": n, "type": t} for n, t in zip(running.names, running.duckdb_types, strict=True)],
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated,
    }


def stream(running: Running, media_type: str, max_rows: int) -> Iterator[bytes]:
    """CSV or Arrow IPC chunks of a started query; the cursor is released when the stream ends."""
    try:
        batches = running.batches(max_rows)
        if media_type == formats.ARROW:
            yield from formats.arrow_stream(running.reader.schema, batches)
        else:
            yield from formats.csv_stream(running.names, batches, running.duckdb_types)
    finally:
        running.close()


def translate(
    exc: BaseException, timeout: float, datasets: list[str], versions: VersionViews | None = None
) -> LakehouseError:
    """DuckDB's error as one line for the user: no SQL echo, no internal path, no credential."""
    if isinstance(exc, duckdb.InterruptException) or "INTERRUPT" in str(exc):
        return QueryTimeout(f"query exceeded the {timeout:g}s time limit and was stopped")
    if isinstance(exc, duckdb.PermissionException):
        return QueryFailed("access outside the lake's datasets is not allowed")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryFailed("query needs more memory than the sidecar allows")
    if isinstance(exc, (duckdb.IOException, duckdb.HTTPException)):
        return DataUnavailable("a dataset's data files could not be read; try again shortly")
    message = first_line(exc)
    unknown = _UNKNOWN_TABLE.search(message)
    if isinstance(exc, duckdb.CatalogException) and unknown:
        described = versions.describe_unknown(unknown.group(1), datasets) if versions else None
        if described:
            return QueryFailed(described)
        known = ", ".join(datasets) or "none registered yet"
        return QueryFailed(f"unknown table {unknown.group(1)!r}; known datasets: {known}")
    return QueryFailed(_PATH.sub("<path>", message))
