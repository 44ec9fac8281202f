"""Crash and concurrency: a killed ingest leaves old or new state only; concurrent registers lose nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import LakeSettings

INGEST = "import sys; from lakehouse_pipelines.lake import Lake; from lakehouse_pipelines.ingest.publish import ingest\n" \
    "lake = Lake.open()\nfor path in sys.argv[1:]: ingest(lake, path, 'workers')"  # fmt: skip


def start_ingest(paths: list[Path]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", INGEST, *map(str, paths)], start_new_session=True)


def assert_consistent(lake: Lake) -> None:
    """Every manifest object exists and reads with its recorded row count; nothing partial is listed."""
    manifest = lake.catalog.find("workers")
    listed = {info.key for info in lake.storage.list("datasets")}
    for obj in manifest.objects if manifest else ():
        assert obj.key in listed
    for key in listed:
        if lake.storage.location(key).startswith("/"):
            # a partial file has no footer: reading its metadata raises
            assert pq.ParquetFile(lake.storage.location(key)).metadata.num_rows > 0


@pytest.fixture(scope="module")
def drops(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("concurrent")
    return [write_workers_csv(folder / f"drop{i}.csv", 200, seed=100 + i) for i in range(6)]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_processes_registering_at_once_lose_nothing(backend, drops, request):
    lake = request.getfixturevalue("lake" if backend == "local" else "s3_lake")
    writers = [start_ingest(drops[0::2]), start_ingest(drops[1::2])]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    manifest = lake.catalog.get("workers")
    assert (manifest.version, manifest.row_count, len(manifest.objects)) == (6, 1_200, 6)
    assert [m.version for m in lake.catalog.history("workers")] == [1, 2, 3, 4, 5, 6]


def test_a_burst_of_drops_with_copies_is_ingested_once_per_distinct_file(drops, tmp_path, lake):
    """Two processes take the same burst (every file plus byte-identical copies) in opposite orders."""
    copies = []
    for i, original in enumerate(drops[:3]):
        copy = tmp_path / f"copy{i}.csv"
        copy.write_bytes(original.read_bytes())
        copies.append(copy)
    burst = drops + copies
    writers = [start_ingest(burst), start_ingest(burst[::-1])]
    assert [w.wait(timeout=180) for w in writers] == [0, 0]
    manifest = lake.catalog.get("workers")
    assert (len(manifest.objects), manifest.row_count, manifest.version) == (6, 1_200, 6)
    assert len({o.source_sha256 for o in manifest.objects}) == 6
    assert_consistent(lake)


def test_kill_9_at_any_point_leaves_old_or_new_state(lake_home: LakeSettings, tmp_path):
    big = write_workers_csv(tmp_path / "big.csv", 60_000, seed=3)
    lake = Lake.open(lake_home)
    for delay in (0.05, 0.4, 0.8, 1.2, 1.6):
        writer = start_ingest([big])
        time.sleep(delay)
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
        assert_consistent(lake)
    writer = start_ingest([big])
    assert writer.wait(timeout=120) == 0
    assert_consistent(lake)
    assert lake.catalog.get("workers").row_count == 60_000
