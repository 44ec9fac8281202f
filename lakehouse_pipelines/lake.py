"""The lake: storage plus the catalog kept in it, as configured. What every entry point opens first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lakehouse_pipelines.catalog import Catalog
from lakehouse_pipelines.config import Settings
from lakehouse_pipelines.storage import Storage, open_storage


@dataclass(frozen=True)
class Lake:
    storage: Storage
    catalog: Catalog
    scratch: Path
    max_file_bytes: int
    landing: str = ""  # the landing root (a folder or s3:// prefix): ingest refuses links beneath a folder

    @classmethod
    def open(cls, settings: Settings | None = None) -> Lake:
        settings = settings or Settings.from_env()
        storage = open_storage(settings.storage)
        return cls(
            storage=storage,
            catalog=Catalog(storage),
            scratch=settings.scratch,
            max_file_bytes=settings.max_file_bytes,
            landing=settings.landing,
        )
