"""One audit of one dataset: measure, record the baseline, compare with the reference.

The reference is the pinned run (argument, else the `audit: reference:` of the declaration) or the
dataset's newest baseline before this one. It is chosen *before* measuring because the new metrics are
counted into the reference's histogram edges and categories, which is what makes them comparable.

Identifier columns (declared `unique` in the contract, or the embedding's `id_column`) get no distribution
test: their values name rows rather than measure anything, and a new drop's ids fall outside the old range
by design, so PSI would cry drift on every ingest. Their null rates and counts are still compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lakehouse_pipelines.audit.baseline_log import Baseline, BaselineLog
from lakehouse_pipelines.audit.distribution import DistributionDrift, distribution_drift
from lakehouse_pipelines.audit.drift import AuditConfig, DriftRow, Verdict, drift_table, worst
from lakehouse_pipelines.audit.metrics import compute_metrics
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Manifest


@dataclass(frozen=True)
class AuditResult:
    baseline: Baseline
    reference: Baseline | None  # None: the dataset's first audit, nothing to compare yet
    manifest: Manifest
    rows: list[DriftRow] = field(default_factory=list)
    distributions: list[DistributionDrift] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return worst(self.rows)


def run_audit(
    lake: Lake,
    spec: DatasetSpec,
    *,
    reference: str | None = None,
    run_id: str | None = None,
    record: bool = True,
) -> AuditResult:
    """Audit `spec`'s current manifest; append the baseline to the log unless `record` is False."""
    started = time.perf_counter()
    config = AuditConfig(spec.audit)
    manifest = lake.catalog.find(spec.name)
    if manifest is None:
        raise NotFound(f"dataset {spec.name!r} has no registered data to audit; ingest a drop first")
    log = BaselineLog(lake.storage)
    pinned = reference or config.reference
    if pinned:
        ref = log.find(spec.name, pinned)
    else:
        newest = log.latest(spec.name, 1)
        ref = newest[0] if newest else None
    metrics = compute_metrics(lake, manifest, ref.metrics if ref else None)
    identity = {"run_id": run_id} if run_id else {}
    baseline = Baseline(spec.name, manifest.schema_fingerprint, manifest.version, metrics, **identity)
    if record:
        log.append(baseline)
    if ref is None:
        return AuditResult(baseline, None, manifest, seconds=time.perf_counter() - started)
    identifiers = identifier_columns(spec)
    distributions = [d for d in distribution_drift(ref.metrics, metrics) if d.column not in identifiers]
    rows = drift_table(ref, baseline, distributions, config)
    return AuditResult(baseline, ref, manifest, rows, distributions, time.perf_counter() - started)


def identifier_columns(spec: DatasetSpec) -> set[str]:
    """The columns the declaration marks as row identifiers: contract `unique`, embedding `id_column`."""
    rules = (spec.contract or {}).get("columns") or {}
    unique = {name for name, rule in rules.items() if (rule or {}).get("unique")}
    return unique | ({spec.embedding.id_column} if spec.embedding else set())
