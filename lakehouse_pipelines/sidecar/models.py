"""Request and response bodies of the sidecar's HTTP contract (ARCHITECTURE.md, "Sidecar HTTP")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lakehouse_pipelines.search.service import MAX_EF, MAX_QUERY_CHARS
from lakehouse_pipelines.sql.hybrid import MAX_HYBRID_K, MAX_SEARCHES

MAX_SQL_CHARS = 100_000


class ErrorBody(BaseModel):
    error: str


class HybridSearch(BaseModel):
    """A named search whose hits are a relation of the statement: (<id column>, score, match, rank)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=100, ge=1, le=MAX_HYBRID_K, description="hits in the relation")
    filter: dict[str, Any] | None = Field(default=None, description="pre-filter in the index, as in /search")
    ef: int | None = Field(default=None, ge=1, le=MAX_EF)


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="one read-only SQL statement")
    search: dict[str, HybridSearch] | None = Field(
        default=None,
        description=f"up to {MAX_SEARCHES} named searches; each name is a relation of hits in the statement",
    )


class SqlColumn(BaseModel):
    name: str
    type: str = Field(description="the DuckDB type, e.g. BIGINT, VARCHAR, DECIMAL(18,3)")


class SearchSummary(BaseModel):
    dataset: str
    k: int
    hits: int
    model: str
    confidence: dict[str, Any]
    timing_ms: dict[str, float]
    embedding_cached: bool


class SqlResponse(BaseModel):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="true when the result had more rows than the row cap")
    search: dict[str, SearchSummary] | None = Field(
        default=None, description="per named search (hybrid queries only): hits, confidence, timings"
    )


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
    search: str = Field(
        description="loading (the model and indexes are opening), ready, unavailable (warm-up failed, "
        "retried), or off"
    )
