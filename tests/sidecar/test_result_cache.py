"""Repeated `/sql` answers come from the result cache (sql/results.py) exactly as DuckDB gave them, never
across a change of the views, and never for a query whose answer depends on more than the views."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from lakehouse_pipelines.sql.results import ResultCache

WORKERS = load_specs()["workers"]


@pytest.fixture
def client(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), WORKERS)
    with TestClient(create_app(lake, SidecarSettings(refresh_interval=0.1, query_timeout=5))) as c:
        yield c


def sql(client: TestClient, text: str, **headers: str):
    return client.post("/sql", json={"sql": text}, headers=headers)


def test_a_repeated_query_is_answered_from_the_cache_with_the_same_bytes(client):
    text = "SELECT state, count(*) AS n, avg(hourly_rate) FROM workers GROUP BY state ORDER BY n DESC, state"
    first, again = sql(client, text), sql(client, text)
    assert first.status_code == again.status_code == 200
    assert "x-result-cached" not in first.headers and again.headers["x-result-cached"] == "true"
    assert again.content == first.content


def test_cache_control_no_cache_asks_duckdb_again(client):
    text = "SELECT count(*) FROM workers WHERE available"
    first = sql(client, text)
    fresh = sql(client, text, **{"cache-control": "no-cache"})
    assert "x-result-cached" not in fresh.headers and fresh.content == first.content
    assert sql(client, text).headers["x-result-cached"] == "true"


def test_a_new_manifest_version_is_never_answered_from_the_old_views(client, lake: Lake, tmp_path):
    text = "SELECT count(*) FROM workers"
    assert sql(client, text).json()["rows"] == [[2_000]]
    assert sql(client, text).headers.get("x-result-cached") == "true"
    ingest(lake, str(write_workers_csv(tmp_path / "more.csv", 50, first_id=50_000)), WORKERS)
    deadline = time.monotonic() + 15
    while sql(client, text).json()["rows"] != [[2_050]]:  # the view refresh picks the drop up
        assert time.monotonic() < deadline, "the new drop never showed"
        time.sleep(0.05)
    assert sql(client, text).json()["rows"] == [[2_050]]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT now()",
        "SELECT current_timestamp",
        "SELECT random() AS r",
        'SELECT "random"() AS r',
        "SELECT gen_random_uuid()",
        "SELECT count(*) FROM workers WHERE last_placed > ago(INTERVAL 30 DAY)",  # a macro over the clock
        "SELECT count(*) FROM range(10)",  # a table function
        "SELECT count(*) FROM version('workers', 1)",  # time travel reads files through a table macro
        "EXPLAIN ANALYZE SELECT count(*) FROM workers",
    ],
)
def test_answers_that_depend_on_more_than_the_views_are_never_cached(client, text):
    for _ in range(2):
        response = sql(client, text)
        assert response.status_code == 200, response.text
        assert "x-result-cached" not in response.headers


def test_errors_and_streams_are_not_cached(client):
    for _ in range(2):
        assert sql(client, "SELECT nope FROM workers").status_code == 400
    for _ in range(2):
        streamed = sql(client, "SELECT worker_id FROM workers LIMIT 3", accept="text/csv")
        assert streamed.status_code == 200 and "x-result-cached" not in streamed.headers


def test_the_cache_can_be_turned_off(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), WORKERS)
    with TestClient(create_app(lake, SidecarSettings(result_cache_mb=0))) as c:
        for _ in range(2):
            assert "x-result-cached" not in sql(c, "SELECT count(*) FROM workers").headers


def test_the_cache_holds_at_most_its_bytes_least_recently_used_out_first():
    cache = ResultCache(max_bytes=1_000)
    for i in range(20):
        cache.put(f"q{i}", 0, b"x" * 90)  # 90 bytes: under a tenth of the cache each
    assert len(cache) == 11 and cache.get("q0", 0) is None and cache.get("q19", 0) == b"x" * 90
    assert cache.get("q19", 1) is None  # another generation of the views
    cache.put("big", 0, b"x" * 101)  # over a tenth of the cache: never held
    assert cache.get("big", 0) is None
