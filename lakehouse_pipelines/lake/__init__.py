"""The lake: storage plus the catalog kept in it, as configured. What every entry point opens first.

The package holds what the lake is made of: `storage` (a folder or an S3 prefix behind one interface),
`catalog` (versioned manifests), `keys` (names, ids, content-addressed keys), `fingerprint` (logical
types and the schema fingerprint) and `duckdb_connection` (DuckDB with its extensions, offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lakehouse_pipelines.lake.catalog import Catalog
from lakehouse_pipelines.lake.storage import Storage, open_storage
from lakehouse_pipelines.settings import AwsSettings, LakehouseSettings, LakeSettings


@dataclass(frozen=True)
class Lake:
    storage: Storage
    catalog: Catalog
    scratch: Path
    max_file_bytes: int
    landing: str = ""  # the landing root (a folder or s3:// prefix): ingest refuses links beneath a folder

    @classmethod
    def open(
        cls, settings: LakeSettings | None = None, *, aws: AwsSettings | None = None, s3_client=None
    ) -> Lake:
        """The lake `settings` name (default: the environment's); an S3 lake uses `s3_client` or one from `aws`."""
        if settings is None:
            configured = LakehouseSettings()
            settings, aws = configured.lake, aws or configured.aws
        storage = open_storage(settings.storage, aws=aws, client=s3_client)
        return cls(
            storage=storage,
            catalog=Catalog(storage),
            scratch=settings.scratch,
            max_file_bytes=settings.max_file_bytes,
            landing=settings.landing,
        )
