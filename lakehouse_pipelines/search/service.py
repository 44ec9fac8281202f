"""Semantic search: query -> embedding (LRU-cached) -> top-k from the dataset's collection, with filters.

**Confidence.** Cosine scores are not probabilities, and a nearest neighbour always exists: "dental
hygienist" over a manufacturing workforce still returns five workers. What tells a real match from none is
the absolute score of the best hit under the model that made it. Each model gets two bands, measured on the
generated workers data (bench/results/search.md): with all-MiniLM-L6-v2, role queries score 0.66-0.73 at
the top while unrelated jobs ("dental hygienist", "pastry chef", "software engineer") top out at 0.29-0.42.
So `level` is `high` when the best score is at or above `strong_above`, `low` below `weak_below`, `medium`
between; `score` maps the best score linearly from `weak_below - 0.1` (0) to `strong_above` (1). Each hit
also carries its own `match` level. Bands for models not measured here (nomic-embed-text) are estimates and
can be overridden with `LAKEHOUSE_SEARCH_BANDS="weak,strong"`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakehouse_pipelines.errors import InvalidName, LakehouseError, NotFound
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.search.embedders import (
    LOCAL_INT8_MODEL_NAME,
    LOCAL_MODEL_NAME,
    Embedder,
    build_embedder,
)
from lakehouse_pipelines.search.vectors import open_vector_store
from lakehouse_pipelines.search.vectors.protocol import (
    Condition,
    Hit,
    PayloadType,
    VectorStore,
)
from lakehouse_pipelines.settings import LakehouseSettings

log = logging.getLogger("lakehouse.search")

MAX_K = 100
MAX_EF = 4096
MAX_QUERY_CHARS = 2000
MAX_ANY_VALUES = 100
RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})
WARM_RETRY_SECONDS = 30.0


class BadSearch(LakehouseError):
    """A search request that cannot be run as asked (HTTP 400): empty query, bad k, bad filter."""


class IndexMismatch(LakehouseError):
    """The collection was built by another model than the one embedding queries (HTTP 409)."""


@dataclass(frozen=True)
class ScoreBands:
    weak_below: float
    strong_above: float


SCORE_BANDS: dict[str, ScoreBands] = {
    LOCAL_MODEL_NAME: ScoreBands(weak_below=0.45, strong_above=0.55),
    # int8: role queries top at 0.51-0.75, no-match queries at 0.38-0.41 (bench/results/encoder.md)
    LOCAL_INT8_MODEL_NAME: ScoreBands(weak_below=0.45, strong_above=0.55),
    "nomic-embed-text": ScoreBands(weak_below=0.50, strong_above=0.62),  # estimate, not measured here
}
DEFAULT_BANDS = ScoreBands(weak_below=0.45, strong_above=0.55)


def bands_for(model: str, override: str = "") -> ScoreBands:
    """The model's measured bands, or `override` ("weak,strong", LAKEHOUSE_SEARCH_BANDS)."""
    if override:
        weak, _, strong = override.partition(",")
        try:
            return ScoreBands(float(weak), float(strong))
        except ValueError:
            raise LakehouseError(
                f"LAKEHOUSE_SEARCH_BANDS must be two numbers 'weak,strong', not {override[:40]!r}"
            ) from None
    return SCORE_BANDS.get(model.split(":")[0], DEFAULT_BANDS)


def match_level(score: float, bands: ScoreBands) -> str:
    if score >= bands.strong_above:
        return "high"
    if score < bands.weak_below:
        return "low"
    return "medium"


def confidence(hits: list[Hit], bands: ScoreBands) -> dict:
    """How much the best hit is worth (see the module docstring for how it is computed)."""
    top = hits[0].score if hits else 0.0
    floor = bands.weak_below - 0.1
    score = min(1.0, max(0.0, (top - floor) / (bands.strong_above - floor)))
    return {
        "level": match_level(top, bands) if hits else "low",
        "score": round(score, 3),
        "top_score": round(top, 4),
        "weak_below": bands.weak_below,
        "strong_above": bands.strong_above,
    }


