"""Metadata Dagster renders natively: column schemas, table previews, URIs, numbers it can chart."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.lake.fingerprint import Column

PREVIEW_ROWS = 5
_PREVIEW_TYPES = {"int64": "int", "float64": "float", "bool": "bool"}


def declared_column_schema(spec: DatasetSpec) -> dg.TableSchema | None:
    """The Columns tab before the first run: the contract's columns with types, nullability, uniqueness,
    checks and descriptions (None for a dataset that declares no contract: its columns are inferred)."""
    rules = spec.column_rules()
    if not rules:
        return None
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                rule.get("type", "string"),
                description=rule.get("description"),
                constraints=dg.TableColumnConstraints(
                    nullable=rule.get("nullable", True),
                    unique=bool(rule.get("unique", False)),
                    other=[_check_text(check, args) for check, args in (rule.get("checks") or {}).items()],
                ),
            )
            for name, rule in rules.items()
        ]
    )


def inferred_column_schema(columns: Sequence[Column], spec: DatasetSpec) -> dg.TableSchema:
    """The columns as inferred from the data, with the declaration's descriptions where it has them."""
    rules = spec.column_rules()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=rules.get(c.name, {}).get("description"),
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable, unique=bool(rules.get(c.name, {}).get("unique", False))
                ),
            )
            for c in columns
        ]
    )


def preview(rows: Sequence[dict], columns: Sequence[Column]) -> dg.TableMetadataValue:
    """The first rows as a table Dagster renders (dates and long text as strings)."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(c.name, _PREVIEW_TYPES.get(c.type, "string")) for c in columns]
    )
    records = [
        dg.TableRecord({c.name: _cell(row.get(c.name), c.type) for c in columns})
        for row in rows[:PREVIEW_ROWS]
    ]
    return dg.MetadataValue.table(records, schema)


def _cell(value, logical_type: str):
    if value is None or logical_type in _PREVIEW_TYPES:
        return value
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _check_text(check: str, args) -> str:
    return f"{check}: {args}" if args not in (None, {}, True) else check
