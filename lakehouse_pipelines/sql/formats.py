"""Result formats: type-aware JSON, and streamed CSV and Arrow IPC, chosen by the `Accept` header.

JSON mapping (nothing silently lost, never a 500 for a type):
- integers of any width -> numbers; DECIMAL -> string (exact, e.g. "12.340"); FLOAT/DOUBLE -> numbers,
  with NaN / Infinity / -Infinity as those strings (JSON has no such numbers);
- DATE -> "YYYY-MM-DD"; TIMESTAMP -> "YYYY-MM-DDTHH:MM:SS[.ffffff[fff]]", with "Z" when it has a time
  zone (the engine runs in UTC); infinite dates and timestamps -> "infinity" / "-infinity"; TIME -> "HH:MM:SS[.f]"
  (TIME WITH TIME ZONE comes back as text, `10:11:12+05:30`: DuckDB's Arrow export would drop the offset);
- INTERVAL -> ISO 8601 duration ("P1M2DT3.5S"), months, days and nanoseconds kept apart;
- BLOB -> base64 string; BIT -> "0101..."; UUID, ENUM, JSON, VARCHAR -> strings; HUGEINT -> numbers;
- LIST / ARRAY -> arrays; STRUCT -> objects; MAP -> arrays of {"key", "value"} (keys need not be strings).
CSV cells hold the same values, nested ones as JSON text. Arrow IPC carries DuckDB's own Arrow types.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.types as pt

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
_ACCEPTED = {JSON: JSON, "application/*": JSON, "*/*": JSON, CSV: CSV, "text/*": CSV, ARROW: ARROW}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


class NotAcceptable(ValueError):
    """The client accepts none of the formats the sidecar writes."""


def negotiate(accept: str | None) -> str:
    """The first acceptable format in the client's `Accept` list (q=0 excluded); JSON when absent."""
    if not accept or not accept.strip():
        return JSON
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media.lower() in _ACCEPTED:
            return _ACCEPTED[media.lower()]
    raise NotAcceptable(f"cannot produce {accept[:100]!r}: use {JSON}, {CSV} or {ARROW}")


def column_values(array: pa.Array) -> list:
    """The values of an Arrow array as JSON-ready Python objects, by the array's type."""
    return _converter(array.type)(array)


def batch_rows(batch: pa.RecordBatch, duckdb_types: list[str] | None = None) -> list[list]:
    """Rows of JSON-ready values; `duckdb_types` fixes the types DuckDB's Arrow export reshapes."""
    types = duckdb_types or [""] * batch.num_columns
    columns = [_column(batch.column(i), types[i]) for i in range(batch.num_columns)]
    return (
        [list(row) for row in zip(*columns, strict=True)] if columns else [[] for _ in range(batch.num_rows)]
    )


def _column(array: pa.Array, duckdb_type: str) -> list:
    # DuckDB exports HUGEINT as decimal128(38, 0) and BIT as its internal bytes (a padding count first).
    if duckdb_type in ("HUGEINT", "UHUGEINT"):
        return [None if v is None else int(v) for v in array.to_pylist()]
    if duckdb_type == "BIT":
        return [None if v is None else "".join(f"{b:08b}" for b in v[1:])[v[0] :] for v in array.to_pylist()]
    return column_values(array)


