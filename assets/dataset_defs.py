"""One factory per declared dataset: `dataset_defs(spec)` returns the dataset's whole pipeline as Definitions.

Its ingest step (`<dataset>/parquet` + `<dataset>/manifest`), its audit checks, its search assets (when the
declaration has an embedding block), the ingest job the drop sensor launches, and jobs to rebuild an
embedding unit or the collection by hand. `definitions.py` merges one of these per YAML file with what is shared.
"""

from __future__ import annotations

import warnings

import dagster as dg

from assets.asset_keys import embeddings_key, manifest_key, parquet_key, vectors_key
from assets.audit_checks import dataset_audit_checks
from assets.ingest_assets import dataset_ingest
from assets.search_assets import dataset_search_assets
from lakehouse_pipelines.datasets import DatasetSpec

INGEST_JOB_SUFFIX = "_ingest"


def ingest_job_name(dataset: str) -> str:
    return f"{dataset}{INGEST_JOB_SUFFIX}"


def embeddings_job_name(dataset: str) -> str:
    return f"{dataset}_embeddings"


def vectors_job_name(dataset: str) -> str:
    return f"{dataset}_vectors"


def ingest_selection(dataset: str) -> dg.AssetSelection:
    """The drop's run: parquet and manifest and the manifest's checks; never the embeddings."""
    return dg.AssetSelection.assets(
        parquet_key(dataset), manifest_key(dataset)
    ) | dg.AssetSelection.checks_for_assets(manifest_key(dataset))


def dataset_defs(spec: DatasetSpec) -> dg.Definitions:
    """Everything Dagster knows about one dataset."""
    search = dataset_search_assets(spec)
    tags = {"lakehouse/dataset": spec.name}
    jobs = [dg.define_asset_job(ingest_job_name(spec.name), selection=ingest_selection(spec.name), tags=tags)]
    if search:  # by hand (a backfill of the units, then the collection); automation does it after each ingest
        jobs += [
            dg.define_asset_job(
                embeddings_job_name(spec.name),
                selection=dg.AssetSelection.assets(embeddings_key(spec.name)),
                tags=tags,
                description=f"Embed one unit (partition) of `{spec.name}`.",
            ),
            dg.define_asset_job(
                vectors_job_name(spec.name),
                selection=dg.AssetSelection.assets(vectors_key(spec.name)),
                tags=tags,
                description=f"Sync `{spec.name}`'s collection from every embedding unit.",
            ),
        ]
    with warnings.catch_warnings():  # code references are a beta API, used on purpose: no warning per load
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references([dataset_ingest(spec), *search])
    return dg.Definitions(
        assets=assets,
        asset_checks=[dataset_audit_checks(spec)],
        jobs=jobs,
    )
