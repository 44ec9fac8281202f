"""Per-dataset metrics computed by DuckDB over the manifest's Parquet objects, never row by row in Python.

Two scans: the first gathers every scalar statistic in one SELECT (row count; per column nulls, an
*approximate* distinct count (HyperLogLog, `approx_count_distinct`), min/max/mean/stddev and exact
quantiles p5..p95 for numerics, length stats for strings, min/max for dates); the second counts histogram
bins and category frequencies, again in one SELECT of filtered aggregates.

Bins and categories are fixed by the reference: a histogram's edges and a column's tracked categories are
stored in the baseline, and a later audit given that baseline as reference counts into exactly those
edges and categories, so PSI and Jensen-Shannon compare like with like. Only a column the reference does
not know gets fresh edges (equal-width over its own min..max) and fresh categories (its own top values).

The result is a plain JSON-ready dict (see `ColumnMetrics` keys in docs/audit.md), so a baseline round
trips losslessly through the log: non-finite floats become None and dates become ISO strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.fingerprint import Column
from lakehouse_pipelines.lake.storage import S3Storage
from lakehouse_pipelines.settings import LakehouseSettings

NUMERIC_TYPES = ("int64", "float64")
TEMPORAL_TYPES = ("date", "timestamp")
CATEGORICAL_TYPES = ("string", "bool")
QUANTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
HISTOGRAM_BINS = 10
TOP_K = 10
# A column with more distinct values than this share of its non-null rows is identifier-like (emails,
# free text): its "top values" would be arbitrary rows, so no categories are tracked for it.
IDENTIFIER_DISTINCT_SHARE = 0.5
DUCKDB_MEMORY_LIMIT = "512MB"

Metrics = dict


def compute_metrics(lake: Lake, manifest: Manifest, reference: Metrics | None = None) -> Metrics:
    """The dataset's metrics; histogram edges and categories come from `reference` where it has them."""
    is_s3 = isinstance(lake.storage, S3Storage)
    con = engine.connect(memory_limit=DUCKDB_MEMORY_LIMIT, scratch=Path(lake.scratch), s3=is_s3)
    try:
        if is_s3:
            from lakehouse_pipelines.sql.views import create_s3_secret

            create_s3_secret(con, LakehouseSettings().aws)
        paths = ", ".join(quote_literal(lake.storage.location(o.key)) for o in manifest.objects)
        con.execute(f"CREATE TEMP VIEW audited AS SELECT * FROM read_parquet([{paths}])")
        return _metrics(con, manifest.columns, (reference or {}).get("columns", {}))
    except duckdb.Error as exc:
        # DuckDB's message may quote object locations; name the dataset and the kind of failure only.
        raise LakehouseError(
            f"could not compute audit metrics for dataset {manifest.name!r}: {type(exc).__name__}"
        ) from None
    finally:
        con.close()


def _metrics(con: duckdb.DuckDBPyConnection, columns: Sequence[Column], reference: dict) -> Metrics:
    aggregates = _scalar_aggregates(columns)
    row = con.execute(f"SELECT {', '.join(sql for _, sql in aggregates)} FROM audited").fetchone()
    scalars = {name: value for (name, _), value in zip(aggregates, row, strict=True)}
    row_count = int(scalars[("", "row_count")])
    result = {c.name: _column_scalars(c, scalars, row_count) for c in columns}
    plan = _plan_counts(columns, result, reference)
    if plan:
        counts = con.execute(f"SELECT {', '.join(sql for _, sql in plan)} FROM audited").fetchone()
        _attach_counts(result, [target for target, _ in plan], counts)
    return {"row_count": row_count, "columns": result}


Aggregate = tuple[tuple[str, str], str]  # ((column, statistic), SQL aggregate)


def _scalar_aggregates(columns: Sequence[Column]) -> list[Aggregate]:
    """Every scalar statistic of every column, as one SELECT list."""
    aggregates: list[Aggregate] = [(("", "row_count"), "count(*)")]
    for column in columns:
        c, name = quote_ident(column.name), column.name
        stats = {"count": f"count({c})", "approx_distinct": f"approx_count_distinct({c})"}
        if column.type in NUMERIC_TYPES:
            quantiles = ", ".join(str(q) for q in QUANTILES.values())
            stats |= {
                "min": f"min({c})",
                "max": f"max({c})",
                "mean": f"avg({c})",
                "stddev": f"stddev_samp({c})",
                "quantiles": f"quantile_cont({c}, [{quantiles}])",
            }
        elif column.type in TEMPORAL_TYPES:
            stats |= {"min": f"min({c})", "max": f"max({c})"}
        if column.type == "string":
            stats |= {
                "length_min": f"min(length({c}))",
                "length_max": f"max(length({c}))",
                "length_mean": f"avg(length({c}))",
            }
        if column.type in CATEGORICAL_TYPES:
            stats["top"] = f"approx_top_k({c}::VARCHAR, {TOP_K})"
        aggregates += [((name, stat), sql) for stat, sql in stats.items()]
    return aggregates


