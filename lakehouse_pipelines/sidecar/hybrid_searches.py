"""The search half of a hybrid `POST /sql` (`sql/hybrid.py`): names checked, searches run, errors as statuses.

The searches run in the same bounded worker pool as `/search` (an Edge query holds the GIL; see
`routes_search.py`), and their errors keep `/search`'s codes: 404 unknown dataset or no index, 409 index
built by another model, 400 bad filter or name, 503 when the index cannot be reached.
"""

from __future__ import annotations

from functools import partial

from fastapi import Request
from fastapi.responses import JSONResponse

from lakehouse_pipelines.search.service import SearchService
from lakehouse_pipelines.sidecar.models import HybridSearch
from lakehouse_pipelines.sidecar.routes_search import run_search
from lakehouse_pipelines.sql.hybrid import (
    BadRelationName,
    HitRelation,
    NamedSearch,
    check_names,
    search_relations,
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def hit_relations(
    request: Request, searches: dict[str, HybridSearch]
) -> list[HitRelation] | JSONResponse:
    """The named searches' relations, or the error answer to send instead."""
    state = request.app.state
    named = {
        name: NamedSearch(s.dataset, s.query, k=s.k, filter=s.filter, ef=s.ef) for name, s in searches.items()
    }
    try:
        check_names(named, state.views.datasets)
    except BadRelationName as exc:
        return _error(400, str(exc))
    service: SearchService | None = getattr(state, "search", None)
    if service is None:
        return _error(503, "search is not configured in this sidecar")
    return await run_search(partial(search_relations, service, state.declarations, state.views, named))
