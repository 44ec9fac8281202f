"""The vectors step of a dataset's chain: its embedding units' vectors and the rows' payloads -> its collection.

Thin over the vector store's incremental sync: this module only decides what the collection should hold.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Full, Queue

from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.documents import iter_rows
from lakehouse_pipelines.search.embeddings_build import (
    EmbeddingsPointer,
    current_embeddings,
    iter_embeddings,
    manifest_at,
)
from lakehouse_pipelines.search.vectors.protocol import (
    PAYLOAD_TYPES,
    PayloadType,
    SyncResult,
    VectorBatch,
    VectorStore,
)


def payload_types(lake: Lake, spec: DatasetSpec, version: int | None = None) -> dict[str, PayloadType]:
    """Index type of each payload column, from the manifest's logical types."""
    if spec.embedding is None:
        return {}
    manifest = lake.catalog.get(spec.name) if version is None else manifest_at(lake, spec.name, version)
    types = {c.name: c.type for c in manifest.columns}
    return {column: PAYLOAD_TYPES[types[column]] for column in spec.embedding.payload if column in types}


def index_dataset(lake: Lake, spec: DatasetSpec, store: VectorStore) -> SyncResult:
    """The vectors step: every unit's published embeddings and payloads -> the collection, incrementally.

    Each unit's rows and embeddings are read from the manifest version that unit was built from, both in id
    order, and zipped in lockstep, so memory stays at one batch whatever the dataset's size. A unit still on
    an older version contributes its older rows until it is rebuilt: the collection never loses a row to a
    unit that has not run yet.
    """
    if spec.embedding is None:
        raise LakehouseError(f"dataset {spec.name!r} declares no embedding template")
    pointers = [current_embeddings(lake, spec.name, unit) for unit in spec.embedding.all_units()]
    models = {(p.model, p.dim) for p in pointers}
    if len(models) > 1:
        raise LakehouseError(
            f"dataset {spec.name!r}: its embedding units were built by different models "
            f"({', '.join(sorted(m for m, _ in models))}); re-materialize {spec.name}/embeddings"
        )
    newest = max(p.manifest_version for p in pointers)
    return store.sync(
        spec.name,
        model=pointers[0].model,
        dim=pointers[0].dim,
        payload_types=payload_types(lake, spec, newest),
        batches=prefetched(batch for pointer in pointers for batch in _vector_batches(lake, spec, pointer)),
    )


def prefetched(batches: Iterator[VectorBatch], depth: int = 2) -> Iterator[VectorBatch]:
    """`batches` produced by a thread of their own while the caller writes the previous ones.

    Reading (DuckDB, Parquet) releases the GIL, so it overlaps the upserts instead of adding to them.
    """
    done = object()
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand `item` over unless the consumer has gone away (then give up)."""
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    producer = threading.Thread(target=produce, name="vector-batches", daemon=True)
    producer.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join(timeout=10)


def _vector_batches(lake: Lake, spec: DatasetSpec, pointer: EmbeddingsPointer) -> Iterator[VectorBatch]:
    manifest = manifest_at(lake, spec.name, pointer.manifest_version)
    unit = spec.embedding.unit(pointer.unit)
    rows = iter_rows(lake, manifest, spec.embedding, unit=unit, texts=False)
    vectors = iter_embeddings(lake, pointer)
    pending_rows: list = []
    for ids, hashes, matrix in vectors:
        while len(pending_rows) < len(ids):
            batch = next(rows, None)
            if batch is None:
                break
            pending_rows.extend(zip(batch.ids, batch.payloads, strict=True))
        taken, pending_rows = pending_rows[: len(ids)], pending_rows[len(ids) :]
        if [row_id for row_id, _ in taken] != ids:
            raise LakehouseError(
                f"dataset {spec.name!r}: embeddings and rows disagree; re-materialize embeddings"
            )
        yield VectorBatch(ids=ids, vectors=matrix, payloads=[p for _, p in taken], text_hashes=hashes)
