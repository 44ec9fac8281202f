"""The vector store's contract: what the vectors asset and the search service ask of a backend, and the
types they exchange. Point ids are uuid5(dataset_id, row id): the same row is the same point on every machine
and every rebuild; each point carries a hash of (model, text, payload) so a sync can tell stale from current.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import numpy as np

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake.keys import dataset_id

ROW_HASH_KEY = "_row"  # internal payload keys, stripped from hits
ROW_ID_KEY = "_id"
# qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), which matches no bool payload: Edge points
# carry a keyword twin "_b_<column>" = "true"/"false" of each bool column, and bool filters go to the twin.
BOOL_TWIN = "_b_"

PayloadType = Literal["keyword", "integer", "float", "bool", "datetime"]
Quantization = Literal["int8", "turbo4"]
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
    """The index parameters, always explicit: Edge's `auto` indexing threads used one core.

    `quantization` keeps a compressed copy of the vectors in RAM: the HNSW graph is built and searched on it
    and the best `oversampling` x k candidates are rescored with the original float vectors. `int8` is
    scalar quantization, `turbo4` Qdrant's TurboQuant at 4 bits a dimension (Qdrant 1.18+): half the RAM
    and 8% less sidecar CPU per `/search` at 200K points (0.91 ms against 0.98, bench/results/serve.md),
    but a build 14-27% longer and recall that depends on the vectors: the same as int8 on the real model's
    (four builds each: unfiltered 0.949-0.972 against 0.950-0.972, the worst one-column filter 0.932-0.940
    against 0.924-0.938), 0.960 against 0.989 on bench_pipeline's clustered ones (bench/results/pipeline.md).
    So int8 stays the default, and turbo4 is there for a collection that must fit in less RAM
    (LAKEHOUSE_VECTOR_QUANTIZATION).

    `payload_m` is the degree of the extra links Qdrant builds per indexed payload value (filterable HNSW);
    `range_links` False leaves numeric and datetime columns without them. With the workers' 11 payload
    indexes those links are most of the build, and also what keeps recall. On the real model's vectors of
    200K workers rows with int8 (bench/results/index_config.md, three runs): payload_m 8 built in 86-92 s,
    recall@10 0.95-0.98 unfiltered and 0.93-0.99 under every one-column filter; payload_m 4 took as long
    (89-90 s: the number of per-value graphs is the cost, not their degree) for less recall (0.88-0.90 at
    worst); no numeric links built in 53-57 s, but a range filter keeping 5% of the rows fell to 0.14-0.17;
    no links at all built in 22-26 s at recall 0.72-0.78 unfiltered and 0.00-0.87 filtered. Quality first:
    `payload_m=8` on every column. `quantization=None`, `payload_m=None` restore Qdrant's defaults. Filters
    on two or more columns: `uses_acorn`.

    `search_ef` 128: a query at 200K points costs 0.37 ms instead of 0.62 at 256 (held GIL, so what a
    sidecar worker can serve), recall@10 0.917 instead of 0.924 (bench/bench_edge_query.py); a request
    can still ask for more with `ef`.

    `segments` is the number of segments Edge's optimizer keeps before it merges the smallest (Qdrant's
    `default_segment_number`; None: Qdrant's own, one per core). An append lands in a segment of its own,
    so with one per core on 2 cores every append was merged into the big segment, rebuilding most of its
    links: 5,000 rows appended to 200K took 80-94 s of HNSW work (a full build: 131-146 s). With 3 (the
    indexed segment, the one appends build up, the appendable one) the same append took 1.2-2.1 s and the
    appends' segment is what later appends merge with; a search then walks one more segment, +15-23% per
    query at 200K points (bench/results/pipeline.md, and three appends in a row in a screening run). Edge
    only: a Qdrant server optimizes in the background and searches its segments in parallel, so its own
    default stands.
    """

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    max_indexing_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Segments under this size stay brute force; 2,000 KB is ~1,300 384-d vectors.
    indexing_threshold_kb: int = 2_000
    segments: int | None = 3
    quantization: Quantization | None = "int8"
    oversampling: float = 3.0
    payload_m: int | None = 8
    range_links: bool = True  # payload links for numeric and datetime columns too (not only keyword, bool)
    search_ef: int = 128  # the query-time ef when a search names none
    # ACORN for searches with at least this many filter conditions (None: never), see `uses_acorn`.
    acorn_conditions: int | None = 2
    # Query-time threads of a reader's shard (None: Edge's own pool); see edge_reader.set_search_threads.
    search_threads: int | None = 1

    def uses_acorn(self, conditions: tuple[Condition, ...]) -> bool:
        """Whether a search with these filter conditions walks neighbours of neighbours (Qdrant's ACORN).

        The payload links are built per value of one column, so they keep a one-column filter's graph
        connected (recall@10 0.93-0.99 on the real model's 200K vectors, bench/results/index_config.md) but
        not an AND of two: "shift and available" (1/8 of the rows) fell to 0.88, 0.996 with ACORN. It costs
        5x per query there (p50 9.7 ms instead of 1.8). Qdrant applies it only
        while the filter keeps under 40% of the points; below its full-scan threshold it scans exactly.
        """
        return self.acorn_conditions is not None and len(conditions) >= self.acorn_conditions


def quantization_named(name: str) -> Quantization | None:
    """A setting's spelling (LAKEHOUSE_VECTOR_QUANTIZATION: int8, turbo4 or none) as `HnswSettings.quantization`."""
    if name == "none":
        return None
    if name in get_args(Quantization):
        return name  # type: ignore[return-value]
    raise LakehouseError(
        f"vector quantization must be {', '.join(get_args(Quantization))} or none, not {name[:40]!r}"
    )


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
class DiffCounts:
    """What a sync changed."""

    upserted: int
    deleted: int
    unchanged: int


@dataclass(frozen=True)
class SyncResult:
    dataset: str
    upserted: int
    deleted: int
    unchanged: int
    points: int
    version: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # where the time went, seconds per phase
    # Seconds until readers could search the new points: sooner than `seconds` when a first build was
    # published before its HNSW index (edge_store._searchable_before_index).
    searchable_after: float | None = None

    @classmethod
    def of(
        cls,
        dataset: str,
        counts: DiffCounts,
        points: int,
        version: int,
        started: float,
        phases: dict[str, float] | None = None,
        searchable_after: float | None = None,
    ) -> SyncResult:
        seconds = time.perf_counter() - started
        return cls(
            dataset,
            counts.upserted,
            counts.deleted,
            counts.unchanged,
            points,
            version,
            seconds,
            phases or {},
            seconds if searchable_after is None else searchable_after,
        )

    def metadata(self) -> dict:
        return {
            "upserted": self.upserted,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "points": self.points,
            "version": self.version,
            "seconds": round(self.seconds, 3),
            "searchable_after_seconds": round(self.searchable_after or self.seconds, 3),
            **{f"{phase.replace(' ', '_')}_seconds": round(value, 3) for phase, value in self.phases.items()},
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
        ids_only: bool = False,
    ) -> list[Hit]:
        """Top-k hits; `ids_only` reads no payload but the row id (a hybrid SQL relation needs no more, and
        reading 1,000 payloads costs more than the search itself)."""
        ...

    def info(self, dataset: str) -> CollectionInfo | None: ...

    def opened(self, dataset: str) -> bool:
        """True when a search of `dataset` would run in this process on an index already open: no I/O,
        no wait (Edge, once its reader is open; never a server)."""
        ...

    def warm(self) -> list[str]:
        """Open whatever a first search would otherwise open (Edge: every published collection's reader);
        return the datasets that have a collection."""
        ...

    def close(self) -> None: ...


def point_id(dataset: str, row_id: Any) -> str:
    """The point's id: stable across machines and rebuilds."""
    return str(uuid.uuid5(_namespace(dataset), str(row_id)))


@functools.lru_cache(maxsize=256)
def _namespace(dataset: str) -> uuid.UUID:
    return uuid.UUID(dataset_id(dataset))  # once per dataset, not once per point


def row_hash(model: str, text_sha256: str, payload: dict) -> str:
    """Changes when the model, the text or any payload value does: what makes a point stale."""
    blob = json.dumps([model, text_sha256, payload], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def hit_from_payload(score: float, payload: dict | None) -> Hit:
    payload = dict(payload or {})
    row_id = payload.pop(ROW_ID_KEY, None)
    payload.pop(ROW_HASH_KEY, None)
    for key in [k for k in payload if k.startswith(BOOL_TWIN)]:
        del payload[key]
    return Hit(id=row_id, score=float(score), payload=payload)


def check_dim(dataset: str, have: int, want: int, model: str) -> None:
    if have != want:
        raise DimensionMismatch(
            f"the {dataset!r} collection holds {have}-d vectors but embedder {model!r} makes {want}-d ones; "
            "drop the collection to rebuild it with this model (nothing was changed)"
        )
