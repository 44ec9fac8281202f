"""Per-dataset lake assets: `<dataset>/parquet` (drops converted and published) → `<dataset>/manifest`.

Thin on purpose: the work is `publish_drop` / `register_drop` in the lake core. A bad drop does not hold
back good ones in the same batch: the good ones are registered, then the run fails naming every bad one.
Embeddings, vectors and audit checks hang off the manifest asset of the same group.
"""

from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from lakehouse_pipelines.catalog import Manifest
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.fingerprint import schema_fingerprint
from lakehouse_pipelines.ingest import IngestResult, PublishedDrop, publish_drop, register_drop
from lakehouse_pipelines.preview import markdown_table
from resources.lake import LakeResource


class DropsConfig(dg.Config):
    """Which drops to ingest: landing sources as given by the drop sensor; empty means every drop in landing."""

    sources: list[str] = Field(default_factory=list)


def parquet_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "parquet"])


def manifest_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "manifest"])


def dataset_lake_assets(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The parquet and manifest assets of one declared dataset."""

    @dg.asset(
        key=parquet_key(spec.name),
        group_name=spec.name,
        description=f"CSV drops of `{spec.name}` converted to typed, zstd Parquet objects in the lake. {spec.description}",
        kinds={"parquet", "duckdb"},
    )
    def parquet(context: dg.AssetExecutionContext, config: DropsConfig, lake: LakeResource) -> dg.Output:
        opened = lake.open()
        sources = config.sources or pending_sources(lake, spec)
        published, failures = [], []
        for source in sources:
            try:
                drop = publish_drop(
                    opened, source, spec, progress=lambda stage, s=source: context.log.debug(f"{s}: {stage}")
                )
            except LakehouseError as exc:
                context.log.error(str(exc))
                failures.append(str(exc))
                continue
            context.log.info(
                f"{source}: {'already registered' if drop.registered else 'published ' + drop.object.key}"
            )
            published.append(drop)
        if failures and not published:
            raise dg.Failure(description="; ".join(failures))
        return dg.Output({"drops": published, "failures": failures}, metadata=parquet_metadata(published))

    @dg.asset(
        key=manifest_key(spec.name),
        group_name=spec.name,
        ins={"drops": dg.AssetIn(parquet_key(spec.name))},
        description=f"The catalog manifest of `{spec.name}`: schema, fingerprint and every Parquet object.",
        kinds={"json"},
    )
    def manifest(context: dg.AssetExecutionContext, drops: dict, lake: LakeResource) -> dg.MaterializeResult:
        opened = lake.open()
        results: list[IngestResult] = []
        failures = list(drops["failures"])
        for drop in drops["drops"]:
            try:
                results.append(register_drop(opened, drop))
            except LakehouseError as exc:
                failures.append(str(exc))
        if failures:
            raise dg.Failure(
                description=f"{len(failures)} drop(s) rejected, {len(results)} registered: "
                + "; ".join(failures)
            )
        current = opened.catalog.find(spec.name)
        if current is None:
            raise dg.Failure(description=f"no drops for dataset {spec.name!r} in the landing area yet")
        return dg.MaterializeResult(metadata=manifest_metadata(current, results))

    return [parquet, manifest]


def pending_sources(lake: LakeResource, spec: DatasetSpec) -> list[str]:
    """Every landing object matching the dataset's pattern (known sources are skipped cheaply, by hash)."""
    landing = lake.landing_storage()
    return [landing.location(o.key) for o in landing.list() if spec.matches(o.key)]


def parquet_metadata(published: Sequence[PublishedDrop]) -> dict:
    new = [d for d in published if not d.registered]
    metadata: dict = {
        "dagster/row_count": sum(d.object.rows for d in new),
        "objects_added": len(new),
        "bytes_added": dg.MetadataValue.int(sum(d.object.bytes for d in new)),
        "drops_already_registered": len(published) - len(new),
        "storage_keys": dg.MetadataValue.md(
            "\n".join(f"- `{d.object.key}` ← {d.source}" for d in new) or "none"
        ),
    }
    if published:
        columns = published[-1].columns
        metadata["schema_fingerprint"] = schema_fingerprint(columns)
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[
                dg.TableColumn(c.name, c.type, constraints=dg.TableColumnConstraints(nullable=c.nullable))
                for c in columns
            ]
        )
    if new:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(new[-1].sample))
    return metadata


def manifest_metadata(current: Manifest, results: Sequence[IngestResult]) -> dict:
    return {
        "dagster/row_count": current.row_count,
        "version": current.version,
        "objects": len(current.objects),
        "dataset_id": current.dataset_id,
        "schema_fingerprint": current.schema_fingerprint,
        "registered": dg.MetadataValue.md(
            "\n".join(f"- {r.status}: {r.source} ({r.object.rows:,} rows)" for r in results) or "nothing new"
        ),
        "columns": dg.MetadataValue.md(
            markdown_table(
                [{"column": c.name, "type": c.type, "nullable": c.nullable} for c in current.columns]
            )
        ),
    }
