"""The baseline log: every audit's metrics, one JSON envelope per line, at `audit/audit_baselines.jsonl`.

One object, append-only, so a person can `cat` (or `aws s3 cp -`) the whole history and `grep` a dataset.
Neither a local file nor S3 can append in place, so an append is a compare-and-swap on the whole object:
read it with its etag, write old bytes + the new line with `Storage.put(if_match=etag)` (or
`if_absent=True` for the first line), and on `PreconditionFailed` (another writer got in between) read
again and retry with a jittered backoff. Locally `put` holds a file lock around the check; on S3 it is a
conditional PUT (`If-Match` / `If-None-Match: *`), so two writers on any machines never drop each other's
line. An existing line is never rewritten: the new object always starts with the old object's exact bytes.

The cost is a rewrite of the whole object per append; at one audit per dataset per day plus one per drop,
with envelopes of a few KiB to a few tens of KiB, that is megabytes a year. A log that outgrows it would
rotate by year (a new key), keeping the same envelope.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lakehouse_pipelines.audit.metrics import Metrics
from lakehouse_pipelines.errors import LakehouseError, NotFound, PreconditionFailed
from lakehouse_pipelines.lake.storage import Storage

LOG_KEY = "audit/audit_baselines.jsonl"
SCHEMA_VERSION = 1
MAX_APPEND_ATTEMPTS = 50


@dataclass(frozen=True)
class Baseline:
    """One audit of one dataset: the envelope around its metrics."""

    dataset: str
    schema_fingerprint: str
    manifest_version: int
    metrics: Metrics
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=lambda: _now())
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
            "dataset": self.dataset,
            "schema_fingerprint": self.schema_fingerprint,
            "manifest_version": self.manifest_version,
            "metrics": self.metrics,
        }

    def encode(self) -> bytes:
        """One line of the log: compact JSON with the envelope fields first, UTF-8, no NaN."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"

    @classmethod
    def decode(cls, line: bytes | str) -> Baseline:
        raw = json.loads(line)
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise LakehouseError(f"baseline {raw.get('run_id')!r} has unknown schema_version")
        return cls(
            dataset=raw["dataset"],
            schema_fingerprint=raw["schema_fingerprint"],
            manifest_version=raw["manifest_version"],
            metrics=raw["metrics"],
            run_id=raw["run_id"],
            timestamp=raw["timestamp"],
            schema_version=raw["schema_version"],
        )


class BaselineLog:
    """The append-only log of baselines in the lake's storage (local or S3)."""

    def __init__(self, storage: Storage, key: str = LOG_KEY):
        self.storage = storage
        self.key = key

    def append(self, baseline: Baseline) -> None:
        """Add one line without losing a line a concurrent writer added (compare-and-swap, retried)."""
        line = baseline.encode()
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                current, etag = self.storage.get(self.key)
            except NotFound:
                current, etag = b"", None
            if current and not current.endswith(b"\n"):
                current += b"\n"  # a hand-edited log without a final newline must not glue two lines
            try:
                self.storage.put(self.key, current + line, if_match=etag, if_absent=etag is None)
                return
            except PreconditionFailed:
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise PreconditionFailed(f"the baseline log {self.key!r} is changing too fast to append; try again")

    def read(self, dataset: str | None = None) -> list[Baseline]:
        """Every baseline in append order, or only `dataset`'s."""
        return [b for b in self._all() if dataset is None or b.dataset == dataset]

    def latest(self, dataset: str, n: int = 2) -> list[Baseline]:
        """The newest `n` baselines of `dataset`, newest first."""
        return self.read(dataset)[::-1][:n]

    def find(self, dataset: str, run_id: str) -> Baseline:
        """A pinned reference by run id (a unique prefix is enough)."""
        matches = [b for b in self.read(dataset) if b.run_id.startswith(run_id)]
        if len(matches) != 1:
            found = "no" if not matches else f"{len(matches)}"
            raise NotFound(f"{found} baseline of dataset {dataset!r} matches run id {run_id!r}")
        return matches[0]

    def _all(self) -> Iterator[Baseline]:
        try:
            data, _ = self.storage.get(self.key)
        except NotFound:
            return
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield Baseline.decode(line)
            except (ValueError, KeyError):
                raise LakehouseError(f"the baseline log {self.key!r} has a malformed line {number}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
