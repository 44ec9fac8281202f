"""The drift table: the newest baseline against its reference (the previous one, or a pinned run).

Each row is one metric: old value, new value, change, verdict `ok` / `warn` / `fail`.

Scalar metrics use the relative change (new - old) / |old|. It warns above `warn` (default 0.2, i.e. 20%)
and fails above `fail` (default: never). Zero baselines are explicit, so no row divides by zero or shows
an infinite percentage: 0 -> 0 is ok with change 0; 0 -> x is warn with no percentage (note "from 0");
a value that appears or vanishes (None on one side) is warn. Distribution rows (PSI, JS distance, see
distribution.py) carry the divergence score as their change and use its band instead. A changed schema
fingerprint is a fail row.

Thresholds come from the dataset's `audit:` block in schemas/<dataset>.yaml, most specific first:

    audit:
      reference: 3f2a9c...        # optional: pin the reference baseline by run id (prefix)
      thresholds:                 # per metric, for every column
        default: {warn: 0.2}      # every relative metric without its own entry
        row_count: {warn: 1.0}
        null_rate: {warn: 0.2, fail: 1.0}
        psi: {warn: 0.1, fail: 0.25}
        js: {warn: 0.1, fail: 0.2}
      columns:                    # per column and metric; `skip: true` leaves a column out
        last_placed: {null_rate: {warn: 0.5}}
        worker_id: {skip: true}

Metric names: row_count, null_rate, approx_distinct, mean, stddev, min, max, p5, p25, p50, p75, p95,
length_mean, psi, js.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from lakehouse_pipelines.audit.baseline_log import Baseline
from lakehouse_pipelines.audit.distribution import DEFAULT_BANDS, DistributionDrift, band_verdict
from lakehouse_pipelines.audit.metrics import NUMERIC_TYPES, QUANTILES

Verdict = Literal["ok", "warn", "fail"]
Kind = Literal["relative", "distribution", "schema"]
DEFAULT_WARN = 0.2
VERDICT_ORDER = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Threshold:
    warn: float | None = DEFAULT_WARN
    fail: float | None = None


@dataclass(frozen=True)
class DriftRow:
    metric: str
    column: str | None  # None for dataset-level metrics
    old: float | int | str | None
    new: float | int | str | None
    change: float | None  # relative change, or the divergence score for distribution rows
    verdict: Verdict
    kind: Kind = "relative"
    note: str = ""


class AuditConfig:
    """The `audit:` block of a dataset declaration, resolved per (column, metric)."""

    def __init__(self, raw: Mapping | None = None):
        raw = raw or {}
        self.reference: str | None = raw.get("reference")
        self._thresholds: Mapping = raw.get("thresholds") or {}
        self._columns: Mapping = raw.get("columns") or {}

    def skipped(self, column: str) -> bool:
        return bool((self._columns.get(column) or {}).get("skip"))

    def threshold(self, metric: str, column: str | None = None) -> Threshold:
        for source in ((self._columns.get(column) or {}) if column else {}, self._thresholds):
            if metric in source:
                return _threshold(source[metric], metric)
        if metric in DEFAULT_BANDS:
            return Threshold(*DEFAULT_BANDS[metric])
        return _threshold(self._thresholds.get("default") or {}, metric)


def _threshold(raw: Mapping, metric: str) -> Threshold:
    default = Threshold(*DEFAULT_BANDS[metric]) if metric in DEFAULT_BANDS else Threshold()
    return Threshold(warn=raw.get("warn", default.warn), fail=raw.get("fail", default.fail))


def relative_verdict(old, new, threshold: Threshold) -> tuple[float | None, Verdict, str]:
    """(change, verdict, note) for one scalar metric; the zero and missing cases spelled out."""
    if old is None and new is None:
        return None, "ok", ""
    if old is None or new is None:
        return None, "warn", "appeared" if old is None else "vanished"
    if old == new:
        return 0.0, "ok", ""
    if old == 0:
        return None, "warn", "from 0"
    change = (new - old) / abs(old)
    if threshold.fail is not None and abs(change) > threshold.fail:
        return change, "fail", ""
    if threshold.warn is not None and abs(change) > threshold.warn:
        return change, "warn", ""
    return change, "ok", ""


def drift_table(
    reference: Baseline,
    new: Baseline,
    distributions: list[DistributionDrift],
    config: AuditConfig | None = None,
) -> list[DriftRow]:
    """Every compared metric of `new` against `reference`, in a stable order."""
    config = config or AuditConfig()
    rows: list[DriftRow] = []
    if reference.schema_fingerprint != new.schema_fingerprint:
        rows.append(
            DriftRow(
                "schema_fingerprint",
                None,
                reference.schema_fingerprint[:16],
                new.schema_fingerprint[:16],
                None,
                "fail",
                "schema",
                "schema changed",
            )
        )
    rows.append(
        _relative("row_count", None, reference.metrics["row_count"], new.metrics["row_count"], config)
    )
    old_columns, new_columns = reference.metrics["columns"], new.metrics["columns"]
    for name, new_col in new_columns.items():
        if config.skipped(name):
            continue
        old_col = old_columns.get(name)
        if old_col is None:
            rows.append(DriftRow("column", name, None, new_col["type"], None, "warn", "schema", "new column"))
            continue
        rows += [_relative(metric, name, o, n, config) for metric, o, n in _scalar_pairs(old_col, new_col)]
    for name, old_col in old_columns.items():
        if name not in new_columns and not config.skipped(name):
            rows.append(DriftRow("column", name, old_col["type"], None, None, "warn", "schema", "removed"))
    for d in distributions:
        if config.skipped(d.column):
            continue
        band = config.threshold(d.test, d.column)
        verdict = band_verdict(d.score, band.warn, band.fail)
        note = {"ok": "", "warn": "possible drift", "fail": "drift"}[verdict]
        rows.append(DriftRow(d.test, d.column, None, None, d.score, verdict, "distribution", note))
    return rows


def worst(rows: list[DriftRow]) -> Verdict:
    """The overall verdict: the worst row's."""
    return max((r.verdict for r in rows), key=VERDICT_ORDER.__getitem__, default="ok")


def _relative(metric: str, column: str | None, old, new, config: AuditConfig) -> DriftRow:
    change, verdict, note = relative_verdict(old, new, config.threshold(metric, column))
    return DriftRow(metric, column, old, new, change, verdict, "relative", note)


def _scalar_pairs(old: dict, new: dict) -> Iterator[tuple[str, object, object]]:
    """(metric, old, new) for every numeric statistic both column metrics may carry."""
    yield "null_rate", old.get("null_rate"), new.get("null_rate")
    yield "approx_distinct", old.get("approx_distinct"), new.get("approx_distinct")
    if new.get("type") in NUMERIC_TYPES:
        for stat in ("mean", "stddev", "min", "max"):
            yield stat, old.get(stat), new.get(stat)
        for q in QUANTILES:
            yield q, (old.get("quantiles") or {}).get(q), (new.get("quantiles") or {}).get(q)
    if "length" in new:
        yield "length_mean", (old.get("length") or {}).get("mean"), new["length"].get("mean")
