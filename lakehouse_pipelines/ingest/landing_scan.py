"""Finding new drops in the landing area: the cursor logic behind the drop sensor, without Dagster.

The cursor is the newest last-modified instant handled plus the keys handled at exactly that instant, so
it never moves backwards and never skips an object that shares a timestamp with the last one handled (S3
timestamps have one-second resolution). A tick handles a bounded number of drops and leaves the rest to
the next tick through the same cursor.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import BadInput, LakehouseError
from lakehouse_pipelines.ingest.csv_file import open_drop, pinned_path, sha256_file
from lakehouse_pipelines.lake.storage import LocalStorage, ObjectInfo, Refused, Storage

MAX_DROPS_PER_TICK = 500
MAX_DROPS_PER_RUN = 100


@dataclass(frozen=True)
class Cursor:
    modified: float = 0.0
    keys: frozenset[str] = frozenset()

    def is_new(self, info: ObjectInfo) -> bool:
        return info.modified > self.modified or (info.modified == self.modified and info.key not in self.keys)

    def advanced_past(self, info: ObjectInfo) -> Cursor:
        if info.modified > self.modified:
            return Cursor(info.modified, frozenset({info.key}))
        return Cursor(self.modified, self.keys | {info.key})

    def serialize(self) -> str:
        return json.dumps({"modified": self.modified, "keys": sorted(self.keys)})

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(float(raw["modified"]), frozenset(raw["keys"]))


@dataclass(frozen=True)
class Drop:
    dataset: str
    key: str  # relative to the landing root
    source: str  # what ingest reads: a local path or an s3:// URI
    content_id: str  # S3 ETag, or sha256 of a local file: equal for an identical re-drop


@dataclass(frozen=True)
class Batch:
    """Drops of one dataset that one run ingests, with a run key that is the same for the same drops."""

    dataset: str
    drops: tuple[Drop, ...]

    @property
    def run_key(self) -> str:
        ids = "\n".join(f"{d.key}\x1f{d.content_id}" for d in self.drops)
        return f"{self.dataset}:{hashlib.sha256(ids.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class Scan:
    batches: list[Batch]
    cursor: Cursor
    undeclared: list[str] = field(default_factory=list)
    remaining: int = 0  # new objects left for later ticks
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why): links, pipes, bad names


def scan(
    landing: Storage, specs: dict[str, DatasetSpec], cursor: Cursor, limit: int = MAX_DROPS_PER_TICK
) -> Scan:
    """New objects since `cursor`, matched to declared datasets, grouped into run-sized batches.

    What cannot be a drop (a symbolic link or other non-regular file, a name the storage refuses) is
    reported in `refused` once, like an undeclared drop, and left where it is.
    """
    passed_over: list[Refused] = []
    listed = [(o, "") for o in landing.list(refused=passed_over)] + [(r.info, r.reason) for r in passed_over]
    new = sorted((e for e in listed if cursor.is_new(e[0])), key=lambda e: (e[0].modified, e[0].key))
    handled, remaining = new[:limit], len(new) - min(len(new), limit)
    by_dataset: dict[str, list[Drop]] = defaultdict(list)
    undeclared, refused = [], []
    for info, reason in handled:
        cursor = cursor.advanced_past(info)
        if reason:
            refused.append((info.key, reason))
            continue
        spec = next((s for s in specs.values() if s.matches(info.key)), None)
        if spec is None:
            undeclared.append(info.key)
            continue
        try:
            drop = Drop(spec.name, info.key, landing.location(info.key), _content_id(landing, info))
        except LakehouseError as exc:  # a name outside the key rules, a file swapped for a link
            refused.append((info.key, _reason(exc)))
            continue
        by_dataset[spec.name].append(drop)
    batches = [
        Batch(name, tuple(drops[i : i + MAX_DROPS_PER_RUN]))
        for name, drops in sorted(by_dataset.items())
        for i in range(0, len(drops), MAX_DROPS_PER_RUN)
    ]
    return Scan(batches, cursor, undeclared, remaining, refused)


def _reason(exc: LakehouseError) -> str:
    return exc.problem if isinstance(exc, BadInput) else str(exc)


def _content_id(landing: Storage, info: ObjectInfo) -> str:
    # S3's ETag already identifies the content; a local file's mtime changes on an identical re-drop, so
    # it is hashed (once, when first seen: the cursor keeps it from being read again).
    if isinstance(landing, LocalStorage):
        path = Path(landing.location(info.key))
        fd = open_drop(path, info.key, landing.root)  # never through a link swapped in since the listing
        try:
            return sha256_file(pinned_path(fd, path, info.key))
        finally:
            os.close(fd)
    return info.etag