def parse_filter(raw: Any, payload_types: dict[str, PayloadType]) -> tuple[Condition, ...]:
    """`{"state": "IL", "role": ["Welder", "Electrician"], "hourly_rate": {"gte": 20, "lt": 40}}` -> conditions.

    A scalar is equality, a list is "any of", an object of gt/gte/lt/lte is a range. Only payload columns
    can be filtered, and values must fit the column's type: a bad filter is a 400 that names the column.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadSearch("filter must be an object of column: value")
    conditions = []
    for column, value in raw.items():
        kind = payload_types.get(column)
        if kind is None:
            allowed = ", ".join(sorted(payload_types)) or "none"
            raise BadSearch(f"cannot filter on {str(column)[:80]!r}: filterable columns are {allowed}")
        conditions.append(_condition(column, value, kind))
    return tuple(conditions)


def _condition(column: str, value: Any, kind: PayloadType) -> Condition:
    if isinstance(value, dict):
        if not value or not set(value) <= RANGE_KEYS:
            raise BadSearch(f"filter on {column!r}: a range is an object of gt, gte, lt, lte")
        if kind not in ("integer", "float", "datetime"):
            raise BadSearch(f"filter on {column!r}: ranges work on numbers and dates, not {kind}")
        bound_kind = "datetime" if kind == "datetime" else "float"
        bounds = {op: _check_value(column, bound, bound_kind, bound=True) for op, bound in value.items()}
        return Condition(column, "range", bounds, kind)
    if isinstance(value, list):
        if not value or len(value) > MAX_ANY_VALUES:
            raise BadSearch(f"filter on {column!r}: give 1 to {MAX_ANY_VALUES} values")
        if kind not in ("keyword", "integer"):
            raise BadSearch(f"filter on {column!r}: a list of values works on text and integer columns")
        return Condition(column, "any", tuple(_check_value(column, item, kind) for item in value), kind)
    if kind == "float":
        raise BadSearch(f"filter on {column!r}: use a range ({{'gte': ..., 'lte': ...}}) on a float column")
    return Condition(column, "match", _check_value(column, value, kind), kind)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Real UTC offsets, as for timestamps in CSVs (inference.py): -12:00 to +14:00, whole minutes.
MIN_OFFSET, MAX_OFFSET = dt.timedelta(hours=-12), dt.timedelta(hours=14)


def _check_value(column: str, value: Any, kind: str, *, bound: bool = False) -> Any:
    """`value` as the store gets it, once it fits the column's payload type and range; else a BadSearch.

    A datetime range `bound` is passed on in canonical ISO form (the store parses it); a datetime to match
    is passed on as given (the store compares the text).

    Qdrant Edge and the Qdrant models check none of this: NaN panics inside Edge (a plain-text 500), an
    integer beyond int64 or a lone surrogate fails to convert, a bad datetime fails to parse. Messages
    name the column and the problem, never the value.
    """
    expected = {
        "keyword": isinstance(value, str),
        "datetime": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind]
    if not expected:
        article = "an" if kind == "integer" else "a"
        raise BadSearch(f"filter on {column!r}: not {article} {kind} value ({_type_name(value)})")
    if isinstance(value, str) and not _valid_unicode(value):
        raise BadSearch(f"filter on {column!r}: text with invalid Unicode (a lone surrogate)")
    if kind == "datetime":
        canonical = _datetime_bound(column, value)
        return canonical if bound else value
    if kind == "integer" and not INT64_MIN <= value <= INT64_MAX:
        raise BadSearch(f"filter on {column!r}: an integer outside the 64-bit range")
    if kind == "float":  # a range bound on a number column, compared as a 64-bit float
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise BadSearch(f"filter on {column!r}: not a finite number")
        return number
    return value


def _datetime_bound(column: str, text: str) -> str:
    """An ISO 8601 date or date-time as the canonical text the store parses (`2026-01-01T00:00:00+00:00`)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadSearch(
            f"filter on {column!r}: not an ISO date or date-time (e.g. 2026-01-31T08:00:00Z)"
        ) from None
    offset = value.utcoffset()
    if offset is not None and not (
        MIN_OFFSET <= offset <= MAX_OFFSET and offset % dt.timedelta(minutes=1) == dt.timedelta(0)
    ):
        raise BadSearch(f"filter on {column!r}: a UTC offset must be whole minutes from -12:00 to +14:00")
    return value.isoformat()


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_name(value: Any) -> str:
    """What a JSON value is, for an error message that never echoes the value itself."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a bool"), (int, "an integer"), (float, "a number"), (str, "text")):
        if isinstance(value, kind):
            return name
    return (
        "a list" if isinstance(value, list | tuple) else "an object" if isinstance(value, dict) else "a value"
    )


class QueryCache:
    """LRU of query embeddings: the Go lakehouse's ~50 ms end to end was almost all query embedding."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def peek(self, model: str, text: str) -> np.ndarray | None:
        """The cached embedding (counted as a hit), or None, embedding nothing."""
        key = (model, text)
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return vector

    def get(self, model: str, text: str, embed: Callable[[str], np.ndarray]) -> tuple[np.ndarray, bool]:
        key = (model, text)
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return vector, True
            self.misses += 1
        vector = np.asarray(embed(text), dtype=np.float32)
        vector.setflags(write=False)
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return vector, False


