"""The dataset declarations as a long-running service sees them: read once, read again when a file changes.

The sidecar and the MCP server need a dataset's declaration per request (the id column of a hybrid search
relation, the contract a record is validated against). Parsing YAML per request would cost milliseconds;
reading it once would serve a stale contract after an edit. So each call stats the directory's `*.yaml`
files (a few microseconds each) and parses them again only when a name, size or modification time changed.
A declaration that fails to load is an error for the request that needs it, not for the process.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lakehouse_pipelines.datasets import DatasetSpec, load_specs, schemas_dir


class Declarations:
    """Dataset declarations under `directory` (default: LAKEHOUSE_SCHEMAS or the bundled `schemas/`)."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory else schemas_dir()
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._specs: dict[str, DatasetSpec] = {}

    def _current_signature(self) -> tuple:
        entries = []
        for path in sorted(self.directory.glob("*.yaml")):
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(entries)

    def all(self) -> dict[str, DatasetSpec]:
        """Every declaration by name; raises the loader's LakehouseError if one is invalid."""
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                self._specs = load_specs(self.directory)
                self._signature = signature
            return self._specs

    def get(self, name: str) -> DatasetSpec | None:
        return self.all().get(name)
