"""Time travel through a real HTTP client: every registered version of a dataset is queryable read-only with
`version()`, `as_of()` and `added()`; `GET /datasets/{name}/versions` lists them; old versions keep answering
(the same rows, from files that were never rewritten) after new drops land; and hostile variants (arguments
that try to become paths, forged version files naming another dataset's objects, writes aimed at the
version views or macros) are refused without touching the lake.
"""

from __future__ import annotations

import json
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
from tests.hostile_support import lake_state

WORKERS = load_specs()["workers"]


def drop(lake: Lake, tmp_path: Path, name: str, rows: int, first_id: int) -> None:
    csv = write_workers_csv(tmp_path / f"{name}.csv", rows, seed=first_id, first_id=first_id)
    ingest(lake, str(csv), WORKERS)


def sql(client: TestClient, text: str):
    return client.post("/sql", json={"sql": text})


def rows(client: TestClient, text: str) -> list:
    response = sql(client, text)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def wait_for_version(client: TestClient, version: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sql(client, f"SELECT 1 FROM version('workers', {version}) LIMIT 1").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"version {version} never became queryable")


@pytest.fixture
def three_versions(lake: Lake, tmp_path: Path) -> Lake:
    """workers with three drops: 100 rows (ids 1-100), then 50 (1001-1050), then 30 (2001-2030)."""
    for name, count, first in (("a", 100, 1), ("b", 50, 1001), ("c", 30, 2001)):
        drop(lake, tmp_path, name, count, first)
        time.sleep(0.01)  # distinct updated_at milliseconds
    return lake


@pytest.fixture
def client(three_versions: Lake):
    settings = SidecarSettings(max_rows=1000, refresh_interval=0.1, query_timeout=5.0)
    with TestClient(create_app(three_versions, settings)) as c:
        yield c


def test_every_version_is_queryable_with_version(client):
    assert rows(client, "SELECT count(*) FROM version('workers', 1)") == [[100]]
    assert rows(client, "SELECT count(*) FROM version('workers', 2)") == [[150]]
    assert rows(client, "SELECT count(*) FROM version('workers', 3)") == [[180]]
    assert rows(client, "SELECT count(*) FROM workers") == [[180]]
    assert rows(client, "SELECT max(worker_id) FROM version('workers', '2')") == [[1050]]
    # the same columns and types as the current view
    current = client.post("/sql", json={"sql": "DESCRIBE workers"}).json()["rows"]
    old = client.post("/sql", json={"sql": "DESCRIBE FROM version('workers', 1)"}).json()["rows"]
    assert current == old


