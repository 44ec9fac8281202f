"""`GET /health`, `GET /datasets`, `GET /datasets/{name}`: the catalog as the sidecar's engine sees it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake.keys import DATASET_NAME
from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute
from lakehouse_pipelines.sidecar.models import DatasetList, ErrorBody, Health

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)


@router.get("/health", response_model=Health, tags=["service"])
async def health(request: Request) -> dict:
    """Liveness, and whether search has opened its model and indexes: open even when a token is required."""
    search = getattr(request.app.state, "search", None)
    return {
        "status": "ok",
        "datasets": len(request.app.state.views.datasets),
        "search": search.readiness if search is not None else "off",
    }


@router.get("/datasets", response_model=DatasetList, tags=["catalog"])
async def list_datasets(request: Request) -> dict:
    """Every registered dataset's manifest summary (no object list)."""
    manifests = await run_in_threadpool(request.app.state.lake.catalog.list)
    return {"datasets": [m.summary() for m in manifests]}


@router.get(
    "/datasets/{name}",
    tags=["catalog"],
    responses={200: {"description": "the dataset's current manifest"}, 404: {"model": ErrorBody}},
)
async def get_dataset(name: str, request: Request) -> dict[str, Any]:
    """The dataset's current manifest: schema, objects, row count, version."""
    if not DATASET_NAME.fullmatch(name):
        raise NotFound(f"no dataset {name[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
    manifest = await run_in_threadpool(request.app.state.lake.catalog.find, name)
    if manifest is None:
        raise NotFound(f"no dataset {name!r}")
    return manifest.to_dict()
