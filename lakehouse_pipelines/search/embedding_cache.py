"""Content-hash cache of document vectors, stored in the lake as Parquet segments.

Keyed by (model, prefix, sha256(text)): the same text under another model or task prefix is another vector.
Living in the lake (not on a worker's disk) it survives restarts and is shared by every machine on S3.
Writes are append-only segments named by their content, so two runs adding at once never overwrite each
other; `compact` folds the segments into one when they pile up.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake.storage import LocalStorage, Storage

CACHE_ROOT = "embeddings/_cache"
COMPACT_AFTER_SEGMENTS = 32
# How vector files are written. float32 vectors barely compress (zstd: ~8% smaller for a third of the embed
# step's time at 20K rows) and no one looks them up by value, so no dictionary and no min/max statistics:
# pyarrow otherwise tries a dictionary of the floats in every chunk before giving up on it, and 200K rows
# written in 4,096-row batches took 1.25-1.67 s instead of 0.48-0.51 (same list<float> columns, same file).
VECTOR_PARQUET = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_slug(model: str) -> str:
    """A storage-safe folder name for a model name like `nomic-embed-text:latest` (stable, collision-free)."""
    readable = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", model).strip("-.")[:60] or "model"
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


class EmbeddingCache:
    """Vectors of one (model, prefix) pair, loaded once per run and extended as new texts are embedded."""

    def __init__(self, storage: Storage, model: str, prefix: str, scratch: Path):
        self.storage = storage
        self.model = model
        self.prefix = prefix
        self.scratch = scratch
        self.folder = f"{CACHE_ROOT}/{model_slug(model)}/{_prefix_slug(prefix)}"
        self._index: dict[str, tuple[int, int]] = {}  # text hash -> (chunk, row)
        self._chunks: list[np.ndarray] = []

    def load(self) -> EmbeddingCache:
        """Read every segment of this (model, prefix) into memory."""
        self._index, self._chunks = {}, []
        for info in self.storage.list(self.folder):
            if info.key.endswith(".parquet") and (table := self._read(info.key)) is not None:
                self._remember(table.column("text_sha256").to_pylist(), vectors_of(table.column("vector")))
        return self

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, hashes: Sequence[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """Vectors found, by position in `hashes`, and the positions that are missing."""
        found: dict[int, np.ndarray] = {}
        missing: list[int] = []
        for position, h in enumerate(hashes):
            where = self._index.get(h)
            if where is None:
                missing.append(position)
            else:
                found[position] = self._chunks[where[0]][where[1]]
        return found, missing

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> str | None:
        """Persist new vectors as one segment, then make them visible to `lookup`. Returns the segment key."""
        if not hashes:
            return None
        table = pa.table(
            {"text_sha256": pa.array(hashes, pa.string()), "vector": vector_array(vectors)},
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **VECTOR_PARQUET)
        data = buffer.getvalue()
        key = f"{self.folder}/{hashlib.sha256(data).hexdigest()[:32]}.parquet"
        staged = self.scratch / f"cache-{uuid.uuid4().hex}.parquet"
        try:
            staged.write_bytes(data)
            self.storage.publish(staged, key)
        finally:
            staged.unlink(missing_ok=True)
        self._remember(list(hashes), np.asarray(vectors, dtype=np.float32))
        return key

    def compact(self) -> bool:
        """Fold the segments into one when they pile up; readers see old or new segments, never neither."""
        keys = [i.key for i in self.storage.list(self.folder) if i.key.endswith(".parquet")]
        if len(keys) < COMPACT_AFTER_SEGMENTS or not self._index:
            return False
        hashes = list(self._index)
        vectors = np.stack([self._chunks[c][r] for c, r in self._index.values()])
        self._index, self._chunks = {}, []
        merged = self.add(hashes, vectors)
        for key in keys:
            if key != merged:
                self.storage.delete(key)
        return True

    def _remember(self, hashes: list[str], vectors: np.ndarray) -> None:
        chunk = len(self._chunks)
        self._chunks.append(vectors)
        for row, h in enumerate(hashes):  # a later segment wins: same text, same model, same vector anyway
            self._index[h] = (chunk, row)

    def _read(self, key: str) -> pa.Table | None:
        if isinstance(self.storage, LocalStorage):
            return pq.read_table(self.storage.location(key))
        local = self.scratch / f"cache-read-{uuid.uuid4().hex}.parquet"
        try:
            self.storage.download(key, local)
            return pq.read_table(local)
        except NotFound:  # compacted away between list and read: its vectors are in the merged segment
            return None
        finally:
            local.unlink(missing_ok=True)


def _prefix_slug(prefix: str) -> str:
    return "p-" + hashlib.sha256(prefix.encode()).hexdigest()[:12]


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = array.shape[1] if array.ndim == 2 else 0
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1), pa.float32()), dim)


def vectors_of(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column as a 2-d float32 array, without a Python loop."""
    combined = column.combine_chunks()
    if len(combined) == 0:
        return np.zeros((0, max(combined.type.list_size, 1)), dtype=np.float32)
    flat = combined.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(combined), combined.type.list_size).astype(np.float32, copy=False)
