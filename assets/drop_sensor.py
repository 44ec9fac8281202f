"""The drop sensor: new CSVs in the landing area (a folder or an S3 prefix) become ingest runs.

One body serves both backends through the Storage interface. The cursor logic lives in
`lakehouse_pipelines.ingest.landing_scan`; this module only turns a scan into run requests and log lines.
"""

from collections.abc import Sequence

import dagster as dg

from assets.dataset_defs import ingest_job_name
from assets.ingest_assets import ingest_run_config
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.ingest.landing_scan import Cursor, scan
from resources.lake_resource import LakeResource

SENSOR_NAME = "landing_drop_sensor"


def build_drop_sensor(specs: dict[str, DatasetSpec], jobs: Sequence) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches one ingest run per dataset for the CSVs dropped since the last tick.",
    )
    def landing_drop_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        result = scan(lake.landing_storage(), specs, Cursor.parse(context.cursor))
        for key in result.undeclared:
            context.log.warning(f"{key}: no declared dataset matches this drop; left in place")
        for key, reason in result.refused:
            context.log.warning(f"{key}: refused, {reason}; left in place")
        if result.remaining:
            context.log.info(f"{result.remaining} more drops wait for the next tick")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=batch.run_key,
                    job_name=ingest_job_name(batch.dataset),
                    run_config=ingest_run_config(batch.dataset, [d.source for d in batch.drops]),
                    tags={"lakehouse/dataset": batch.dataset, "lakehouse/drops": str(len(batch.drops))},
                )
                for batch in result.batches
            ],
            cursor=result.cursor.serialize(),
        )

    return landing_drop_sensor