def _column_scalars(column: Column, scalars: dict, row_count: int) -> dict:
    def get(stat: str):
        return scalars.get((column.name, stat))

    count = int(get("count"))
    metrics: dict = {
        "type": column.type,
        "count": count,
        "nulls": row_count - count,
        "null_rate": (row_count - count) / row_count if row_count else 0.0,
        "approx_distinct": int(get("approx_distinct")),
    }
    if column.type in NUMERIC_TYPES:
        for stat in ("min", "max", "mean", "stddev"):
            metrics[stat] = _json_value(get(stat))
        quantiles = get("quantiles") or [None] * len(QUANTILES)
        metrics["quantiles"] = {k: _json_value(v) for k, v in zip(QUANTILES, quantiles, strict=True)}
    elif column.type in TEMPORAL_TYPES:
        metrics["min"], metrics["max"] = _json_value(get("min")), _json_value(get("max"))
    if column.type == "string":
        metrics["length"] = {
            "min": _json_value(get("length_min")),
            "max": _json_value(get("length_max")),
            "mean": _json_value(get("length_mean")),
        }
    if column.type in CATEGORICAL_TYPES:
        metrics["top_candidates"] = list(get("top") or [])
    return metrics


Target = tuple[str, str, int]  # (column, "histogram" | "top_values", position)


def _plan_counts(columns: Sequence[Column], result: dict, reference: dict) -> list[tuple[Target, str]]:
    """Histogram bins and category counts to take in the second scan, as filtered aggregates."""
    plan: list[tuple[Target, str]] = []
    for column in columns:
        metrics, known = result[column.name], reference.get(column.name) or {}
        if known.get("type") != column.type:
            known = {}
        c = quote_ident(column.name)
        if column.type in NUMERIC_TYPES:
            edges = (known.get("histogram") or {}).get("edges") or _equal_width(
                metrics["min"], metrics["max"]
            )
            if edges:
                metrics["histogram"] = {"edges": edges, "counts": []}
                plan += [
                    ((column.name, "histogram", i), f"count(*) FILTER (WHERE {condition})")
                    for i, condition in enumerate(_bin_conditions(c, edges))
                ]
        if column.type in CATEGORICAL_TYPES:
            candidates = metrics.pop("top_candidates")
            tracked = [v["value"] for v in known.get("top_values") or []]
            if metrics["approx_distinct"] <= IDENTIFIER_DISTINCT_SHARE * max(metrics["count"], 1):
                tracked += [v for v in candidates if v not in tracked]
            if tracked:
                metrics["top_values"] = [{"value": v, "count": 0} for v in tracked]
                plan += [
                    (
                        (column.name, "top_values", i),
                        f"count(*) FILTER (WHERE {c}::VARCHAR = {quote_literal(v)})",
                    )
                    for i, v in enumerate(tracked)
                ]
    return plan


def _equal_width(low, high) -> list[float] | None:
    """HISTOGRAM_BINS equal-width bins over [low, high]; one bin if the column is constant."""
    if low is None or high is None:
        return None
    low, high = float(low), float(high)
    if low == high:
        return [low, high]
    width = (high - low) / HISTOGRAM_BINS
    return [low + i * width for i in range(HISTOGRAM_BINS)] + [high]


def _bin_conditions(c: str, edges: Sequence[float]) -> list[str]:
    """Underflow, interior bins [e_i, e_i+1) with the last one closed, overflow: every value in one bin."""
    lit = [repr(float(e)) for e in edges]
    conditions = [f"{c} < {lit[0]}"]
    for i in range(len(lit) - 1):
        upper = "<=" if i == len(lit) - 2 else "<"
        conditions.append(f"{c} >= {lit[i]} AND {c} {upper} {lit[i + 1]}")
    conditions.append(f"{c} > {lit[-1]}")
    return conditions


def _attach_counts(result: dict, targets: Sequence[Target], counts: Sequence[int]) -> None:
    for (column, kind, i), count in zip(targets, counts, strict=True):
        if kind == "histogram":
            result[column]["histogram"]["counts"].append(int(count))
        else:
            result[column]["top_values"][i]["count"] = int(count)
    for metrics in result.values():
        if "top_values" in metrics:
            metrics["top_values"].sort(key=lambda v: (-v["count"], v["value"]))


def _json_value(value):
    """A DuckDB result as a JSON value that decodes back equal: ISO dates, finite floats or None."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
