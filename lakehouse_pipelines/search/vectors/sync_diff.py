"""The incremental sync both backends run: upsert new and changed rows, delete the rows that left the dataset.

What a collection holds is read back from the collection itself (point id -> row hash), so a sync needs no
bookkeeping of its own and a crashed one is repaired by the next. The backends differ only in how a point is
written and deleted, which they pass in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse_pipelines.search.vectors.protocol import (
    ROW_HASH_KEY,
    ROW_ID_KEY,
    DiffCounts,
    VectorBatch,
    point_id,
    row_hash,
)

UPSERT_BATCH = 1024


@dataclass(frozen=True)
class NewPoint:
    """A point to write: its id, unit vector, and payload with the internal keys (row id, row hash) set."""

    id: str
    vector: np.ndarray
    payload: dict[str, Any]


def existing_row_hashes(page: Callable[[Any], tuple[list, Any]]) -> dict[str, str]:
    """point id -> row hash of every point, from a backend's scroll (`page(offset) -> (records, next offset)`)."""
    hashes: dict[str, str] = {}
    offset = None
    while True:
        records, offset = page(offset)
        for record in records:
            hashes[str(record.id)] = (record.payload or {}).get(ROW_HASH_KEY, "")
        if offset is None:
            return hashes


def apply_diff(
    dataset: str,
    model: str,
    batches: Iterable[VectorBatch],
    existing: dict[str, str],
    *,
    upsert: Callable[[list[NewPoint]], None],
    delete: Callable[[list[str]], None],
) -> DiffCounts:
    """Bring a collection holding `existing` (point id -> row hash) in line with `batches`."""
    existing = dict(existing)
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
            points.append(NewPoint(pid, vector, {**payload, ROW_ID_KEY: row_id, ROW_HASH_KEY: digest}))
        for start in range(0, len(points), UPSERT_BATCH):
            upsert(points[start : start + UPSERT_BATCH])
        upserted += len(points)
    gone = list(existing)
    for start in range(0, len(gone), UPSERT_BATCH):
        delete(gone[start : start + UPSERT_BATCH])
    return DiffCounts(upserted, len(gone), unchanged)
