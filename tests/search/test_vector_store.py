"""The vector stores: real HNSW recall through Qdrant Edge, incremental sync (upserts for new and changed rows,
deletes for removed ones), persistence across a restart, a dimension mismatch refused, readers that keep
answering while another process rebuilds and then see the new version, and the server backend's client
calls through qdrant-client's local mode (which has no HNSW: it checks the calls, not the index).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock, Timeout

from lakehouse_pipelines.search.vectors import edge_store, open_vector_store
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import (
    Condition,
    DimensionMismatch,
    HnswSettings,
    VectorBatch,
    VectorStoreBusy,
    point_id,
)
from lakehouse_pipelines.search.vectors.server_store import ServerVectorStore
from lakehouse_pipelines.settings import VectorStoreSettings
from tests.search_support import clustered_vectors

PAYLOAD_TYPES = {"group": "integer", "label": "keyword", "weight": "float", "even": "bool"}
SMALL_INDEX = HnswSettings(m=16, ef_construct=100, max_indexing_threads=2, indexing_threshold_kb=100)


def batches(vectors: np.ndarray, ids=None, label="v1", size=1000):
    ids = list(range(len(vectors))) if ids is None else list(ids)
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield VectorBatch(
            ids=chunk,
            vectors=vectors[start : start + size],
            payloads=[
                {"group": i % 10, "label": f"{label}-{i % 3}", "weight": i / 10, "even": i % 2 == 0}
                for i in chunk
            ],
            text_hashes=[f"{label}-{i}" for i in chunk],
        )


def sync(store, vectors, dataset="points", **kwargs):
    return store.sync(
        dataset,
        model="test-model",
        dim=vectors.shape[1],
        payload_types=PAYLOAD_TYPES,
        batches=batches(vectors, **kwargs),
    )


@pytest.mark.parametrize(("quantization", "stored"), [("turbo4", "turbo"), ("int8", "scalar"), (None, None)])
def test_edge_hnsw_recall_at_10_against_brute_force(tmp_path, quantization, stored):
    vectors = clustered_vectors(12_000, 64, clusters=40, seed=1)
    queries = clustered_vectors(100, 64, clusters=40, seed=2)
    store = EdgeVectorStore(tmp_path / "vectors", replace(SMALL_INDEX, quantization=quantization))
    result = sync(store, vectors)
    assert stored_quantization(tmp_path / "vectors" / "points") == stored
    info = store.info("points")
    assert (result.points, info.points, info.dim) == (12_000, 12_000, 64)
    assert info.indexed_vectors >= 11_000  # the search below goes through HNSW, not a full scan
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = [[hit.id for hit in store.search("points", q, k=10, ef=128)] for q in queries]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact.tolist(), strict=True)])
    assert recall >= 0.95, recall
    store.close()


def stored_quantization(base: Path) -> str | None:
    """The quantization kind the published version's Edge config holds ("turbo", "scalar"; None: float only)."""
    version = json.loads((base / "CURRENT").read_text())["version"]
    config = json.loads((base / "versions" / f"{version:08d}" / "edge_config.json").read_text())
    return next(iter(config.get("quantization_config") or {}), None)


def test_a_collection_keeps_the_quantization_it_was_built_with(tmp_path):
    """Another quantization setting rebuilds nothing: a sync into a turbo4 collection keeps it turbo4."""
    vectors = clustered_vectors(3_000, 32, clusters=10, seed=3)
    sync(EdgeVectorStore(tmp_path / "vectors", replace(SMALL_INDEX, quantization="turbo4")), vectors)
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    assert SMALL_INDEX.quantization == "int8"
    result = sync(store, vectors[:2_500], ids=range(2_500))
    assert (result.upserted, result.deleted, result.points) == (0, 500, 2_500)
    assert stored_quantization(tmp_path / "vectors" / "points") == "turbo"
    assert store.search("points", vectors[7], k=1)[0].id == 7
    store.close()


