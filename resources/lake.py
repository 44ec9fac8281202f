"""The lake as a Dagster resource: the same Settings the CLI and the sidecar read, set through EnvVar."""

from __future__ import annotations

import os

from dagster import ConfigurableResource

from lakehouse_pipelines.config import Settings
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.storage import Storage, open_storage


class LakeResource(ConfigurableResource):
    """Where the lake and the landing area live. Empty fields fall back to the embedded defaults."""

    home: str = ""
    storage: str = ""
    landing: str = ""

    def settings(self) -> Settings:
        overrides = {
            "LAKEHOUSE_HOME": self.home,
            "LAKEHOUSE_STORAGE": self.storage,
            "LAKEHOUSE_LANDING": self.landing,
        }
        return Settings.from_env({**os.environ, **{k: v for k, v in overrides.items() if v}})

    def open(self) -> Lake:
        return Lake.open(self.settings())

    def landing_storage(self) -> Storage:
        return open_storage(self.settings().landing)