def csv_stream(
    names: list[str], batches: Iterable[pa.RecordBatch], duckdb_types: list[str] | None = None
) -> Iterator[bytes]:
    """CSV text, a header then one chunk per batch, so a large result is never held whole."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    yield _drain(buffer)
    for batch in batches:
        for row in batch_rows(batch, duckdb_types):
            writer.writerow([_csv_cell(v) for v in row])
        yield _drain(buffer)


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """An Arrow IPC stream, one message per batch; the end-of-stream marker only after the last one."""
    sink = io.BytesIO()
    writer = pa.ipc.new_stream(sink, schema)
    yield _take(sink)
    for batch in batches:
        writer.write_batch(batch)
        yield _take(sink)
    writer.close()
    yield _take(sink)


def _converter(dtype: pa.DataType) -> Callable[[pa.Array], list]:
    if pt.is_floating(dtype):
        return lambda a: [_float(v) for v in a.to_pylist()]
    if pt.is_decimal(dtype):
        return lambda a: [None if v is None else str(v) for v in a.to_pylist()]
    if pt.is_date(dtype):
        return _dates
    if pt.is_timestamp(dtype):
        return lambda a: _timestamps(a, dtype)
    if pt.is_time(dtype):
        return lambda a: _times(a, dtype)
    if pt.is_interval(dtype):
        return lambda a: [None if v is None else _duration(*v) for v in a.to_pylist()]
    if pt.is_binary(dtype) or pt.is_large_binary(dtype) or pt.is_fixed_size_binary(dtype):
        return lambda a: [None if v is None else base64.b64encode(v).decode() for v in a.to_pylist()]
    if pt.is_duration(dtype):
        return lambda a: [None if v is None else _duration(0, 0, _nanos(v)) for v in a.to_pylist()]
    if pt.is_map(dtype):
        return _maps
    if pt.is_list(dtype) or pt.is_large_list(dtype):
        return _lists
    if pt.is_fixed_size_list(dtype):
        return _fixed_lists
    if pt.is_struct(dtype):
        return _structs
    if pt.is_union(dtype):
        return lambda a: [_union(v) for v in a.to_pylist()]
    if pt.is_dictionary(dtype):
        return lambda a: column_values(a.dictionary_decode())
    return lambda a: a.to_pylist()


def _float(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _dates(array: pa.Array) -> list:
    out = []
    for days in array.cast(pa.int32() if pt.is_date32(array.type) else pa.int64()).to_pylist():
        if days is None:
            out.append(None)
        elif abs(days) >= _INT32_MAX:
            out.append("infinity" if days > 0 else "-infinity")
        else:
            if pt.is_date64(array.type):
                days //= 86_400_000
            out.append((_EPOCH + timedelta(days=days)).date().isoformat())
    return out


def _timestamps(array: pa.Array, dtype: pa.TimestampType) -> list:
    per_second = _UNIT_NANOS["s"] // _UNIT_NANOS[dtype.unit]
    digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[dtype.unit]
    suffix = "Z" if dtype.tz else ""
    out = []
    for ticks in array.cast(pa.int64()).to_pylist():
        if ticks is None:
            out.append(None)
        elif abs(ticks) >= _INT64_MAX:
            out.append("infinity" if ticks > 0 else "-infinity")
        else:
            seconds, fraction = divmod(ticks, per_second)
            text = (_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat(timespec="seconds")
            if fraction:
                text += "." + f"{fraction:0{digits}d}".rstrip("0")
            out.append(text + suffix)
    return out


def _times(array: pa.Array, dtype: pa.DataType) -> list:
    unit = dtype.unit
    per_second = _UNIT_NANOS["s"] // _UNIT_NANOS[unit]
    digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit]
    out = []
    for ticks in array.cast(pa.int64() if pt.is_time64(dtype) else pa.int32()).to_pylist():
        if ticks is None:
            out.append(None)
            continue
        seconds, fraction = divmod(ticks, per_second)
        text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        out.append(text + ("." + f"{fraction:0{digits}d}".rstrip("0") if fraction else ""))
    return out


def _nanos(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000


def _duration(months: int, days: int, nanoseconds: int) -> str:
    """ISO 8601 duration with each part kept (a month is not 30 days); negative parts keep their sign."""
    text = "P"
    if months:
        text += f"{months}M"
    if days:
        text += f"{days}D"
    if nanoseconds or text == "P":
        sign = "-" if nanoseconds < 0 else ""
        seconds, fraction = divmod(abs(nanoseconds), 1_000_000_000)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        text += "T"
        text += f"{sign}{hours}H" if hours else ""
        text += f"{sign}{minutes}M" if minutes else ""
        if secs or fraction or text.endswith("T"):
            text += f"{sign}{secs}" + (("." + f"{fraction:09d}".rstrip("0")) if fraction else "") + "S"
    return text


def _lists(array: pa.ListArray) -> list:
    offsets = array.offsets.to_pylist()
    values = column_values(array.values)
    return [values[offsets[i] : offsets[i + 1]] if array[i].is_valid else None for i in range(len(array))]


def _fixed_lists(array: pa.FixedSizeListArray) -> list:
    size = array.type.list_size
    start = array.offset * size
    values = column_values(array.values.slice(start, len(array) * size))
    return [values[i * size : (i + 1) * size] if array[i].is_valid else None for i in range(len(array))]


def _maps(array: pa.MapArray) -> list:
    offsets = array.offsets.to_pylist()
    keys, items = column_values(array.keys), column_values(array.items)
    return [
        [{"key": keys[j], "value": items[j]} for j in range(offsets[i], offsets[i + 1])]
        if array[i].is_valid
        else None
        for i in range(len(array))
    ]


def _structs(array: pa.StructArray) -> list:
    names = [array.type.field(i).name for i in range(array.type.num_fields)]
    fields = [column_values(child) for child in array.flatten()]
    valid = array.is_valid().to_pylist()
    return [
        dict(zip(names, (f[i] for f in fields), strict=True)) if valid[i] else None for i in range(len(array))
    ]


def _union(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def _take(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data
