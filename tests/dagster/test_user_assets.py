"""What users' own Dagster assets get: a DuckDB connection with a view per dataset (the sidecar's views), and a
polars LazyFrame over a dataset, both through the code location's resources, on a real ingested lake."""

import dagster as dg
import duckdb

from assets.asset_keys import manifest_key
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from resources.lake_duckdb import LakeDuckDBResource
from resources.lake_resource import LakeResource


@dg.asset(deps=[manifest_key("workers")])
def workers_by_state(duckdb: LakeDuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        rows = con.sql("SELECT state, count(*) FROM workers GROUP BY 1").fetchall()
    return dg.MaterializeResult(metadata={"states": len(rows), "workers": sum(n for _, n in rows)})


@dg.asset(deps=[manifest_key("workers")])
def available_welders(lake: LakeResource) -> dg.MaterializeResult:
    import polars as pl

    frame = (
        lake.scan("workers").filter(pl.col("available") & (pl.col("role") == "Welder")).select("worker_id")
    )
    return dg.MaterializeResult(metadata={"welders": frame.collect().height})


def test_a_users_asset_queries_workers_through_duckdb_and_polars(lake, lake_home, workers_csv):
    ingest(lake, str(workers_csv), load_specs()["workers"])
    resource = LakeResource(home=str(lake_home.home))
    result = dg.materialize(
        [workers_by_state, available_welders],
        resources={"lake": resource, "duckdb": LakeDuckDBResource(lake=resource)},
    )
    assert result.success
    by_state = result.asset_materializations_for_node("workers_by_state")[0].metadata
    assert by_state["workers"].value == 2_000 and by_state["states"].value > 10
    welders = result.asset_materializations_for_node("available_welders")[0].metadata["welders"].value
    paths = [lake.storage.location(o.key) for o in lake.catalog.get("workers").objects]
    query = "SELECT count(*) FROM read_parquet(?) WHERE available AND role = 'Welder'"
    (expected,) = duckdb.sql(query, params=[paths]).fetchone()
    assert welders == expected > 0