@pytest.mark.parametrize(("segments", "kept"), [("default", True), (2, False)])
def test_an_append_builds_a_segment_of_its_own_and_leaves_the_indexed_one(tmp_path, segments, kept):
    """By default an append's points get their own small segment and the first build's indexed segment
    stays as it was. An optimizer allowed only 2 segments (the indexed one and the appendable one: what
    Qdrant's one-per-core default gives on 2 cores) merges the append into it, building its links again."""
    vectors = clustered_vectors(5_500, 32, clusters=10, seed=4)
    hnsw = SMALL_INDEX if segments == "default" else replace(SMALL_INDEX, segments=segments)
    store = EdgeVectorStore(tmp_path / "vectors", hnsw)
    sync(store, vectors[:4_000])
    (indexed,) = hnsw_segments(tmp_path / "vectors" / "points" / "work")
    result = sync(store, vectors)  # 1,500 32-d points: 188 KB, over the 100 KB indexing threshold
    assert (result.upserted, result.points) == (1_500, 5_500)
    after = hnsw_segments(tmp_path / "vectors" / "points" / "work")
    assert (indexed in after, len(after)) == ((True, 2) if kept else (False, 1))
    assert store.info("points").indexed_vectors == 5_500
    exact = np.argsort(-(vectors[5_000] @ vectors.T))[:10].tolist()
    assert [hit.id for hit in store.search("points", vectors[5_000], k=10, ef=128)] == exact
    store.close()


def hnsw_segments(shard: Path) -> set[str]:
    """The shard's HNSW-indexed segments (beside them: the appendable one, plain), by their segment.json."""
    return {
        p.parent.name
        for p in (shard / "segments").glob("*/segment.json")
        if json.loads(p.read_text())["config"]["vector_data"][""]["index"]["type"] == "hnsw"
    }


def test_a_first_build_is_searchable_exactly_before_its_hnsw_index_is_built(tmp_path, monkeypatch, caplog):
    """A collection no reader can search yet is published as soon as its points are written (Edge searches
    the unindexed segment by brute force: exact), then again once indexed; readers swap to the indexed one.
    A published collection's next sync publishes once, indexed: its searches never fall back to a scan."""
    monkeypatch.setattr(edge_store, "SEARCHABLE_BEFORE_INDEX_POINTS", 3_000)
    vectors = clustered_vectors(5_000, 32, clusters=10, seed=9)
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    reader = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)  # the sidecar's side
    seen = {}

    class SearchWhileIndexing(logging.Handler):
        def emit(self, record):  # the writer logs this between the first publish and its HNSW build
            if "searchable" in record.getMessage():
                seen["info"] = reader.info("points")
                seen["hits"] = [hit.id for hit in reader.search("points", vectors[42], k=10)]

    caplog.set_level(logging.INFO, logger=edge_store.__name__)
    handler = SearchWhileIndexing()
    logging.getLogger(edge_store.__name__).addHandler(handler)
    try:
        result = sync(store, vectors)
    finally:
        logging.getLogger(edge_store.__name__).removeHandler(handler)
    assert (seen["info"].version, seen["info"].points, seen["info"].indexed_vectors) == (1, 5_000, 0)
    assert seen["hits"] == np.argsort(-(vectors @ vectors[42]))[:10].tolist()
    assert (result.version, store.info("points").indexed_vectors) == (2, 5_000)
    assert "publish unindexed" in result.phases
    assert result.searchable_after < result.seconds - result.phases["index"]
    unindexed = tmp_path / "vectors" / "points" / "versions" / "00000001"
    deadline = time.monotonic() + 30
    while not released(unindexed) and time.monotonic() < deadline:  # the reader swaps in the background
        assert reader.search("points", vectors[42], k=10)[0].id == 42
        time.sleep(0.1)
    assert released(unindexed)

    appended = sync(store, np.vstack([vectors, clustered_vectors(500, 32, clusters=10, seed=10)]))
    assert (appended.upserted, appended.version, appended.searchable_after) == (500, 3, appended.seconds)
    assert "publish unindexed" not in appended.phases
    assert not unindexed.exists()  # the next publish prunes the unindexed copy
    reader.close()
    store.close()


def released(version: Path) -> bool:
    """No reader holds this published version (readers hold its lock while they serve it)."""
    try:
        with FileLock(str(version) + ".lock", timeout=0):
            return True
    except Timeout:
        return False


