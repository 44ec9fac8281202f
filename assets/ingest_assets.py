"""Each dataset's ingest, as one step: CSV drops -> `<dataset>/parquet` objects -> `<dataset>/manifest`.

One `multi_asset`, not two assets handing a Python object from one step to the next: that hand-off went
through the IO manager (pickled to a worker's local disk), which breaks as soon as steps run on separate
machines. Here the lake is the only state between steps. A bad drop does not hold back good ones in the
same batch: the good ones are registered, then the step fails naming every bad one. Embeddings, vectors and
audit checks hang off the manifest asset.
"""

from collections.abc import Iterator, Sequence

import dagster as dg
from pydantic import Field

from assets.asset_keys import manifest_key, parquet_key
from assets.metadata import declared_column_schema, inferred_column_schema, preview
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import LakehouseError, StorageUnavailable
from lakehouse_pipelines.ingest.publish import IngestResult, PublishedDrop, publish_drop, register_drop
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Catalog, Manifest
from lakehouse_pipelines.lake.fingerprint import schema_fingerprint
from resources.lake_resource import LakeResource

# Storage (S3) can blip; a bad CSV can't get better by retrying, so only storage failures are retried.
STORAGE_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


class DropsConfig(dg.Config):
    """Which drops to ingest: landing sources as given by the drop sensor; empty means every drop in landing."""

    sources: list[str] = Field(default_factory=list)


def ingest_step_name(dataset: str) -> str:
    return f"{dataset}__ingest"


def ingest_run_config(dataset: str, sources: list[str]) -> dict:
    """The run config that ingests exactly `sources` (what the drop sensor requests)."""
    return {"ops": {ingest_step_name(dataset): {"config": {"sources": sources}}}}


def ingest_asset_specs(spec: DatasetSpec) -> list[dg.AssetSpec]:
    common = {"group_name": spec.name, "owners": list(spec.owners)}
    manifest_metadata = {"dagster/table_name": spec.name}  # the sidecar's SQL view of the dataset
    if (schema := declared_column_schema(spec)) is not None:
        manifest_metadata["dagster/column_schema"] = schema
    freshness = spec.freshness
    return [
        dg.AssetSpec(
            parquet_key(spec.name),
            description=f"CSV drops of `{spec.name}` converted to typed, zstd Parquet objects in the lake. "
            f"{spec.description}",
            kinds={"parquet", "duckdb"},
            skippable=True,
            **common,
        ),
        dg.AssetSpec(
            manifest_key(spec.name),
            deps=[parquet_key(spec.name)],
            description=f"The catalog manifest of `{spec.name}`: schema, fingerprint and every Parquet object; "
            f"queryable as the SQL table `{spec.name}`.",
            kinds={"json"},
            skippable=True,
            metadata=manifest_metadata,
            freshness_policy=dg.FreshnessPolicy.time_window(
                fail_window=freshness.fail_after, warn_window=freshness.warn_after
            )
            if freshness
            else None,
            **common,
        ),
    ]


def dataset_ingest(spec: DatasetSpec) -> dg.AssetsDefinition:
    """The ingest step of one declared dataset."""

    @dg.multi_asset(
        name=ingest_step_name(spec.name),
        specs=ingest_asset_specs(spec),
        retry_policy=STORAGE_RETRY,
        description=f"Ingest `{spec.name}` drops: infer, convert, check the contract, publish, register.",
    )
    def ingest(
        context: dg.AssetExecutionContext, config: DropsConfig, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        opened = lake.open()
        sources = config.sources or pending_sources(lake, spec)
        published, errors = _publish_all(context, opened, spec, sources)
        results = []
        for drop in published:
            try:
                results.append(register_drop(opened, drop))
            except LakehouseError as exc:
                errors.append(exc)
        current = opened.catalog.find(spec.name)
        if published:
            yield dg.MaterializeResult(
                asset_key=parquet_key(spec.name), metadata=parquet_metadata(published, spec)
            )
        if current is not None and results:
            yield dg.MaterializeResult(
                asset_key=manifest_key(spec.name), metadata=manifest_metadata(opened, current, results)
            )
        if errors:
            raise dg.Failure(
                description=f"{len(errors)} drop(s) rejected, {len(results)} registered: "
                + "; ".join(str(e) for e in errors),
                allow_retries=any(isinstance(e, StorageUnavailable) for e in errors),
            )
        if current is None:
            raise dg.Failure(
                description=f"no drops for dataset {spec.name!r} in the landing area yet", allow_retries=False
            )

    return ingest


def _publish_all(
    context: dg.AssetExecutionContext, lake: Lake, spec: DatasetSpec, sources: Sequence[str]
) -> tuple[list[PublishedDrop], list[LakehouseError]]:
    published, errors = [], []
    for source in sources:
        try:
            drop = publish_drop(
                lake, source, spec, progress=lambda stage, s=source: context.log.debug(f"{s}: {stage}")
            )
        except LakehouseError as exc:
            context.log.error(str(exc))
            errors.append(exc)
            continue
        context.log.info(
            f"{source}: {'already registered' if drop.registered else 'published ' + drop.object.key}"
        )
        published.append(drop)
    return published, errors


def pending_sources(lake: LakeResource, spec: DatasetSpec) -> list[str]:
    """Every landing object matching the dataset's pattern (known sources are skipped cheaply, by hash)."""
    landing = lake.landing_storage()
    return [landing.location(o.key) for o in landing.list() if spec.matches(o.key)]


def parquet_metadata(published: Sequence[PublishedDrop], spec: DatasetSpec) -> dict:
    new = [d for d in published if not d.registered]
    metadata: dict = {
        "dagster/row_count": sum(d.object.rows for d in new),
        "objects_added": len(new),
        "bytes_added": dg.MetadataValue.int(sum(d.object.bytes for d in new)),
        "drops_already_registered": len(published) - len(new),
        "storage_keys": dg.MetadataValue.json({d.object.key: d.source for d in new}),
    }
    columns = published[-1].columns
    metadata["schema_fingerprint"] = schema_fingerprint(columns)
    metadata["dagster/column_schema"] = inferred_column_schema(columns, spec)
    if new:
        metadata["preview"] = preview(new[-1].sample, columns)
    return metadata


def manifest_metadata(lake: Lake, current: Manifest, results: Sequence[IngestResult]) -> dict:
    location = lake.storage.location(Catalog.manifest_key(current.name))
    return {
        "dagster/row_count": current.row_count,
        "dagster/uri": location if location.startswith("s3://") else f"file://{location}",
        "version": current.version,
        "objects": len(current.objects),
        "dataset_id": current.dataset_id,
        "schema_fingerprint": current.schema_fingerprint,
        "registered": dg.MetadataValue.table(
            [
                dg.TableRecord({"status": r.status, "source": r.source, "rows": r.object.rows})
                for r in results
            ],
            dg.TableSchema(
                columns=[
                    dg.TableColumn("status", "string"),
                    dg.TableColumn("source", "string"),
                    dg.TableColumn("rows", "int"),
                ]
            ),
        ),
    }
