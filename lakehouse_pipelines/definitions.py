"""The code location: every declared dataset's asset chain and audit checks, its ingest job, the drop
sensor, the audit job and schedule, resources.

Resources read the contract's environment variables through EnvVar where they are set, so the UI shows
where each setting comes from; unset means the embedded default (a lake under LAKEHOUSE_HOME, the local
embedding model, Qdrant Edge).
"""

from __future__ import annotations

import os

import dagster as dg

from assets.audit_checks import dataset_audit_checks
from assets.embeddings import dataset_search_assets
from assets.lake import dataset_lake_assets
from lakehouse_pipelines.audit_schedule import audit_job, build_audit_schedule
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.drop_sensor import build_drop_sensor, ingest_job_name
from resources.embeddings import EmbedderResource, VectorStoreResource
from resources.lake import LakeResource


def env_or_default(name: str) -> dg.EnvVar | str:
    """EnvVar(name) when the variable is set, else "" (the resource's embedded default)."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def lake_resource() -> LakeResource:
    return LakeResource(
        home=env_or_default("LAKEHOUSE_HOME"),
        storage=env_or_default("LAKEHOUSE_STORAGE"),
        landing=env_or_default("LAKEHOUSE_LANDING"),
    )


def embedder_resource() -> EmbedderResource:
    return EmbedderResource(
        kind=env_or_default("LAKEHOUSE_EMBEDDER"),
        ollama_host=env_or_default("OLLAMA_HOST"),
        ollama_model=env_or_default("LAKEHOUSE_OLLAMA_MODEL"),
    )


def vector_store_resource() -> VectorStoreResource:
    return VectorStoreResource(
        qdrant_url=env_or_default("QDRANT_URL"), qdrant_api_key=env_or_default("QDRANT_API_KEY")
    )


def build_definitions() -> dg.Definitions:
    specs = load_specs()
    assets = [
        a for spec in specs.values() for a in [*dataset_lake_assets(spec), *dataset_search_assets(spec)]
    ]
    jobs = [
        dg.define_asset_job(
            ingest_job_name(name), selection=dg.AssetSelection.groups(name), tags={"lakehouse/dataset": name}
        )
        for name in specs
    ]
    audit = audit_job(specs)
    return dg.Definitions(
        assets=assets,
        asset_checks=[dataset_audit_checks(spec) for spec in specs.values()],
        jobs=[*jobs, audit],
        schedules=[build_audit_schedule(audit)],
        sensors=[build_drop_sensor(specs, jobs)],
        resources={
            "lake": lake_resource(),
            "embedder": embedder_resource(),
            "vector_store": vector_store_resource(),
        },
    )


defs = build_definitions()
