"""One DuckDB engine per process, with one view per dataset over its manifest's Parquet objects.

The engine is built once: httpfs and an S3 secret from the standard AWS variables when the lake is on S3,
a view per registered dataset, and then the lock from DuckDB's "Securing DuckDB" guide (file access only
under the lake and DuckDB's own spill directory, no external access, configuration locked). Views over
paths inside the allowed directories can still be (re)created after the lock, so a background thread polls
the catalog every few seconds and replaces the view of any dataset whose manifest version or update time
changed. Requests never rebuild anything: they take a cursor (DuckDB's thread-safe handle) and query.
Cursors are kept for the next request when a query ends normally: a fresh one's first query cost ~50 us
more (a new DuckDB session, its search path set).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.storage import LocalStorage, S3Storage
from lakehouse_pipelines.settings import AwsSettings, LakehouseSettings, SidecarSettings
from lakehouse_pipelines.sql.memory_tables import MemoryTables
from lakehouse_pipelines.sql.results import uncacheable_names
from lakehouse_pipelines.sql.versions import VersionViews

log = logging.getLogger("lakehouse.sidecar.views")

MAX_IDLE_CURSORS = 64  # more than ever query at once (LAKEHOUSE_SQL_CONCURRENCY per worker, MCP, hybrid)

# httpfs copies these AWS variables into settings anyone can read back with current_setting(); the secret
# carries the credentials instead, so the settings are blanked before the lock.
_ENV_SETTINGS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")


@dataclass(frozen=True)
class ViewState:
    """What a dataset's view was built from: a change in either means the view is stale."""

    version: int
    updated_at: str


class ViewManager:
    """The per-process DuckDB engine and the dataset views it serves, with every version's (`versions.py`)."""

    def __init__(
        self,
        lake: Lake,
        *,
        memory_limit: str = "1GB",
        refresh_interval: float = 2.0,
        threads: int | None = None,
        aws: AwsSettings | None = None,
        memory_tables_mb: int = 0,
    ):
        self.lake = lake
        self.memory = MemoryTables(memory_tables_mb * 1024**2)  # datasets copied into memory
        self.refresh_interval = refresh_interval
        self._views: dict[str, ViewState] = {}
        self._copies_due: set[str] = set()  # on Parquet until the refresh thread loads their copies
        self.generation = 0  # bumped whenever a view changes: what cached answers are keyed on (results.py)
        self._refresh_lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []  # cursors to reuse; append/pop are atomic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        spill = Path(lake.scratch) / "duckdb"
        spill.mkdir(parents=True, exist_ok=True)
        is_s3 = isinstance(lake.storage, S3Storage)
        self._con = engine.connect(memory_limit=memory_limit, scratch=Path(lake.scratch), s3=is_s3)
        # engine.connect() pins its own session to UTC; request cursors are new sessions, so pin the default.
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        # Before any secret exists (DuckDB refuses it later): no secrets read from or written to disk.
        self._con.execute("SET allow_persistent_secrets = false")
        if is_s3:
            create_s3_secret(self._con, aws or LakehouseSettings().aws)
        self.versions = VersionViews(lake)
        self.versions.install(self._con)
        self._main = self._con.execute("SELECT current_database()").fetchone()[0]
        self.memory.install(self._con, self._main)
        self.refresh(copies=False)  # views at once; memory copies load in the refresh thread (start())
        _lock_engine(self._con, [lake_root(lake), f"{spill}/"])

    @classmethod
    def for_sidecar(cls, lake: Lake, limits: SidecarSettings, aws: AwsSettings | None = None) -> ViewManager:
        """The engine the sidecar and MCP serve, within their configured limits."""
        return cls(
            lake,
            memory_limit=limits.memory_limit,
            refresh_interval=limits.refresh_interval,
            threads=limits.threads,
            aws=aws,
            memory_tables_mb=limits.memory_tables_mb,
        )

    @property
    def datasets(self) -> list[str]:
        return sorted(self._views)

    def uncacheable_names(self) -> frozenset[str]:
        """Function names that make an answer depend on more than the views (`results.py`)."""
        cur = self._con.cursor()
        try:
            return uncacheable_names(cur)
        finally:
            cur.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one request: its own transaction and interrupt handle on the shared engine.
        Give it back with `release`."""
        try:
            return self._idle.pop()
        except IndexError:
            return self._session()

    def release(self, cursor: duckdb.DuckDBPyConnection, reuse: bool) -> None:
        """`cursor`'s query is over: kept for another request if `reuse` (it ended normally, its deadline
        never fired, nothing was registered on it), else closed."""
        if reuse and len(self._idle) < MAX_IDLE_CURSORS:
            self._idle.append(cursor)
        else:
            cursor.close()

    @contextmanager
    def borrowed(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one short query, given back when it succeeded and closed when it raised."""
        cursor = self.cursor()
        try:
            yield cursor
        except BaseException:
            self.release(cursor, False)
            raise
        self.release(cursor, True)

    def _session(self) -> duckdb.DuckDBPyConnection:
        cursor = self._con.cursor()
        self.memory.set_search_path(cursor)
        return cursor

    def refresh(self, copies: bool = True) -> list[str]:
        """Bring every view in line with the catalog; return the datasets whose view changed.

        `copies=False` builds every new view over Parquet and leaves loading memory copies
        (memory_tables.py: seconds for a large dataset) to a later refresh, so start-up does not wait.
        """
        with self._refresh_lock:
            manifests = {m.name: m for m in self.lake.catalog.list()}
            changed = []
            cur = self._session()
            try:
                for name, manifest in manifests.items():
                    state = ViewState(manifest.version, manifest.updated_at)
                    current = self._views.get(name) == state
                    if current and not (copies and name in self._copies_due):
                        continue
                    self._copies_due.discard(name)
                    if copies and self.memory.apply(cur, self.lake, manifest):  # memory_tables.py
                        self._drop_view(cur, name)  # the name is the memory table now
                    else:
                        cur.execute(view_sql(self.lake, manifest))
                        self.memory.drop(cur, name, keep_verdict=True)  # an older copy, behind the view now
                        if not copies and self.memory.budget > 0:
                            self._copies_due.add(name)
                    if not current:
                        self.versions.sync(cur, manifest)  # before the state: a failed sync is retried
                        self._views[name] = state
                    changed.append(name)
                for name in set(self._views) - set(manifests):
                    self._drop_view(cur, name)
                    self.memory.drop(cur, name)
                    self._copies_due.discard(name)
                    self.versions.drop(cur, name)
                    del self._views[name]
                    changed.append(name)
            finally:
                try:
                    if changed:  # also when a later dataset failed: as_of knows the versions served so far
                        self.versions.refresh_as_of(cur)
                finally:
                    cur.close()
                    if changed:
                        self.generation += 1
            return changed

    def _drop_view(self, cur: duckdb.DuckDBPyConnection, name: str) -> None:
        """The dataset's view in the main database, qualified: the bare name may resolve to its memory table."""
        cur.execute(f"DROP VIEW IF EXISTS {quote_ident(self._main)}.main.{quote_ident(name)}")

    def start(self) -> None:
        """Poll the catalog in the background until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="lakehouse-view-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        while self._idle:
            self._idle.pop().close()
        self._con.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.refresh_interval):
            try:
                changed = self.refresh()
            except (LakehouseError, duckdb.Error) as exc:  # keep serving the last good views
                log.warning("view refresh failed: %s", type(exc).__name__)
                continue
            if changed:
                log.info("views refreshed: %s", ", ".join(changed))


def view_sql(lake: Lake, manifest: Manifest) -> str:
    """The dataset's view: its name over every object of the manifest. The sidecar's and users' DuckDB alike."""
    paths = ", ".join(quote_literal(lake.storage.location(o.key)) for o in manifest.objects)
    return f"CREATE OR REPLACE VIEW {quote_ident(manifest.name)} AS SELECT * FROM read_parquet([{paths}])"


