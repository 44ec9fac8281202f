"""The FastAPI app factory: shared state on `app.state`, routers from their own modules, errors as JSON.

`app.state.lake` (Lake), `app.state.views` (ViewManager: the DuckDB engine, a cursor per request),
`app.state.settings` (SidecarSettings), `app.state.search` (SearchService) and `app.state.declarations`
(the dataset declarations, re-read when a file changes) are built once per process; a router added later
reads them from `request.app.state` and parses its body strictly (`route_class=StrictJsonRoute`, bodies.py).
Every error is `{"error": "<message>"}` (validation errors also carry `detail`: locations and messages,
never the submitted values), never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lakehouse_pipelines.datasets import schemas_dir
from lakehouse_pipelines.declarations import Declarations
from lakehouse_pipelines.errors import InvalidName, LakehouseError, NotFound, StorageUnavailable
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.service import SearchService, search_service
from lakehouse_pipelines.settings import LakehouseSettings, SidecarSettings
from lakehouse_pipelines.sidecar import (
    routes_catalog,
    routes_search,
    routes_sql,
    routes_validate,
    routes_versions,
)
from lakehouse_pipelines.sidecar.access_log import AccessLog
from lakehouse_pipelines.sidecar.auth import BearerAuth
from lakehouse_pipelines.sidecar.bodies import safe_text, validation_error
from lakehouse_pipelines.sidecar.body_limit import BodyLimit
from lakehouse_pipelines.sql.formats import NotAcceptable
from lakehouse_pipelines.sql.results import ResultCache
from lakehouse_pipelines.sql.run import DataUnavailable
from lakehouse_pipelines.sql.views import ViewManager

log = logging.getLogger("lakehouse.sidecar")

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (InvalidName, 404),
    (NotAcceptable, 406),
    (DataUnavailable, 503),
    (StorageUnavailable, 503),
    (LakehouseError, 400),
]


def create_app(
    lake: Lake | None = None,
    settings: SidecarSettings | None = None,
    search: SearchService | None = None,
    configured: LakehouseSettings | None = None,
) -> FastAPI:
    """Build the sidecar for `lake` (default: from the environment); views are ready when this returns.

    `search` defaults to the configured embedder and vector store. At start-up a background thread opens
    the model and every collection (`SearchService.start_warming`), so no request pays for them; `/health`
    says `"search": "ready"` once it has.
    """
    configured = configured or LakehouseSettings()
    lake = lake or Lake.open(configured.lake, aws=configured.aws)
    settings = settings or configured.sidecar
    search = search or search_service(configured)
    views = ViewManager.for_sidecar(lake, settings, configured.aws)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        views.start()
        search.start_warming(settings.refresh_interval)
        try:
            yield
        finally:
            views.close()
            search.close()
            for handler in logging.getLogger("lakehouse.access").handlers:
                handler.flush()  # a batched access log (server.BatchedLines): its last lines

    app = FastAPI(
        title="lakehouse sidecar",
        summary="Read-only SQL and semantic search over the lake's datasets, and the catalog.",
        version="1",
        lifespan=lifespan,
    )
    app.state.lake = lake
    app.state.views = views
    # repeated read queries' JSON answers, per views generation (sql/results.py)
    app.state.sql_results = ResultCache(settings.result_cache_mb * 1024**2, views.uncacheable_names())
    app.state.settings = settings
    # Each query runs DuckDB on its own thread: past a few at once they only contend for the cores (and the
    # GIL between batches), which stretched the tail (routes_sql.py).
    app.state.sql_limiter = anyio.CapacityLimiter(settings.concurrency)
    app.state.search = search
    app.state.declarations = Declarations(schemas_dir(configured.lakehouse_schemas))
    # The hot routes first: FastAPI tries each router in turn (6 matches for /search when it came last).
    app.include_router(routes_search.router)
    app.include_router(routes_sql.router)
    app.include_router(routes_catalog.router)
    app.include_router(routes_versions.router)
    app.include_router(routes_validate.router)
    app.add_exception_handler(Exception, _error_response)
    app.add_exception_handler(RequestValidationError, validation_error)  # 422 that never echoes input
    for error_type, _ in _STATUS:
        app.add_exception_handler(error_type, _error_response)
    if settings.token:
        app.add_middleware(BearerAuth, token=settings.token)
    app.add_middleware(BodyLimit)
    app.add_middleware(AccessLog)
    return app


async def _error_response(request: Request, exc: Exception) -> JSONResponse:
    for error_type, status in _STATUS:
        if isinstance(exc, error_type):
            return JSONResponse({"error": safe_text(str(exc))}, status_code=status)
    request_id = getattr(request.state, "request_id", "")
    log.error(
        "unhandled %s in %s %s (request %s)", type(exc).__name__, request.method, request.url.path, request_id
    )
    return JSONResponse({"error": f"internal error (request id {request_id})"}, status_code=500)
