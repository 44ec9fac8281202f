"""`lakehouse mcp` as an assistant uses it: the official SDK's stdio client starts `.venv/bin/lakehouse mcp`
over a small lake (workers ingested, embedded by the local model, indexed in Qdrant Edge), lists the tools
and calls each one; SQL that would write is refused as a tool error, like the sidecar refuses it with a 400.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.embeddings_build import embed_dataset
from lakehouse_pipelines.search.indexing import index_dataset
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings
from lakehouse_pipelines.settings import LakeSettings
from tests.search_support import local_embedder

LAKEHOUSE = Path(sys.executable).parent / "lakehouse"
WORKERS = load_specs()["workers"]
ROWS = 60


@pytest.fixture(scope="module")
def mcp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake home with `workers` ingested, embedded and indexed, as the Dagster chain would leave it."""
    home = tmp_path_factory.mktemp("mcp-home")
    lake = Lake.open(LakeSettings.under(home))
    ingest(lake, str(write_workers_csv(home / "workers.csv", ROWS)), WORKERS)
    embed_dataset(lake, WORKERS, local_embedder())
    store = EdgeVectorStore(home / "vectors", HnswSettings(max_indexing_threads=2))
    try:
        index_dataset(lake, WORKERS, store)
    finally:
        store.close()
    return home


