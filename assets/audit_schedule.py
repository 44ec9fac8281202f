"""The scheduled audit: a job of every dataset's audit checks alone, and the schedule that launches it.

The checks also run after each ingest (they ride along in the ingest job); the schedule covers the mornings
when no drop came, so a feed that stopped, or a baseline pinned by hand, is still looked at every day.
The cron expression comes from `LAKEHOUSE_AUDIT_CRON` (default daily at 06:00 UTC).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from assets.asset_keys import manifest_key
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.settings import DEFAULT_AUDIT_CRON

AUDIT_JOB_NAME = "audit_checks"
SCHEDULE_NAME = "audit_schedule"
CRON_VARIABLE = "LAKEHOUSE_AUDIT_CRON"


def audit_job(datasets: Iterable[str]) -> dg.UnresolvedAssetJobDefinition:
    """Every dataset's audit checks, without materializing any asset."""
    return dg.define_asset_job(
        AUDIT_JOB_NAME,
        selection=dg.AssetSelection.checks_for_assets(*(manifest_key(name) for name in datasets)),
        description="Audit every dataset: metrics, a baseline line each, drift checks. No asset runs.",
        tags={"lakehouse/audit": "scheduled"},
    )


def build_audit_schedule(job: dg.UnresolvedAssetJobDefinition, cron: str) -> dg.ScheduleDefinition:
    """The schedule on `cron` (LAKEHOUSE_AUDIT_CRON); a malformed expression is refused by name."""
    cron = cron.strip() or DEFAULT_AUDIT_CRON
    try:
        return dg.ScheduleDefinition(
            name=SCHEDULE_NAME,
            job=job,
            cron_schedule=cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Runs the audit checks alone; cron from {CRON_VARIABLE} "
            f"(default {DEFAULT_AUDIT_CRON!r}, UTC).",
        )
    except dg.DagsterInvalidDefinitionError:
        raise LakehouseError(
            f"{CRON_VARIABLE}={cron!r} is not a 5-field cron expression (e.g. {DEFAULT_AUDIT_CRON!r})"
        ) from None
