"""The sidecar as users run it: an S3-backed lake on the moto server, and a real uvicorn process
(uvloop + httptools) on a free loopback port in its own process group, plus the bind safety rule."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from lakehouse_pipelines.sidecar.server import BatchedLines, UnsafeBind, check_bind
from tests.conftest import free_port, wait_for_port

# the `lakehouse` command as installed, run by this interpreter
LAKEHOUSE = [sys.executable, "-c", "from lakehouse_pipelines.cli import app; app()"]


@pytest.mark.s3
def test_s3_lake_is_queryable_and_the_secret_stays_hidden(s3_lake: Lake, workers_csv: Path):
    ingest(s3_lake, str(workers_csv), load_specs()["workers"])
    with TestClient(create_app(s3_lake, SidecarSettings())) as client:
        body = client.post("/sql", json={"sql": "SELECT count(*), count(DISTINCT state) FROM workers"}).json()
        assert body["rows"][0][0] == 2_000
        leaked = client.post(
            "/sql",
            json={
                "sql": "SELECT current_setting('s3_secret_access_key'), current_setting('s3_access_key_id')"
            },
        ).json()
        assert leaked["rows"] == [["", ""]]
        secrets = client.post("/sql", json={"sql": "SELECT secret_string FROM duckdb_secrets()"}).json()
        assert "testing-secret" not in str(secrets)
        outside = client.post("/sql", json={"sql": "SELECT * FROM read_parquet('s3://elsewhere/x.parquet')"})
        assert outside.status_code == 400
        assert client.get("/datasets/workers").json()["row_count"] == 2_000


def test_real_uvicorn_process_serves_the_contract(lake: Lake, workers_csv: Path, lake_home):
    ingest(lake, str(workers_csv), load_specs()["workers"])
    port = free_port()
    env = {**os.environ, "LAKEHOUSE_API_TOKEN": "tok"}
    process = subprocess.Popen(
        [*LAKEHOUSE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/health").json()["status"] == "ok"
            assert http.get("/datasets").status_code == 401
            auth = {"authorization": "Bearer tok"}
            response = http.post("/sql", json={"sql": "SELECT count(*) FROM workers"}, headers=auth)
            assert response.json()["rows"] == [[2_000]]
            assert response.headers["x-request-id"]
            for accept in ("text/csv", "application/vnd.apache.arrow.stream"):
                # streamed: chunked, no content-length, arriving in many pieces rather than one body
                with http.stream(
                    "POST",
                    "/sql",
                    json={"sql": "SELECT range AS n FROM range(300000)"},
                    headers={**auth, "accept": accept},
                ) as stream:
                    assert stream.headers["transfer-encoding"] == "chunked"
                    assert "content-length" not in stream.headers
                    chunks = list(stream.iter_raw())
                assert len(chunks) > 10
                assert sum(map(len, chunks)) > 300_000
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    logged = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(entry["path"] == "/sql" and entry["status"] == 200 for entry in logged)  # structured lines


def test_every_worker_writes_the_access_log(lake: Lake, workers_csv: Path, lake_home):
    """`--workers 2`: spawned workers inherit no logging setup, and used to drop every access line."""
    ingest(lake, str(workers_csv), load_specs()["workers"])
    port = free_port()
    process = subprocess.Popen(
        [*LAKEHOUSE, "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        for i in range(20):  # a new connection each time, so both workers answer some
            response = httpx.get(f"http://127.0.0.1:{port}/datasets", headers={"x-request-id": f"req-{i}"})
            assert response.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    logged = {json.loads(line)["request_id"] for line in stderr.decode().splitlines() if line.startswith("{")}
    assert {f"req-{i}" for i in range(20)} <= logged  # buffered lines are written at shutdown too


def test_batched_lines_write_in_batches_and_survive_a_close():
    stream = io.StringIO()
    handler = BatchedLines(stream, interval=3600, max_lines=3)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test.batched")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("one")
        log.info("two")
        assert stream.getvalue() == ""  # buffered
        log.info("three")
        assert stream.getvalue() == "one\ntwo\nthree\n"  # a full batch is written
        log.info("four")
        handler.close()  # what uvicorn's logging setup does to existing handlers: flush, keep working
        log.info("five")
        handler.flush()
        assert stream.getvalue().splitlines() == ["one", "two", "three", "four", "five"]
    finally:
        log.removeHandler(handler)


def test_non_loopback_bind_needs_a_token_or_explicit_consent():
    check_bind("127.0.0.1", token=None, allow_remote=False)
    check_bind("::1", token=None, allow_remote=False)
    check_bind("0.0.0.0", token="t", allow_remote=False)
    check_bind("0.0.0.0", token=None, allow_remote=True)
    with pytest.raises(UnsafeBind, match="LAKEHOUSE_API_TOKEN"):
        check_bind("0.0.0.0", token=None, allow_remote=False)


def test_cli_refuses_open_bind_without_token(lake_home):
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_API_TOKEN"}
    result = subprocess.run(
        [*LAKEHOUSE, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"LAKEHOUSE_API_TOKEN" in result.stderr
