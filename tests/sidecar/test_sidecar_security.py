"""Sandbox escapes through POST /sql: each is refused with a 4xx and leaves no trace on disk.

Two layers are under test: the parser-based statement check (sql_guard) and the locked engine (views.py).
Statements that pass the parser as reads (file-reading table functions) must still be stopped by the lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from lakehouse_pipelines.sql.guard import (
    CACHED_TEXT_CHARS,
    QueryRefused,
    _checked_read_only,
    check_read_only,
)


def escapes(lake_dir: Path, outside: Path) -> list[str]:
    lake, out = str(lake_dir), str(outside)
    return [
        # file reads outside the lake
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        "SELECT * FROM glob('/*')",
        f"SELECT * FROM read_text('{lake}/../../../../etc/hostname')",
        "SELECT * FROM read_json_auto('/etc/os-release')",
        "SELECT * FROM 'https://example.com/x.parquet'",
        "SELECT * FROM read_parquet('s3://someone-elses-bucket/x.parquet')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        # writes, inside and outside the lake
        f"COPY (SELECT 1) TO '{lake}/datasets/evil.csv'",
        f"COPY (SELECT 1) TO '{out}/evil.csv'",
        f"COPY workers TO '{lake}/datasets/workers/evil.parquet' (FORMAT parquet)",
        f"EXPORT DATABASE '{out}/export'",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{lake}/evil.csv'",
        "CREATE TABLE t AS SELECT 1",
        f"CREATE VIEW v AS SELECT * FROM read_csv('{out}/x.csv')",
        "DROP VIEW workers",
        "CREATE OR REPLACE VIEW workers AS SELECT 1",
        "INSERT INTO workers SELECT * FROM workers",
        "UPDATE workers SET state = 'XX'",
        "DELETE FROM workers",
        # attach, extensions, settings
        f"ATTACH '{out}/evil.duckdb' AS evil",
        f"ATTACH '{lake}/evil.duckdb'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "RESET lock_configuration",
        "SET VARIABLE x = 1",
        "USE memory",
        "PRAGMA enable_profiling",
        "PRAGMA version",
        "CALL pragma_version()",
        "CHECKPOINT",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "CREATE MACRO m() AS 1",
        "BEGIN TRANSACTION",
        "VACUUM",
        "PREPARE p AS SELECT 1",
        # multi-statement and comment tricks
        "SELECT 1; DROP VIEW workers",
        "SELECT 1; COPY (SELECT 1) TO 'x.csv'",
        f"/* SELECT */ COPY (SELECT 1) TO '{out}/c.csv'",
        f"-- SELECT 1\nCOPY (SELECT 1) TO '{out}/d.csv'",
        "SELECT 1 /* ; */; ATTACH ':memory:' AS m",
        f"WITH x AS (SELECT 1) SELECT * FROM x; COPY (SELECT 1) TO '{out}/e.csv'",
        "SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/evil.csv''')",
    ]


@pytest.fixture
def secured(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), load_specs()["workers"])
    with TestClient(create_app(lake, SidecarSettings(max_rows=50, query_timeout=1.0))) as client:
        yield client, Path(lake.storage.location("catalog")).parent


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                path = Path(dirpath) / f
                stat = path.stat()
                out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_every_escape_is_refused_with_4xx_and_no_side_effect(secured, tmp_path):
    client, lake_dir = secured
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(lake_dir, outside)
    failures = []
    for statement in escapes(lake_dir, outside):
        response = client.post("/sql", json={"sql": statement})
        body = response.json()
        if not (400 <= response.status_code < 500 and "error" in body):
            failures.append((statement, response.status_code, body))
        elif str(lake_dir) in body["error"] or "Traceback" in body["error"]:
            failures.append((statement, "leaks", body))
    assert failures == []
    assert snapshot(lake_dir, outside) == before
    assert not Path("/tmp/evil.csv").exists()
    # the engine is intact after all of it
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM workers"}).json()["rows"] == [[2_000]]


def test_engine_is_locked_after_views_were_created(secured):
    client, _ = secured
    settings = client.post(
        "/sql",
        json={
            "sql": "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('enable_external_access', 'lock_configuration', 'TimeZone') ORDER BY name"
        },
    ).json()["rows"]
    assert settings == [
        ["TimeZone", "UTC"],
        ["enable_external_access", "false"],
        ["lock_configuration", "true"],
    ]
    # views created before the lock are still readable after it
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM workers"}).json()["rows"] == [[2_000]]


def test_huge_results_are_capped(secured):
    client, _ = secured
    body = client.post("/sql", json={"sql": "SELECT * FROM range(100000000)"}).json()
    assert body["row_count"] == 50 and body["truncated"] is True


def test_huge_cross_join_hits_the_deadline(secured):
    client, _ = secured
    response = client.post(
        "/sql",
        # a predicate no join algorithm can shortcut: 8e9 hashes of concatenated text
        json={
            "sql": "SELECT count(*) FROM workers a, workers b, workers c "
            "WHERE hash(a.resume_text || b.email || c.email) % 7 = 0"
        },
    )
    assert response.status_code == 400
    assert "time limit" in response.json()["error"]


@pytest.mark.parametrize(
    "statement",
    ["SELECT 1", "select 'COPY x TO y'", "WITH a AS (SELECT 1) SELECT * FROM a", "EXPLAIN ANALYZE SELECT 1"],
)
def test_guard_passes_reads(statement):
    check_read_only(statement)


@pytest.mark.parametrize(
    "statement", ["", "-- nothing", "EXPLAIN", "EXPLAIN PRAGMA version", "SELECT 1;;SELECT 2", "SELEC 1"]
)
def test_guard_refuses_non_reads(statement):
    for _ in range(2):  # a refusal is never remembered as a pass
        with pytest.raises(QueryRefused):
            check_read_only(statement)


def test_guard_remembers_what_it_passed_up_to_a_length():
    check_read_only("SELECT 42 AS answer")
    hits = _checked_read_only.cache_info().hits
    check_read_only("SELECT 42 AS answer")
    assert _checked_read_only.cache_info().hits == hits + 1
    size = _checked_read_only.cache_info().currsize
    check_read_only("SELECT " + ", ".join(["1"] * (CACHED_TEXT_CHARS // 3)))  # checked, too long to keep
    assert _checked_read_only.cache_info().currsize == size


def test_non_ascii_sql_is_classified_by_characters_not_bytes(secured):
    """DuckDB's tokenizer reports UTF-8 byte offsets; a multi-byte character before a keyword once made the
    check index past the text (a 500 found by schemathesis)."""
    client, _ = secured
    assert client.post("/sql", json={"sql": "\u0080\b"}).status_code == 400
    ok = client.post("/sql", json={"sql": "SELECT 'é' AS e, count(*) AS n FROM workers"})
    assert ok.status_code == 200 and ok.json()["rows"] == [["é", 2_000]]
    refused = client.post("/sql", json={"sql": "SELECT 'ü'; DROP VIEW workers"})
    assert refused.status_code == 400 and "exactly one" in refused.json()["error"]
