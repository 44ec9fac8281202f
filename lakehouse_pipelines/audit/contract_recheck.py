"""The registered data against its declared pandera contract, object by object.

Ingest checks the contract on each drop before registering it; the audit checks again what is registered,
so a contract tightened after the data landed (or an object that reached the lake another way) is caught.
Objects are checked one at a time, exactly as drops are, so `unique` means unique within one drop
(incremental exports repeat ids across drops). On S3 each object is downloaded to scratch space first,
because pandera's batch validation reads a local Parquet file; the download is removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import ContractViolation
from lakehouse_pipelines.ingest import contracts
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.storage import LocalStorage

DUCKDB_MEMORY_LIMIT = "256MB"


def contract_problems(lake: Lake, spec: DatasetSpec, manifest: Manifest) -> list[str]:
    """One message per object that breaks `spec.contract` (naming the object), [] when all conform."""
    if not spec.contract:
        return []
    problems = []
    con = engine.connect(memory_limit=DUCKDB_MEMORY_LIMIT, scratch=lake.scratch)
    try:
        for obj in manifest.objects:
            with _local_parquet(lake, obj.key) as path:
                try:
                    contracts.validate(spec.contract, spec.name, manifest.columns, path, con)
                except ContractViolation as exc:
                    problems.append(f"{obj.key} (from {Path(obj.source).name}): {exc}")
    finally:
        con.close()
    return problems


@contextmanager
def _local_parquet(lake: Lake, key: str) -> Iterator[Path]:
    """The object as a local file: itself in a local lake, else a download removed afterwards."""
    if isinstance(lake.storage, LocalStorage):
        yield Path(lake.storage.location(key))
        return
    path = lake.scratch / f"audit-{uuid.uuid4().hex}.parquet"
    try:
        lake.storage.download(key, path)
        yield path
    finally:
        path.unlink(missing_ok=True)
