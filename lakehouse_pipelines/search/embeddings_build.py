"""A dataset's embeddings: manifest rows -> text -> cache -> embedder -> one Parquet (id, text_sha256, vector).

Plain Python; the Dagster asset is a thin call to `build_embeddings`. Unchanged rows come from the content-hash
cache, so re-materializing unchanged data embeds nothing and an edited row re-embeds only itself. The output
is content-addressed (same rows, model and texts -> same key) and published before the dataset's pointer
moves to it: readers see the previous embeddings or the new ones, never a partial file.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_pipelines.datasets import DatasetSpec, EmbeddingUnit
from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Catalog, Manifest
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.lake.storage import LocalStorage
from lakehouse_pipelines.search.documents import BATCH_ROWS, WHOLE, RowBatch, iter_rows
from lakehouse_pipelines.search.embedders import Embedder
from lakehouse_pipelines.search.embedding_cache import (
    VECTOR_PARQUET,
    EmbeddingCache,
    model_slug,
    text_sha256,
    vector_array,
    vectors_of,
)

CACHE_FLUSH_ROWS = 8192  # new vectors are persisted at least this often, so a crashed run keeps its work

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EmbeddingsPointer:
    """One unit's current embeddings: where they are and what made them (`key` is empty for an empty unit)."""

    dataset: str
    unit: str  # the unit's partition key
    units: int  # how many units the dataset's rows were split into
    key: str
    model: str
    prefix: str
    dim: int
    rows: int
    manifest_version: int
    created_at: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode() + b"\n"


@dataclass(frozen=True)
class EmbeddingsResult:
    """What a materialization reports: how much was embedded vs reused, by which model, how fast."""

    pointer: EmbeddingsPointer
    rows_embedded: int
    rows_reused: int
    seconds: float

    @property
    def rate(self) -> float:
        """Rows embedded per second of the whole run (reading, hashing and writing included)."""
        return self.rows_embedded / self.seconds if self.seconds > 0 else 0.0

    def metadata(self) -> dict:
        return {
            "rows": self.pointer.rows,
            "rows_embedded": self.rows_embedded,
            "rows_reused": self.rows_reused,
            "model": self.pointer.model,
            "dim": self.pointer.dim,
            "rate_rows_per_s": round(self.rate, 1),
            "seconds": round(self.seconds, 3),
            "key": self.pointer.key,
            "unit": f"{self.pointer.unit} of {self.pointer.units}",
            "manifest_version": self.pointer.manifest_version,
        }


def pointer_key(dataset: str, unit: EmbeddingUnit = WHOLE) -> str:
    return f"embeddings/{validate_dataset_name(dataset)}/units-{unit.count}/{unit.key}.json"


def current_embeddings(lake: Lake, dataset: str, unit: EmbeddingUnit = WHOLE) -> EmbeddingsPointer:
    """A unit's published embeddings; NotFound if that unit was not built yet."""
    try:
        data, _ = lake.storage.get(pointer_key(dataset, unit))
    except NotFound:
        raise NotFound(
            f"dataset {dataset!r} has no embeddings for unit {unit.key} of {unit.count} yet: "
            f"materialize {dataset}/embeddings (partition {unit.key})"
        ) from None
    return EmbeddingsPointer(**json.loads(data))


def manifest_at(lake: Lake, dataset: str, version: int) -> Manifest:
    """The manifest as it was at `version`: what a set of embeddings was computed from."""
    return Manifest.from_json(lake.storage.get(Catalog.version_key(dataset, version))[0])


