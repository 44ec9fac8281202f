"""A Qdrant server (or cluster) through qdrant-client: one collection `<prefix><dataset>` per dataset.

qdrant-client's local mode (`QdrantClient(path=...)` or `":memory:"`) runs these same calls but has no
HNSW (brute force, `hnsw_config` ignored): it exercises this code path, it measures nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.search.vectors.protocol import (
    ROW_HASH_KEY,
    ROW_ID_KEY,
    CollectionInfo,
    Condition,
    Hit,
    HnswSettings,
    PayloadType,
    Quantization,
    SyncResult,
    VectorBatch,
    check_dim,
    hit_from_payload,
)
from lakehouse_pipelines.search.vectors.sync_diff import apply_diff, existing_row_hashes


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
            check_dim(dataset, self._dim(name), dim, model)
            self.client.update_collection(name, metadata=metadata)
        else:
            h = self.hnsw
            self.client.create_collection(
                name,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                quantization_config=_quantization(h.quantization),
                hnsw_config=models.HnswConfigDiff(
                    m=h.m,
                    ef_construct=h.ef_construct,
                    full_scan_threshold=h.full_scan_threshold_kb,
                    max_indexing_threads=h.max_indexing_threads,
                    payload_m=h.payload_m,
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
        if not self.hnsw.range_links:
            schema |= {
                "integer": models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, enable_hnsw=False),
                "float": models.FloatIndexParams(type=models.FloatIndexType.FLOAT, enable_hnsw=False),
                "datetime": models.DatetimeIndexParams(
                    type=models.DatetimeIndexType.DATETIME, enable_hnsw=False
                ),
            }
        for column, kind in payload_types.items():
            self.client.create_payload_index(name, column, field_schema=schema[kind], wait=True)
        counts = apply_diff(
            dataset,
            model,
            batches,
            existing_row_hashes(
                lambda offset: self.client.scroll(
                    name, limit=10_000, offset=offset, with_payload=[ROW_HASH_KEY], with_vectors=False
                )
            ),
            upsert=lambda points: self.client.upsert(
                name,
                points=[
                    models.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload) for p in points
                ],
                wait=True,
            ),
            delete=lambda ids: self.client.delete(
                name, points_selector=models.PointIdsList(points=ids), wait=True
            ),
        )
        return SyncResult.of(dataset, counts, self.client.count(name, exact=True).count, 0, started)

    def _dim(self, name: str) -> int:
        vectors = self.client.get_collection(name).config.params.vectors
        return int(vectors.size)

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
        ids_only: bool = False,
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
            search_params=models.SearchParams(
                hnsw_ef=ef or self.hnsw.search_ef,
                quantization=models.QuantizationSearchParams(
                    rescore=True, oversampling=self.hnsw.oversampling
                ),
                acorn=models.AcornSearchParams(enable=True) if self.hnsw.uses_acorn(conditions) else None,
            ),
            with_payload=[ROW_ID_KEY] if ids_only else True,
        )
        return [hit_from_payload(p.score, p.payload) for p in response.points]

    def opened(self, dataset: str) -> bool:
        return False  # every search is a network call

    def warm(self) -> list[str]:
        """Nothing opens client-side; the datasets with a collection on the server."""
        names = [c.name for c in self.client.get_collections().collections]
        return [n[len(self.prefix) :] for n in names if n.startswith(self.prefix)]

    def close(self) -> None:
        self.client.close()


def _quantization(kind: Quantization | None):
    from qdrant_client import models

    if kind == "turbo4":
        return models.TurboQuantization(
            turbo=models.TurboQuantQuantizationConfig(bits=models.TurboQuantBitSize.BITS4, always_ram=True)
        )
    if kind == "int8":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        )
    return None


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
