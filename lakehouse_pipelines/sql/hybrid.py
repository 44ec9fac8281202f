"""Hybrid queries: named semantic searches whose hits are relations inside one read-only SQL statement.

    {"sql": "SELECT w.first_name, h.score FROM hits h JOIN workers w USING (worker_id) ORDER BY h.score DESC",
     "search": {"hits": {"dataset": "workers", "query": "forklift driver, night shift", "k": 500}}}

Each named search runs first, through the same `SearchService` as `/search` (so its errors keep their
codes: 404 unknown dataset or no index, 409 model mismatch, 400 bad filter). Its hits become an Arrow table
registered on the request's own DuckDB cursor under the search's name, with the columns

    <id column>  the dataset's id column (the declaration's `embedding.id_column`), typed as in its view
    score        DOUBLE, the cosine score
    match        VARCHAR, 'high' / 'medium' / 'low' under the model's score bands
    rank         INTEGER, 1-based position (1 = best)

The statement then runs through the unchanged path in `run.py`: the same guard, deadline and row cap. A
registered table lives in the cursor's temporary catalog: no other request sees it, it is gone when the
cursor closes, and DuckDB refuses to write to it. Names are checked before any search runs: a registered
table would shadow a dataset's view of the same name, so a name must be a plain identifier that is not a
dataset, a time-travel macro or an SQL keyword.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse_pipelines.declarations import Declarations
from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.lake.keys import DATASET_NAME
from lakehouse_pipelines.search.service import BadSearch, ScoreBands, SearchResult, SearchService, match_level
from lakehouse_pipelines.sql import run
from lakehouse_pipelines.sql.guard import check_read_only
from lakehouse_pipelines.sql.versions import MACROS
from lakehouse_pipelines.sql.views import ViewManager

MAX_SEARCHES = 4  # named searches per statement
MAX_HYBRID_K = 1_000  # hits per named search (`/search` alone: 100)
HIT_COLUMNS = ("score", "match", "rank")
# the DuckDB type of a view's id column -> the Arrow type its relation column gets
_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
}


class BadRelationName(LakehouseError):
    """A search name that is not a fresh plain identifier, or too many searches (HTTP 400)."""


@dataclass(frozen=True)
class NamedSearch:
    dataset: str
    query: str
    k: int = 100
    filter: Any = None
    ef: int | None = None


@dataclass(frozen=True)
class HitRelation:
    name: str
    table: pa.Table
    result: SearchResult

    def summary(self) -> dict:
        """What the JSON answer says about the search: how many hits, how good the best one is, timings."""
        return {
            "dataset": self.result.dataset,
            "k": self.result.k,
            "hits": self.table.num_rows,
            "model": self.result.model,
            "confidence": self.result.confidence,
            "timing_ms": {
                "embed": round(self.result.embed_ms, 3),
                "search": round(self.result.search_ms, 3),
            },
            "embedding_cached": self.result.embedding_cached,
        }


_SEARCH_KEYS = frozenset({"dataset", "query", "k", "filter", "ef"})


def parse_searches(raw: Any) -> dict[str, NamedSearch]:
    """`{"<name>": {"dataset", "query", "k"?, "filter"?, "ef"?}, ...}` from an untyped caller (MCP); ranges are
    the search service's to check."""
    if not isinstance(raw, dict):
        raise BadSearch('search must be an object: {"<name>": {"dataset": ..., "query": ..., "k": ...}}')
    searches = {}
    for name, spec in raw.items():
        shown = str(name)[:64]
        if not isinstance(spec, dict) or not {"dataset", "query"} <= set(spec) or set(spec) - _SEARCH_KEYS:
            raise BadSearch(
                f"search {shown!r} must be an object of dataset, query and optional k, filter, ef"
            )
        k, ef = spec.get("k", 100), spec.get("ef")
        if not isinstance(spec["dataset"], str) or not isinstance(spec["query"], str):
            raise BadSearch(f"search {shown!r}: dataset and query must be text")
        if not _whole(k) or (ef is not None and not _whole(ef)):
            raise BadSearch(f"search {shown!r}: k and ef must be whole numbers")
        searches[name] = NamedSearch(spec["dataset"], spec["query"], k=k, filter=spec.get("filter"), ef=ef)
    return searches


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@functools.cache
def _keywords() -> frozenset[str]:
    """DuckDB keywords that cannot name a table unquoted (everything but its 'unreserved' ones)."""
    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'")
    return frozenset(r[0].lower() for r in rows.fetchall())


