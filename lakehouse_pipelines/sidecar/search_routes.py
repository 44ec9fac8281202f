"""`POST /search` (ARCHITECTURE.md, "Sidecar HTTP"): embed the query, top-k from the dataset's collection.

Embedding (~14 ms on CPU) and the Qdrant query both block, so they run in the thread pool: the event loop keeps
serving other requests meanwhile. The app factory puts a `SearchService` on `app.state.search`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.search import MAX_EF, MAX_K, MAX_QUERY_CHARS, BadSearch, IndexMismatch, SearchService

router = APIRouter()


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=10, ge=1, le=MAX_K)
    filter: dict[str, Any] | None = None
    ef: int | None = Field(default=None, ge=1, le=MAX_EF)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/search")
async def search(body: SearchRequest, request: Request):
    """Top-k rows of `dataset` nearest to `query`, with a confidence that tells a weak match from a strong one."""
    service: SearchService | None = getattr(request.app.state, "search", None)
    if service is None:
        return _error(503, "search is not configured in this sidecar")
    try:
        result = await run_in_threadpool(
            service.search, body.dataset, body.query, k=body.k, filter=body.filter, ef=body.ef
        )
    except NotFound as exc:
        return _error(404, str(exc))
    except BadSearch as exc:
        return _error(400, str(exc))
    except IndexMismatch as exc:
        return _error(409, str(exc))
    except LakehouseError as exc:
        return _error(503, str(exc))
    return result.to_dict()
