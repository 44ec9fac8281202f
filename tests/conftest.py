"""Shared fixtures: a temporary lake home, generated workers CSVs, and a real S3 server (moto) on loopback.

The S3 server is moto's HTTP server in its own process group, bound to 127.0.0.1, started once per test
session and always stopped; each test gets its own bucket so tests never see each other's objects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import LakehouseSettings, LakeSettings

_LAKE_VARIABLES = ("LAKEHOUSE_HOME", "LAKEHOUSE_STORAGE", "LAKEHOUSE_LANDING", "LAKEHOUSE_MAX_FILE_BYTES")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a server a test started in its own process group: `sig`, then SIGKILL if it lingers."""
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def lake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LakeSettings:
    """A fresh lake under a temporary LAKEHOUSE_HOME, with the embedded defaults."""
    for name in _LAKE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    return LakehouseSettings().lake


@pytest.fixture
def lake(lake_home: LakeSettings) -> Lake:
    return Lake.open(lake_home)


@pytest.fixture(scope="session")
def workers_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 generated workers rows (seed 7)."""
    return write_workers_csv(tmp_path_factory.mktemp("drops") / "workers.csv", 2_000)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, in its own process group, stopped at session end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process, timeout=10)


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with the standard AWS variables pointing at it: `s3://<bucket>`."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


@pytest.fixture
def s3_lake(s3_bucket: str, lake_home: LakeSettings, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A lake whose storage is the S3 bucket (scratch space stays local)."""
    monkeypatch.setenv("LAKEHOUSE_STORAGE", f"{s3_bucket}/lake")
    return Lake.open(LakehouseSettings().lake)
