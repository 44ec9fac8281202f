"""`POST /sql`: one read query over the dataset views, as JSON, CSV or an Arrow IPC stream.

With `search`, named semantic searches run first and their hits are relations of the statement
(`sql/hybrid.py`, `sidecar/hybrid_searches.py`); the statement still goes through the same guard, deadline and cap.
"""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute
from lakehouse_pipelines.sidecar.fast_json import FastJSONResponse
from lakehouse_pipelines.sidecar.hybrid_searches import hit_relations
from lakehouse_pipelines.sidecar.models import ErrorBody, SqlRequest, SqlResponse
from lakehouse_pipelines.sql import formats
from lakehouse_pipelines.sql import run as query
from lakehouse_pipelines.sql.guard import check_read_only
from lakehouse_pipelines.sql.results import ResultCache, no_cache

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)

_RESPONSES = {
    200: {
        "description": "the result; CSV and Arrow IPC are streamed",
        "content": {formats.CSV: {}, formats.ARROW: {}},
    },
    400: {
        "model": ErrorBody,
        "description": "bad SQL, unknown table or version, not a read query, time limit; bad search name or filter",
    },
    404: {"model": ErrorBody, "description": "a named search's dataset is unknown or has no search index"},
    406: {"model": ErrorBody, "description": "no acceptable output format"},
    409: {"model": ErrorBody, "description": "a named search's index was built by another model"},
    503: {"model": ErrorBody, "description": "a dataset's files (or a search index) could not be read"},
}


@router.post("/sql", response_model=SqlResponse, responses=_RESPONSES, tags=["sql"])
async def run_sql(body: SqlRequest, request: Request):
    """Run one read query (SELECT, WITH, EXPLAIN, DESCRIBE, SUMMARIZE) over the datasets' views.

    JSON holds at most the row cap and says `truncated`; `Accept: text/csv` or
    `application/vnd.apache.arrow.stream` streams up to the (larger) stream cap instead. Every version of
    a dataset is `version('<name>', N)` / `as_of('<name>', TIMESTAMP '...')`; `search` names semantic
    searches whose hits are relations `(<id column>, score, match, rank)` of this statement only.
    """
    media_type = formats.negotiate(request.headers.get("accept"))
    check_read_only(body.sql)  # cheap: refuse before taking a thread (or running a search)
    state = request.app.state
    limits = state.settings
    relations, summaries = None, None
    if body.search:
        found = await hit_relations(request, body.search)
        if isinstance(found, JSONResponse):
            return found
        relations = {r.name: r.table for r in found}
        summaries = {r.name: r.summary() for r in found}
    if media_type == formats.JSON:
        results: ResultCache = state.sql_results
        cacheable = relations is None and results.cacheable(body.sql)
        generation = state.views.generation  # read before the query runs (sql/results.py)
        fresh = no_cache(request)  # `Cache-Control: no-cache`: run it (and keep the new answer)
        if cacheable and not fresh and (answer := results.get(body.sql, generation)) is not None:
            return Response(answer, media_type=formats.JSON, headers={"x-result-cached": "true"})
        result = await anyio.to_thread.run_sync(
            partial(
                query.run_json,
                state.views,
                body.sql,
                timeout=limits.query_timeout,
                max_rows=limits.max_rows,
                relations=relations,
            ),
            limiter=state.sql_limiter,
        )
        if summaries is not None:
            result["search"] = summaries
        response = FastJSONResponse(result)
        if cacheable:
            results.put(body.sql, generation, bytes(response.body))
        return response
    running = await anyio.to_thread.run_sync(
        partial(query.start, state.views, body.sql, timeout=limits.query_timeout, relations=relations),
        limiter=state.sql_limiter,
    )
    return StreamingResponse(
        query.stream(running, media_type, limits.max_stream_rows),
        media_type=media_type,
        headers={"x-row-cap": str(limits.max_stream_rows)},
    )
