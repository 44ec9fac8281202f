"""Audit checks on each dataset's manifest asset: schema, contract, row-count, null-rate, distribution drift.

One multi-asset check per dataset runs one audit (`audit/runner.py`) and reports it as up to five results,
so a run appends exactly one line to the baseline log however many of its checks it evaluates. The checks
run after every ingest (the ingest job selects them with the manifest asset) and on the audit schedule, alone.

Severities: a changed schema or a broken contract is bad data, so those fail with ERROR and are blocking:
`<dataset>/embeddings` and anything else downstream of the manifest does not run in that run. Row-count and
null-rate drift warn (WARN) past their warn threshold and fail with ERROR past a `fail` threshold the
dataset declares; they are blocking too, so only a declared `fail` stops downstream assets. Distribution
drift says the data moved, not that it is wrong: WARN for "possible drift", ERROR for "drift", never
blocking. See docs/audit.md.
"""

from collections.abc import Iterator

import dagster as dg

from assets.asset_keys import manifest_key
from lakehouse_pipelines.audit.chart import distribution_svg, markdown_image
from lakehouse_pipelines.audit.contract_recheck import contract_problems
from lakehouse_pipelines.audit.drift import DriftRow, worst
from lakehouse_pipelines.audit.report import format_change, markdown
from lakehouse_pipelines.audit.runner import AuditResult, run_audit
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Manifest
from resources.lake_resource import LakeResource

SCHEMA_CHECK = "schema_unchanged"
CONTRACT_CHECK = "contract"
ROW_COUNT_CHECK = "row_count_drift"
NULL_RATE_CHECK = "null_rate_drift"
DISTRIBUTION_CHECK = "distribution_drift"
DRIFT_CHECKS = (SCHEMA_CHECK, ROW_COUNT_CHECK, NULL_RATE_CHECK, DISTRIBUTION_CHECK)
MAX_CHARTS = 3
MAX_FLAGGED = 5


def audit_check_specs(spec: DatasetSpec) -> list[dg.AssetCheckSpec]:
    """The dataset's checks; the contract check only where the declaration has a contract."""
    asset = manifest_key(spec.name)
    specs = [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=asset,
            blocking=True,
            description="The schema fingerprint equals the reference baseline's (ERROR, blocking).",
        ),
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=asset,
            blocking=True,
            description="Row count against the reference: WARN past the warn threshold (20% by default), "
            "ERROR and blocking past a declared fail threshold.",
        ),
        dg.AssetCheckSpec(
            NULL_RATE_CHECK,
            asset=asset,
            blocking=True,
            description="Per-column null rate against the reference: WARN past the warn threshold, "
            "ERROR and blocking past a declared fail threshold.",
        ),
        dg.AssetCheckSpec(
            DISTRIBUTION_CHECK,
            asset=asset,
            description="PSI (numerics) and Jensen-Shannon distance (categoricals) against the reference: "
            "WARN for possible drift, ERROR for drift; never blocking.",
        ),
    ]
    if spec.contract:
        specs.insert(
            1,
            dg.AssetCheckSpec(
                CONTRACT_CHECK,
                asset=asset,
                blocking=True,
                description="Every registered object satisfies the declared pandera contract (ERROR, blocking).",
            ),
        )
    return specs


