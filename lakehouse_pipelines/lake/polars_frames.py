"""A dataset as a polars LazyFrame: the current manifest's Parquet objects, scanned lazily.

For users' own Dagster assets and notebooks that prefer polars to SQL (the sidecar and DuckDB serve SQL).
Local objects are scanned in place; S3 objects through polars' own object-store reader with the lake's
client's endpoint and credentials.
"""

from __future__ import annotations

import polars as pl

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.lake.storage import S3Storage
from lakehouse_pipelines.settings import AwsSettings


def scan_dataset(lake: Lake, dataset: str, aws: AwsSettings | None = None) -> pl.LazyFrame:
    """Every row of `dataset` as registered now (all its objects, in manifest order)."""
    manifest = lake.catalog.find(validate_dataset_name(dataset))
    if manifest is None:
        raise NotFound(f"no dataset {dataset!r} in the lake")
    sources = [lake.storage.location(o.key) for o in manifest.objects]
    options = _s3_options(aws or AwsSettings()) if isinstance(lake.storage, S3Storage) else None
    return pl.scan_parquet(sources, storage_options=options)


def _s3_options(aws: AwsSettings) -> dict[str, str]:
    """polars' object-store options; what `aws` leaves empty, object_store takes from the AWS variables."""
    options = {
        "aws_endpoint_url": aws.endpoint_url,
        "aws_region": aws.region,
        "aws_access_key_id": aws.access_key_id,
        "aws_secret_access_key": aws.secret_access_key,
        "aws_session_token": aws.session_token,
    }
    if aws.endpoint_url.startswith("http://"):
        options["aws_allow_http"] = "true"
    return {k: v for k, v in options.items() if v}