@dataclass(frozen=True)
class SearchResult:
    dataset: str
    query: str
    k: int
    model: str
    hits: list[Hit]
    confidence: dict
    embedding_cached: bool
    embed_ms: float
    search_ms: float

    def to_dict(self) -> dict:
        bands = ScoreBands(self.confidence["weak_below"], self.confidence["strong_above"])
        return {
            "dataset": self.dataset,
            "query": self.query,
            "k": self.k,
            "model": self.model,
            "hits": [
                {
                    "id": h.id,
                    "score": round(h.score, 6),
                    "match": match_level(h.score, bands),
                    "payload": h.payload,
                }
                for h in self.hits
            ],
            "confidence": self.confidence,
            "timing_ms": {"embed": round(self.embed_ms, 3), "search": round(self.search_ms, 3)},
            "embedding_cached": self.embedding_cached,
        }


class SearchService:
    """What the sidecar's /search calls: thread-safe, blocking (run it in a worker thread)."""

    def __init__(
        self, store: VectorStore, embedder: Embedder, *, cache_size: int = 1024, bands_override: str = ""
    ):
        self.store = store
        self.embedder = embedder
        self.cache = QueryCache(cache_size)
        self.bands = bands_for(embedder.model, bands_override)
        self.readiness = "loading"  # what /health reports: loading, ready, or unavailable (warm-up failed)
        self._model_warm = False
        self._stop_warming = threading.Event()
        self._warmer: threading.Thread | None = None

    def warm(self) -> list[str]:
        """Open every collection and, once there is one, the model: what a first search would otherwise pay.

        Returns the datasets that have a collection. Without one the model is left unloaded (a sidecar with
        nothing to search doesn't pay for it) and readiness is still `ready`: every search would be a 404.
        """
        datasets = self.store.warm()
        if datasets and not self._model_warm:
            self.embedder.embed_query("warm up the model")  # loads it and runs it once; not cached
            self._model_warm = True
        self.readiness = "ready"
        return datasets

    def start_warming(self, interval: float = 2.0) -> None:
        """`warm()` in a background thread now, then every `interval` seconds (a collection published later
        opens before its first search) until `close()`. A failed warm-up is logged and retried."""
        if self._warmer is not None:
            return
        self._stop_warming.clear()

        def loop() -> None:
            while True:
                try:
                    self.warm()
                    wait = interval
                except Exception as exc:  # e.g. Ollama unreachable: report it, keep serving, try again later
                    if self.readiness != "unavailable":
                        log.warning("search warm-up failed: %s", str(exc)[:200])
                    self.readiness = "unavailable"
                    wait = max(interval, WARM_RETRY_SECONDS)
                if self._stop_warming.wait(wait):
                    return

        self._warmer = threading.Thread(target=loop, name="lakehouse-search-warm-up", daemon=True)
        self._warmer.start()

    def close(self) -> None:
        """Stop warming; release the store's handles (Edge readers hold a lock on the version they serve)."""
        self._stop_warming.set()
        if self._warmer is not None:
            self._warmer.join(timeout=30)
            self._warmer = None
        self.store.close()

    def search(
        self,
        dataset: str,
        query: str,
        *,
        k: int = 10,
        filter: Any = None,
        ef: int | None = None,
        max_k: int = MAX_K,
        ids_only: bool = False,
    ) -> SearchResult:
        """Top-k hits; `max_k` is the caller's cap on k (`/search`: MAX_K; a hybrid SQL relation: more), and
        `ids_only` leaves the payloads out of the hits (a hybrid relation joins the rows in SQL instead)."""
        text, conditions = self._plan(dataset, query, k=k, filter=filter, ef=ef, max_k=max_k)
        started = time.perf_counter()
        vector, cached = self.cache.get(self.embedder.model, text, self.embedder.embed_query)
        return self._run(dataset, text, vector, cached, started, k, conditions, ef, ids_only)

    def search_if_immediate(
        self,
        dataset: str,
        query: str,
        *,
        k: int = 10,
        filter: Any = None,
        ef: int | None = None,
        max_k: int = MAX_K,
        ids_only: bool = False,
    ) -> SearchResult | None:
        """`search` when it can run at once on the calling thread, else None (then call `search`).

        At once means: the query's embedding is cached and the store answers in process from an index it
        has open (Edge): no model, no network, no file copy. An Edge query holds the GIL for its whole run,
        so running it in a worker thread would not let the event loop run meanwhile: the two thread
        hand-offs are all a thread adds. Errors are raised as by `search`.
        """
        if not self.store.opened(dataset):
            return None
        text, conditions = self._plan(dataset, query, k=k, filter=filter, ef=ef, max_k=max_k)
        started = time.perf_counter()
        vector = self.cache.peek(self.embedder.model, text)
        if vector is None:
            return None
        return self._run(dataset, text, vector, True, started, k, conditions, ef, ids_only)

    def _plan(
        self, dataset: str, query: str, *, k: int, filter: Any, ef: int | None, max_k: int
    ) -> tuple[str, tuple[Condition, ...]]:
        """The request checked against the collection: the query's text and the filter's conditions."""
        try:
            validate_dataset_name(dataset)
        except InvalidName:
            raise NotFound(f"unknown dataset {str(dataset)[:80]!r}") from None
        text = (query or "").strip()
        if not text:
            raise BadSearch("query must not be empty")
        if not _valid_unicode(text):
            raise BadSearch("query must be valid Unicode text (it holds a lone surrogate)")
        if len(text) > MAX_QUERY_CHARS:
            raise BadSearch(f"query is longer than {MAX_QUERY_CHARS} characters")
        if not 1 <= k <= max_k:
            raise BadSearch(f"k must be between 1 and {max_k}")
        if ef is not None and not 1 <= ef <= MAX_EF:
            raise BadSearch(f"ef must be between 1 and {MAX_EF}")
        info = self.store.info(dataset)
        if info is None:
            raise NotFound(f"dataset {dataset!r} has no search index: materialize {dataset}/vectors")
        if info.model and info.model != self.embedder.model:
            raise IndexMismatch(
                f"the {dataset!r} index was built with {info.model!r}, queries are embedded with "
                f"{self.embedder.model!r}: re-materialize {dataset}/embeddings and {dataset}/vectors"
            )
        return text, parse_filter(filter, info.payload_types)

    def _run(
        self,
        dataset: str,
        text: str,
        vector: np.ndarray,
        cached: bool,
        started: float,
        k: int,
        conditions: tuple[Condition, ...],
        ef: int | None,
        ids_only: bool,
    ) -> SearchResult:
        embedded = time.perf_counter()
        try:
            hits = self.store.search(dataset, vector, k=k, conditions=conditions, ef=ef, ids_only=ids_only)
        except BaseException as exc:
            # A Rust panic in Qdrant Edge is a BaseException (PyO3's PanicException): not even the app's
            # catch-all handler would see it. Validation above is what keeps inputs from causing one.
            if type(exc).__name__ != "PanicException":
                raise
            raise LakehouseError(f"the {dataset!r} index failed on this search") from None
        done = time.perf_counter()
        return SearchResult(
            dataset=dataset,
            query=text,
            k=k,
            model=self.embedder.model,
            hits=hits,
            confidence=confidence(hits, self.bands),
            embedding_cached=cached,
            embed_ms=(embedded - started) * 1000,
            search_ms=(done - embedded) * 1000,
        )


def search_service(settings: LakehouseSettings) -> SearchService:
    """The sidecar's and MCP's search: the configured embedder and vector store, the configured score bands."""
    return SearchService(
        open_vector_store(settings.lake.home, settings.vectors),
        build_embedder(settings.embedder),
        bands_override=settings.lakehouse_search_bands,
    )
