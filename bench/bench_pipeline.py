"""The search pipeline's own speed: manifest -> embeddings (every unit) -> a published, searchable Qdrant Edge
collection, with a zero-cost stand-in embedder, so what is measured is the pipeline and the index, not a model.

Each size runs on a fresh lake (empty embedding cache, empty collection): rows are ingested (not counted), then
`embed_dataset` (reading rows, rendering, hashing, the cache, writing the units' Parquet) and `index_dataset`
(reading rows and vectors again, the diff, upserts, the HNSW build, flush, the published copy), each timed,
with the sync's own phases, and two end points: *searchable* (a first build is published as soon as its points
are written, and Edge searches it by brute force until the HNSW-indexed version replaces it) and *indexed*. Then
recall@10 of 100 queries against numpy brute force (outside the timing), and of 30 on the version published
before the index.
Then a drop of 2.5% more rows (new ids) is appended and embedded and indexed again, timed the same way,
with the search p50 before and after it (the append's points land in a segment of their own unless the
optimizer merges them into the indexed one: HnswSettings.segments). Five index configurations,
interleaved: the default (int8 quantization with rescoring, payload_m 8, 3 segments), the same with
TurboQuant 4-bit, the same with Qdrant's segment number (one per core), the fastest build (no per-payload
links, which costs recall: on the real model's vectors too, see bench_index_config), and Qdrant's defaults
as used before this work. Target (issue 12): >= 5,000 rows/s at 200K rows, here for both end points; the
HNSW build before this work ran at ~2,100 vectors/s, the Go lakehouse's vector add at 234/s.

    .venv/bin/python bench/bench_pipeline.py [--sizes 20000,200000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
sys.path.insert(0, str(ROOT.parent))

from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.publish import ingest  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.search.documents import iter_rows  # noqa: E402
from lakehouse_pipelines.search.embedders import normalize  # noqa: E402
from lakehouse_pipelines.search.embeddings_build import embed_dataset  # noqa: E402
from lakehouse_pipelines.search.indexing import index_dataset  # noqa: E402
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore, query_request  # noqa: E402
from lakehouse_pipelines.search.vectors.protocol import ROW_ID_KEY, HnswSettings  # noqa: E402
from lakehouse_pipelines.settings import LakeSettings  # noqa: E402

WORKERS = load_specs()["workers"]
DIM = 384
TARGET = 5_000


class ZeroCostEmbedder:
    """A distinct unit vector per text, from its hash, with no model: one of 64 cluster centres plus two
    noise vectors picked from fixed pools by other bits of the hash (8,192 x 8,192 combinations, so rows do
    not share vectors: an earlier version looked whole vectors up in one pool of 8,192, and at 200K rows its
    ~24 exact copies of every vector filled HNSW's neighbour lists with copies and broke the graph apart)."""

    model = "zero-cost"
    document_prefix = query_prefix = ""
    dim = DIM
    POOL = 8_192

    def __init__(self):
        rng = np.random.default_rng(0)
        self.centres = rng.normal(size=(64, DIM))
        self.noise = rng.normal(scale=0.35 / np.sqrt(2), size=(2, self.POOL, DIM))

    def embed_documents(self, texts) -> np.ndarray:
        keys = np.array(
            [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in texts],
            dtype=np.uint64,
        ).reshape(-1)
        pool = np.uint64(self.POOL)
        vectors = (
            self.centres[(keys % np.uint64(64)).astype(np.int64)]
            + self.noise[0][((keys >> np.uint64(8)) % pool).astype(np.int64)]
            + self.noise[1][((keys >> np.uint64(24)) % pool).astype(np.int64)]
        )
        return normalize(vectors).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


CONFIGS = {
    "default: int8 + rescoring, payload_m 8": HnswSettings(),
    "turbo4 instead of int8": HnswSettings(quantization="turbo4"),
    "Qdrant's segment number (one per core)": HnswSettings(segments=None),
    "no payload links (payload_m 0), ef 256": HnswSettings(payload_m=0, search_ef=256),
    "before: float vectors, payload_m 16, Qdrant's segment number": HnswSettings(
        quantization=None, payload_m=None, segments=None
    ),
}
APPEND_SHARE = 40  # the appended drop: 1/40 (2.5%) of the rows, with new ids


def score_recall(
    lake: Lake, embedder: ZeroCostEmbedder, search: Callable[[np.ndarray], list], queries: int = 100
) -> tuple[float, float]:
    """recall@10 of `queries` searches (a row's vector plus a little noise; `search` returns the top 10 ids)
    against numpy brute force over every row's vector, and the searches' p50 in ms."""
    manifest = lake.catalog.get("workers")
    ids, vectors = [], []
    for batch in iter_rows(lake, manifest, WORKERS.embedding):
        ids.extend(batch.ids)
        vectors.append(embedder.embed_documents(batch.texts))
    matrix = np.vstack(vectors)
    rng = np.random.default_rng(1)
    found, times = 0, []
    for row in rng.choice(len(ids), queries, replace=False):
        query = normalize((matrix[row] + rng.normal(scale=0.05, size=DIM))[None])[0].astype(np.float32)
        truth = {ids[i] for i in np.argpartition(-(matrix @ query), 10)[:10]}
        started = time.perf_counter()
        hits = search(query)
        times.append((time.perf_counter() - started) * 1000)
        found += len(truth & set(hits))
    return found / (10 * queries), statistics.median(times)


def searching(store: EdgeVectorStore) -> Callable[[np.ndarray], list]:
    return lambda query: [hit.id for hit in store.search("workers", query, k=10)]


def searching_unindexed(
    home: Path, version: int, hnsw: HnswSettings
) -> tuple[Callable[[np.ndarray], list], Callable[[], None]]:
    """The store's own searches of the version a first build published before its HNSW index (still on disk:
    the store keeps the last two), as readers ran them while the index was built; and how to close it."""
    from qdrant_edge import EdgeShard

    shard = EdgeShard.load(str(home / "vectors" / "workers" / "versions" / f"{version:08d}"))

    def search(query: np.ndarray) -> list:
        return [p.payload[ROW_ID_KEY] for p in shard.query(query_request(hnsw, query, 10, ids_only=True))]

    return search, shard.close


def run(rows: int, csv: Path, appended: Path, hnsw: HnswSettings) -> dict:
    home = Path(tempfile.mkdtemp(dir=WORK, prefix="pipeline-"))
    try:
        lake = Lake.open(LakeSettings.under(home))
        ingest(lake, str(csv), WORKERS)
        embedder = ZeroCostEmbedder()
        started = time.perf_counter()
        embed_dataset(lake, WORKERS, embedder)
        embedded = time.perf_counter()
        store = EdgeVectorStore(home / "vectors", hnsw)
        result = index_dataset(lake, WORKERS, store)
        indexed = time.perf_counter()
        recall, p50 = score_recall(lake, embedder, searching(store))
        assert result.points == rows, result.points
        unindexed = {"recall unindexed": None, "p50 unindexed": None}
        if "publish unindexed" in result.phases:
            search, close = searching_unindexed(home, result.version - 1, hnsw)
            unindexed = dict(zip(unindexed, score_recall(lake, embedder, search, queries=30), strict=True))
            close()
        ingest(lake, str(appended), WORKERS)
        started_append = time.perf_counter()
        embed_dataset(lake, WORKERS, embedder)
        append = index_dataset(lake, WORKERS, store)
        append_seconds = time.perf_counter() - started_append
        recall_after, p50_after = score_recall(lake, embedder, searching(store))
        store.close()
        assert append.points == rows + rows // APPEND_SHARE, append.points
        return {
            "recall": recall,
            "embed": embedded - started,
            "index": indexed - embedded,
            "total": indexed - started,
            "searchable": embedded - started + result.searchable_after,
            **unindexed,
            **{f"sync {k}": v for k, v in result.phases.items()},
            "append": append_seconds,
            "append hnsw": append.phases.get("index", 0.0),
            "p50": p50,
            "p50 after": p50_after,
            "recall after": recall_after,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def verdict(summary: dict[tuple[int, str], dict[str, float]]) -> str:
    """Which configurations reach the target at the largest size, searchable and indexed, at what recall."""
    largest = max(rows for rows, _ in summary)

    def meets(rate: float) -> str:
        return f"{'meets' if rate >= TARGET else 'misses'} it ({rate:,.0f} rows/s)"

    parts = [
        f"{name}: searchable {meets(s['searchable'])}, indexed {meets(s['indexed'])} at recall@10 {s['recall']:.3f}"
        for (rows, name), s in summary.items()
        if rows == largest
    ]
    return "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    lines = [
        "Zero-cost embedder (a distinct vector per text from its hash: clustered, no model), fresh lake per round, "
        f"{WORKERS.embedding.units} embedding units run in turn in one process, Qdrant Edge m=16 "
        "ef_construct=100, 2 indexing threads, 11 payload indexes (the workers payload). The index "
        "configurations run interleaved, round by round. Then a drop of 2.5% more rows (new ids) is ingested, "
        "embedded and indexed: *append* is that embed + index, its HNSW part in brackets (a drop under the "
        "indexing threshold, ~1,300 vectors, is not indexed: 0.0). *Searchable*: until readers could search "
        "every row (a first build is published before its HNSW index and searched by brute force meanwhile: its search "
        "p50 and recall are measured on that version afterwards, 30 queries); *indexed*: until the HNSW-indexed "
        "version is published. *Search p50* is the recall queries' own "
        "timing with numpy brute force between them (cold caches: noisy; warm query costs are in "
        "bench_edge_query's table).",
        "",
        "| rows | index config | rows/s to searchable | searchable s | search p50 ms before the index (recall@10) "
        "| rows/s to indexed | indexed s | embed s | index s "
        "| sync s: read / upsert / publish unindexed / HNSW / publish "
        "| recall@10 | append 2.5%: s (HNSW s) | search p50 ms: built / after the append | recall@10 after |",
        "| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: |",
    ]
    summary: dict[tuple[int, str], dict[str, float]] = {}
    for rows in (int(s) for s in args.sizes.split(",")):
        csv = write_workers_csv(WORK / f"pipeline-{rows}.csv", rows)
        appended = write_workers_csv(
            WORK / f"pipeline-{rows}-append.csv", rows // APPEND_SHARE, seed=8, first_id=rows + 1
        )
        rounds: dict[str, list[dict]] = {name: [] for name in CONFIGS}
        for _ in range(args.rounds):
            for name, hnsw in CONFIGS.items():
                rounds[name].append(run(rows, csv, appended, hnsw))
        for name, results in rounds.items():
            rates = [rows / r["total"] for r in results]
            searchable = [rows / r["searchable"] for r in results]
            summary[(rows, name)] = {
                "searchable": statistics.median(searchable),
                "indexed": statistics.median(rates),
                "recall": statistics.median(r["recall"] for r in results),
            }
            exact = [r for r in results if r["p50 unindexed"] is not None]
            before_index = (
                f"{spread([r['p50 unindexed'] for r in exact], 1)} ({spread([r['recall unindexed'] for r in exact], 3)})"
                if exact
                else "not published before"
            )
            phases = " / ".join(
                spread([r.get(f"sync {p}", 0.0) for r in results], 1)
                for p in ("read", "upsert", "publish unindexed", "index", "publish")
            )
            lines.append(
                f"| {rows:,} | {name} | {spread(searchable, 0)} | {spread([r['searchable'] for r in results], 1)} "
                f"| {before_index} | {spread(rates, 0)} | {spread([r['total'] for r in results], 1)} | "
                f"{spread([r['embed'] for r in results], 1)} | {spread([r['index'] for r in results], 1)} "
                f"| {phases} | {spread([r['recall'] for r in results], 3)} "
                f"| {spread([r['append'] for r in results], 1)} ({spread([r['append hnsw'] for r in results], 1)}) "
                f"| {spread([r['p50'] for r in results], 2)} / {spread([r['p50 after'] for r in results], 2)} "
                f"| {spread([r['recall after'] for r in results], 3)} |"
            )
            print(lines[-1], flush=True)
        csv.unlink()
        appended.unlink()
    lines += ["", f"Target: >= {TARGET:,} rows/s at 200K rows (issue 12): {verdict(summary)}"]
    publish("pipeline", "Search pipeline without a model: manifest to a searchable index", lines)


if __name__ == "__main__":
    main()
