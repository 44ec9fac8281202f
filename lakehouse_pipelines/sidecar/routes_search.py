"""`POST /search` (ARCHITECTURE.md, "Sidecar HTTP"): embed the query, top-k from the dataset's collection.

Embedding (~5-14 ms on CPU) and a Qdrant server query both block, so they run in worker threads: the event
loop keeps serving other requests meanwhile. A query whose embedding is cached, on an Edge index already open,
runs on the event loop itself: an Edge query holds the GIL, so a thread would not free the loop, only add
two thread hand-offs. At most SEARCH_THREADS of them at once, not the default pool's 40: an Edge
query holds the GIL for its whole run and the model already uses every core, so more threads add no
throughput, only GIL contention that starves the event loop (at concurrency 10 the default pool gave a p50
several times higher). The app factory puts a `SearchService` on `app.state.search`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.search.service import (
    MAX_EF,
    MAX_K,
    MAX_QUERY_CHARS,
    BadSearch,
    IndexMismatch,
    SearchService,
)
from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute, safe_text
from lakehouse_pipelines.sidecar.fast_json import FastJSONResponse

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)
SEARCH_THREADS = 2
SEARCH_LIMITER = (
    anyio.CapacityLimiter(SEARCH_THREADS)  # hybrid SQL's searches (`sidecar/hybrid_searches.py`) share it
)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    # strict: `true` or `2.0` is a mistake to report, not a k of 1 or 2
    k: int = Field(default=10, ge=1, le=MAX_K, strict=True)
    filter: dict[str, Any] | None = None
    ef: int | None = Field(default=None, ge=1, le=MAX_EF, strict=True)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": safe_text(message)}, status_code=status)


@router.post("/search")
async def search(body: SearchRequest, request: Request):
    """Top-k rows of `dataset` nearest to `query`, with a confidence that tells a weak match from a strong one."""
    service: SearchService | None = getattr(request.app.state, "search", None)
    if service is None:
        return _error(503, "search is not configured in this sidecar")
    args = (body.dataset, body.query)
    options = {"k": body.k, "filter": body.filter, "ef": body.ef}
    result = await run_search(
        partial(service.search, *args, **options),
        # a cached embedding on an open Edge index: answered on the loop (SearchService.search_if_immediate)
        immediate=partial(service.search_if_immediate, *args, **options),
    )
    if isinstance(result, JSONResponse):
        return result
    return FastJSONResponse(result.to_dict())  # already JSON types: skip jsonable_encoder's deep walk


async def run_search(call, immediate=None):
    """`call()` on the search threads (or `immediate()` on the loop, when it answers without waiting);
    a search error as its JSON answer (404, 400, 409, 503), not raised.

    The one mapping of search errors to statuses: `/search` and hybrid `/sql` answer alike.
    """
    try:
        result = immediate() if immediate is not None else None
        if result is None:
            result = await anyio.to_thread.run_sync(call, limiter=SEARCH_LIMITER)
        return result
    except NotFound as exc:
        return _error(404, str(exc))
    except BadSearch as exc:
        return _error(400, str(exc))
    except IndexMismatch as exc:
        return _error(409, str(exc))
    except LakehouseError as exc:
        return _error(503, str(exc))
