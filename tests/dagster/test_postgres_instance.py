"""The production Dagster instance on a real PostgreSQL: `dagster.production.yaml` with the DAGSTER_PG_*
variables, a `materialize` of the workers chain recorded in Postgres and visible to a second instance (the
webserver's and the daemon's view), and `lakehouse doctor` reporting the Postgres storage.

The server is Debian's `postgresql` package (`.ci/run` installs it): initdb into a temporary directory and
`postgres` on a free loopback port in its own process group, stopped by the fixture. PostgreSQL refuses to run
as root, so as root both run as the `postgres` user through runuser.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from assets.ingest_assets import dataset_ingest
from lakehouse_pipelines.cli import app
from lakehouse_pipelines.datasets import load_specs
from resources.lake_resource import LakeResource
from tests.conftest import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
PASSWORD = "pg-test-password"


def server_user_prefix() -> list[str]:
    """Run as `postgres` when we are root (the server refuses root), else as ourselves."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL cluster with a `dagster` database and password auth: its DAGSTER_PG_* variables."""
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    bin_dir = Path(PG_BIN[-1])
    as_user = server_user_prefix()
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))  # not under pytest's root-only tmp directory
    (root / "pwfile").write_text(PASSWORD + "\n")
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pwfile", "postgres")
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "dagster",
            f"--pwfile={root / 'pwfile'}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        cwd=root,  # the server user may not be allowed into ours
    )
    port = free_port()
    postgres_args = ["-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port), "-k", str(root)]
    server = subprocess.Popen(
        [*as_user, str(bin_dir / "postgres"), *postgres_args, "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=root,
    )
    try:
        wait_for_port(port)
        connection = _connect(port, "postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dagster")
        connection.close()
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": PASSWORD,
        }
    finally:
        os.killpg(server.pid, signal.SIGINT)  # "fast" shutdown: disconnect clients, stop
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _connect(port: int, db: str):
    """Connect once the server accepts connections (the port opens a moment before)."""
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg2.connect(
                host="127.0.0.1", port=port, dbname=db, user="dagster", password=PASSWORD, connect_timeout=5
            )
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def production_instance(postgres, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DAGSTER_HOME holding dagster.production.yaml, with the server's DAGSTER_PG_* in the environment and
    run logs going to a bucket of the moto S3 server."""
    for name, value in postgres.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LAKEHOUSE_LOG_BUCKET", s3_bucket.removeprefix("s3://"))
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "dagster.production.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_a_materialize_is_recorded_in_postgres(production_instance: Path, lake_home, workers_csv):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    landing = lake_home.home / "landing" / "workers"
    landing.mkdir(parents=True)
    shutil.copy(workers_csv, landing / "drop1.csv")
    instance = dg.DagsterInstance.from_config(str(production_instance))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        result = dg.materialize(
            [dataset_ingest(load_specs()["workers"])],
            instance=instance,
            resources={"lake": LakeResource(home=str(lake_home.home))},
        )
        assert result.success
    finally:
        instance.dispose()

    # Another process's instance (the webserver's, the daemon's) reads the same run from Postgres.
    reader = dg.DagsterInstance.from_config(str(production_instance))
    try:
        run = reader.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        latest = reader.get_latest_materialization_event(dg.AssetKey(["workers", "manifest"]))
        assert latest is not None and latest.run_id == result.run_id
        assert latest.asset_materialization.metadata["dagster/row_count"].value == 2_000
    finally:
        reader.dispose()


def test_doctor_reports_the_postgres_instance(production_instance: Path, lake_home):
    result = CliRunner().invoke(app, ["doctor", "--json"])
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "dagster instance")
    assert check["status"] == "ok"
    assert "PostgresRunStorage" in check["detail"]
    assert PASSWORD not in result.stdout
