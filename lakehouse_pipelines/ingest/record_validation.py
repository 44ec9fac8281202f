"""Record validation: would these records pass as a drop of the dataset? One answer shape, whoever asks.

The Go lakehouse had two validators that answered the same error in two shapes. Here there is one: every
problem is `{record, field, rule, value, message}` (the record's 0-based position, the field, the rule that
failed, the submitted value as text cut at MAX_VALUE_CHARS, and a sentence), plus counts. The rules are the
ones a drop meets on ingest, applied by the same code:

1. `type`: the field's text must fit the logical type of the dataset's column in the current manifest, by
   the inference rules (`type_inference.fits_sql`, the very SQL ingest runs; a `string` column takes any
   value). A record is read as a CSV row would be: a JSON number or boolean is its text, `null`, a missing
   field and `""` are empty. A JSON object or array is never a cell.
2. the dataset's pandera contract (`contracts.contract_schema`, run on the typed values as ingest runs it on
   the staged Parquet): `not_nullable` and each check by its pandera name, e.g. `str_matches('^[A-Z]{2}$')`;
   `unique` columns must not repeat a value within the request (a drop is checked within itself too).
3. `unknown_field`: a field the dataset has no column for (a drop with it would be schema drift).

A field that fails its type is not checked against the contract as well (its typed value is unknown).
Bounded: at most MAX_RECORDS records, the sidecar's body limit in bytes, MAX_ERRORS problems listed (counts
are always complete), and a time budget checked between the steps.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.csv_file import quote_ident
from lakehouse_pipelines.ingest.type_inference import ZONE_RE, cast_column_sql, fits_sql
from lakehouse_pipelines.lake import duckdb_connection
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.fingerprint import Column

MAX_RECORDS = 10_000
MAX_ERRORS = 1_000
MAX_VALUE_CHARS = 80
MAX_JSON_DEPTH = 32
_RECORD = "__record"

EXPECTED = {
    "int64": "expected an integer (int64)",
    "float64": "expected a decimal or exponent number (float64)",
    "bool": "expected true or false",
    "date": "expected a date YYYY-MM-DD",
    "timestamp": "expected a timestamp YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]] with an optional Z or +HH:MM",
}


class BadRecords(LakehouseError):
    """A body that is not records at all: not JSON / CSV, wrong shape (HTTP 422)."""


class TooManyRecords(LakehouseError):
    """More records than MAX_RECORDS (HTTP 413)."""


class ValidationTimeout(LakehouseError):
    """Validation ran past its time budget (HTTP 503)."""


@dataclass(frozen=True)
class FieldError:
    record: int | None
    field: str | None
    rule: str
    value: str | None
    message: str

    def to_dict(self) -> dict:
        return {
            "record": self.record,
            "field": self.field,
            "rule": self.rule,
            "value": self.value,
            "message": self.message,
        }


class _JsonNumber(str):
    """A JSON number kept as its source text: what a CSV cell would hold (no float rounding, no inf)."""


def parse_json_records(data: bytes) -> list[Any]:
    """`{"records": [...]}` or a bare `[...]`; numbers stay text; NaN, Infinity, deep nesting refused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecords("the body is not valid UTF-8") from None
    if _depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRecords(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")

    def refuse_constant(name: str):
        raise BadRecords(f"{name} is not JSON")

    try:
        body = json.loads(
            text, parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise BadRecords(
            f"the body is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    records = body.get("records") if isinstance(body, dict) else body
    if isinstance(body, dict) and set(body) - {"records"}:
        raise BadRecords('a JSON body is {"records": [{...}, ...]} (or a bare array of records)')
    if not isinstance(records, list):
        raise BadRecords('a JSON body is {"records": [{...}, ...]} (or a bare array of records)')
    return records


def _depth_exceeds(text: str, limit: int) -> bool:
    """Brackets nested past `limit` outside strings (json's recursion would otherwise be the limit)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_csv_records(data: bytes) -> list[dict[str, str]]:
    """A CSV with a header row: one record per row, every value as text (empty cells are empty)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRecords("the CSV body is not valid UTF-8") from None
    if "\x00" in text:
        raise BadRecords(
            f"the CSV body holds a NUL byte (line {text[: text.index(chr(0))].count(chr(10)) + 1})"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise BadRecords("the CSV body has no header row")
        if len(set(header)) != len(header) or any(not h for h in header):
            raise BadRecords("the CSV header has an empty or repeated column name")
        records = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise BadRecords(
                    f"CSV line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
                )
            records.append(dict(zip(header, row, strict=True)))
            if len(records) > MAX_RECORDS:
                break
    except csv.Error as exc:
        raise BadRecords(f"CSV line {reader.line_num}: {exc}") from None
    return records


def _shown(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_VALUE_CHARS:
        return value
    return value[:MAX_VALUE_CHARS] + "..."


def _cell(value: Any) -> str | None:
    """A JSON value as the text of a CSV cell (None: empty)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    return str(value)


def _text(value: Any) -> str | None:
    """The submitted value as shown in an error."""
    if isinstance(value, dict | list):
        return _shown(json.dumps(_plain(value), default=str, ensure_ascii=False))
    return _shown(_cell(value))


def _plain(value: Any) -> Any:
    """A parsed JSON value with its numbers as numbers again (for showing a nested value only)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _JsonNumber):
        if len(value) <= 300:
            try:
                return int(value)
            except ValueError:
                return float(value)
        return str(value)
    return value


def validate_records(
    records: Sequence[Any],
    manifest: Manifest,
    contract: Mapping | None,
    *,
    timeout: float = 5.0,
) -> dict:
    """Check `records` against the dataset's current manifest and contract; the answer (see the docstring)."""
    if len(records) > MAX_RECORDS:
        raise TooManyRecords(f"at most {MAX_RECORDS:,} records per request")
    deadline = time.monotonic() + timeout
    columns = {c.name: c for c in manifest.columns}
    errors: list[FieldError] = []
    failed: set[tuple[int, str]] = set()  # (record, field) already reported for its type
    not_objects: set[int] = set()
    cells: dict[str, list[str | None]] = {name: [] for name in columns}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(FieldError(index, None, "record", _text(record), "a record must be a JSON object"))
            not_objects.add(index)
            for name in columns:
                cells[name].append(None)
            continue
        for field in record:
            if field not in columns:
                shown = _shown(str(field))
                errors.append(
                    FieldError(
                        index,
                        shown,
                        "unknown_field",
                        _text(record[field]),
                        f"{manifest.name!r} has no such column",
                    )
                )
        for name in columns:
            value = record.get(name)
            if isinstance(value, dict | list):
                errors.append(
                    FieldError(
                        index, name, "type", _text(value), "expected one value, not a JSON object or array"
                    )
                )
                failed.add((index, name))
                value = None
            cells[name].append(_cell(value))
        if index % 1_000 == 999:
            _check_time(deadline, timeout)
    _check_time(deadline, timeout)
    typed, type_errors = _typed(cells, list(columns.values()), len(records))
    for index, name in type_errors:
        if (index, name) not in failed:
            errors.append(
                FieldError(index, name, "type", _shown(cells[name][index]), EXPECTED[columns[name].type])
            )
            failed.add((index, name))
    _check_time(deadline, timeout)
    if contract and records:
        rules = {n: r for n, r in (contract.get("columns") or {}).items() if n in columns}
        errors += _contract_errors(rules, typed, cells, failed)
    _check_time(deadline, timeout)
    # a record that is not an object has one problem: that (its empty cells would fail nullability)
    errors = [e for e in errors if e.record not in not_objects or e.rule == "record"]
    return _report(records, manifest, errors)


def _check_time(deadline: float, timeout: float) -> None:
    if time.monotonic() > deadline:
        raise ValidationTimeout(f"validation exceeded the {timeout:g}s time limit; send fewer records")


_engine_lock = threading.Lock()
_engine: duckdb.DuckDBPyConnection | None = None


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on the process's validation engine: in memory, no file or network access, locked."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = duckdb_connection.sandboxed(threads=1)
        return _engine.cursor()


def _typed(
    cells: dict[str, list[str | None]], columns: list[Column], rows: int
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The records' values cast to their columns' types (NULL where a value does not fit), and the misfits."""
    table = pa.table(
        {_RECORD: pa.array(range(rows), type=pa.int64())}
        | {c.name: pa.array(cells[c.name], type=pa.string()) for c in columns}
    )
    cursor = _cursor()
    try:
        cursor.register("records", table)
        zoned = set()
        stamped = [c.name for c in columns if c.type == "timestamp"]
        if stamped and rows:
            probes = ", ".join(
                f"coalesce(bool_or(regexp_matches({quote_ident(n)}, '{ZONE_RE}')), false)" for n in stamped
            )
            flags = cursor.execute(f"SELECT {probes} FROM records").fetchone()
            zoned = {n for n, flag in zip(stamped, flags, strict=True) if flag}
        checked = [c for c in columns if c.type != "string"]
        selects = [quote_ident(_RECORD)]
        selects += [f"{fits_sql(c.type, c.name)} AS {quote_ident('ok_' + c.name)}" for c in checked]
        selects += [
            f"CASE WHEN {fits_sql(c.type, c.name)} THEN {cast_column_sql(c, c.name in zoned)} END "
            f"AS {quote_ident(c.name)}"
            for c in columns
        ]
        result = cursor.execute(
            f"SELECT {', '.join(selects)} FROM records ORDER BY {quote_ident(_RECORD)}"
        ).to_arrow_table()
    finally:
        cursor.close()
    misfits = []
    for c in checked:
        flags = result.column("ok_" + c.name).to_pylist()
        misfits += [(i, c.name) for i, ok in enumerate(flags) if ok is False]
    misfits.sort()
    return result.select([c.name for c in columns]), misfits


def _contract_errors(
    rules: dict[str, dict], typed: pa.Table, cells: dict[str, list[str | None]], failed: set[tuple[int, str]]
) -> list[FieldError]:
    if not rules:
        return []
    import pandera.polars as pandera  # pandera + polars import in ~0.7 s: only when a contract is checked
    import polars as pl

    from lakehouse_pipelines.ingest.contracts import contract_schema

    frame = pl.from_arrow(typed.select(list(rules)))
    errors = []
    try:
        contract_schema({"columns": rules}).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        for row in exc.failure_cases.iter_rows(named=True):
            index, name, check = row["index"], row["column"], str(row["check"])
            if index is not None and (index, name) in failed:
                continue
            value = cells[name][index] if index is not None and name in cells else row["failure_case"]
            message = (
                "must not be empty" if check == "not_nullable" else f"fails the contract's check {check}"
            )
            errors.append(FieldError(index, name, check, _shown(value), message))
    for name, rule in rules.items():
        if not rule.get("unique"):
            continue
        first: dict[Any, int] = {}
        for index, value in enumerate(typed.column(name).to_pylist()):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if value in first:
                errors.append(
                    FieldError(
                        index,
                        name,
                        "unique",
                        _shown(cells[name][index]),
                        f"repeats record {first[value]}'s value",
                    )
                )
            else:
                first[value] = index
    return errors


def _report(records: Sequence[Any], manifest: Manifest, errors: list[FieldError]) -> dict:
    errors.sort(key=lambda e: (e.record if e.record is not None else -1, e.field or "", e.rule))
    invalid = {e.record for e in errors if e.record is not None}
    return {
        "dataset": manifest.name,
        "version": manifest.version,
        "schema_fingerprint": manifest.schema_fingerprint,
        "valid": not errors,
        "counts": {
            "records": len(records),
            "valid": len(records) - len(invalid),
            "invalid": len(invalid),
            "errors": len(errors),
            "by_rule": dict(Counter(e.rule for e in errors).most_common()),
            "by_field": dict(Counter(e.field for e in errors if e.field is not None).most_common()),
        },
        "errors": [e.to_dict() for e in errors[:MAX_ERRORS]],
        "errors_truncated": len(errors) > MAX_ERRORS,
    }
