"""Embedding split into units Dagster can spread: the units partition the rows, several run at once in
separate processes, and a unit killed mid-way (kill -9) re-runs alone, leaving the other units' work in place,
with the collection ending identical to a clean build, on a local and an S3 (moto) lake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest

from assets.definitions import build_definitions
from assets.ingest_assets import dataset_ingest, ingest_run_config
from assets.search_assets import dataset_search_assets
from lakehouse_pipelines.datasets import EmbeddingUnit, load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.documents import iter_rows
from lakehouse_pipelines.search.embeddings_build import pointer_key
from tests.search_support import materialize_search

WORKERS = load_specs()["workers"]
REPO = Path(__file__).resolve().parents[2]
ROWS = 400
# One unit as its own Dagster run, in a process of its own. `slow` stalls the embedder on its first batch,
# so the test can kill the run mid-way with nothing of that unit published.
UNIT_RUN = """
import json, sys, time
from lakehouse_pipelines.search.embedders import LocalEmbedder
if sys.argv[2] == "slow":
    original = LocalEmbedder.embed_documents
    def stalled(self, texts):
        print("embedding", flush=True)
        time.sleep(600)
        return original(self, texts)
    LocalEmbedder.embed_documents = stalled
from assets.definitions import build_definitions
started = time.time()
result = build_definitions().resolve_job_def("workers_embeddings").execute_in_process(partition_key=sys.argv[1])
print(json.dumps({"start": started, "end": time.time(), "success": result.success}), flush=True)
"""


def unit_process(home: Path, key: str, mode: str = "normal") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", UNIT_RUN, key, mode],
        cwd=REPO,
        env={**os.environ, "LAKEHOUSE_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def collection(home: Path) -> dict:
    """Every point of the published Edge collection: id -> (payload, vector), read from a private copy."""
    import shutil

    from qdrant_edge import EdgeShard, ScrollRequest

    base = home / "vectors" / "workers"
    version = json.loads((base / "CURRENT").read_text())["version"]
    copy = home / "inspect"
    shutil.copytree(base / "versions" / f"{version:08d}", copy)
    shard = EdgeShard.load(str(copy))
    try:
        points, offset = {}, None
        while True:
            records, offset = shard.scroll(
                ScrollRequest(offset=offset, limit=1_000, with_payload=True, with_vector=True)
            )
            for r in records:
                vector = r.vector[""] if isinstance(r.vector, dict) else r.vector
                points[str(r.id)] = (r.payload, np.round(np.asarray(vector, dtype=np.float32), 5).tolist())
            if offset is None:
                return points
    finally:
        shard.close()
        shutil.rmtree(copy)


def test_the_units_partition_the_rows_by_a_stable_hash(lake, tmp_path):
    ingest(lake, str(write_workers_csv(tmp_path / "w.csv", ROWS)), WORKERS)
    manifest = lake.catalog.get("workers")
    per_unit = [
        [i for batch in iter_rows(lake, manifest, WORKERS.embedding, unit=unit) for i in batch.ids]
        for unit in WORKERS.embedding.all_units()
    ]
    everything = sorted(i for ids in per_unit for i in ids)
    assert everything == list(range(1, ROWS + 1))  # every row in exactly one unit
    assert min(map(len, per_unit)) > ROWS / WORKERS.embedding.units / 2  # and spread evenly
    assert per_unit[1] == [
        i for b in iter_rows(lake, manifest, WORKERS.embedding, unit=EmbeddingUnit(1, 4)) for i in b.ids
    ]


def test_a_rows_unit_is_md5_number_of_its_id_text_modulo_the_unit_count():
    """The cheap 64-bit form of the unit filter keeps exactly the rows the plain 128-bit definition does."""
    ids = duckdb.sql(
        "SELECT i AS id FROM range(-500, 3000) t(i) UNION ALL SELECT 'id-' || i FROM range(500) t(i)"
    )
    for count in (2, 3, 4, 7, 10, 37):
        for index in range(count):
            unit = EmbeddingUnit(index, count)
            cheap = ids.filter(unit.where("id")).order("id").fetchall()
            plain = ids.filter(f"md5_number(CAST(id AS VARCHAR)) % {count} = {index}").order("id").fetchall()
            assert cheap == plain and cheap, (count, index)


def test_several_units_run_at_once_in_separate_processes(lake, lake_home, tmp_path):
    ingest(lake, str(write_workers_csv(tmp_path / "w.csv", ROWS)), WORKERS)
    processes = [unit_process(lake_home.home, key) for key in ("00", "01", "02", "03")]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in processes]
    assert all(r["success"] for r in results)
    assert max(r["start"] for r in results) < min(r["end"] for r in results)  # they overlapped
    vectors = build_definitions().resolve_job_def("workers_vectors").execute_in_process()
    points = vectors.asset_materializations_for_node("workers__vectors")[0].metadata["points"].value
    assert points == ROWS


@pytest.mark.parametrize("storage", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_a_killed_unit_reruns_alone_and_the_collection_matches_a_clean_build(
    storage, lake_home, tmp_path, monkeypatch, request
):
    bucket = request.getfixturevalue("s3_bucket") if storage == "s3" else None
    drop = write_workers_csv(tmp_path / "w.csv", ROWS)

    def materialized_lake(home: Path) -> tuple[Lake, dict]:
        monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
        if storage == "s3":
            monkeypatch.setenv("LAKEHOUSE_STORAGE", f"{bucket}/{home.name}")
        resources = build_definitions().resources
        dg.materialize(
            [dataset_ingest(WORKERS)],
            resources=resources,
            run_config=ingest_run_config("workers", [str(drop)]),
        )
        return Lake.open(), resources

    # The clean build: every unit, then the collection.
    clean_home = tmp_path / "clean"
    _, clean_resources = materialized_lake(clean_home)
    materialize_search(WORKERS, clean_resources)

    # The crashed build: units 00, 02, 03 finish; unit 01 is killed mid-way, then re-run alone.
    home = tmp_path / "crashed"
    lake, resources = materialized_lake(home)
    embeddings, vectors = dataset_search_assets(WORKERS)
    for key in ("00", "02", "03"):
        assert dg.materialize([embeddings], resources=resources, partition_key=key).success
    kept = {
        key: lake.storage.get(pointer_key("workers", WORKERS.embedding.unit(key)))
        for key in ("00", "02", "03")
    }
    victim = unit_process(home, "01", "slow")
    assert victim.stdout.readline().strip() == "embedding"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert not lake.storage.exists(pointer_key("workers", WORKERS.embedding.unit("01")))  # nothing half-done
    rerun = dg.materialize([embeddings], resources=resources, partition_key="01")
    assert rerun.success
    for key, before in kept.items():  # the finished units were not redone
        assert lake.storage.get(pointer_key("workers", WORKERS.embedding.unit(key))) == before
    assert dg.materialize([vectors], resources=resources).success
    assert collection(home) == collection(clean_home)
