"""DuckDB for users' own assets: dagster-duckdb's resource, with one view per dataset already in place.

The views are the sidecar's own (`sql.views.view_sql`), so an asset's `SELECT ... FROM workers` reads exactly
what `POST /sql` reads. Unlike the sidecar's engine this connection is not locked down: it is the user's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster_duckdb import DuckDBResource

from lakehouse_pipelines.lake import duckdb_connection
from lakehouse_pipelines.sql.views import attach_lake
from resources.lake_resource import LakeResource


class LakeDuckDBResource(DuckDBResource):
    """`with duckdb.get_connection() as con: con.sql("SELECT count(*) FROM workers")` in any asset."""

    lake: LakeResource
    database: str = ":memory:"

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with super().get_connection() as con:
            duckdb_connection.load_extension(con, "icu")
            con.execute("SET TimeZone = 'UTC'")
            attach_lake(con, self.lake.open(), self.lake.aws_settings())
            yield con