def check_names(searches: Mapping[str, NamedSearch], datasets: list[str]) -> None:
    """Refuse too many searches, or a name that is not a plain identifier free in the engine's catalog."""
    if len(searches) > MAX_SEARCHES:
        raise BadRelationName(f"at most {MAX_SEARCHES} named searches per statement (got {len(searches)})")
    for name in searches:
        shown = str(name)[:64]
        if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
            raise BadRelationName(
                f"search name {shown!r} must be 1-63 characters of a-z, 0-9 and _, starting with a letter"
            )
        if name in datasets:
            raise BadRelationName(f"search name {name!r} is the name of a dataset: choose another")
        if name in MACROS:
            raise BadRelationName(f"search name {name!r} is the name of a time-travel macro: choose another")
        if name in _keywords():
            raise BadRelationName(f"search name {name!r} is an SQL keyword: choose another")


def id_column(declarations: Declarations, dataset: str) -> str:
    spec = declarations.get(dataset)
    if spec is None or spec.embedding is None:
        raise NotFound(f"dataset {dataset!r} declares no embedding: it has no id column for a hit relation")
    return spec.embedding.id_column


def search_relations(
    service: SearchService,
    declarations: Declarations,
    views: ViewManager,
    searches: Mapping[str, NamedSearch],
) -> list[HitRelation]:
    """Run every named search (names already checked) and turn each hit list into its relation."""
    relations = []
    for name, search in searches.items():
        result = service.search(
            search.dataset,
            search.query,
            k=search.k,
            filter=search.filter,
            ef=search.ef,
            max_k=MAX_HYBRID_K,
            ids_only=True,
        )
        column = id_column(declarations, search.dataset)
        if column in HIT_COLUMNS:
            raise BadSearch(
                f"dataset {search.dataset!r}: its id column {column!r} is also a hit column's name"
            )
        relations.append(
            HitRelation(name, hits_table(result, column, _id_type(views, search.dataset, column)), result)
        )
    return relations


def hits_table(result: SearchResult, column: str, id_type: pa.DataType) -> pa.Table:
    bands = ScoreBands(result.confidence["weak_below"], result.confidence["strong_above"])
    ids = [h.id for h in result.hits]
    try:
        id_array = pa.array(ids, type=id_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        id_array = pa.array([None if i is None else str(i) for i in ids], type=pa.string()).cast(id_type)
    return pa.table(
        {
            column: id_array,
            "score": pa.array([h.score for h in result.hits], type=pa.float64()),
            "match": pa.array([match_level(h.score, bands) for h in result.hits], type=pa.string()),
            "rank": pa.array(range(1, len(result.hits) + 1), type=pa.int32()),
        }
    )


def _id_type(views: ViewManager, dataset: str, column: str) -> pa.DataType:
    """The Arrow type matching the dataset view's id column, so `JOIN ... USING (<id>)` binds as is."""
    with views.borrowed() as cursor:
        row = cursor.execute(
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
            "AND column_name = ?",
            [dataset, column],
        ).fetchone()
    return _ARROW_TYPES.get(row[0], pa.string()) if row else pa.string()


def run_hybrid_json(
    views: ViewManager,
    service: SearchService,
    declarations: Declarations,
    sql: str,
    searches: Mapping[str, NamedSearch],
    *,
    timeout: float,
    max_rows: int,
) -> dict:
    """The whole hybrid query in one call (MCP): check, search, then the statement; the `/sql` JSON body."""
    check_read_only(sql)
    check_names(searches, views.datasets)
    relations = search_relations(service, declarations, views, searches)
    body = run.run_json(
        views, sql, timeout=timeout, max_rows=max_rows, relations={r.name: r.table for r in relations}
    )
    body["search"] = {r.name: r.summary() for r in relations}
    return body
