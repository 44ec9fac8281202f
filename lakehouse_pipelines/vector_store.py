"""One HNSW collection per dataset: Qdrant Edge in process (default) or a Qdrant server (`QDRANT_URL`).

Sync is incremental: every point carries a hash of (model, text, payload), so a run upserts only new or
changed rows and deletes the rows that left the dataset. Point ids are uuid5(dataset_id, row id): the same
row is the same point on every machine and every rebuild.

Qdrant Edge cannot be opened by two processes at once (a second `load` fails AND breaks the holder's
flush), and its index builds hold the GIL. So the writer (a Dagster run) and the readers (the sidecar) never
share a directory:

    <home>/vectors/<dataset>/
        work/            the writer's shard, opened only under writer.lock, only for the length of a sync
        versions/NNNN/   read-only copies of the flushed work shard, one per publish
        CURRENT          {"version": N, ...}, swapped atomically (os.replace) after the copy is complete
        readers/         private copies for a reader that finds a version already held by another process

A reader opens the newest version under that version's lock (or a private copy if the lock is taken), and
swaps to a newer one when CURRENT changes: the new version opens in a background thread while queries keep
running on the old one, and in-flight queries finish on the handle they started with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from filelock import FileLock, Timeout

from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.identity import dataset_id, validate_dataset_name

log = logging.getLogger(__name__)

ROW_HASH_KEY = "_row"  # internal payload keys, stripped from hits
ROW_ID_KEY = "_id"
# qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), which matches no bool payload: Edge points
# carry a keyword twin "_b_<column>" = "true"/"false" of each bool column, and bool filters go to the twin.
BOOL_TWIN = "_b_"
UPSERT_BATCH = 1024
KEEP_VERSIONS = 2
WRITER_LOCK_TIMEOUT = 600.0
READER_REFRESH_SECONDS = 0.5

PayloadType = Literal["keyword", "integer", "float", "bool", "datetime"]
# Manifest logical types -> payload index types
PAYLOAD_TYPES: dict[str, PayloadType] = {
    "string": "keyword",
    "int64": "integer",
    "float64": "float",
    "bool": "bool",
    "date": "datetime",
    "timestamp": "datetime",
}


class DimensionMismatch(LakehouseError):
    """The embedder's vectors and an existing collection disagree on dimension; nothing was changed."""


class VectorStoreBusy(LakehouseError):
    """Another process is writing this dataset's collection."""


@dataclass(frozen=True)
class HnswSettings:
    """The index parameters, always explicit: Edge's `auto` indexing threads used one core."""

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    max_indexing_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Segments under this size stay brute force; 2,000 KB is ~1,300 384-d vectors.
    indexing_threshold_kb: int = 2_000


@dataclass(frozen=True)
class Condition:
    """One filter clause on a payload column: `match` (equality), `any` (one of) or `range`."""

    column: str
    kind: Literal["match", "any", "range"]
    value: Any
    type: PayloadType


@dataclass(frozen=True)
class Hit:
    id: Any
    score: float
    payload: dict


@dataclass(frozen=True)
class VectorBatch:
    """Rows to index: ids, unit vectors, payloads and text hashes, in parallel."""

    ids: list
    vectors: np.ndarray
    payloads: list[dict]
    text_hashes: list[str]


@dataclass(frozen=True)
class CollectionInfo:
    """What a reader needs to know before querying: model and dimension, and how to check a filter."""

    dataset: str
    dim: int
    model: str
    points: int
    version: int
    payload_types: dict[str, PayloadType] = field(default_factory=dict)
    indexed_vectors: int | None = None  # points in HNSW-indexed segments (None: the backend doesn't say)


@dataclass(frozen=True)
class SyncResult:
    dataset: str
    upserted: int
    deleted: int
    unchanged: int
    points: int
    version: int
    seconds: float

    def metadata(self) -> dict:
        return {
            "upserted": self.upserted,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "points": self.points,
            "version": self.version,
            "seconds": round(self.seconds, 3),
        }