def test_sync_upserts_changed_rows_deletes_removed_ones_and_filters(tmp_path):
    vectors = clustered_vectors(500, 16, clusters=5)
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    first = sync(store, vectors)
    assert (first.upserted, first.deleted, first.version) == (500, 0, 1)
    unchanged = sync(store, vectors)
    assert (unchanged.upserted, unchanged.deleted, unchanged.unchanged, unchanged.version) == (0, 0, 500, 1)

    moved = vectors.copy()
    moved[3] = vectors[400]  # row 3 now sits where row 400 is, and rows 450.. leave the dataset
    keep = list(range(450))
    changed = store.sync(
        "points",
        model="test-model",
        dim=16,
        payload_types=PAYLOAD_TYPES,
        batches=(
            VectorBatch(
                b.ids,
                b.vectors,
                b.payloads,
                [h + ("-edited" if i == 3 else "") for i, h in zip(b.ids, b.text_hashes, strict=True)],
            )
            for b in batches(moved[:450], ids=keep)
        ),
    )
    assert (changed.upserted, changed.deleted, changed.points, changed.version) == (1, 50, 450, 2)
    hits = store.search("points", vectors[400], k=3)
    assert {h.id for h in hits[:2]} == {3, 400}
    assert all(h.id < 450 for h in store.search("points", vectors[470], k=20))

    group = store.search("points", vectors[0], k=20, conditions=(Condition("group", "match", 4, "integer"),))
    assert group and all(h.payload["group"] == 4 for h in group)
    heavy = store.search(
        "points", vectors[0], k=20, conditions=(Condition("weight", "range", {"gte": 30.0}, "float"),)
    )
    assert heavy and all(h.payload["weight"] >= 30.0 for h in heavy)
    odd = store.search("points", vectors[0], k=20, conditions=(Condition("even", "match", False, "bool"),))
    assert odd and all(h.payload["even"] is False for h in odd)
    assert set(odd[0].payload) == set(PAYLOAD_TYPES)  # internal bookkeeping keys never reach a hit
    bare = store.search("points", vectors[0], k=20, ids_only=True)  # what a hybrid SQL relation reads
    assert [(h.id, h.score) for h in bare] == [
        (h.id, h.score) for h in store.search("points", vectors[0], k=20)
    ]
    assert all(h.payload == {} for h in bare)
    store.close()


def test_a_search_with_two_filters_finds_their_exact_top_10(tmp_path):
    """An AND of two columns' filters, searched through HNSW (a full-scan threshold of 10 KB keeps the
    planner off its exact scan), finds what brute force over the matching rows finds: ACORN
    (`HnswSettings.uses_acorn`). Without it these searches gave recall@10 0.96-0.98, as low as 0.8 for a
    query: the payload links connect one column's values, not their intersection."""
    vectors = clustered_vectors(12_000, 32, clusters=40, seed=1)
    queries = clustered_vectors(50, 32, clusters=40, seed=2)
    store = EdgeVectorStore(tmp_path / "vectors", replace(SMALL_INDEX, full_scan_threshold_kb=10))
    sync(store, vectors)
    rows = np.arange(len(vectors))
    filters = [
        ((Condition("group", "match", 4, "integer"), Condition("label", "match", "v1-1", "keyword")),
         (rows % 10 == 4) & (rows % 3 == 1)),
        ((Condition("even", "match", True, "bool"), Condition("label", "match", "v1-1", "keyword")),
         (rows % 2 == 0) & (rows % 3 == 1)),
    ]  # fmt: skip
    recall = []
    for conditions, keep in filters:
        for query in queries:
            exact = set(np.argsort(-np.where(keep, vectors @ query, -np.inf))[:10].tolist())
            hits = store.search("points", query, k=10, conditions=conditions)
            assert all(keep[h.id] for h in hits)
            recall.append(len(exact & {h.id for h in hits}) / 10)
    assert np.mean(recall) >= 0.995, np.mean(recall)
    store.close()


def test_range_links_off_leaves_numeric_columns_without_payload_links_and_still_filters(tmp_path):
    """`range_links=False`: the numeric indexes are built with `enable_hnsw` off (a faster build that costs
    range-filter recall, bench/results/index_config.md), keyword and bool ones keep their links."""
    from qdrant_edge import EdgeShard

    store = EdgeVectorStore(tmp_path / "vectors", replace(SMALL_INDEX, range_links=False))
    vectors = clustered_vectors(500, 16, clusters=5)
    sync(store, vectors)
    heavy = store.search(
        "points", vectors[0], k=20, conditions=(Condition("weight", "range", {"gte": 30.0}, "float"),)
    )
    assert heavy and all(h.payload["weight"] >= 30.0 for h in heavy)
    store.close()
    shard = EdgeShard.load(str(tmp_path / "vectors" / "points" / "work"))
    links = {c: getattr(i.params, "enable_hnsw", None) for c, i in shard.info().payload_schema.items()}
    shard.close()
    assert (links["group"], links["weight"], links["label"]) == (
        False,
        False,
        None,
    )  # None: Qdrant's default, on


