"""Configuration from the environment, with embedded defaults (ARCHITECTURE.md, "Configuration").

One place reads the contract's variables so that the CLI, Dagster resources and the sidecar agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_FILE_BYTES = 16 * 1024**3


@dataclass(frozen=True)
class Settings:
    """Where the lake lives and which backends serve it."""

    home: Path
    storage: str
    landing: str
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("LAKEHOUSE_HOME") or ".lakehouse").absolute()
        return cls(
            home=home,
            storage=env.get("LAKEHOUSE_STORAGE") or str(home / "lake"),
            landing=env.get("LAKEHOUSE_LANDING") or str(home / "landing"),
            max_file_bytes=int(env.get("LAKEHOUSE_MAX_FILE_BYTES") or DEFAULT_MAX_FILE_BYTES),
        )

    @property
    def scratch(self) -> Path:
        """Local working space (downloads, staging files) that never holds published data."""
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path
