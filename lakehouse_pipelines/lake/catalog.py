"""The catalog: one current manifest per dataset, with its history (ARCHITECTURE.md, "Manifest").

Registering is idempotent by (name, fingerprint, source hash) and is a compare-and-swap on the manifest
object, so two processes registering into one dataset at once both land, one after the other. The Parquet
object is published before the manifest that names it: a crash in between leaves an unreferenced object,
never a manifest pointing at missing data.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from lakehouse_pipelines.errors import NotFound, PreconditionFailed, SchemaDrift
from lakehouse_pipelines.lake.fingerprint import Column, schema_differences, schema_fingerprint
from lakehouse_pipelines.lake.keys import dataset_id, validate_dataset_name
from lakehouse_pipelines.lake.storage import Storage

RegisterStatus = Literal["created", "appended", "existing"]
MAX_REGISTER_ATTEMPTS = 50


@dataclass(frozen=True)
class DataObject:
    """One ingested drop: a Parquet object and the source it came from."""

    key: str
    rows: int
    bytes: int
    source: str
    source_sha256: str

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "rows": self.rows,
            "bytes": self.bytes,
            "source": self.source,
            "source_sha256": self.source_sha256,
        }


@dataclass(frozen=True)
class Manifest:
    """A dataset's current state: its schema and every object that holds its rows."""

    dataset_id: str
    name: str
    schema_fingerprint: str
    columns: tuple[Column, ...]
    objects: tuple[DataObject, ...]
    row_count: int
    version: int
    created_at: str
    updated_at: str

    def to_dict(self) -> dict:
        return {
            "dataset_id": self.dataset_id,
            "name": self.name,
            "schema_fingerprint": self.schema_fingerprint,
            "columns": [c.to_dict() for c in self.columns],
            "objects": [o.to_dict() for o in self.objects],
            "row_count": self.row_count,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        raw = json.loads(data)
        return cls(
            dataset_id=raw["dataset_id"],
            name=raw["name"],
            schema_fingerprint=raw["schema_fingerprint"],
            columns=tuple(Column.from_dict(c) for c in raw["columns"]),
            objects=tuple(DataObject(**o) for o in raw["objects"]),
            row_count=raw["row_count"],
            version=raw["version"],
            created_at=raw["created_at"],
            updated_at=raw["updated_at"],
        )

    def has_source(self, source_sha256: str) -> bool:
        return any(o.source_sha256 == source_sha256 for o in self.objects)

    def summary(self) -> dict:
        """What a listing shows: everything but the object list."""
        return {
            "dataset_id": self.dataset_id,
            "name": self.name,
            "schema_fingerprint": self.schema_fingerprint,
            "columns": len(self.columns),
            "objects": len(self.objects),
            "row_count": self.row_count,
            "bytes": sum(o.bytes for o in self.objects),
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Registration:
    status: RegisterStatus
    manifest: Manifest


class Catalog:
    """Manifests stored in the lake itself, so the catalog travels with the data (local or S3)."""

    def __init__(self, storage: Storage):
        self.storage = storage

    @staticmethod
    def manifest_key(name: str) -> str:
        return f"catalog/{validate_dataset_name(name)}/manifest.json"

    @staticmethod
    def version_key(name: str, version: int) -> str:
        return f"catalog/{validate_dataset_name(name)}/versions/{version:08d}.json"

    def get(self, name: str) -> Manifest:
        data, _ = self.storage.get(self.manifest_key(name))
        return Manifest.from_json(data)

    def find(self, name: str) -> Manifest | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def list(self) -> list[Manifest]:
        names = sorted(
            info.key.split("/")[1]
            for info in self.storage.list("catalog")
            if info.key.endswith("/manifest.json")
        )
        return [m for m in (self.find(n) for n in names) if m is not None]

    def history(self, name: str) -> Iterator[Manifest]:
        """Every version ever registered, oldest first."""
        for info in self.storage.list(f"catalog/{validate_dataset_name(name)}/versions"):
            yield Manifest.from_json(self.storage.get(info.key)[0])

    def check_compatible(self, name: str, columns: Sequence[Column]) -> Manifest | None:
        """Raise SchemaDrift early, before any data is written, if `columns` cannot join `name`."""
        current = self.find(name)
        if current is not None and current.schema_fingerprint != schema_fingerprint(columns):
            raise SchemaDrift(name, schema_differences(current.columns, columns))
        return current

    def register(self, name: str, columns: Sequence[Column], obj: DataObject) -> Registration:
        """Add `obj` to dataset `name`: created, appended, or already there; drift is refused.

        Write candidate, persist, then swap: the manifest changes only by a conditional write that fails
        if anyone else changed it since we read it, in which case we read again and retry.
        """
        fingerprint = schema_fingerprint(columns)
        for _ in range(MAX_REGISTER_ATTEMPTS):
            try:
                data, etag = self.storage.get(self.manifest_key(name))
                current = Manifest.from_json(data)
            except NotFound:
                current, etag = None, None
            if current is None:
                candidate, status = _first_manifest(name, fingerprint, columns, obj), "created"
            elif current.schema_fingerprint != fingerprint:
                raise SchemaDrift(name, schema_differences(current.columns, columns))
            elif current.has_source(obj.source_sha256):
                self._record_version(current)
                return Registration("existing", current)
            else:
                candidate, status = _appended(current, columns, obj), "appended"
            try:
                self.storage.put(
                    self.manifest_key(name), candidate.to_json(), if_match=etag, if_absent=etag is None
                )
            except PreconditionFailed:
                continue
            self._record_version(candidate)
            return Registration(status, candidate)
        raise PreconditionFailed(f"dataset {name!r} is changing too fast to register; try again")

    def _record_version(self, manifest: Manifest) -> None:
        """Keep the history complete, also after a crash between the manifest swap and this write."""
        key = self.version_key(manifest.name, manifest.version)
        if not self.storage.exists(key):
            with contextlib.suppress(PreconditionFailed):  # another writer recorded it first
                self.storage.put(key, manifest.to_json(), if_absent=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _first_manifest(name: str, fingerprint: str, columns: Sequence[Column], obj: DataObject) -> Manifest:
    now = _now()
    return Manifest(
        dataset_id=dataset_id(name),
        name=name,
        schema_fingerprint=fingerprint,
        columns=tuple(columns),
        objects=(obj,),
        row_count=obj.rows,
        version=1,
        created_at=now,
        updated_at=now,
    )


def _appended(current: Manifest, columns: Sequence[Column], obj: DataObject) -> Manifest:
    # Same fingerprint, so names and types match; a column is nullable if any object has a null in it.
    merged = tuple(
        replace(old, nullable=old.nullable or new.nullable)
        for old, new in zip(current.columns, columns, strict=True)
    )
    return replace(
        current,
        columns=merged,
        objects=(*current.objects, obj),
        row_count=current.row_count + obj.rows,
        version=current.version + 1,
        updated_at=_now(),
    )
