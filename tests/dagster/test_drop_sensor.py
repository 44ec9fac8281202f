"""The drop sensor over a local folder and over S3 (moto): run requests, run keys and the returned cursor."""

import json
import os
import time

import boto3
import dagster as dg
import pytest

from assets.dataset_defs import ingest_job_name
from assets.drop_sensor import build_drop_sensor
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.landing_scan import MAX_DROPS_PER_TICK, Cursor
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from resources.lake_resource import LakeResource

SPECS = load_specs()
SENSOR = build_drop_sensor(SPECS, [dg.define_asset_job(ingest_job_name(n)) for n in SPECS])


def tick(lake: LakeResource, cursor: str | None) -> dg.SensorResult:
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": lake}) as context,
    ):
        return SENSOR(context)


def sources(result: dg.SensorResult) -> list[str]:
    return [
        s for r in result.run_requests for s in r.run_config["ops"]["workers__ingest"]["config"]["sources"]
    ]


class LocalLanding:
    def __init__(self, root):
        self.root = root

    def drop(self, key: str, data: bytes, mtime: float | None = None) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))


class S3Landing:
    def __init__(self, bucket_url: str):
        self.bucket = bucket_url.removeprefix("s3://")
        self.client = boto3.client("s3")

    def drop(self, key: str, data: bytes, mtime: float | None = None) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"landing/{key}", Body=data)


@pytest.fixture(params=["local", "s3"])
def landing(request, lake_home):
    if request.param == "local":
        root = lake_home.home / "landing"
        return LocalLanding(root), LakeResource(home=str(lake_home.home), landing=str(root))
    bucket = request.getfixturevalue("s3_bucket")
    return S3Landing(bucket), LakeResource(home=str(lake_home.home), landing=f"{bucket}/landing")


def test_new_drops_become_one_run_per_dataset_and_the_cursor_advances(landing):
    drops, lake = landing
    drops.drop("workers/a.csv", b"worker_id\n1\n", mtime=1_000)
    drops.drop("workers/b.csv", b"worker_id\n2\n", mtime=1_001)
    first = tick(lake, None)
    assert [r.job_name for r in first.run_requests] == ["workers_ingest"]
    assert [s.rsplit("/", 1)[-1] for s in sources(first)] == ["a.csv", "b.csv"]
    cursor = Cursor.parse(first.cursor)
    assert "workers/b.csv" in cursor.keys and cursor.modified >= 1_001
    assert tick(lake, first.cursor).run_requests == []  # nothing new
    assert Cursor.parse(tick(lake, first.cursor).cursor) == cursor  # never moves backwards


def test_a_redropped_identical_file_gets_the_same_run_key(landing):
    drops, lake = landing
    drops.drop("workers/a.csv", b"worker_id\n1\n", mtime=1_000)
    first = tick(lake, None)
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    drops.drop("workers/a.csv", b"worker_id\n1\n", mtime=2_000)
    again = tick(lake, first.cursor)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]


def test_an_object_modified_in_place_is_a_new_run(landing):
    drops, lake = landing
    drops.drop("workers/a.csv", b"worker_id\n1\n", mtime=1_000)
    first = tick(lake, None)
    time.sleep(1.1)
    drops.drop("workers/a.csv", b"worker_id\n1\n2\n", mtime=2_000)
    changed = tick(lake, first.cursor)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_undeclared_drops_are_left_in_place_and_passed_by(landing):
    drops, lake = landing
    drops.drop("invoices/x.csv", b"id\n1\n", mtime=1_000)
    result = tick(lake, None)
    assert result.run_requests == []
    assert "invoices/x.csv" in Cursor.parse(result.cursor).keys


def test_more_than_a_thousand_drops_are_paged_and_chunked_across_ticks(landing):
    drops, lake = landing
    total = 1_050
    for i in range(total):
        drops.drop(f"workers/{i:05d}.csv", f"worker_id\n{i}\n".encode(), mtime=1_000 + i // 100)
    seen, cursor, ticks = [], None, 0
    while True:
        result = tick(lake, cursor)
        ticks += 1
        if not result.run_requests:
            break
        assert len(sources(result)) <= MAX_DROPS_PER_TICK
        seen += sources(result)
        cursor = result.cursor
    assert len(seen) == len(set(seen)) == total
    assert ticks == 4  # 500 + 500 + 50, then an empty tick


def test_s3_drops_to_a_queryable_s3_lake_end_to_end(s3_bucket, lake_home, workers_csv, monkeypatch):
    from assets.definitions import build_definitions

    monkeypatch.setenv("LAKEHOUSE_STORAGE", f"{s3_bucket}/lake")
    monkeypatch.setenv("LAKEHOUSE_LANDING", f"{s3_bucket}/landing")
    boto3.client("s3").upload_file(
        str(workers_csv), s3_bucket.removeprefix("s3://"), "landing/workers/w1.csv"
    )
    defs = build_definitions()
    lake = LakeResource(home=str(lake_home.home), storage=f"{s3_bucket}/lake", landing=f"{s3_bucket}/landing")
    result = tick(lake, None)
    assert len(result.run_requests) == 1
    for request in result.run_requests:
        assert (
            defs.resolve_job_def(request.job_name).execute_in_process(run_config=request.run_config).success
        )
    manifest = Lake.open(lake.settings()).catalog.get("workers")
    assert manifest.row_count == 2_000 and manifest.objects[0].source.startswith("s3://")
    con = engine.connect(memory_limit="256MB", s3=True)
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
    con.execute(
        f"CREATE SECRET (TYPE s3, KEY_ID 'testing', SECRET 'testing-secret', ENDPOINT '{endpoint}', "
        "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    )
    uri = Lake.open(lake.settings()).storage.location(manifest.objects[0].key)
    assert con.execute(f"SELECT count(*), count(DISTINCT state) FROM '{uri}'").fetchone()[0] == 2_000
    assert json.loads(manifest.to_json())["name"] == "workers"