class VectorStore(Protocol):
    """What the vectors asset and the search service need from a backend."""

    hnsw: HnswSettings

    def sync(
        self,
        dataset: str,
        *,
        model: str,
        dim: int,
        payload_types: dict[str, PayloadType],
        batches: Iterable[VectorBatch],
    ) -> SyncResult: ...

    def search(
        self,
        dataset: str,
        vector: np.ndarray,
        *,
        k: int,
        conditions: tuple[Condition, ...] = (),
        ef: int | None = None,
    ) -> list[Hit]: ...

    def info(self, dataset: str) -> CollectionInfo | None: ...

    def close(self) -> None: ...


def point_id(dataset: str, row_id: Any) -> str:
    """The point's id: stable across machines and rebuilds."""
    return str(uuid.uuid5(uuid.UUID(dataset_id(dataset)), str(row_id)))


def row_hash(model: str, text_sha256: str, payload: dict) -> str:
    """Changes when the model, the text or any payload value does: what makes a point stale."""
    blob = json.dumps([model, text_sha256, payload], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _hit(score: float, payload: dict | None) -> Hit:
    payload = dict(payload or {})
    row_id = payload.pop(ROW_ID_KEY, None)
    payload.pop(ROW_HASH_KEY, None)
    for key in [k for k in payload if k.startswith(BOOL_TWIN)]:
        del payload[key]
    return Hit(id=row_id, score=float(score), payload=payload)


def _check_dim(dataset: str, have: int, want: int, model: str) -> None:
    if have != want:
        raise DimensionMismatch(
            f"the {dataset!r} collection holds {have}-d vectors but embedder {model!r} makes {want}-d ones; "
            "drop the collection to rebuild it with this model (nothing was changed)"
        )


# --------------------------------------------------------------------------------------------- Qdrant Edge


class EdgeVectorStore:
    """Qdrant Edge shards under `root` (normally `LAKEHOUSE_HOME/vectors`): a writer and a reader in one."""

    def __init__(
        self, root: Path, hnsw: HnswSettings | None = None, *, writer_timeout: float = WRITER_LOCK_TIMEOUT
    ):
        self.root = Path(root)
        self.hnsw = hnsw or HnswSettings()
        self.writer_timeout = writer_timeout
        self._readers: dict[str, _EdgeReader] = {}
        self._readers_lock = threading.Lock()

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
                _ensure_payload_indexes(shard, payload_types)
                bools = [c for c, kind in payload_types.items() if kind == "bool"]
                upserted, deleted, unchanged = _apply(shard, dataset, model, batches, bools)
                current = _read_current(base)
                stale = current is None or (current.get("model"), current.get("payload_types")) != (
                    model,
                    payload_types,
                )
                if upserted or deleted or stale:
                    shard.optimize()
                    shard.flush()
                    info = shard.info()
                    points = info.points_count
                    version = self._publish(
                        base, dataset, model, dim, points, payload_types, info.indexed_vectors_count
                    )
                else:
                    points, version = current["points"], current["version"]
            finally:
                shard.close()
            _write_json(base / "work.json", {"dim": dim, "model": model})
            self._prune(base)
        finally:
            lock.release()
        return SyncResult(
            dataset, upserted, deleted, unchanged, points, version, time.perf_counter() - started
        )

    def _open_work(self, base: Path, dataset: str, model: str, dim: int):
        from qdrant_edge import EdgeShard

        work = base / "work"
        if (work / "edge_config.json").exists():
            have = _edge_dim(work)
            _check_dim(dataset, have, dim, model)
            return EdgeShard.load(str(work))
        shutil.rmtree(work, ignore_errors=True)  # a create that died before writing its config
        return EdgeShard.create(str(work), self._edge_config(dim))

    def _edge_config(self, dim: int):
        from qdrant_edge import Distance, EdgeConfig, EdgeOptimizersConfig, EdgeVectorParams, HnswIndexConfig

        h = self.hnsw
        return EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(
                m=h.m,
                ef_construct=h.ef_construct,
                full_scan_threshold=h.full_scan_threshold_kb,
                max_indexing_threads=h.max_indexing_threads,
            ),
            optimizers=EdgeOptimizersConfig(indexing_threshold=h.indexing_threshold_kb),
        )

    def _publish(
        self,
        base: Path,
        dataset: str,
        model: str,
        dim: int,
        points: int,
        payload_types: dict[str, PayloadType],
        indexed: int,
    ) -> int:
        """Copy the flushed work shard to a new version directory, then swap CURRENT to it."""
        versions = base / "versions"
        versions.mkdir(exist_ok=True)
        current = _read_current(base)
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
                "points": points,
                "indexed_vectors": indexed,
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
            if not _process_alive(int(copy.name.split("-")[0])):
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
        current = _read_current(self._dir(dataset))
        if current is None:
            return None
        return CollectionInfo(
            dataset,
            current["dim"],
            current["model"],
            current["points"],
            current["version"],
            current.get("payload_types", {}),
            current.get("indexed_vectors"),
        )

    def search(
        self,
        dataset: str,
        vector: np.ndarray,
        *,
        k: int,
        conditions: tuple[Condition, ...] = (),
        ef: int | None = None,
    ) -> list[Hit]:
        from qdrant_edge import Query, QueryRequest, SearchParams

        request = QueryRequest(
            limit=k,
            query=Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=_edge_filter(conditions),
            params=SearchParams(hnsw_ef=ef) if ef else None,
            with_payload=True,
        )
        with self._reader(dataset).shard() as (shard, dim):
            _check_dim(dataset, dim, len(vector), "the query embedder")
            points = shard.query(request)
        return [_hit(p.score, p.payload) for p in points]

    def _reader(self, dataset: str) -> _EdgeReader:
        with self._readers_lock:
            reader = self._readers.get(dataset)
            if reader is None:
                reader = self._readers[dataset] = _EdgeReader(self._dir(dataset), dataset)
            return reader

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()