def dataset_audit_checks(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    """The multi-asset check that audits one dataset."""

    @dg.multi_asset_check(
        specs=audit_check_specs(spec),
        name=f"{spec.name}_audit",
        can_subset=True,
        description=f"Audit of `{spec.name}`: metrics → baseline log → drift table against the reference.",
    )
    def audit(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> Iterator[dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        try:
            yield from audit_results(lake.open(), spec, selected, context.run.run_id)
        except LakehouseError as exc:
            raise dg.Failure(description=f"audit of dataset {spec.name!r} failed: {exc}") from None

    return audit


def audit_results(
    lake: Lake, spec: DatasetSpec, selected: set[str], run_id: str
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks' results from one audit (and one contract pass if the contract is selected)."""
    manifest = lake.catalog.find(spec.name)
    if manifest is None:
        for name in sorted(selected):
            yield _result(
                spec,
                name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"dataset {spec.name!r} has no registered data yet",
            )
        return
    if selected & set(DRIFT_CHECKS):
        audit = run_audit(lake, spec, run_id=run_id)
        manifest = audit.manifest
        yield from (drift_result(spec, name, audit) for name in DRIFT_CHECKS if name in selected)
    if CONTRACT_CHECK in selected:
        yield contract_result(spec, lake, manifest)


def drift_result(spec: DatasetSpec, name: str, audit: AuditResult) -> dg.AssetCheckResult:
    """One drift check's verdict from the audit's rows, with its rows as a Markdown table."""
    rows = [r for r in audit.rows if _belongs(name, r)]
    metadata = {"audit_run_id": audit.baseline.run_id, "manifest_version": audit.baseline.manifest_version}
    if audit.reference is None:
        first = "first baseline recorded; nothing to compare yet"
        return _result(spec, name, passed=True, description=first, metadata=metadata)
    metadata |= {
        "reference_run_id": audit.reference.run_id,
        "reference_timestamp": audit.reference.timestamp,
        **_check_metadata(name, rows, audit),
    }
    verdict = "fail" if name == SCHEMA_CHECK and rows else worst(rows)
    return _result(
        spec,
        name,
        passed=verdict == "ok",
        severity=dg.AssetCheckSeverity.ERROR if verdict == "fail" else dg.AssetCheckSeverity.WARN,
        description=_summary(verdict, rows),
        metadata=metadata,
    )


def _check_metadata(name: str, rows: list[DriftRow], audit: AuditResult) -> dict:
    """The check's own rows as a Markdown table, plus what that check alone shows (numbers, charts)."""
    reference = audit.reference
    if name == SCHEMA_CHECK:
        table = {"drift_table": dg.MetadataValue.md(markdown(rows))} if rows else {}
        return table | {
            "schema_fingerprint": audit.baseline.schema_fingerprint,
            "reference_schema_fingerprint": reference.schema_fingerprint,
        }
    metadata = {"drift_table": dg.MetadataValue.md(markdown(rows))}
    if name == ROW_COUNT_CHECK:
        metadata |= {
            "row_count": audit.baseline.metrics["row_count"],
            "reference_row_count": reference.metrics["row_count"],
            "all_metrics": dg.MetadataValue.md(markdown(audit.rows)),
        }
    if name == DISTRIBUTION_CHECK and rows:
        metadata |= {
            "worst_score": max(r.change for r in rows),
            "charts": dg.MetadataValue.md(_charts(audit)),
        }
    return metadata


def _summary(verdict: str, rows: list[DriftRow]) -> str:
    """The verdict and the flagged rows in one line, e.g. `warn: row_count +100.0%`."""
    flagged = [f"{r.column or r.metric} {format_change(r)}" for r in rows if r.verdict != "ok"]
    if not flagged:
        return f"ok: {len(rows)} compared metric(s) within their thresholds" if rows else "ok: unchanged"
    more = f" and {len(flagged) - MAX_FLAGGED} more" if len(flagged) > MAX_FLAGGED else ""
    return f"{verdict}: {', '.join(flagged[:MAX_FLAGGED])}{more}"


def contract_result(spec: DatasetSpec, lake: Lake, manifest: Manifest) -> dg.AssetCheckResult:
    problems = contract_problems(lake, spec, manifest)
    return _result(
        spec,
        CONTRACT_CHECK,
        passed=not problems,
        description=f"{len(problems)} of {len(manifest.objects)} objects break the contract"
        if problems
        else f"all {len(manifest.objects)} objects satisfy the contract",
        metadata={
            "objects_checked": len(manifest.objects),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )


def _belongs(check: str, row: DriftRow) -> bool:
    return {
        SCHEMA_CHECK: row.kind == "schema",
        ROW_COUNT_CHECK: row.metric == "row_count",
        NULL_RATE_CHECK: row.metric == "null_rate",
        DISTRIBUTION_CHECK: row.kind == "distribution",
    }[check]


def _charts(audit: AuditResult) -> str:
    """The most drifted columns' distributions against the reference, as inline SVG images."""
    compared = {r.column for r in audit.rows if r.kind == "distribution"}  # skipped columns stay out
    drifts = [d for d in audit.distributions if d.column in compared]
    shown = sorted(drifts, key=lambda d: d.score, reverse=True)[:MAX_CHARTS]
    return "\n\n".join(
        f"**{d.column}** ({d.test.upper()} {d.score:.3f})\n\n{markdown_image(distribution_svg(d), d.column)}"
        for d in shown
    )


def _result(
    spec: DatasetSpec,
    name: str,
    *,
    passed: bool,
    description: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    metadata: dict | None = None,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=manifest_key(spec.name),
        check_name=name,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata or {},
    )