def test_versions_endpoint_lists_time_rows_objects_added_and_fingerprint(client, three_versions):
    body = client.get("/datasets/workers/versions").json()
    assert body["dataset"] == "workers"
    versions = body["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["row_count"] for v in versions] == [100, 150, 180]
    assert [v["rows_added"] for v in versions] == [100, 50, 30]
    assert [len(v["objects_added"]) for v in versions] == [1, 1, 1]
    assert [v["objects"] for v in versions] == [1, 2, 3]
    current = three_versions.catalog.get("workers")
    assert {v["schema_fingerprint"] for v in versions} == {current.schema_fingerprint}
    assert versions[-1]["updated_at"] == current.updated_at
    assert {v["created_at"] for v in versions} == {current.created_at}
    assert versions[1]["objects_added"][0]["key"] == current.objects[1].key
    assert versions[0]["updated_at"] < versions[1]["updated_at"] < versions[2]["updated_at"]
    assert versions[2]["sql"] == "FROM version('workers', 3)"
    for name in ("nope", "Bad-Name", "a" * 80):
        response = client.get(f"/datasets/{name}/versions")
        assert response.status_code == 404
        assert "error" in response.json()


def test_as_of_picks_the_newest_version_registered_at_or_before_a_time(client):
    versions = client.get("/datasets/workers/versions").json()["versions"]
    at = [v["updated_at"] for v in versions]

    def count_as_of(literal: str) -> list:
        return rows(client, f"SELECT count(*) FROM as_of('workers', {literal})")

    assert count_as_of(f"TIMESTAMPTZ '{at[0]}'") == [[100]]
    assert count_as_of(f"TIMESTAMPTZ '{at[1]}'") == [[150]]
    assert count_as_of(f"TIMESTAMPTZ '{at[1]}' + INTERVAL 1 MICROSECOND") == [[150]]
    assert count_as_of(f"'{at[2]}'") == [[180]]
    assert count_as_of("now()") == [[180]]
    # naive timestamps are UTC
    assert count_as_of(f"TIMESTAMP '{at[0][:-1].replace('T', ' ')}'") == [[100]]
    before = sql(client, "SELECT count(*) FROM as_of('workers', TIMESTAMP '2000-01-01')")
    assert before.status_code == 400
    assert "no version registered at or before 2000-01-01" in before.json()["error"]
    assert at[0] in before.json()["error"]
    unknown = sql(client, "SELECT * FROM as_of('nope', now())")
    assert unknown.status_code == 400 and "known datasets: workers" in unknown.json()["error"]


def test_what_changed_between_two_versions(client):
    """The documented SQL: added() reads the drops in between; EXCEPT ALL compares the rows themselves."""
    assert rows(client, "SELECT min(worker_id), max(worker_id), count(*) FROM added('workers', 1, 3)") == [
        [1001, 2030, 80]
    ]
    assert rows(client, "SELECT count(*) FROM added('workers', 0, 1)") == [[100]]
    diff = "FROM version('workers', 3) EXCEPT ALL FROM version('workers', 1)"
    assert rows(client, f"SELECT count(*), min(worker_id) FROM ({diff})") == [[80, 1001]]
    same = rows(client, f"SELECT count(*) FROM (({diff}) EXCEPT ALL FROM added('workers', 1, 3))")
    assert same == [[0]]
    wrong = sql(client, "SELECT * FROM added('workers', 3, 3)")
    assert wrong.status_code == 400 and "from must be lower than to" in wrong.json()["error"]


def test_an_unknown_version_is_a_400_naming_the_versions_that_exist(client):
    for text in ("SELECT * FROM version('workers', 4)", "SELECT * FROM added('workers', 1, 9)"):
        response = sql(client, text)
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert "dataset 'workers' has no version" in message
        assert "its versions are 1-3" in message
    unknown = sql(client, "SELECT * FROM version('nope', 1)")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unknown dataset 'nope'; known datasets: workers"


def test_old_versions_keep_answering_after_new_drops_land(client, three_versions, tmp_path):
    """Objects are content-addressed and never rewritten: version 1 answers the same rows, from the same
    bytes, after more drops."""
    query = "SELECT worker_id, first_name, hourly_rate FROM version('workers', 1) ORDER BY worker_id"
    before = rows(client, query)
    files_before = lake_state(three_versions, locks=True)
    drop(three_versions, tmp_path, "d", 20, 3001)
    drop(three_versions, tmp_path, "e", 10, 4001)
    wait_for_version(client, 5)
    assert rows(client, query) == before
    assert rows(client, "SELECT count(*) FROM version('workers', 5)") == [[210]]
    assert rows(client, "SELECT count(*) FROM added('workers', 3, 5)") == [[30]]
    files_after = lake_state(three_versions, locks=True)
    # every file that existed is byte for byte the same; only new objects and manifests were added, and
    # the catalog's current manifest (the one mutable object) was swapped
    changed = {k for k in files_before if files_after.get(k) != files_before[k]}
    assert changed == {"catalog/workers/manifest.json"}
    assert len([k for k in files_after if k.startswith("datasets/")]) == 5


def test_version_arguments_cannot_become_paths_or_other_names(client, three_versions):
    root = three_versions.storage.root
    object_path = f"{root}/{three_versions.catalog.get('workers').objects[0].key}"
    for text in (
        "SELECT * FROM version('workers', '1/../../catalog')",
        f"SELECT * FROM version('{object_path}', 1)",
        "SELECT * FROM version('workers', 1.5)",
        "SELECT * FROM version('workers', 0)",
        "SELECT * FROM version('workers', -1)",
        "SELECT * FROM version('WORKERS', 1)",
        "SELECT * FROM version('workers''; DROP VIEW workers; --', 1)",
        "SELECT * FROM version('workers', (SELECT 1))",
        "SELECT * FROM as_of('workers', 'not a time')",
    ):
        response = sql(client, text)
        assert response.status_code == 400, (text, response.text)
        assert str(root) not in response.json()["error"]
    assert rows(client, "SELECT count(*) FROM workers") == [[180]]


def test_writes_to_version_views_and_macros_are_refused(client, three_versions):
    before = lake_state(three_versions, locks=True)
    for text in (
        'DROP VIEW "workers@1"',
        'CREATE OR REPLACE VIEW "workers@1" AS SELECT 1',
        "CREATE OR REPLACE MACRO version(d, v) AS TABLE SELECT 1",
        f"COPY (FROM version('workers', 1)) TO '{three_versions.storage.root}/datasets/workers/x.parquet'",
        'INSERT INTO "workers@2" SELECT * FROM "workers@1"',
        "SELECT 1; DROP MACRO TABLE version",
    ):
        response = sql(client, text)
        assert response.status_code == 400, (text, response.text)
    assert lake_state(three_versions, locks=True) == before
    assert rows(client, "SELECT count(*) FROM version('workers', 1)") == [[100]]


def test_a_forged_version_file_naming_another_datasets_objects_is_never_served(lake, tmp_path):
    """A version file under catalog/workers/ that points at another dataset's objects (or one past the
    current version) is not a version of workers: neither listed nor queryable. (The current version is
    the current manifest itself, whatever its history file says.)"""
    drop(lake, tmp_path, "a", 40, 1)
    drop(lake, tmp_path, "b", 10, 101)
    secret_csv = tmp_path / "secrets.csv"
    secret_csv.write_text("token,owner\nhunter2,alice\n")
    secret_spec = type(WORKERS)(name="secrets")
    ingest(lake, str(secret_csv), secret_spec)
    workers_v1 = json.loads(lake.storage.get("catalog/workers/versions/00000001.json")[0])
    secret_object = json.loads(lake.storage.get("catalog/secrets/manifest.json")[0])["objects"][0]
    forged = {**workers_v1, "version": 1, "objects": [secret_object], "row_count": 1}
    lake.storage.put("catalog/workers/versions/00000001.json", json.dumps(forged).encode())
    future = {**workers_v1, "version": 7}
    lake.storage.put("catalog/workers/versions/00000007.json", json.dumps(future).encode())
    with TestClient(create_app(lake, SidecarSettings(refresh_interval=0.1))) as client:
        response = sql(client, "SELECT * FROM version('workers', 1)")
        assert response.status_code == 400
        assert "has no version 1" in response.json()["error"]
        assert "hunter2" not in response.text
        assert sql(client, "SELECT * FROM version('workers', 7)").status_code == 400
        assert rows(client, "SELECT count(*) FROM version('workers', 2)") == [[50]]
        assert [v["version"] for v in client.get("/datasets/workers/versions").json()["versions"]] == [2]
        # the other dataset's own versions are its own to query
        assert rows(client, "SELECT token FROM version('secrets', 1)") == [["hunter2"]]


def test_a_new_dataset_and_its_versions_appear_without_a_restart(lake, tmp_path):
    with TestClient(create_app(lake, SidecarSettings(refresh_interval=0.1))) as client:
        assert sql(client, "SELECT * FROM version('workers', 1)").status_code == 400
        none_yet = sql(client, "SELECT * FROM as_of('workers', now())")
        assert none_yet.status_code == 400 and "none registered yet" in none_yet.json()["error"]
        drop(lake, tmp_path, "a", 10, 1)
        wait_for_version(client, 1)
        assert rows(client, "SELECT count(*) FROM as_of('workers', now())") == [[10]]


@pytest.mark.s3
def test_versions_on_an_s3_lake(s3_lake: Lake, tmp_path):
    """The same views over s3:// objects, created after the engine is locked to the lake's prefix."""
    drop(s3_lake, tmp_path, "a", 30, 1)
    with TestClient(create_app(s3_lake, SidecarSettings(refresh_interval=0.1))) as client:
        drop(s3_lake, tmp_path, "b", 20, 101)
        wait_for_version(client, 2)
        assert rows(client, "SELECT count(*) FROM version('workers', 1)") == [[30]]
        assert rows(client, "SELECT count(*) FROM added('workers', 1, 2)") == [[20]]
        assert [v["version"] for v in client.get("/datasets/workers/versions").json()["versions"]] == [1, 2]
        outside = sql(client, "SELECT * FROM read_parquet('s3://elsewhere/x.parquet')")
        assert outside.status_code == 400