def run_session(home: Path, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """Start the server over stdio, list its tools, make `calls` in order; (tools, results)."""
    server = StdioServerParameters(
        command=str(LAKEHOUSE),
        args=["mcp"],
        env={"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_SQL_THREADS": "1"},
        cwd=str(home),
    )

    async def session() -> tuple[list, list]:
        with open(os.devnull, "w") as errlog:
            async with (
                stdio_client(server, errlog=errlog) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
                tools = (await client.list_tools()).tools
                results = [await client.call_tool(name, arguments) for name, arguments in calls]
                return tools, results

    return anyio.run(session)


def payload(result) -> dict:
    """The tool's JSON answer (its text content)."""
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def test_an_mcp_client_lists_and_calls_every_tool(mcp_home: Path):
    tools, results = run_session(
        mcp_home,
        [
            ("list_datasets", {}),
            ("get_manifest", {"name": "workers"}),
            ("query_sql", {"sql": "SELECT state, count(*) AS n FROM workers GROUP BY state ORDER BY n DESC"}),
            ("query_sql", {"sql": "SELECT worker_id FROM workers", "max_rows": 5}),
            ("search", {"dataset": "workers", "query": "forklift operator", "k": 3}),
            ("search", {"dataset": "workers", "query": "welder", "k": 5, "filter": {"state": "OH"}}),
            ("embed_text", {"text": "forklift operator"}),
            (
                "hybrid_query",
                {
                    "sql": "SELECT w.role, h.rank FROM hits h JOIN workers w USING (worker_id) ORDER BY h.rank",
                    "search": {"hits": {"dataset": "workers", "query": "forklift operator", "k": 200}},
                    "max_rows": 10,
                },
            ),
            ("list_versions", {"name": "workers"}),
            ("query_sql", {"sql": "SELECT count(*) FROM version('workers', 1)"}),
            (
                "validate_records",
                {"dataset": "workers", "records": [{"worker_id": "x", "state": "IL"}, {"state": "Ohio"}]},
            ),
        ],
    )
    assert {t.name for t in tools} == {
        "list_datasets",
        "get_manifest",
        "query_sql",
        "search",
        "embed_text",
        "hybrid_query",
        "list_versions",
        "validate_records",
    }
    assert all(t.annotations.read_only_hint for t in tools)
    listed, manifest, by_state, capped, found, filtered, embedded, joined, versions, old, checked = map(
        payload, results
    )

    assert [(d["name"], d["row_count"]) for d in listed["datasets"]] == [("workers", ROWS)]
    assert manifest["name"] == "workers"
    assert {"name": "worker_id", "type": "int64", "nullable": False} in manifest["columns"]
    assert sum(row[1] for row in by_state["rows"]) == ROWS
    assert [c["name"] for c in by_state["columns"]] == ["state", "n"]
    assert capped["row_count"] == 5 and capped["truncated"] is True

    assert len(found["hits"]) == 3
    assert found["hits"][0]["payload"]["role"] == "Forklift Operator"
    assert found["confidence"]["level"] in ("high", "medium", "low")
    assert {h["payload"]["state"] for h in filtered["hits"]} <= {"OH"}

    assert embedded["model"] == "all-MiniLM-L6-v2" and embedded["dim"] == 384
    assert sum(x * x for x in embedded["vector"]) == pytest.approx(1.0, abs=1e-4)

    assert joined["row_count"] == 10 and joined["truncated"] is True
    assert [r[1] for r in joined["rows"]] == list(range(1, 11))
    assert joined["rows"][0][0] == "Forklift Operator"
    assert joined["search"]["hits"]["hits"] == ROWS  # k above the row count: every row
    assert [(v["version"], v["row_count"]) for v in versions["versions"]] == [(1, ROWS)]
    assert old["rows"] == [[ROWS]]
    assert checked["valid"] is False and checked["counts"]["records"] == 2
    assert (0, "worker_id", "type") in {(e["record"], e["field"], e["rule"]) for e in checked["errors"]}
    assert (1, "state", "str_matches('^[A-Z]{2}$')") in {
        (e["record"], e["field"], e["rule"]) for e in checked["errors"]
    }


def test_writes_and_unknown_names_are_tool_errors_and_the_lake_is_untouched(mcp_home: Path):
    lake_files = sorted(p.relative_to(mcp_home) for p in (mcp_home / "lake").rglob("*") if p.is_file())
    _, results = run_session(
        mcp_home,
        [
            ("query_sql", {"sql": f"COPY workers TO '{mcp_home}/lake/datasets/workers/x.parquet'"}),
            ("query_sql", {"sql": "CREATE TABLE stolen AS SELECT * FROM workers"}),
            ("query_sql", {"sql": "SELECT 1; DROP VIEW workers"}),
            ("query_sql", {"sql": "SELECT * FROM read_csv('/etc/passwd')"}),
            ("query_sql", {"sql": "SELECT * FROM nope"}),
            ("get_manifest", {"name": "nope"}),
            ("search", {"dataset": "nope", "query": "welder"}),
            ("search", {"dataset": "workers", "query": "welder", "filter": {"resume": "x"}}),
            (
                "hybrid_query",
                {
                    "sql": "INSERT INTO hits VALUES (1, 1.0, 'high', 1)",
                    "search": {"hits": {"dataset": "workers", "query": "welder"}},
                },
            ),
            (
                "hybrid_query",
                {"sql": "SELECT * FROM workers", "search": {"workers": {"dataset": "workers", "query": "x"}}},
            ),
            (
                "hybrid_query",
                {"sql": "SELECT 1", "search": {"h": {"dataset": "workers", "query": "x", "k": 5000}}},
            ),
            ("query_sql", {"sql": "SELECT * FROM version('workers', 9)"}),
            ("list_versions", {"name": "nope"}),
            ("validate_records", {"dataset": "nope", "records": []}),
        ],
    )
    assert all(r.is_error for r in results)
    messages = [r.content[0].text for r in results]
    assert "COPY statements are not allowed" in messages[0]
    assert "CREATE statements are not allowed" in messages[1]
    assert "exactly one SQL statement" in messages[2]
    assert "not allowed" in messages[3] and "/etc/passwd" not in messages[3]
    assert "unknown table 'nope'" in messages[4] and "workers" in messages[4]
    assert "no dataset 'nope'" in messages[5]
    assert "nope" in messages[6]
    assert "cannot filter on 'resume'" in messages[7]
    assert "INSERT statements are not allowed" in messages[8]
    assert "is the name of a dataset" in messages[9]
    assert "k must be between 1 and 1000" in messages[10]
    assert "has no version 9; its versions are 1" in messages[11]
    assert "no dataset 'nope'" in messages[12] and "no dataset 'nope'" in messages[13]
    after = sorted(p.relative_to(mcp_home) for p in (mcp_home / "lake").rglob("*") if p.is_file())
    assert after == lake_files
