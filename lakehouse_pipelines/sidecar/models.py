"""Request and response bodies of the sidecar's HTTP contract (ARCHITECTURE.md, "Sidecar HTTP")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_SQL_CHARS = 100_000


class ErrorBody(BaseModel):
    error: str


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="one read-only SQL statement")


class SqlColumn(BaseModel):
    name: str
    type: str = Field(description="the DuckDB type, e.g. BIGINT, VARCHAR, DECIMAL(18,3)")


class SqlResponse(BaseModel):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="true when the result had more rows than the row cap")


class DatasetSummary(BaseModel):
    dataset_id: str
    name: str
    schema_fingerprint: str
    columns: int
    objects: int
    row_count: int
    bytes: int
    version: int
    created_at: str
    updated_at: str


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]


class Health(BaseModel):
    status: str
    datasets: int
