"""Qdrant Edge in process: the writer side of one HNSW shard per dataset, with versioned publishes.

Qdrant Edge cannot be opened by two processes at once (a second `load` fails AND breaks the holder's
flush), and its index builds hold the GIL. So the writer (a Dagster run) and the readers (the sidecar) never
share a directory:

    <home>/vectors/<dataset>/
        work/            the writer's shard, opened only under writer.lock, only for the length of a sync
        versions/NNNN/   read-only copies of the flushed work shard, one per publish
        CURRENT          {"version": N, ...}, swapped atomically (os.replace) after the copy is complete
        readers/         private copies for a reader that finds a version already held by another process

Readers are `edge_reader.EdgeReader`s: they open the version CURRENT names and swap when it changes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake.keys import DATASET_NAME, validate_dataset_name
from lakehouse_pipelines.search.vectors.edge_reader import EdgeReader, process_alive, read_current
from lakehouse_pipelines.search.vectors.protocol import (
    BOOL_TWIN,
    ROW_HASH_KEY,
    ROW_ID_KEY,
    CollectionInfo,
    Condition,
    DiffCounts,
    Hit,
    HnswSettings,
    PayloadType,
    Quantization,
    SyncResult,
    VectorBatch,
    VectorStoreBusy,
    check_dim,
    hit_from_payload,
)
from lakehouse_pipelines.search.vectors.sync_diff import NewPoint, apply_diff, existing_row_hashes

log = logging.getLogger(__name__)

KEEP_VERSIONS = 2
# Below this many points the HNSW build takes a second or two: not worth a second copy of the shard.
SEARCHABLE_BEFORE_INDEX_POINTS = 20_000
WRITER_LOCK_TIMEOUT = 600.0


class EdgeVectorStore:
    """Qdrant Edge shards under `root` (normally `LAKEHOUSE_HOME/vectors`): a writer and a reader in one."""

    def __init__(
        self, root: Path, hnsw: HnswSettings | None = None, *, writer_timeout: float = WRITER_LOCK_TIMEOUT
    ):
        self.root = Path(root)
        self.hnsw = hnsw or HnswSettings()
        self.writer_timeout = writer_timeout
        self._readers: dict[str, EdgeReader] = {}
        self._readers_lock = threading.Lock()
        self._infos: dict[str, tuple[tuple[int, int, int], CollectionInfo]] = {}  # by CURRENT's stat

    def _dir(self, dataset: str) -> Path:
        return self.root / validate_dataset_name(dataset)

    # ---- writing

    def sync(
        self,
        dataset: str,
        *,
        model: str,
        dim: int,
        payload_types: dict[str, PayloadType],
        batches: Iterable[VectorBatch],
    ) -> SyncResult:
        started = time.perf_counter()
        base = self._dir(dataset)
        base.mkdir(parents=True, exist_ok=True)
        try:
            lock = FileLock(base / "writer.lock", timeout=self.writer_timeout)
            lock.acquire()
        except Timeout:
            raise VectorStoreBusy(f"another run is writing the {dataset!r} collection") from None
        try:
            shard = self._open_work(base, dataset, model, dim)
            try:
                _ensure_payload_indexes(shard, payload_types, self.hnsw.range_links)
                bools = [c for c, kind in payload_types.items() if kind == "bool"]
                reading = _TimedBatches(batches)
                mark = time.perf_counter()
                counts = _apply(shard, dataset, model, reading, bools)
                phases = {"read": reading.seconds, "upsert": time.perf_counter() - mark - reading.seconds}
                current = read_current(base)
                stale = current is None or (current.get("model"), current.get("payload_types")) != (
                    model,
                    payload_types,
                )
                searchable_after = None
                if counts.upserted or counts.deleted or stale:
                    written = shard.info()
                    if _searchable_before_index(current, model, written.points_count):
                        shard.flush()
                        mark = time.perf_counter()
                        early = self._publish(base, dataset, model, dim, written, payload_types)
                        phases["publish unindexed"] = time.perf_counter() - mark
                        searchable_after = time.perf_counter() - started
                        log.info(
                            "%s: version %d is searchable (brute force) while its HNSW index builds",
                            dataset,
                            early,
                        )
                    mark = time.perf_counter()
                    shard.optimize()
                    phases["index"] = time.perf_counter() - mark
                    shard.flush()
                    info = shard.info()
                    points = info.points_count
                    mark = time.perf_counter()
                    version = self._publish(base, dataset, model, dim, info, payload_types)
                    phases["publish"] = time.perf_counter() - mark
                else:
                    points, version = current["points"], current["version"]
            finally:
                shard.close()
            _write_json(base / "work.json", {"dim": dim, "model": model})
            self._prune(base)
        finally:
            lock.release()
        return SyncResult.of(dataset, counts, points, version, started, phases, searchable_after)

    def _open_work(self, base: Path, dataset: str, model: str, dim: int):
        from qdrant_edge import EdgeShard

        work = base / "work"
        if (work / "edge_config.json").exists():
            have = _edge_dim(work)
            check_dim(dataset, have, dim, model)
            return EdgeShard.load(str(work))
        shutil.rmtree(work, ignore_errors=True)  # a create that died before writing its config
        return EdgeShard.create(str(work), self._edge_config(dim))

    def _edge_config(self, dim: int):
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeOptimizersConfig,
            EdgeVectorParams,
            HnswIndexConfig,
        )

        h = self.hnsw
        return EdgeConfig(
            quantization_config=_edge_quantization(h.quantization),
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(
                m=h.m,
                ef_construct=h.ef_construct,
                full_scan_threshold=h.full_scan_threshold_kb,
                max_indexing_threads=h.max_indexing_threads,
                payload_m=h.payload_m,
            ),
            optimizers=EdgeOptimizersConfig(
                indexing_threshold=h.indexing_threshold_kb, default_segment_number=h.segments
            ),
        )

    def _publish(
        self,
        base: Path,
        dataset: str,
        model: str,
        dim: int,
        info: Any,
        payload_types: dict[str, PayloadType],
    ) -> int:
        """Copy the flushed work shard (`info`: its ShardInfo) to a new version directory, then swap CURRENT to it."""
        versions = base / "versions"
        versions.mkdir(exist_ok=True)
        current = read_current(base)
        version = (current["version"] if current else 0) + 1
        staging = versions / f".staging-{uuid.uuid4().hex}"
        shutil.copytree(base / "work", staging)
        os.replace(staging, versions / f"{version:08d}")
        _write_json(
            base / "CURRENT",
            {
                "dataset": dataset,
                "version": version,
                "model": model,
                "dim": dim,
                "points": info.points_count,
                "indexed_vectors": info.indexed_vectors_count,
                "payload_types": payload_types,
            },
        )
        return version

    def _prune(self, base: Path) -> None:
        """Remove superseded versions no reader holds; a held one goes on a later publish."""
        versions = sorted(p for p in (base / "versions").glob("[0-9]*") if p.is_dir())
        for old in versions[:-KEEP_VERSIONS]:
            lock = FileLock(str(old) + ".lock", timeout=0)
            try:
                with lock:
                    shutil.rmtree(old, ignore_errors=True)
            except Timeout:
                continue
            Path(str(old) + ".lock").unlink(missing_ok=True)
        for stale in (base / "versions").glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for copy in (base / "readers").glob("*-*"):  # private copies of readers that died without cleaning up
            if not process_alive(int(copy.name.split("-")[0])):
                shutil.rmtree(copy, ignore_errors=True)

    def drop(self, dataset: str) -> None:
        """Forget the collection (for a model change): the writer lock keeps a running sync safe."""
        base = self._dir(dataset)
        with FileLock(base / "writer.lock", timeout=WRITER_LOCK_TIMEOUT):
            shutil.rmtree(base / "work", ignore_errors=True)
            (base / "work.json").unlink(missing_ok=True)
            (base / "CURRENT").unlink(missing_ok=True)

    # ---- reading

    def info(self, dataset: str) -> CollectionInfo | None:
        """From CURRENT, parsed again only when the file changed (one stat per call: search asks every time)."""
        base = self._dir(dataset)
        try:
            stat = os.stat(base / "CURRENT")
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        known = self._infos.get(dataset)
        if known is not None and known[0] == stamp:
            return known[1]
        current = read_current(base)
        if current is None:
            return None
        info = CollectionInfo(
            dataset,
            current["dim"],
            current["model"],
            current["points"],
            current["version"],
            current.get("payload_types", {}),
            current.get("indexed_vectors"),
        )
        self._infos[dataset] = (stamp, info)
        return info

    def opened(self, dataset: str) -> bool:
        reader = self._readers.get(dataset)
        return reader is not None and reader.is_open

    def search(
        self,
        dataset: str,
        vector: np.ndarray,
        *,
        k: int,
        conditions: tuple[Condition, ...] = (),
        ef: int | None = None,
        ids_only: bool = False,
    ) -> list[Hit]:
        request = query_request(self.hnsw, vector, k, conditions, ef, ids_only)
        with self._reader(dataset).shard() as (shard, dim):
            check_dim(dataset, dim, len(vector), "the query embedder")
            points = shard.query(request)
        return [hit_from_payload(p.score, p.payload) for p in points]

    def warm(self) -> list[str]:
        """Open the reader of every published collection not open yet (a load holds the GIL: never on a request)."""
        found = []
        for base in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not DATASET_NAME.fullmatch(base.name) or not (base / "CURRENT").is_file():
                continue
            try:
                with self._reader(base.name).shard():
                    found.append(base.name)
            except NotFound:
                continue
            except Exception as exc:  # one broken version must not keep the others closed; searches retry it
                log.warning("could not open the %s collection: %s", base.name, exc)
        return found

    def _reader(self, dataset: str) -> EdgeReader:
        with self._readers_lock:
            reader = self._readers.get(dataset)
            if reader is None:
                reader = self._readers[dataset] = EdgeReader(
                    self._dir(dataset), dataset, self.hnsw.search_threads
                )
            return reader

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()


def query_request(
    hnsw: HnswSettings,
    vector: np.ndarray,
    k: int,
    conditions: tuple[Condition, ...] = (),
    ef: int | None = None,
    ids_only: bool = False,
):
    """The Edge query a search runs: rescored quantized HNSW, ACORN for multi-column filters (HnswSettings)."""
    from qdrant_edge import (
        AcornSearchParams,
        PayloadSelector,
        QuantizationSearchParams,
        Query,
        QueryRequest,
        SearchParams,
    )

    return QueryRequest(
        limit=k,
        query=Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
        filter=_edge_filter(conditions),
        params=SearchParams(
            hnsw_ef=ef or hnsw.search_ef,
            quantization=QuantizationSearchParams(rescore=True, oversampling=hnsw.oversampling),
            acorn=AcornSearchParams(enable=True) if hnsw.uses_acorn(conditions) else None,
        ),
        with_payload=PayloadSelector.Include([ROW_ID_KEY]) if ids_only else True,
    )


def _searchable_before_index(current: dict | None, model: str, points: int) -> bool:
    """Whether to publish the points before the HNSW build as well as after it.

    Edge searches a segment that has no HNSW index yet by brute force: exact on float or int8 vectors
    (turbo4 quantizes that segment too: rescored, recall@10 0.96), 13-17 ms a query at 200K points, and the
    rows are searchable after ~40 s of the zero-cost pipeline instead of the ~170 s the index takes on 2
    cores (bench/results/pipeline.md). So a collection that readers cannot search yet (none published, or one
    of another model) is published first as it is, and readers swap to the indexed version when it is done.
    A published collection stays as it is until its new version is indexed: its searches must not slow down,
    and an append's own segment builds in seconds.
    """
    if current is not None and current.get("model") == model:
        return False
    return points >= SEARCHABLE_BEFORE_INDEX_POINTS


class _TimedBatches:
    """The batches, counting the time spent producing them (reading rows and vectors) apart from writing."""

    def __init__(self, batches: Iterable[VectorBatch]):
        self._batches = iter(batches)
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self) -> VectorBatch:
        started = time.perf_counter()
        try:
            return next(self._batches)
        finally:
            self.seconds += time.perf_counter() - started


def _apply(shard, dataset: str, model: str, batches: Iterable[VectorBatch], bools: list[str]) -> DiffCounts:
    """The shared diff, written as Edge points; each bool column gets its keyword twin (see BOOL_TWIN)."""
    from qdrant_edge import PayloadSelector, Point, ScrollRequest, UpdateOperation

    def page(offset):
        return shard.scroll(
            ScrollRequest(offset=offset, limit=10_000, with_payload=PayloadSelector.Include([ROW_HASH_KEY]))
        )

    def upsert(points: list[NewPoint]) -> None:
        vectors = np.stack([p.vector for p in points]).tolist()  # one conversion per batch, not per point
        shard.update(
            UpdateOperation.upsert_points(
                [
                    Point(
                        id=p.id,
                        vector=vector,
                        payload={**p.payload, **{BOOL_TWIN + c: _bool_word(p.payload.get(c)) for c in bools}},
                    )
                    for p, vector in zip(points, vectors, strict=True)
                ]
            )
        )

    return apply_diff(
        dataset,
        model,
        batches,
        existing_row_hashes(page),
        upsert=upsert,
        delete=lambda ids: shard.update(UpdateOperation.delete_points(ids)),
    )


def _ensure_payload_indexes(shard, payload_types: dict[str, PayloadType], range_links: bool) -> None:
    """Index every filterable column before any point is written (Qdrant builds them incrementally then).

    `range_links` False: numeric and datetime columns get no payload links (`enable_hnsw`), see HnswSettings.
    """
    from qdrant_edge import (
        DatetimeIndexParams,
        FloatIndexParams,
        IntegerIndexParams,
        PayloadSchemaType,
        UpdateOperation,
    )

    have = set(shard.info().payload_schema)
    schema = {
        "keyword": PayloadSchemaType.Keyword,
        "integer": PayloadSchemaType.Integer,
        "float": PayloadSchemaType.Float,
        "bool": PayloadSchemaType.Bool,
        "datetime": PayloadSchemaType.Datetime,
    }
    if not range_links:
        schema |= {
            "integer": IntegerIndexParams(enable_hnsw=False),
            "float": FloatIndexParams(enable_hnsw=False),
            "datetime": DatetimeIndexParams(enable_hnsw=False),
        }
    for column, kind in payload_types.items():
        if kind == "bool":
            column, kind = BOOL_TWIN + column, "keyword"
        if column not in have:
            shard.update(UpdateOperation.create_field_index(column, schema[kind]))


def _edge_quantization(kind: Quantization | None):
    from qdrant_edge import (
        ScalarQuantizationConfig,
        ScalarType,
        TurboQuantBitSize,
        TurboQuantQuantizationConfig,
    )

    if kind == "turbo4":
        return TurboQuantQuantizationConfig(bits=TurboQuantBitSize.Bits4, always_ram=True)
    if kind == "int8":
        return ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True)
    return None


def _bool_word(value: Any) -> str | None:
    return None if value is None else ("true" if value else "false")


def _edge_filter(conditions: tuple[Condition, ...]):
    if not conditions:
        return None
    from qdrant_edge import FieldCondition, Filter, MatchAny, MatchValue, RangeDateTime, RangeFloat

    must = []
    for c in conditions:
        if c.kind == "match" and c.type == "bool":
            must.append(FieldCondition(key=BOOL_TWIN + c.column, match=MatchValue(_bool_word(c.value))))
        elif c.kind == "match":
            must.append(FieldCondition(key=c.column, match=MatchValue(c.value)))
        elif c.kind == "any":
            must.append(FieldCondition(key=c.column, match=MatchAny(list(c.value))))
        else:
            range_type = RangeDateTime if c.type == "datetime" else RangeFloat
            must.append(FieldCondition(key=c.column, range=range_type(**c.value)))
    return Filter(must=must)


def _edge_dim(shard_dir: Path) -> int:
    config = json.loads((shard_dir / "edge_config.json").read_text())
    return int(config["vectors"][""]["size"])


def _write_json(path: Path, value: dict) -> None:
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(staged, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)
