"""Rows -> the text that is embedded, by the dataset's template, read in batches from the manifest's Parquet.

A dataset grows by appending drops, and an incremental export repeats ids with newer values: the newest
object holding an id wins, so an edited row is one row with its latest text, not two. DuckDB does that
deduplication out of core, so memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

import datetime as dt
import string
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from lakehouse_pipelines.datasets import EmbeddingSpec, EmbeddingUnit
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.storage import LocalStorage

BATCH_ROWS = 4096
WHOLE = EmbeddingUnit(0, 1)
DUCKDB_MEMORY_LIMIT = "512MB"


@dataclass(frozen=True)
class RowBatch:
    """Parallel lists: the row id, its text, and the payload a search hit carries back."""

    ids: list
    texts: list[str]
    payloads: list[dict]


def template_columns(template: str) -> list[str]:
    """The column names a `{column}` template refers to, in order of first use."""
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise LakehouseError(f"embedding template field {{{field}}} must be a plain column name")
        if field not in names:
            names.append(field)
    return names


def render(template: str, row: dict) -> str:
    """The row's text; a null cell renders as nothing rather than as `None`."""
    return template.format_map({k: "" if v is None else v for k, v in row.items()}).strip()


def check_spec(spec: EmbeddingSpec, manifest: Manifest) -> None:
    """Fail early, naming the column, if the template, id or payload refer to columns the data lacks."""
    have = {c.name for c in manifest.columns}
    wanted = [spec.id_column, *template_columns(spec.template), *spec.payload]
    missing = [c for c in dict.fromkeys(wanted) if c not in have]
    if missing:
        raise LakehouseError(
            f"dataset {manifest.name!r}: embedding spec names columns the data lacks: {', '.join(missing)}"
        )


def iter_rows(
    lake: Lake,
    manifest: Manifest,
    spec: EmbeddingSpec,
    batch_rows: int = BATCH_ROWS,
    unit: EmbeddingUnit = WHOLE,
    *,
    texts: bool = True,
    payloads: bool = True,
) -> Iterator[RowBatch]:
    """Every current row of the dataset's `unit` (newest object wins per id), in id order, in batches.

    Each caller reads only what it uses: embedding needs the texts (`payloads` False), the vectors sync the
    payloads (`texts` False, which skips the template's columns, most of a row's bytes); what is not read
    comes back as an empty list.
    """
    check_spec(spec, manifest)
    text_columns = template_columns(spec.template) if texts else []
    payload_columns = list(dict.fromkeys(spec.payload)) if payloads else []
    columns = list(dict.fromkeys([spec.id_column, *text_columns, *payload_columns]))
    with _local_objects(lake, manifest) as paths, _connection(lake.scratch) as con:
        selects = " UNION ALL ".join(
            f"SELECT {_select_list(columns)}, {position} AS _object FROM read_parquet(${position + 1}) "
            f"WHERE {unit.where(_quote(spec.id_column))}"  # each unit scans and dedups only its own rows
            for position in range(len(paths))
        )
        query = (
            f"SELECT {_select_list(columns)} FROM ({selects}) "
            f"QUALIFY row_number() OVER (PARTITION BY {_quote(spec.id_column)} ORDER BY _object DESC) = 1 "
            f"ORDER BY {_quote(spec.id_column)}"
        )
        reader = con.execute(query, [str(p) for p in paths]).to_arrow_reader(batch_rows)
        for batch in reader:
            yield RowBatch(
                ids=batch.column(spec.id_column).to_pylist(),
                texts=[render(spec.template, r) for r in batch.select(text_columns).to_pylist()]
                if texts
                else [],
                payloads=_payloads(batch.select(payload_columns)) if payloads else [],
            )


def _payloads(batch: pa.RecordBatch) -> list[dict]:
    """The batch's rows as JSON-typed dicts: only date and timestamp columns need a value converted."""
    rows = batch.to_pylist()
    temporal = [f.name for f in batch.schema if pa.types.is_date(f.type) or pa.types.is_timestamp(f.type)]
    for row in rows if temporal else ():
        for column in temporal:
            row[column] = _json_value(row[column])
    return rows


def _select_list(columns: list[str]) -> str:
    return ", ".join(_quote(c) for c in columns)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_value(value):
    """Payload values as JSON types: dates and timestamps become ISO strings."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@contextmanager
def _connection(scratch: Path):
    con = engine.connect(memory_limit=DUCKDB_MEMORY_LIMIT, scratch=scratch)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def _local_objects(lake: Lake, manifest: Manifest) -> Iterator[list[Path]]:
    """The manifest's objects as local files: in place for a local lake, downloaded (and removed) for S3.

    Downloading keeps DuckDB off the network and out of credentials handling; the objects are immutable, so
    a copy is as good as the original for the length of a run.
    """
    if isinstance(lake.storage, LocalStorage):
        yield [Path(lake.storage.location(o.key)) for o in manifest.objects]
        return
    with ExitStack() as cleanup:
        paths = []
        for obj in manifest.objects:
            local = lake.scratch / f"rows-{uuid.uuid4().hex}.parquet"
            cleanup.callback(local.unlink, missing_ok=True)
            lake.storage.download(obj.key, local)
            paths.append(local)
        yield paths