def test_point_ids_are_stable_uuid5_of_dataset_and_row():
    assert point_id("workers", 7) == point_id("workers", "7")
    assert point_id("workers", 7) != point_id("jobs", 7)


def test_search_after_restart_gives_the_same_results(tmp_path):
    vectors = clustered_vectors(2_000, 32, clusters=10)
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    sync(store, vectors)
    before = [(h.id, round(h.score, 5)) for h in store.search("points", vectors[5], k=10)]
    store.close()
    reopened = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    after = [(h.id, round(h.score, 5)) for h in reopened.search("points", vectors[5], k=10)]
    assert after == before and before[0][0] == 5
    reopened.close()


def test_dimension_mismatch_is_refused_and_leaves_the_collection_alone(tmp_path):
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    sync(store, clustered_vectors(100, 16, clusters=3))
    with pytest.raises(DimensionMismatch, match=r"16-d vectors but embedder 'test-model' makes 32-d"):
        sync(store, clustered_vectors(100, 32, clusters=3))
    assert store.info("points").dim == 16 and store.info("points").points == 100
    assert len(store.search("points", clustered_vectors(1, 16, clusters=1)[0], k=5)) == 5
    store.close()


def test_a_second_writer_is_refused_while_one_holds_the_collection(tmp_path):
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX, writer_timeout=0.2)
    sync(store, clustered_vectors(50, 8, clusters=2))
    from filelock import FileLock

    with FileLock(tmp_path / "vectors" / "points" / "writer.lock"), pytest.raises(VectorStoreBusy):
        sync(store, clustered_vectors(50, 8, clusters=2))


def _rebuild_in_another_process(root: str, n: int) -> None:
    store = EdgeVectorStore(Path(root), SMALL_INDEX)
    sync(store, clustered_vectors(n, 32, clusters=10, seed=9), label="v2")


def _read_in_another_process(root: str, queue) -> None:
    store = EdgeVectorStore(Path(root), SMALL_INDEX)
    queue.put([h.id for h in store.search("points", clustered_vectors(1, 32, clusters=1)[0], k=5)])
    store.close()


def test_search_keeps_answering_while_another_process_rebuilds_then_sees_the_new_version(tmp_path):
    root = tmp_path / "vectors"
    store = EdgeVectorStore(root, SMALL_INDEX)
    sync(store, clustered_vectors(3_000, 32, clusters=10))
    query = clustered_vectors(1, 32, clusters=1, seed=5)[0]
    assert store.info("points").version == 1

    context = multiprocessing.get_context("spawn")
    writer = context.Process(target=_rebuild_in_another_process, args=(str(root), 8_000))
    answered, errors = [], []
    stop = threading.Event()

    def keep_searching():
        while not stop.is_set():
            try:
                answered.append(len(store.search("points", query, k=10)))
            except Exception as exc:  # any failure here is the bug this test exists for
                errors.append(exc)

    reader = threading.Thread(target=keep_searching)
    reader.start()
    writer.start()
    writer.join(timeout=120)
    time.sleep(1.0)  # the reader checks for a new version every 0.5 s
    stop.set()
    reader.join()
    assert writer.exitcode == 0
    assert not errors and len(answered) > 10 and set(answered) == {10}
    assert store.info("points").version == 2 and store.info("points").points == 8_000

    # Another process reading the version this one holds gets its own copy, never the held directory.
    queue = context.Queue()
    other = context.Process(target=_read_in_another_process, args=(str(root), queue))
    other.start()
    other_ids = queue.get(timeout=60)
    other.join(timeout=30)
    assert other.exitcode == 0
    assert other_ids == [h.id for h in store.search("points", clustered_vectors(1, 32, clusters=1)[0], k=5)]
    store.close()