class _EdgeHandle:
    """One opened version, closed once it is retired and its last query has returned."""

    def __init__(self, shard, version: int, dim: int, lock: FileLock | None, private: Path | None):
        self.shard, self.version, self.dim = shard, version, dim
        self._lock, self._private = lock, private
        self._users = 0
        self._retired = False
        self._guard = threading.Lock()

    def enter(self) -> None:
        with self._guard:
            self._users += 1

    def leave(self) -> None:
        with self._guard:
            self._users -= 1
            done = self._retired and self._users == 0
        if done:
            self._close()

    def retire(self) -> None:
        with self._guard:
            self._retired = True
            done = self._users == 0
        if done:
            self._close()

    def _close(self) -> None:
        self.shard.close()
        if self._lock is not None:
            self._lock.release()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)


class _EdgeReader:
    """The newest published version of one dataset, swapped when CURRENT changes.

    The first version opens on the first query; later ones open in a background thread (a private copy can
    take seconds) while queries keep running on the version already open, which is retired once the new
    one is in place. A version that fails to open leaves the old one serving and is retried.
    """

    def __init__(self, base: Path, dataset: str):
        self.base = base
        self.dataset = dataset
        self._handle: _EdgeHandle | None = None
        self._checked = 0.0
        self._stamp: tuple[int, int] | None = None
        self._opening = False
        self._closed = False
        self._swap = threading.Lock()

    @contextlib.contextmanager
    def shard(self) -> Iterator[tuple[Any, int]]:
        handle = self._current()
        try:
            yield handle.shard, handle.dim
        finally:
            handle.leave()

    def _current(self) -> _EdgeHandle:
        with self._swap:
            now = time.monotonic()
            if self._handle is None or (not self._opening and now - self._checked >= READER_REFRESH_SECONDS):
                self._checked = now
                wanted = self._newer_version()
                if wanted is not None and self._handle is None:
                    self._handle = self._open(*wanted)
                elif wanted is not None:
                    self._opening = True
                    threading.Thread(target=self._open_in_background, args=wanted, daemon=True).start()
            if self._handle is None:
                raise NotFound(
                    f"dataset {self.dataset!r} has no search index yet: materialize {self.dataset}/vectors"
                )
            self._handle.enter()
            return self._handle

    def _newer_version(self) -> tuple[int, int] | None:
        """(version, dim) of CURRENT when it names another version than the one open; stat-cheap otherwise."""
        try:
            stat = (self.base / "CURRENT").stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        current = _read_current(self.base)
        self._stamp = stamp
        if current is None or (self._handle is not None and self._handle.version == current["version"]):
            return None
        return current["version"], current["dim"]

    def _open_in_background(self, version: int, dim: int) -> None:
        try:
            fresh = self._open(version, dim)
        except Exception as exc:  # keep serving the open version; CURRENT is read again next refresh
            log.warning(
                "could not open %s version %d (%s); still serving the previous one",
                self.dataset,
                version,
                exc,
            )
            fresh = None
        with self._swap:
            self._opening = False
            if fresh is None:
                self._stamp = None
                return
            if self._closed:
                fresh.retire()
                return
            old, self._handle = self._handle, fresh
        if old is not None:
            old.retire()

    def _open(self, version: int, dim: int) -> _EdgeHandle:
        from qdrant_edge import EdgeShard

        directory = self.base / "versions" / f"{version:08d}"
        lock = FileLock(str(directory) + ".lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:  # another process serves this version: never open a held shard, read a copy
            private = self.base / "readers" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            shutil.copytree(directory, private)
            return _EdgeHandle(EdgeShard.load(str(private)), version, dim, None, private)
        try:
            return _EdgeHandle(EdgeShard.load(str(directory)), version, dim, lock, None)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        with self._swap:
            self._closed = True
            if self._handle is not None:
                self._handle.retire()
                self._handle = None
                self._stamp = None


def _apply(
    shard, dataset: str, model: str, batches: Iterable[VectorBatch], bools: list[str]
) -> tuple[int, int, int]:
    """Upsert new and changed rows, delete rows that are gone; returns (upserted, deleted, unchanged)."""
    from qdrant_edge import Point, UpdateOperation

    existing = _edge_row_hashes(shard)
    upserted = unchanged = 0
    for batch in batches:
        points = []
        for row_id, vector, payload, text_hash in zip(
            batch.ids, batch.vectors, batch.payloads, batch.text_hashes, strict=True
        ):
            pid = point_id(dataset, row_id)
            digest = row_hash(model, text_hash, payload)
            if existing.pop(pid, None) == digest:
                unchanged += 1
                continue
            twins = {BOOL_TWIN + c: _bool_word(payload.get(c)) for c in bools}
            points.append(
                Point(
                    id=pid,
                    vector=vector.tolist(),
                    payload={**payload, **twins, ROW_ID_KEY: row_id, ROW_HASH_KEY: digest},
                )
            )
        for start in range(0, len(points), UPSERT_BATCH):
            shard.update(UpdateOperation.upsert_points(points[start : start + UPSERT_BATCH]))
        upserted += len(points)
    gone = list(existing)
    for start in range(0, len(gone), UPSERT_BATCH):
        shard.update(UpdateOperation.delete_points(gone[start : start + UPSERT_BATCH]))
    return upserted, len(gone), unchanged


def _edge_row_hashes(shard) -> dict[str, str]:
    """point id -> row hash of every point in the shard: the shard itself is the record of what it holds."""
    from qdrant_edge import PayloadSelector, ScrollRequest

    hashes: dict[str, str] = {}
    offset = None
    while True:
        records, offset = shard.scroll(
            ScrollRequest(offset=offset, limit=10_000, with_payload=PayloadSelector.Include([ROW_HASH_KEY]))
        )
        for record in records:
            hashes[str(record.id)] = (record.payload or {}).get(ROW_HASH_KEY, "")
        if offset is None:
            return hashes


def _ensure_payload_indexes(shard, payload_types: dict[str, PayloadType]) -> None:
    """Index every filterable column before any point is written (Qdrant builds them incrementally then)."""
    from qdrant_edge import PayloadSchemaType, UpdateOperation

    have = set(shard.info().payload_schema)
    schema = {
        "keyword": PayloadSchemaType.Keyword,
        "integer": PayloadSchemaType.Integer,
        "float": PayloadSchemaType.Float,
        "bool": PayloadSchemaType.Bool,
        "datetime": PayloadSchemaType.Datetime,
    }
    for column, kind in payload_types.items():
        if kind == "bool":
            column, kind = BOOL_TWIN + column, "keyword"
        if column not in have:
            shard.update(UpdateOperation.create_field_index(column, schema[kind]))


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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _read_current(base: Path) -> dict | None:
    try:
        return json.loads((base / "CURRENT").read_text())
    except FileNotFoundError:
        return None


def _write_json(path: Path, value: dict) -> None:
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(staged, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)


# --------------------------------------------------------------------------------------------- Qdrant server


class ServerVectorStore:
    """A Qdrant server through qdrant-client; one collection `<prefix><dataset>` per dataset.

    qdrant-client's local mode (`QdrantClient(path=...)` or `":memory:"`) runs these same calls but has no
    HNSW (brute force, `hnsw_config` ignored): it exercises this code path, it measures nothing.
    """

    def __init__(self, client, hnsw: HnswSettings | None = None, prefix: str = "lakehouse_"):
        self.client = client
        self.hnsw = hnsw or HnswSettings()
        self.prefix = prefix

    def _name(self, dataset: str) -> str:
        return self.prefix + validate_dataset_name(dataset)

    def sync(
        self,
        dataset: str,
        *,
        model: str,
        dim: int,
        payload_types: dict[str, PayloadType],
        batches: Iterable[VectorBatch],
    ) -> SyncResult:
        from qdrant_client import models

        started = time.perf_counter()
        name = self._name(dataset)
        metadata = {"dataset": dataset, "model": model, "payload_types": payload_types}
        if self.client.collection_exists(name):
            _check_dim(dataset, self._dim(name), dim, model)
            self.client.update_collection(name, metadata=metadata)
        else:
            h = self.hnsw
            self.client.create_collection(
                name,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                hnsw_config=models.HnswConfigDiff(
                    m=h.m,
                    ef_construct=h.ef_construct,
                    full_scan_threshold=h.full_scan_threshold_kb,
                    max_indexing_threads=h.max_indexing_threads,
                ),
                optimizers_config=models.OptimizersConfigDiff(indexing_threshold=h.indexing_threshold_kb),
                metadata=metadata,
            )
        schema = {
            "keyword": models.PayloadSchemaType.KEYWORD,
            "integer": models.PayloadSchemaType.INTEGER,
            "float": models.PayloadSchemaType.FLOAT,
            "bool": models.PayloadSchemaType.BOOL,
            "datetime": models.PayloadSchemaType.DATETIME,
        }
        for column, kind in payload_types.items():
            self.client.create_payload_index(name, column, field_schema=schema[kind], wait=True)
        existing = self._row_hashes(name)
        upserted = unchanged = 0
        for batch in batches:
            points = []
            for row_id, vector, payload, text_hash in zip(
                batch.ids, batch.vectors, batch.payloads, batch.text_hashes, strict=True
            ):
                pid = point_id(dataset, row_id)
                digest = row_hash(model, text_hash, payload)
                if existing.pop(pid, None) == digest:
                    unchanged += 1
                    continue
                points.append(
                    models.PointStruct(
                        id=pid,
                        vector=vector.tolist(),
                        payload={**payload, ROW_ID_KEY: row_id, ROW_HASH_KEY: digest},
                    )
                )
            for start in range(0, len(points), UPSERT_BATCH):
                self.client.upsert(name, points=points[start : start + UPSERT_BATCH], wait=True)
            upserted += len(points)
        gone = list(existing)
        for start in range(0, len(gone), UPSERT_BATCH):
            self.client.delete(
                name,
                points_selector=models.PointIdsList(points=gone[start : start + UPSERT_BATCH]),
                wait=True,
            )
        points_count = self.client.count(name, exact=True).count
        return SyncResult(
            dataset, upserted, len(gone), unchanged, points_count, 0, time.perf_counter() - started
        )

    def _dim(self, name: str) -> int:
        vectors = self.client.get_collection(name).config.params.vectors
        return int(vectors.size)

    def _row_hashes(self, name: str) -> dict[str, str]:
        hashes: dict[str, str] = {}
        offset = None
        while True:
            records, offset = self.client.scroll(
                name, limit=10_000, offset=offset, with_payload=[ROW_HASH_KEY], with_vectors=False
            )
            for record in records:
                hashes[str(record.id)] = (record.payload or {}).get(ROW_HASH_KEY, "")
            if offset is None:
                return hashes

    def info(self, dataset: str) -> CollectionInfo | None:
        name = self._name(dataset)
        if not self.client.collection_exists(name):
            return None
        collection = self.client.get_collection(name)
        metadata = getattr(collection.config, "metadata", None) or {}
        return CollectionInfo(
            dataset,
            int(collection.config.params.vectors.size),
            str(metadata.get("model", "")),
            int(collection.points_count or 0),
            0,
            dict(metadata.get("payload_types") or {}),
        )

    def search(
        self,
        dataset: str,
        vector: np.ndarray,
        *,
        k: int,
        conditions: tuple[Condition, ...] = (),
        ef: int | None = None,
    ) -> list[Hit]:
        from qdrant_client import models

        name = self._name(dataset)
        if not self.client.collection_exists(name):
            raise NotFound(f"dataset {dataset!r} has no search index yet: materialize {dataset}/vectors")
        response = self.client.query_points(
            name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=k,
            query_filter=_server_filter(conditions),
            search_params=models.SearchParams(hnsw_ef=ef) if ef else None,
            with_payload=True,
        )
        return [_hit(p.score, p.payload) for p in response.points]

    def close(self) -> None:
        self.client.close()


def _server_filter(conditions: tuple[Condition, ...]):
    if not conditions:
        return None
    from qdrant_client import models

    must = []
    for c in conditions:
        if c.kind == "match":
            must.append(models.FieldCondition(key=c.column, match=models.MatchValue(value=c.value)))
        elif c.kind == "any":
            must.append(models.FieldCondition(key=c.column, match=models.MatchAny(any=list(c.value))))
        elif c.type == "datetime":
            must.append(models.FieldCondition(key=c.column, range=models.DatetimeRange(**c.value)))
        else:
            must.append(models.FieldCondition(key=c.column, range=models.Range(**c.value)))
    return models.Filter(must=must)


def vector_store_from_env(
    home: Path, environ: dict[str, str] | None = None, hnsw: HnswSettings | None = None
) -> VectorStore:
    """A Qdrant server when `QDRANT_URL` is set (`QDRANT_API_KEY` optional), else Edge under `home/vectors`."""
    env = os.environ if environ is None else environ
    if url := env.get("QDRANT_URL"):
        from qdrant_client import QdrantClient

        client = QdrantClient(url=url, api_key=env.get("QDRANT_API_KEY") or None, timeout=60)
        return ServerVectorStore(client, hnsw)
    return EdgeVectorStore(Path(home) / "vectors", hnsw)