def build_embeddings(
    lake: Lake,
    spec: DatasetSpec,
    embedder: Embedder,
    *,
    unit: EmbeddingUnit = WHOLE,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> EmbeddingsResult:
    """Embed every current row of one unit of `spec`'s dataset (reusing cached vectors) and publish it.

    Progress (rows done, embedding rate, ETA) goes to `progress` once a batch, so a long unit is never silent.
    """
    if spec.embedding is None:
        raise LakehouseError(f"dataset {spec.name!r} declares no embedding template")
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    manifest = lake.catalog.get(spec.name)
    cache = EmbeddingCache(lake.storage, embedder.model, embedder.document_prefix, lake.scratch).load()
    identity = hashlib.sha256(f"{embedder.model}\x1f{embedder.document_prefix}".encode())
    staged = lake.scratch / f"embeddings-{uuid.uuid4().hex}.parquet"
    writer: pq.ParquetWriter | None = None
    rows = embedded = 0
    dim = 0
    pending = _Pending(cache)
    try:
        expected = max(1, manifest.row_count // unit.count)  # rows are spread evenly by the hash
        for batch in iter_rows(lake, manifest, spec.embedding, batch_rows, unit, payloads=False):
            hashes = [text_sha256(t) for t in batch.texts]
            vectors, new = _vectors_for(batch, hashes, cache, pending, embedder)
            embedded += new
            dim = vectors.shape[1]
            table = _table(batch.ids, hashes, vectors)
            writer = writer or pq.ParquetWriter(staged, table.schema, **VECTOR_PARQUET)
            writer.write_table(table)
            for row_id, h in zip(batch.ids, hashes, strict=True):
                identity.update(f"{row_id}\x1f{h}\x1e".encode())
            rows += len(hashes)
            pending.flush_if_large()
            say(_progress_line(spec.name, unit, rows, expected, embedded, time.perf_counter() - started))
        pending.flush()
        cache.compact()
        if writer is None and unit.count == 1:
            raise LakehouseError(f"dataset {spec.name!r} has no rows to embed")
        key = ""  # a unit the hash gave no rows: nothing to publish
        if writer is not None:
            writer.close()
            writer = None
            key = f"embeddings/{spec.name}/{model_slug(embedder.model)}/{identity.hexdigest()[:32]}.parquet"
            lake.storage.publish(staged, key)
        else:
            dim = embedder.dim
    finally:
        if writer is not None:
            writer.close()
        staged.unlink(missing_ok=True)
    pointer = EmbeddingsPointer(
        dataset=spec.name,
        unit=unit.key,
        units=unit.count,
        key=key,
        model=embedder.model,
        prefix=embedder.document_prefix,
        dim=dim,
        rows=rows,
        manifest_version=manifest.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _move_pointer(lake, pointer)
    return EmbeddingsResult(pointer, embedded, rows - embedded, time.perf_counter() - started)


def embed_dataset(
    lake: Lake, spec: DatasetSpec, embedder: Embedder, *, progress: Progress | None = None
) -> list[EmbeddingsResult]:
    """Every embedding unit of the dataset in turn, in this process (what the Dagster partitions spread)."""
    if spec.embedding is None:
        raise LakehouseError(f"dataset {spec.name!r} declares no embedding template")
    return [
        build_embeddings(lake, spec, embedder, unit=u, progress=progress) for u in spec.embedding.all_units()
    ]


def iter_embeddings(
    lake: Lake, pointer: EmbeddingsPointer, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[list, list[str], np.ndarray]]:
    """(ids, text hashes, vectors) of published embeddings, in id order, `batch_rows` at a time."""
    if not pointer.key:
        return
    path = lake.scratch / f"embeddings-read-{uuid.uuid4().hex}.parquet"
    local = isinstance(lake.storage, LocalStorage)
    try:
        if local:
            source = lake.storage.location(pointer.key)
        else:
            lake.storage.download(pointer.key, path)
            source = str(path)
        for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_rows):
            yield (
                batch.column("id").to_pylist(),
                batch.column("text_sha256").to_pylist(),
                vectors_of(pa.chunked_array([batch.column("vector")])),
            )
    finally:
        path.unlink(missing_ok=True)


def _progress_line(
    dataset: str, unit: EmbeddingUnit, rows: int, expected: int, embedded: int, seconds: float
) -> str:
    """`workers unit 03/08: 12,288/62,500 rows (19.7%), 12,288 embedded, 151 rows/s, ETA 5m18s`."""
    rate = rows / seconds if seconds > 0 else 0.0
    left = max(0, expected - rows)
    eta = f"{int(left / rate // 60)}m{int(left / rate % 60):02d}s" if rate > 0 and left else "0m00s"
    share = min(100.0, 100 * rows / expected)
    return (
        f"{dataset} unit {unit.key}/{unit.count:02d}: {rows:,}/~{expected:,} rows ({share:.1f}%), "
        f"{embedded:,} embedded, {rate:,.0f} rows/s, ETA {eta}"
    )


class _Pending:
    """Vectors embedded this run and not yet persisted to the cache, visible to later batches meanwhile."""

    def __init__(self, cache: EmbeddingCache):
        self.cache = cache
        self.vectors: dict[str, np.ndarray] = {}

    def flush_if_large(self) -> None:
        if len(self.vectors) >= CACHE_FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.vectors:
            self.cache.add(list(self.vectors), np.stack(list(self.vectors.values())))
            self.vectors = {}


def _vectors_for(
    batch: RowBatch, hashes: list[str], cache: EmbeddingCache, pending: _Pending, embedder: Embedder
) -> tuple[np.ndarray, int]:
    """The batch's vectors in row order, embedding only texts neither the cache nor this run has seen."""
    found, missing = cache.lookup(hashes)
    to_embed: dict[str, str] = {}
    for position in missing:
        h = hashes[position]
        if h in pending.vectors:
            found[position] = pending.vectors[h]
        else:
            to_embed.setdefault(h, batch.texts[position])
    if to_embed:
        # One call for the whole batch: the local model sorts its input by length before padding, so a
        # larger call pads less (Ollama's embedder splits it into its own request batches).
        vectors = embedder.embed_documents(list(to_embed.values()))
        pending.vectors.update(zip(to_embed, vectors, strict=True))
        for position in missing:
            found.setdefault(position, pending.vectors[hashes[position]])
    stacked = np.stack([found[i] for i in range(len(hashes))]).astype(np.float32, copy=False)
    new_rows = sum(1 for p in missing if hashes[p] in to_embed)
    return stacked, new_rows


def _table(ids: list, hashes: list[str], vectors: np.ndarray) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids), "text_sha256": pa.array(hashes, pa.string()), "vector": vector_array(vectors)}
    )


def _move_pointer(lake: Lake, pointer: EmbeddingsPointer) -> None:
    """Point the dataset at `pointer` unless it already points at the same embeddings (no needless write)."""
    key = pointer_key(pointer.dataset, EmbeddingUnit(int(pointer.unit), pointer.units))
    try:
        data, _ = lake.storage.get(key)
        current = json.loads(data)
        if current.get("key") == pointer.key and current.get("manifest_version") == pointer.manifest_version:
            return
    except NotFound:
        pass
    lake.storage.put(key, pointer.to_json())
