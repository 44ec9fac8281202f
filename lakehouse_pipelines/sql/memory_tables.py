"""Datasets copied into the engine's memory, within a budget: what a point lookup over Parquet cannot be.

A lookup by id over the Parquet view reads one row group (min/max statistics skip the others) but has to
decompress every column of it, the wide `resume_text` included: ~6 ms in process at 500K rows, whatever
the row-group size (smaller groups cost more per group than they save; DuckDB decompresses whole column
chunks, so smaller pages don't help; the Parquet metadata cache changed nothing on a local lake). The same
rows as a compressed DuckDB table: 1.4 ms for the lookup, count(*) 0.25 ms instead of 1.2, a group-by
2.4 ms instead of 4.5 (in process, one thread; bench/results/serve.md measures them through HTTP).

So a dataset whose copy fits the budget (`LAKEHOUSE_SQL_MEMORY_TABLES_MB` per engine, so per sidecar
worker; 0 turns this off) is loaded into `lakehouse_memory`, an in-memory database with compression
attached before the engine is locked, when its view is (re)built in the view-refresh thread; a checkpoint
then compresses it (500K workers rows: 240 MiB as loaded, 55 MiB compressed, from 23 MiB of zstd
Parquet). The table has the dataset's name and no view stands in front of it: the engine's cursors search
`lakehouse_memory` after the main database (`search_path`), so once the dataset's Parquet view is dropped
its name is the table (binding a view cost ~110 us of a ~400 us count(*) through the engine). The others
keep the Parquet view. The copy holds the manifest's rows exactly (same columns, types and order), read
from the same objects the Parquet view would read; a new manifest version replaces the table in one
statement (`CREATE OR REPLACE`: a query sees the old rows or the new, never neither), and a dataset going
back to Parquet gets its view before its table is dropped. The copies count towards the engine's memory
limit; loading one briefly takes its uncompressed size.
"""

from __future__ import annotations

import logging
import time

import duckdb

from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Manifest

log = logging.getLogger("lakehouse.sidecar.views")

DATABASE = "lakehouse_memory"
# A compressed copy takes ~2.4x the dataset's zstd Parquet bytes (55 MiB for 23 MiB at 500K workers rows):
# 4x is what a dataset must fit in the budget before it is loaded; its real size is then counted.
ESTIMATE_FACTOR = 4
CHECKPOINT_TRIES = 100  # a checkpoint is refused while another write commits: retried 10 ms apart


class MemoryTables:
    """Which datasets are in memory; `apply` builds a dataset's view over its copy when it fits."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used: dict[str, int] = {}  # dataset -> bytes its table takes
        self.tables: dict[str, str] = {}  # dataset -> its table, qualified
        self._too_big: dict[str, int] = {}  # dataset -> the manifest version that did not fit
        self.search_path: str | None = None  # what every cursor of the engine must search (set_search_path)

    def install(self, con: duckdb.DuckDBPyConnection, main: str) -> None:
        """Before the engine's lock (which refuses ATTACH); `main`: the database the views live in."""
        if self.budget > 0:
            con.execute(f"ATTACH ':memory:' AS {DATABASE} (COMPRESS)")
            self.search_path = f"{main}.main,{DATABASE}.main"

    def set_search_path(self, cur: duckdb.DuckDBPyConnection) -> None:
        """A new cursor finds the views first, then the tables (a cursor is a session of its own)."""
        if self.search_path is not None:
            cur.execute(f"SET search_path = {quote_literal(self.search_path)}")

    def apply(self, cur: duckdb.DuckDBPyConnection, lake: Lake, manifest: Manifest) -> bool:
        """Load a memory copy of `manifest` under the dataset's name (the caller then drops its Parquet view,
        which the search path finds first); False: it stays on Parquet (the caller builds the Parquet view,
        then `drop`s any older copy)."""
        name = manifest.name
        if self.budget <= 0 or self._too_big.get(name) == manifest.version:
            return False
        room = self.budget - sum(b for n, b in self.used.items() if n != name)
        estimate = ESTIMATE_FACTOR * sum(o.bytes for o in manifest.objects)
        if estimate > room:
            self._too_big[name] = manifest.version
            log.info(
                "%s stays on Parquet: ~%d MiB would not fit the memory tables' budget", name, estimate >> 20
            )
            return False
        table = f"{DATABASE}.main.{quote_ident(name)}"
        paths = "[" + ", ".join(quote_literal(lake.storage.location(o.key)) for o in manifest.objects) + "]"
        before = _table_bytes(cur)
        try:
            cur.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet({paths})")
        except duckdb.OutOfMemoryException:  # rolled back: any older copy is still there, for drop()
            self._too_big[name] = manifest.version
            log.warning("%s stays on Parquet: its memory copy ran out of memory", name)
            return False
        _checkpoint(cur)
        size = max(0, _table_bytes(cur) - before + self.used.get(name, 0))
        self.tables[name], self.used[name] = table, size
        self._too_big.pop(name, None)
        return True

    def drop(self, cur: duckdb.DuckDBPyConnection, name: str, *, keep_verdict: bool = False) -> None:
        """Forget the dataset's copy: called once its Parquet view (which the search path finds first) exists."""
        table = self.tables.pop(name, None)
        self.used.pop(name, None)
        if table is not None:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        if not keep_verdict:
            self._too_big.pop(name, None)


def _checkpoint(cur: duckdb.DuckDBPyConnection) -> None:
    """Compress what was loaded (an in-memory database compresses on checkpoint)."""
    for _ in range(CHECKPOINT_TRIES):
        try:
            cur.execute(f"CHECKPOINT {DATABASE}")
            return
        except duckdb.TransactionException:
            time.sleep(0.01)
    log.warning("memory tables not compressed: the checkpoint kept being refused")


def _table_bytes(cur: duckdb.DuckDBPyConnection) -> int:
    """Memory DuckDB's in-memory tables hold now."""
    return cur.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
    ).fetchone()[0]
