"""The code location: one `dataset_defs` per declared dataset, merged with what the datasets share.

Shared: the drop sensor (one listing of the landing area serves every dataset), the audit job and its
schedule, the automation sensor that starts embeddings and vectors after an ingest, and the resources, built
from the one settings model. Built lazily by `@dg.definitions`: nothing is read until Dagster loads the
location (`dg check defs`, `dagster dev`, a run's process).
"""

from __future__ import annotations

import dagster as dg

from assets.asset_keys import embeddings_key, vectors_key
from assets.audit_schedule import audit_job, build_audit_schedule
from assets.dataset_defs import INGEST_JOB_SUFFIX, dataset_defs
from assets.drop_sensor import build_drop_sensor
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.settings import LakehouseSettings
from resources import build_resources

SEARCH_AUTOMATION_SENSOR = "search_automation_sensor"


def build_definitions(settings: LakehouseSettings | None = None) -> dg.Definitions:
    settings = settings or LakehouseSettings()
    specs = load_specs()
    per_dataset = [dataset_defs(spec) for spec in specs.values()]
    searchable = [name for name, spec in specs.items() if spec.embedding is not None]
    audit = audit_job(specs)
    shared = dg.Definitions(
        jobs=[audit],
        schedules=[build_audit_schedule(audit, settings.lakehouse_audit_cron)],
        sensors=[
            build_drop_sensor(
                specs,
                [job for d in per_dataset for job in d.jobs or [] if job.name.endswith(INGEST_JOB_SUFFIX)],
            ),
            dg.AutomationConditionSensorDefinition(
                SEARCH_AUTOMATION_SENSOR,
                target=dg.AssetSelection.assets(
                    *(key(name) for name in searchable for key in (embeddings_key, vectors_key))
                ),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=30,
                description="Starts embeddings and vectors once an ingest registered data and its blocking "
                "checks passed.",
            ),
        ],
        resources=build_resources(settings),
    )
    return dg.Definitions.merge(*per_dataset, shared)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
