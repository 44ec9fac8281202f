"""`POST /datasets/{name}/validate`: would these records pass as a drop of the dataset? (`record_validation.py`)

The body is JSON (`{"records": [{...}, ...]}` or a bare array) or CSV with a header row (`Content-Type:
text/csv`). The answer is always the one `ValidationReport` shape, whose JSON Schema is in the OpenAPI
document: 200 whether or not the records are valid (`valid` says), with every problem as
`{record, field, rule, value, message}` and counts. Bounded by the sidecar's body limit (413), at most
MAX_RECORDS records (413) and the SQL time limit (503); a body that is not records is a 422, an
unsupported content type a 415.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.ingest.record_validation import (
    MAX_ERRORS,
    MAX_RECORDS,
    MAX_VALUE_CHARS,
    BadRecords,
    TooManyRecords,
    ValidationTimeout,
    parse_csv_records,
    parse_json_records,
    validate_records,
)
from lakehouse_pipelines.lake.keys import DATASET_NAME
from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute
from lakehouse_pipelines.sidecar.body_limit import MAX_BODY_BYTES
from lakehouse_pipelines.sidecar.models import ErrorBody

router = APIRouter(route_class=StrictJsonRoute)  # strict JSON bodies (bodies.py)


class ValidateRequest(BaseModel):
    records: list[dict[str, Any]] = Field(max_length=MAX_RECORDS, description="records as JSON objects")


class FieldProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: int | None = Field(description="0-based position of the record in the request")
    field: str | None = Field(description="the field (null when the record itself is not an object)")
    rule: str = Field(
        description="type, not_nullable, unique, unknown_field, record, or a contract check by its pandera name"
    )
    value: str | None = Field(description=f"the submitted value as text, cut at {MAX_VALUE_CHARS} characters")
    message: str


class ValidationCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int
    valid: int
    invalid: int
    errors: int = Field(description="every problem found, also those past the listed ones")
    by_rule: dict[str, int]
    by_field: dict[str, int]


class ValidationReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    version: int = Field(description="the manifest version whose column types were checked")
    schema_fingerprint: str
    valid: bool
    counts: ValidationCounts
    errors: list[FieldProblem] = Field(description=f"problems in record order, at most {MAX_ERRORS}")
    errors_truncated: bool


_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": ValidateRequest.model_json_schema()},
        "text/csv": {"schema": {"type": "string", "description": "CSV with a header row"}},
    },
}
_RESPONSES = {
    404: {"model": ErrorBody, "description": "unknown dataset"},
    413: {
        "model": ErrorBody,
        "description": f"body over {MAX_BODY_BYTES:,} bytes or over {MAX_RECORDS:,} records",
    },
    415: {"model": ErrorBody, "description": "a body that is neither JSON nor CSV"},
    422: {"model": ErrorBody, "description": "a body that is not records"},
    503: {"model": ErrorBody, "description": "the time limit passed, or the catalog could not be read"},
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post(
    "/datasets/{name}/validate",
    response_model=ValidationReport,
    responses=_RESPONSES,
    tags=["catalog"],
    openapi_extra={"requestBody": _BODY},
)
async def validate(name: str, request: Request):
    """Check records against the dataset's column types (current manifest) and its pandera contract."""
    if not DATASET_NAME.fullmatch(name):
        raise NotFound(f"no dataset {name[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", "text/csv"):
        return _error(415, "send records as application/json or text/csv")
    data = await request.body()
    state = request.app.state
    manifest = await run_in_threadpool(state.lake.catalog.find, name)
    if manifest is None:
        raise NotFound(f"no dataset {name!r}")
    try:
        spec = state.declarations.get(name)
    except LakehouseError as exc:
        return _error(503, f"the dataset declarations could not be read: {exc}")
    try:
        records = parse_csv_records(data) if media == "text/csv" else parse_json_records(data)
        report = await run_in_threadpool(
            validate_records,
            records,
            manifest,
            spec.contract if spec else None,
            timeout=state.settings.query_timeout,
        )
    except BadRecords as exc:
        return _error(422, str(exc))
    except TooManyRecords as exc:
        return _error(413, str(exc))
    except ValidationTimeout as exc:
        return _error(503, str(exc))
    return JSONResponse(report)