def test_server_store_through_qdrant_client_local_mode(tmp_path):
    """qdrant-client local mode: the same client calls as a server, but brute force (no HNSW) underneath."""
    from qdrant_client import QdrantClient

    store = ServerVectorStore(
        QdrantClient(path=str(tmp_path / "qdrant-local")),
        replace(SMALL_INDEX, range_links=not SMALL_INDEX.range_links),
    )
    vectors = clustered_vectors(300, 16, clusters=4)
    first = sync(store, vectors)
    assert (first.upserted, first.points) == (300, 300)
    assert sync(store, vectors).upserted == 0
    shrunk = sync(store, vectors[:250], ids=range(250))
    assert (shrunk.deleted, shrunk.points) == (50, 250)
    hits = store.search(
        "points", vectors[10], k=5, conditions=(Condition("label", "match", "v1-1", "keyword"),)
    )
    assert hits[0].id == 10 and all(h.payload["label"] == "v1-1" for h in hits)
    bare = store.search(
        "points",
        vectors[10],
        k=5,
        conditions=(Condition("label", "match", "v1-1", "keyword"),),
        ids_only=True,
    )
    assert [h.id for h in bare] == [h.id for h in hits] and all(h.payload == {} for h in bare)
    ranged = store.search(
        "points", vectors[10], k=5, conditions=(Condition("weight", "range", {"lt": 5.0}, "float"),)
    )
    assert ranged and all(h.payload["weight"] < 5.0 for h in ranged)
    both = (Condition("label", "match", "v1-1", "keyword"), Condition("even", "match", True, "bool"))
    assert SMALL_INDEX.uses_acorn(both)
    paired = store.search("points", vectors[10], k=5, conditions=both)
    assert paired and all(h.payload["label"] == "v1-1" and h.payload["even"] for h in paired)
    info = store.info("points")
    assert (info.dim, info.model, info.payload_types) == (16, "test-model", PAYLOAD_TYPES)
    assert store.warm() == ["points"]
    with pytest.raises(DimensionMismatch):
        sync(store, clustered_vectors(10, 8, clusters=2))
    store.close()


@pytest.mark.parametrize(
    ("quantization", "kind"), [("int8", "ScalarQuantization"), ("turbo4", "TurboQuantization")]
)
def test_server_store_creates_its_collection_with_the_quantization_asked(
    tmp_path, monkeypatch, quantization, kind
):
    """Local mode keeps no quantization config, so the create call it receives is what is checked."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant-local"))
    created = {}
    real_create = client.create_collection

    def create_collection(name, **kwargs):
        created.update(kwargs)
        return real_create(name, **kwargs)

    monkeypatch.setattr(client, "create_collection", create_collection)
    store = ServerVectorStore(client, replace(SMALL_INDEX, quantization=quantization))
    sync(store, clustered_vectors(50, 16, clusters=2))
    assert type(created["quantization_config"]).__name__ == kind
    assert store.search("points", clustered_vectors(1, 16, clusters=2)[0], k=3)
    store.close()


def test_open_vector_store_picks_edge_or_a_server(tmp_path):
    assert isinstance(open_vector_store(tmp_path), EdgeVectorStore)
    assert open_vector_store(tmp_path).root == tmp_path / "vectors"
    server = open_vector_store(tmp_path, VectorStoreSettings("http://127.0.0.1:6333", "k"))
    assert isinstance(server, ServerVectorStore)


def test_a_version_that_fails_to_open_leaves_the_previous_one_serving(tmp_path, monkeypatch, caplog):
    from lakehouse_pipelines.search.vectors import edge_reader

    monkeypatch.setattr(edge_reader, "READER_REFRESH_SECONDS", 0.0)
    vectors = clustered_vectors(200, 16, clusters=3)
    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    sync(store, vectors)
    before = [h.id for h in store.search("points", vectors[7], k=5)]
    current = tmp_path / "vectors" / "points" / "CURRENT"
    current.write_text(current.read_text().replace('"version": 1', '"version": 99'))  # a version not on disk
    deadline = time.monotonic() + 10
    while "could not open points version 99" not in caplog.text:
        assert [h.id for h in store.search("points", vectors[7], k=5)] == before
        assert time.monotonic() < deadline, "the reader never tried the new version"
        time.sleep(0.05)
    assert [h.id for h in store.search("points", vectors[7], k=5)] == before
    store.close()


def test_private_copies_of_dead_readers_are_removed_on_the_next_publish(tmp_path):
    import subprocess
    import sys

    store = EdgeVectorStore(tmp_path / "vectors", SMALL_INDEX)
    sync(store, clustered_vectors(50, 8, clusters=2))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    readers = tmp_path / "vectors" / "points" / "readers"
    orphan, live = readers / f"{int(dead.stdout)}-0badc0de", readers / f"{os.getpid()}-0000beef"
    orphan.mkdir(parents=True)
    live.mkdir()
    sync(store, clustered_vectors(60, 8, clusters=2))
    assert not orphan.exists() and live.exists()
