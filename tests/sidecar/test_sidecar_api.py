"""The sidecar's HTTP contract through a real HTTP client (httpx, via Starlette's TestClient) against the app:
every endpoint, every error path, every output format, auth, request ids, and live view refresh."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import LakehouseSettings, SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app

ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture
def workers_lake(lake: Lake, workers_csv: Path) -> Lake:
    ingest(lake, str(workers_csv), load_specs()["workers"])
    return lake


@pytest.fixture
def client(workers_lake: Lake):
    settings = SidecarSettings(max_rows=100, refresh_interval=0.2, query_timeout=2.0)
    with TestClient(create_app(workers_lake, settings)) as c:
        yield c


def sql(client: TestClient, text: str, **headers: str):
    return client.post("/sql", json={"sql": text}, headers=headers)


def test_health_reports_ok(client):
    body = client.get("/health").json()
    assert body.items() >= {"status": "ok", "datasets": 1}.items()
    assert body["search"] in ("loading", "ready")  # no collection here: ready at once, model unloaded


def test_datasets_lists_manifest_summaries(client, workers_lake):
    body = client.get("/datasets").json()
    (summary,) = body["datasets"]
    assert summary == workers_lake.catalog.get("workers").summary()
    assert summary["row_count"] == 2_000


def test_dataset_returns_the_manifest_and_404_for_unknown_or_invalid(client, workers_lake):
    assert client.get("/datasets/workers").json() == workers_lake.catalog.get("workers").to_dict()
    for name in ("nope", "Bad-Name", "a" * 80):
        response = client.get(f"/datasets/{name}")
        assert response.status_code == 404
        assert "error" in response.json()


def test_sql_json_result_has_columns_rows_count_and_truncated(client):
    response = sql(client, "SELECT state, count(*) AS n FROM workers GROUP BY state ORDER BY n DESC, state")
    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == [{"name": "state", "type": "VARCHAR"}, {"name": "n", "type": "BIGINT"}]
    assert sum(row[1] for row in body["rows"]) == 2_000
    assert body["row_count"] == len(body["rows"])
    assert body["truncated"] is False


def test_sql_counts_match_the_catalog(client):
    body = sql(client, "SELECT count(*) FROM workers").json()
    assert body["rows"] == [[2_000]]


@pytest.mark.parametrize(
    "statement",
    [
        "WITH s AS (SELECT state FROM workers) SELECT count(*) FROM s",
        "EXPLAIN SELECT * FROM workers",
        "DESCRIBE workers",
        "SUMMARIZE SELECT worker_id FROM workers",
        "/* leading comment */ SELECT 1;",
        "FROM workers SELECT worker_id LIMIT 1",
    ],
)
def test_read_statements_pass(client, statement):
    response = sql(client, statement)
    assert response.status_code == 200, response.text
    assert response.json()["row_count"] >= 1


def test_row_cap_truncates(client):
    body = sql(client, "SELECT worker_id FROM workers ORDER BY worker_id").json()
    assert body["row_count"] == 100
    assert body["truncated"] is True
    assert [r[0] for r in body["rows"]] == list(range(1, 101))


def test_csv_output_streams_every_row(client):
    response = sql(
        client, "SELECT worker_id, state, last_placed FROM workers ORDER BY worker_id", accept="text/csv"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == "worker_id,state,last_placed"
    assert len(lines) == 2_001  # the JSON row cap does not apply to streams


def test_arrow_output_is_an_ipc_stream(client):
    response = sql(client, "SELECT worker_id, hourly_rate, available FROM workers", accept=ARROW)
    assert response.status_code == 200
    assert response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
    assert table.num_rows == 2_000
    assert table.schema.names == ["worker_id", "hourly_rate", "available"]
    assert table.schema.field("available").type == pa.bool_()


def test_stream_cap_applies_to_csv_and_arrow(workers_lake):
    with TestClient(create_app(workers_lake, SidecarSettings(max_stream_rows=10))) as c:
        csv_rows = sql(c, "SELECT worker_id FROM workers", accept="text/csv").text.splitlines()
        arrow = pa.ipc.open_stream(sql(c, "SELECT worker_id FROM workers", accept=ARROW).content).read_all()
    assert len(csv_rows) == 11
    assert arrow.num_rows == 10


def test_unacceptable_format_is_406(client):
    response = sql(client, "SELECT 1", accept="application/xml")
    assert response.status_code == 406
    assert "text/csv" in response.json()["error"]


def test_accept_with_quality_values_picks_first_acceptable(client):
    response = sql(client, "SELECT 1 AS one", accept="application/xml;q=0.9, text/csv;q=0.5")
    assert response.text.splitlines() == ["one", "1"]


def test_type_aware_json(client):
    statement = """
        SELECT 12.340::DECIMAL(10,3) AS dec, 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf,
               DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05.678' AS ts,
               TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tstz, 'infinity'::DATE AS dinf,
               '\\xAA'::BLOB AS blob, [1, 2] AS list, {'a': 1, 'b': [DATE '2020-01-01']} AS struct,
               MAP {'k': 1} AS map, '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS uuid,
               INTERVAL 1 MONTH + INTERVAL 2 DAY + INTERVAL '3.5 seconds' AS iv,
               170141183460469231731687303715884105727::HUGEINT AS huge, NULL::INTEGER AS nothing,
               TIME '10:11:12' AS t, '101'::BIT AS bits
    """
    response = sql(client, statement)
    assert response.status_code == 200, response.text
    body = response.json()
    row = dict(zip([c["name"] for c in body["columns"]], body["rows"][0], strict=True))
    assert row == {
        "dec": "12.340",
        "nan": "NaN",
        "inf": "Infinity",
        "d": "2024-02-29",
        "ts": "2024-01-02T03:04:05.678",
        "tstz": "2024-01-02T01:04:05Z",
        "dinf": "infinity",
        "blob": "qg==",
        "list": [1, 2],
        "struct": {"a": 1, "b": ["2020-01-01"]},
        "map": [{"key": "k", "value": 1}],
        "uuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "iv": "P1M2DT3.5S",
        "huge": 170141183460469231731687303715884105727,
        "nothing": None,
        "t": "10:11:12",
        "bits": "101",
    }
    types = {c["name"]: c["type"] for c in body["columns"]}
    assert types["dec"] == "DECIMAL(10,3)" and types["tstz"] == "TIMESTAMP WITH TIME ZONE"


def test_time_with_time_zone_keeps_its_offset_in_every_format(client):
    statement = "SELECT 1 AS n, '10:11:12+05:30'::TIMETZ AS tz -- a trailing comment"
    body = sql(client, statement).json()
    assert body["rows"] == [[1, "10:11:12+05:30"]]
    assert "10:11:12+05:30" in sql(client, statement, accept="text/csv").text


def test_type_aware_json_edge_values(client):
    statement = """
        SELECT '-inf'::DOUBLE AS ninf, 1.5::FLOAT AS f, '-infinity'::TIMESTAMP AS tinf,
               [1, 2, 3]::INTEGER[3] AS arr, MAP {1: 'a', 2: NULL} AS imap, CAST('b' AS ENUM('a', 'b')) AS e,
               union_value(num := 2) AS u, TIMESTAMP_NS '2024-01-02 03:04:05.123456789' AS tns,
               12345678901234567890.1234567890::DECIMAL(38,10) AS bigdec, 18446744073709551615::UBIGINT AS ub,
               -INTERVAL 90 MINUTE AS niv, [{'a': 1}, NULL] AS los, '{"x": [1]}'::JSON AS j, ''::BLOB AS eb
    """
    body = sql(client, statement).json()
    row = dict(zip([c["name"] for c in body["columns"]], body["rows"][0], strict=True))
    assert row == {
        "ninf": "-Infinity",
        "f": 1.5,
        "tinf": "-infinity",
        "arr": [1, 2, 3],
        "imap": [{"key": 1, "value": "a"}, {"key": 2, "value": None}],
        "e": "b",
        "u": 2,
        "tns": "2024-01-02T03:04:05.123456789",
        "bigdec": "12345678901234567890.1234567890",  # exact: 30 significant digits survive
        "ub": 18446744073709551615,
        "niv": "PT-1H-30M",
        "los": [{"a": 1}, None],
        "j": '{"x": [1]}',
        "eb": "",
    }


def test_nested_types_in_csv_are_json_text(client):
    response = sql(client, "SELECT [1, 2] AS l, {'a': 'x'} AS s, true AS b, NULL AS n", accept="text/csv")
    assert response.text.splitlines() == ["l,s,b,n", '"[1,2]","{""a"":""x""}",true,']


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM nope", "known datasets: workers"),
        ("SELECT no_such_column FROM workers", "no_such_column"),
        ("", None),
    ],
)
def test_bad_sql_is_400_with_a_message(client, statement, expected):
    response = sql(client, statement)
    assert response.status_code in (400, 422)
    body = response.json()
    if expected is None:
        assert "detail" in body
    else:
        assert expected in body["error"]
        assert "LINE 1" not in body["error"]


@pytest.mark.parametrize("payload", [{}, {"sql": 5}, {"query": "SELECT 1"}, []])
def test_malformed_bodies_are_422(client, payload):
    response = client.post("/sql", json=payload)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_non_json_body_is_4xx(client):
    response = client.post("/sql", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_oversize_bodies_are_413_declared_or_streamed(client):
    huge = json.dumps({"sql": "SELECT 1 -- " + "x" * 2 * 1024**2}).encode()
    declared = client.post("/sql", content=huge, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "byte limit" in declared.json()["error"]
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    streamed = client.post("/sql", content=chunks, headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "byte limit" in streamed.json()["detail"]


def test_slow_query_is_interrupted_at_the_deadline(workers_lake):
    with TestClient(create_app(workers_lake, SidecarSettings(query_timeout=0.5))) as c:
        started = time.perf_counter()
        response = sql(c, "SELECT count(*) FROM range(10000000000) t(a) WHERE a % 7 = 3")
        elapsed = time.perf_counter() - started
        assert response.status_code == 400
        assert "time limit" in response.json()["error"]
        assert elapsed < 10
        assert sql(c, "SELECT count(*) FROM workers").json()["rows"] == [[2_000]]  # still serving


def test_engine_threads_follow_the_settings(workers_lake):
    with TestClient(create_app(workers_lake, SidecarSettings(threads=1))) as c:
        assert sql(c, "SELECT current_setting('threads')").json()["rows"] == [[1]]


def test_settings_read_the_environment(monkeypatch):
    assert LakehouseSettings().sidecar.threads is None
    for name, value in {
        "LAKEHOUSE_SQL_TIMEOUT": "1.5",
        "LAKEHOUSE_SQL_MAX_ROWS": "7",
        "LAKEHOUSE_SQL_THREADS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    settings = LakehouseSettings().sidecar
    assert (settings.query_timeout, settings.max_rows, settings.threads) == (1.5, 7, 3)


def test_dataset_registered_while_running_becomes_queryable(client, workers_lake, tmp_path):
    assert sql(client, "SELECT count(*) FROM late").status_code == 400
    ingest(workers_lake, str(write_workers_csv(tmp_path / "late.csv", 50, seed=3)), "late")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = sql(client, "SELECT count(*) FROM late")
        if response.status_code == 200:
            break
        time.sleep(0.1)
    assert response.json()["rows"] == [[50]]
    assert client.get("/health").json()["datasets"] == 2


def test_appended_drop_refreshes_the_view(client, workers_lake, tmp_path):
    ingest(workers_lake, str(write_workers_csv(tmp_path / "more.csv", 30, seed=11)), load_specs()["workers"])
    deadline = time.monotonic() + 10
    while sql(client, "SELECT count(*) FROM workers").json()["rows"] != [[2_030]]:
        assert time.monotonic() < deadline, "view not refreshed"
        time.sleep(0.1)


def test_token_required_when_configured(workers_lake):
    settings = SidecarSettings(token="s3cret-token")
    with TestClient(create_app(workers_lake, settings)) as c:
        assert c.get("/health").status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-token"}):
            response = c.get("/datasets", headers=headers)
            assert response.status_code == 401
            assert response.json() == {"error": "missing or invalid bearer token"}
            assert sql(c, "SELECT 1", **headers).status_code == 401
        ok = {"authorization": "Bearer s3cret-token"}
        assert c.get("/datasets", headers=ok).status_code == 200
        assert sql(c, "SELECT 1", **ok).json()["rows"] == [[1]]


def test_request_id_is_echoed_and_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="lakehouse.access"):
        response = client.get("/health", headers={"x-request-id": "abc-123"})
        generated = client.get("/datasets").headers["x-request-id"]
    assert response.headers["x-request-id"] == "abc-123"
    assert len(generated) == 32
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lakehouse.access"]
    assert {"request_id": "abc-123", "method": "GET", "path": "/health", "status": 200}.items() <= lines[
        0
    ].items()


def test_unknown_route_is_404_json(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/datasets", "/datasets/{name}", "/sql"} <= set(paths)
    assert client.get("/docs").status_code == 200
