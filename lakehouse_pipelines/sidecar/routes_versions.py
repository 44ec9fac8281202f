"""`GET /datasets/{name}/versions`: every registered version of a dataset, each queryable in SQL.

Read from the catalog's history (`sql/versions.py`, the same check the engine applies before serving a
version); `FROM version('<name>', N)` queries version N, `as_of` by time, `added` the rows between two.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake.keys import DATASET_NAME
from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute
from lakehouse_pipelines.sidecar.models import ErrorBody
from lakehouse_pipelines.sql.versions import version_history

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)


class ObjectAdded(BaseModel):
    key: str
    rows: int
    bytes: int
    source: str


class VersionSummary(BaseModel):
    version: int
    created_at: str = Field(description="when the dataset was created (its version 1)")
    updated_at: str = Field(description="when this version was registered; as_of() compares with it")
    row_count: int
    schema_fingerprint: str
    objects: int
    objects_added: list[ObjectAdded] = Field(description="the objects this version added to the one before")
    rows_added: int
    sql: str = Field(description="how to query this version")


class VersionList(BaseModel):
    dataset: str
    versions: list[VersionSummary]


@router.get(
    "/datasets/{name}/versions",
    response_model=VersionList,
    tags=["catalog"],
    responses={404: {"model": ErrorBody}},
)
async def list_versions(name: str, request: Request) -> dict:
    """Every registered version of the dataset, oldest first: time, row count, objects added, fingerprint."""
    if not DATASET_NAME.fullmatch(name):
        raise NotFound(f"no dataset {name[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
    versions = await run_in_threadpool(version_history, request.app.state.lake, name)
    return {"dataset": name, "versions": versions}
