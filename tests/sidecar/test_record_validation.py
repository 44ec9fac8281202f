"""Record validation over HTTP: `POST /datasets/{name}/validate` checks JSON records or a CSV body against the
dataset's column types (by the ingest's own inference rules) and its pandera contract, and always answers in
the one shape whose JSON Schema the OpenAPI document carries (checked here against real answers). Bounded:
records, bytes (a 10 MB body is a clean 413, declared or streamed), time; bad bodies are 4xx.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.record_validation import (
    MAX_RECORDS,
    BadRecords,
    ValidationTimeout,
    validate_records,
)
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app

WORKERS = load_specs()["workers"]
GOOD = {
    "worker_id": 90001,
    "first_name": "Ana",
    "last_name": "Diaz",
    "role": "Forklift Operator",
    "city": "Aurora",
    "state": "IL",
    "zip": "00501",
    "email": "ana@example.com",
    "years_experience": 4,
    "hourly_rate": 21.5,
    "reliability": 0.93,
    "available": True,
    "shift": "night",
    "last_placed": "2024-02-29",
}


@pytest.fixture
def client(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), WORKERS)
    with TestClient(create_app(lake, SidecarSettings(refresh_interval=0.5))) as c:
        yield c


@pytest.fixture
def report_schema(client) -> dict:
    """The answer's JSON Schema, as the OpenAPI document gives it (refs resolved against the document)."""
    openapi = client.get("/openapi.json").json()
    operation = openapi["paths"]["/datasets/{name}/validate"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ValidationReport"
    return {"$ref": ref, "components": openapi["components"]}


def validate(client: TestClient, records, **kwargs):
    return client.post("/datasets/workers/validate", json={"records": records}, **kwargs)


def check_shape(body: dict, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(body)


def problems(body: dict) -> set[tuple]:
    return {(e["record"], e["field"], e["rule"]) for e in body["errors"]}


def test_valid_records_are_valid(client, report_schema, lake):
    body = validate(client, [GOOD, {**GOOD, "worker_id": 90002, "email": None, "shift": ""}]).json()
    check_shape(body, report_schema)
    assert body["valid"] is True
    assert body["errors"] == [] and body["errors_truncated"] is False
    assert body["counts"] == {
        "records": 2,
        "valid": 2,
        "invalid": 0,
        "errors": 0,
        "by_rule": {},
        "by_field": {},
    }
    manifest = lake.catalog.get("workers")
    assert (body["dataset"], body["version"], body["schema_fingerprint"]) == (
        "workers",
        manifest.version,
        manifest.schema_fingerprint,
    )


def test_each_rule_is_reported_per_record_and_field_with_its_value(client, report_schema):
    records = [
        GOOD,
        {**GOOD, "worker_id": "12x", "zip": 501, "last_placed": "2023-02-29"},  # types; zip 501 is text
        {**GOOD, "worker_id": 90003, "state": "Illinois", "shift": "graveyard", "hourly_rate": 900},
        {**GOOD, "worker_id": 90004, "first_name": None, "years_experience": 3.0, "nickname": "Al"},
        {**GOOD, "worker_id": 90001, "available": "yes", "skills": ["forklift"], "tags": {"a": 1.5}},
        "not a record",
    ]
    response = validate(client, records)
    assert response.status_code == 200
    body = response.json()
    check_shape(body, report_schema)
    assert body["valid"] is False
    assert problems(body) == {
        (1, "worker_id", "type"),
        (1, "zip", "str_matches('^[0-9]{5}$')"),
        (1, "last_placed", "type"),
        (2, "state", "str_matches('^[A-Z]{2}$')"),
        (2, "shift", "isin(['day', 'swing', 'night', 'weekend'])"),
        (2, "hourly_rate", "in_range(0, 500)"),
        (3, "first_name", "not_nullable"),
        (3, "years_experience", "type"),
        (3, "nickname", "unknown_field"),
        (4, "worker_id", "unique"),
        (4, "available", "type"),
        (4, "skills", "type"),
        (4, "tags", "unknown_field"),
        (5, None, "record"),
    }
    by = {(e["record"], e["field"]): e for e in body["errors"]}
    assert by[(1, "worker_id")]["value"] == "12x"
    assert by[(1, "worker_id")]["message"] == "expected an integer (int64)"
    assert by[(1, "zip")]["value"] == "501"
    assert by[(2, "hourly_rate")]["value"] == "900"
    assert by[(3, "years_experience")]["value"] == "3.0"
    assert by[(4, "worker_id")]["message"] == "repeats record 0's value"
    assert by[(4, "skills")]["value"] == '["forklift"]'
    assert by[(4, "skills")]["message"] == "expected one value, not a JSON object or array"
    assert by[(4, "tags")]["value"] == '{"a": 1.5}'
    assert by[(5, None)]["value"] == "not a record"
    counts = body["counts"]
    assert (counts["records"], counts["valid"], counts["invalid"], counts["errors"]) == (6, 1, 5, 14)
    assert counts["by_rule"]["type"] == 5 and counts["by_field"]["worker_id"] == 2
    assert [e["record"] for e in body["errors"]] == sorted(e["record"] for e in body["errors"])


@pytest.mark.parametrize(
    ("column", "good", "bad"),
    [
        (
            "worker_id",
            ["7", "+7", "-7", "0", 12],
            ["007", "1e3", "7.0", "9223372036854775808", True, "seven"],
        ),
        (
            "hourly_rate",
            ["1", "1.5", ".5", "1e-3", "-2E+2", 20],
            ["01.5", "1,5", "NaN", "inf", "1e999", False],
        ),
        ("available", ["true", "FALSE", "True", True, False], ["1", "yes", "t", 0]),
        ("last_placed", ["2024-02-29", "0001-01-01"], ["2023-02-29", "2024-13-01", "20240101", "2024-1-01"]),
    ],
)
def test_type_rules_are_the_ingests(client, column, good, bad):
    """A value passes exactly when ingest would infer it as the column's type (the architecture's rules)."""
    records = [{**GOOD, "worker_id": 90000 + i, column: v} for i, v in enumerate(good)]
    if column == "worker_id":
        records = [{**GOOD, column: v} for v in good]
    body = validate(client, records).json()
    assert [(e["field"], e["rule"]) for e in body["errors"] if e["rule"] == "type"] == [], body["errors"]
    records = [{**GOOD, "worker_id": 90000 + i, column: v} for i, v in enumerate(bad)]
    if column == "worker_id":
        records = [{**GOOD, column: v} for v in bad]
    body = validate(client, records).json()
    flagged = {e["record"] for e in body["errors"] if e["field"] == column and e["rule"] == "type"}
    assert flagged == set(range(len(bad))), body["errors"]


def test_timestamps_follow_the_instant_rules(lake: Lake, tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text("id,at\n1,2024-01-02T03:04:05Z\n2,2024-01-02 03:04\n")
    spec = type(WORKERS)(name="events")
    ingest(lake, str(csv), spec)
    manifest = lake.catalog.get("events")
    assert dict((c.name, c.type) for c in manifest.columns)["at"] == "timestamp"
    good = [
        "2024-01-02T03:04:05Z",
        "2024-01-02 03:04",
        "2024-01-02T03:04:05.123456+14:00",
        "2024-01-02T23:59-12:00",
    ]
    bad = ["2024-01-02T24:00", "2024-01-02T03:04+25:00", "2024-01-02T03:04:05.1234567", "2024-01-02", "noon"]
    body = validate_records([{"id": i, "at": v} for i, v in enumerate(good + bad)], manifest, None)
    assert {e["record"] for e in body["errors"]} == set(range(len(good), len(good) + len(bad)))
    assert {e["rule"] for e in body["errors"]} == {"type"}


def test_a_csv_body_is_validated_the_same_way(client, report_schema):
    header = ",".join(GOOD)
    good = ",".join("true" if v is True else str(v) for v in GOOD.values())
    bad = good.replace(",IL,", ",il,").replace("90001", "90002")
    response = client.post(
        "/datasets/workers/validate",
        content=f"{header}\n{good}\n{bad}\n",
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200
    body = response.json()
    check_shape(body, report_schema)
    assert problems(body) == {(1, "state", "str_matches('^[A-Z]{2}$')")}
    assert body["errors"][0]["value"] == "il"


def test_values_are_cut_and_the_list_is_capped_but_counts_are_complete(client, report_schema):
    long = "x" * 5_000
    records = [{**GOOD, "worker_id": long}] + [
        {**GOOD, "worker_id": 90002 + i, "state": "xx"} for i in range(1_500)
    ]
    body = validate(client, records).json()
    check_shape(body, report_schema)
    assert body["errors"][0]["value"] == "x" * 80 + "..."
    assert len(body["errors"]) == 1_000 and body["errors_truncated"] is True
    assert body["counts"]["errors"] == 1_501 and body["counts"]["invalid"] == 1_501


def test_the_openapi_document_describes_both_bodies_and_the_errors(client):
    openapi = client.get("/openapi.json").json()
    operation = openapi["paths"]["/datasets/{name}/validate"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert {"404", "413", "415", "422", "503"} <= set(operation["responses"])
    report = openapi["components"]["schemas"]["ValidationReport"]
    assert report["additionalProperties"] is False
    assert set(report["required"]) == {
        "dataset", "version", "schema_fingerprint", "valid", "counts", "errors", "errors_truncated"
    }  # fmt: skip
    problem = openapi["components"]["schemas"]["FieldProblem"]
    assert set(problem["properties"]) == {"record", "field", "rule", "value", "message"}


def test_ten_megabyte_bodies_are_a_clean_413(client):
    big = json.dumps({"records": [GOOD] * 35_000}).encode()
    assert len(big) > 10 * 1024**2
    declared = client.post(
        "/datasets/workers/validate", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and "limit" in declared.json()["error"]

    def chunks():
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = client.post(
        "/datasets/workers/validate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert "limit" in streamed.json()["detail"]
    csv_body = ("a,b\n" + "1,2\n" * 3_000_000).encode()
    assert (
        client.post(
            "/datasets/workers/validate", content=csv_body, headers={"content-type": "text/csv"}
        ).status_code
        == 413
    )
    assert client.get("/health").status_code == 200


def test_too_many_records_is_a_413(client):
    response = client.post("/datasets/workers/validate", json=[{}] * (MAX_RECORDS + 1))
    assert response.status_code == 413
    assert "10,000 records" in response.json()["error"]
    csv_rows = "worker_id\n" + "1\n" * (MAX_RECORDS + 1)
    response = client.post(
        "/datasets/workers/validate", content=csv_rows, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b'{"records": [{"worker_id": NaN}]}', "application/json", 422),
        (b'{"records": [{"worker_id": Infinity}]}', "application/json", 422),
        (b'{"records": {"worker_id": 1}}', "application/json", 422),
        (b'{"records": [], "extra": 1}', "application/json", 422),
        (b'"records"', "application/json", 422),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 422),
        (b'{"records": [{"worker_id": "\xff"}]}', "application/json", 422),
        (b"worker_id,state\n1,IL,extra\n", "text/csv", 422),
        (b"worker_id,worker_id\n1,2\n", "text/csv", 422),
        (b"worker_id\n1\x00\n", "text/csv", 422),
        (b"", "text/csv", 422),
        (b"<records/>", "application/xml", 415),
    ],
)
def test_bad_bodies_are_4xx_with_a_message(client, body, content_type, status):
    response = client.post("/datasets/workers/validate", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert len(response.text) < 500  # never the body echoed back


def test_unknown_datasets_are_404(client):
    for name in ("nope", "Bad-Name", "a" * 80):
        response = client.post(f"/datasets/{name}/validate", json={"records": [GOOD]})
        assert response.status_code == 404
        assert "error" in response.json()


def test_a_dataset_without_a_contract_checks_types_only(lake: Lake, tmp_path):
    csv = tmp_path / "plain.csv"
    csv.write_text("id,score\n1,0.5\n")
    ingest(lake, str(csv), type(WORKERS)(name="plain"))
    with TestClient(create_app(lake, SidecarSettings())) as client:
        body = client.post("/datasets/plain/validate", json={"records": [{"id": 2, "score": "high"}]}).json()
    assert problems(body) == {(0, "score", "type")}


def test_validation_has_a_time_budget(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), WORKERS)
    manifest = lake.catalog.get("workers")
    with pytest.raises(ValidationTimeout, match="time limit"):
        validate_records([GOOD] * 5_000, manifest, WORKERS.contract, timeout=0.0)
    with pytest.raises(BadRecords):
        from lakehouse_pipelines.ingest.record_validation import parse_json_records

        parse_json_records(b"[" * 33 + b"]" * 33)