def attach_lake(con: duckdb.DuckDBPyConnection, lake: Lake, aws: AwsSettings | None = None) -> list[str]:
    """Give a connection of one's own the lake's datasets as views (httpfs and an S3 secret when on S3)."""
    if isinstance(lake.storage, S3Storage):
        engine.load_extension(con, "httpfs")
        create_s3_secret(con, aws or LakehouseSettings().aws)
    manifests = lake.catalog.list()
    for manifest in manifests:
        con.execute(view_sql(lake, manifest))
    return [m.name for m in manifests]


def lake_root(lake: Lake) -> str:
    """The directory (or S3 prefix) the engine may read, with a trailing slash."""
    storage = lake.storage
    if isinstance(storage, S3Storage):
        return f"s3://{storage.bucket}/{storage.prefix}/" if storage.prefix else f"s3://{storage.bucket}/"
    if isinstance(storage, LocalStorage):
        return f"{storage.root}/"
    raise LakehouseError(f"the sidecar cannot serve a {type(storage).__name__} lake")


def _lock_engine(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> None:
    """Securing DuckDB, in its order: allowed directories, no external access, configuration locked."""
    con.execute("SET allowed_directories = [" + ", ".join(quote_literal(p) for p in allowed) + "]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def create_s3_secret(con: duckdb.DuckDBPyConnection, aws: AwsSettings) -> None:
    """A temporary S3 secret from the S3 settings (endpoint, path-style, SSL per scheme)."""
    options = {"TYPE": "s3", "REGION": aws.region or "us-east-1"}
    if aws.access_key_id:
        options["KEY_ID"] = aws.access_key_id
        options["SECRET"] = aws.secret_access_key
    if aws.session_token:
        options["SESSION_TOKEN"] = aws.session_token
    if aws.endpoint_url:
        url = urlparse(aws.endpoint_url)
        options["ENDPOINT"] = url.netloc or url.path
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if url.scheme == "https" else "false"
    body = ", ".join(
        f"{k} {v}" if k in ("TYPE", "USE_SSL") else f"{k} {quote_literal(v)}" for k, v in options.items()
    )
    try:
        con.execute(f"CREATE TEMPORARY SECRET lake_s3 ({body})")
        for setting in _ENV_SETTINGS:
            con.execute(f"SET GLOBAL {setting} = ''")
    except duckdb.Error:
        # The statement holds the credentials: never let DuckDB's message (which may echo it) out.
        raise LakehouseError("could not configure DuckDB's S3 access from the AWS environment") from None
