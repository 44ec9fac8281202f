"""The lake as a Dagster resource: where the lake and the landing area live, and the S3 client that reaches them.

The S3 client is `dagster_aws.s3.S3Resource`, nested, so its endpoint, region and retries show in the UI and
the sensor, the assets and users' own assets share one configured client. Empty fields mean the embedded
defaults under `home`.
"""

from __future__ import annotations

import polars as pl
from dagster import ConfigurableResource, InitResourceContext
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.polars_frames import scan_dataset
from lakehouse_pipelines.lake.storage import Storage, open_storage
from lakehouse_pipelines.settings import DEFAULT_MAX_FILE_BYTES, AwsSettings, LakeSettings


class LakeResource(ConfigurableResource):
    """The lake (`LAKEHOUSE_STORAGE`) and landing area (`LAKEHOUSE_LANDING`): local paths or s3:// prefixes."""

    home: str = ".lakehouse"
    storage: str = ""
    landing: str = ""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    s3: S3Resource = Field(default_factory=S3Resource)
    _lake: Lake | None = PrivateAttr(default=None)
    _landing: Storage | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        settings = self.settings()
        uses_s3 = any(url.startswith("s3://") for url in (settings.storage, settings.landing))
        client = self.s3.get_client() if uses_s3 else None
        self._lake = Lake.open(settings, s3_client=client)
        self._landing = open_storage(settings.landing, client=client)

    def settings(self) -> LakeSettings:
        return LakeSettings.under(self.home, self.storage, self.landing, max_file_bytes=self.max_file_bytes)

    def open(self) -> Lake:
        """The lake, opened once per run (or sensor tick) with the shared S3 client."""
        assert self._lake is not None, "LakeResource is used outside a run"
        return self._lake

    def landing_storage(self) -> Storage:
        assert self._landing is not None, "LakeResource is used outside a run"
        return self._landing

    def scan(self, dataset: str) -> pl.LazyFrame:
        """A polars LazyFrame over a dataset's current objects, for users' own assets and notebooks."""
        return scan_dataset(self.open(), dataset, self.aws_settings())

    def aws_settings(self) -> AwsSettings:
        """The nested S3 resource's endpoint and credentials, for readers that are not boto3 (DuckDB, polars)."""
        s3 = self.s3
        return AwsSettings(
            endpoint_url=s3.endpoint_url or "",
            region=s3.region_name or "",
            access_key_id=s3.aws_access_key_id or "",
            secret_access_key=s3.aws_secret_access_key or "",
            session_token=s3.aws_session_token or "",
        )
