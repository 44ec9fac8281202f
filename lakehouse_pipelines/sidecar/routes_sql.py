"""`POST /sql`: one read query over the dataset views, as JSON, CSV or an Arrow IPC stream."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute
from lakehouse_pipelines.sidecar.models import ErrorBody, SqlRequest, SqlResponse
from lakehouse_pipelines.sql import formats
from lakehouse_pipelines.sql import run as query
from lakehouse_pipelines.sql.guard import check_read_only

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)

_RESPONSES = {
    200: {
        "description": "the result; CSV and Arrow IPC are streamed",
        "content": {formats.CSV: {}, formats.ARROW: {}},
    },
    400: {"model": ErrorBody, "description": "bad SQL, unknown table, not a read query, time limit"},
    406: {"model": ErrorBody, "description": "no acceptable output format"},
    503: {"model": ErrorBody, "description": "a dataset's files could not be read"},
}


@router.post("/sql", response_model=SqlResponse, responses=_RESPONSES, tags=["sql"])
async def run_sql(body: SqlRequest, request: Request):
    """Run one read query (SELECT, WITH, EXPLAIN, DESCRIBE, SUMMARIZE) over the datasets' views.

    JSON holds at most the row cap and says `truncated`; `Accept: text/csv` or
    `application/vnd.apache.arrow.stream` streams up to the (larger) stream cap instead.
    """
    media_type = formats.negotiate(request.headers.get("accept"))
    check_read_only(body.sql)  # cheap: refuse before taking a thread
    state = request.app.state
    limits = state.settings
    if media_type == formats.JSON:
        result = await run_in_threadpool(
            query.run_json, state.views, body.sql, timeout=limits.query_timeout, max_rows=limits.max_rows
        )
        return JSONResponse(result)
    running = await run_in_threadpool(query.start, state.views, body.sql, timeout=limits.query_timeout)
    return StreamingResponse(
        query.stream(running, media_type, limits.max_stream_rows),
        media_type=media_type,
        headers={"x-row-cap": str(limits.max_stream_rows)},
    )
