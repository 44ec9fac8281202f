"""The Dagster resources: thin `ConfigurableResource`s over the plain-Python lake, built from the settings.

`build_resources` turns one `LakehouseSettings` into the code location's resources: a field whose variable is
set becomes `EnvVar(<VARIABLE>)` (the UI shows where it comes from), any other field carries the setting's
default. `lakehouse doctor` probes the same settings parts, so a run and doctor see one configuration.
"""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from lakehouse_pipelines.settings import LakehouseSettings
from resources.lake_duckdb import LakeDuckDBResource
from resources.lake_resource import LakeResource
from resources.search_resources import EmbedderResource, VectorStoreResource


def build_resources(settings: LakehouseSettings) -> dict[str, dg.ConfigurableResource]:
    """lake (with its S3 client), duckdb (a view per dataset), embedder, vector_store."""

    def configured(field: str, kind=str):
        """EnvVar of the field's variable when it is set, else the settings' value."""
        if field in settings.model_fields_set:
            return dg.EnvVar.int(field.upper()) if kind is int else dg.EnvVar(field.upper())
        value = getattr(settings, field)
        return value.get_secret_value() if hasattr(value, "get_secret_value") else kind(value)

    def optional(field: str) -> dg.EnvVar | None:
        return dg.EnvVar(field.upper()) if field in settings.model_fields_set else None

    s3 = S3Resource(
        endpoint_url=optional("aws_endpoint_url_s3") or optional("aws_endpoint_url"),
        region_name=optional("aws_region") or optional("aws_default_region"),
        aws_access_key_id=optional("aws_access_key_id"),
        aws_secret_access_key=optional("aws_secret_access_key"),
        aws_session_token=optional("aws_session_token"),
    )
    lake = LakeResource(
        home=configured("lakehouse_home"),
        storage=configured("lakehouse_storage"),
        landing=configured("lakehouse_landing"),
        max_file_bytes=configured("lakehouse_max_file_bytes", int),
        s3=s3,
    )
    return {
        "lake": lake,
        "duckdb": LakeDuckDBResource(lake=lake),
        "embedder": EmbedderResource(
            kind=configured("lakehouse_embedder"),
            ollama_host=configured("ollama_host"),
            ollama_model=configured("lakehouse_ollama_model"),
            ollama_concurrency=configured("lakehouse_ollama_concurrency", int),
            model_cache=configured("lakehouse_model_cache"),
            threads=configured("lakehouse_encoder_threads", int) if settings.lakehouse_encoder_threads else 0,
        ),
        "vector_store": VectorStoreResource(
            qdrant_url=configured("qdrant_url"),
            qdrant_api_key=configured("qdrant_api_key"),
            quantization=configured("lakehouse_vector_quantization"),
        ),
    }
