"""CSV drop → typed, zstd Parquet in the lake → registered in the catalog. Plain Python, no Dagster.

Order matters for consistency: hash the source (while the sample pass guesses its types on the other core;
a known source is a no-op), infer its schema from every row while converting it into a private staging file (conversion.py; drift is refused before any Parquet
is written in a schema the dataset refuses), check the contract, publish the immutable content-addressed
object, and only then swap the manifest. A crash at any step leaves the
previous state or the new one; never a visible partial file, never a manifest naming a missing object.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import duckdb

from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.errors import BadInput, SchemaDrift
from lakehouse_pipelines.ingest.conversion import Progress, convert
from lakehouse_pipelines.ingest.csv_file import (
    FileDigest,
    csv_error,
    digest_file,
    open_drop,
    pinned_path,
    quote_literal,
    read_csv_sql,
    read_header,
    refuse_nul,
)
from lakehouse_pipelines.ingest.type_inference import SchemaGuess, guess_schema
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake import duckdb_connection as engine
from lakehouse_pipelines.lake.catalog import DataObject, Manifest, RegisterStatus
from lakehouse_pipelines.lake.fingerprint import Column, schema_fingerprint
from lakehouse_pipelines.lake.keys import object_key, validate_dataset_name
from lakehouse_pipelines.lake.storage import S3Storage

# DuckDB's Parquet writer keeps the drop's row order by buffering row groups that finish out of order, in
# memory it reserves within the limit; at 256 MB it could not hold a second one and wrote on one thread
# (500K workers rows: 1.5 s; 384 MB: 0.85 s on both cores, peak RSS 360-440 MiB either way).
DUCKDB_MEMORY_LIMIT_MB = 384
# DuckDB's Parquet writer reserves buffers per column up front (a 2,000-column file needs ~500 MB of limit
# while its real peak stays under 200 MiB), so the limit grows with the width.
DUCKDB_MEMORY_PER_COLUMN_KB = 128


@dataclass(frozen=True)
class PublishedDrop:
    """A drop whose Parquet object is in the lake; registering it is the next, separate step."""

    dataset: str
    source: str
    columns: tuple[Column, ...]
    object: DataObject
    created: bool  # this call published the object (so it may take it back on drift)
    registered: bool  # the source was already in the dataset's manifest: nothing to do
    seconds: float
    sample: tuple[dict, ...] = ()  # the first converted rows, for a preview


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    source: str
    status: RegisterStatus
    manifest: Manifest
    object: DataObject
    columns: tuple[Column, ...]
    seconds: float


def ingest(
    lake: Lake, source: str, dataset: str | DatasetSpec, *, progress: Progress | None = None
) -> IngestResult:
    """Ingest one CSV (a local path or an s3:// URI) into `dataset`: publish, then register."""
    started = time.perf_counter()
    drop = publish_drop(lake, source, dataset, progress=progress)
    result = register_drop(lake, drop)
    return replace(result, seconds=_since(started))


def publish_drop(
    lake: Lake, source: str, dataset: str | DatasetSpec, *, progress: Progress | None = None
) -> PublishedDrop:
    """Convert a CSV into its content-addressed Parquet object in the lake, not yet registered."""
    spec = dataset if isinstance(dataset, DatasetSpec) else DatasetSpec(name=validate_dataset_name(dataset))
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    with _local_copy(source, lake.scratch, _local_landing(lake)) as path:
        _check_size(path, source, lake.max_file_bytes)
        names = read_header(path, source)  # a file whose header fails was never registered either
        with _staging_file(lake.scratch) as staged:
            # Its own connection: DuckDB holds the conversion's buffers (~220 MiB at 500K workers rows)
            # until the connection closes, and the contract check's pandas and polars would come on top.
            with _duckdb(lake.scratch, len(names)) as con:
                relation = read_csv_sql(path, names)
                say("hashing")
                digest, guess = _hash_while_sampling(path, con, relation, names)
                source_sha256 = digest.sha256
                current = lake.catalog.find(spec.name)
                if current is not None and current.has_source(source_sha256):
                    obj = next(o for o in current.objects if o.source_sha256 == source_sha256)
                    return PublishedDrop(
                        spec.name, source, current.columns, obj, False, True, _since(started)
                    )
                refuse_nul(path, source, digest)  # DuckDB's reader would keep a NUL in a cell
                accept = partial(lake.catalog.check_compatible, spec.name)
                schema = _csv_step(
                    source, lambda: convert(con, relation, guess(), staged, accept, say)
                ).schema
                sample = first_rows(con, staged)  # before publishing: a failure must leave no object behind
            if spec.contract:
                say("checking contract")
                # pandera and polars, 0.2 s (0.5 s with pandas installed, which pandera then loads): only when used
                from lakehouse_pipelines.ingest import contracts

                with _duckdb(lake.scratch, len(names)) as con:
                    contracts.validate(spec.contract, spec.name, schema.columns, staged, con)
            obj = DataObject(
                key=object_key(spec.name, schema_fingerprint(schema.columns), source_sha256),
                rows=schema.rows,
                bytes=staged.stat().st_size,
                source=source,
                source_sha256=source_sha256,
            )
            say("publishing")
            created = lake.storage.publish(staged, obj.key)
    return PublishedDrop(spec.name, source, schema.columns, obj, created, False, _since(started), sample)


def register_drop(lake: Lake, drop: PublishedDrop) -> IngestResult:
    """Swap the dataset's manifest to include the drop's object (idempotent; drift refused)."""
    started = time.perf_counter()
    try:
        registration = lake.catalog.register(drop.dataset, drop.columns, drop.object)
    except SchemaDrift:
        if drop.created:  # lost a race with a drifting writer: take back what only we referenced
            lake.storage.delete(drop.object.key)
        raise
    return IngestResult(
        drop.dataset,
        drop.source,
        registration.status,
        registration.manifest,
        drop.object,
        drop.columns,
        _since(started),
    )


def _hash_while_sampling(
    path: Path, con: duckdb.DuckDBPyConnection, relation: str, names: list[str]
) -> tuple[FileDigest, Callable[[], SchemaGuess]]:
    """The file's digest, and the sample pass's type guess taken meanwhile on the other core (hashlib and
    DuckDB release the GIL). The guess (or the error it met) is given only when asked for, so a known
    source or a NUL byte still comes first, as when the hash ran alone before anything else."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-hash") as pool:
        hashing = pool.submit(digest_file, path)
        try:
            guess = guess_schema(con, relation, names)
        except duckdb.Error as exc:
            return hashing.result(), partial(_reraise, exc)
        return hashing.result(), lambda: guess


def _reraise(exc: Exception):
    raise exc


def first_rows(con: duckdb.DuckDBPyConnection, parquet: Path, n: int = 5) -> tuple[dict, ...]:
    """The first `n` rows of a Parquet file, by the engine that wrote it (pyarrow would add 0.07 s of
    imports and 70 MiB to an ingest that has no other use for it)."""
    result = con.execute(f"SELECT * FROM read_parquet({quote_literal(str(parquet))}) LIMIT {int(n)}")
    names = [d[0] for d in result.description]
    return tuple(dict(zip(names, row, strict=True)) for row in result.fetchall())


def _csv_step(source: str, step: Callable):
    """Run a step that reads the CSV, turning DuckDB's parse errors into a BadInput naming file and line."""
    try:
        return step()
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.NotImplementedException) as exc:
        raise csv_error(exc, source) from None
    except duckdb.OutOfMemoryException:
        raise BadInput(source, "too large to convert within the ingest's memory limit") from None


def _check_size(path: Path, source: str, limit: int) -> None:
    size = path.stat().st_size
    if size > limit:
        raise BadInput(source, f"{size:,} bytes is over the {limit:,}-byte limit (LAKEHOUSE_MAX_FILE_BYTES)")


@contextmanager
def _duckdb(scratch: Path, columns: int) -> Iterator[duckdb.DuckDBPyConnection]:
    limit_mb = DUCKDB_MEMORY_LIMIT_MB + columns * DUCKDB_MEMORY_PER_COLUMN_KB // 1024
    con = engine.connect(memory_limit=f"{limit_mb}MB", scratch=scratch)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def _staging_file(scratch: Path) -> Iterator[Path]:
    path = scratch / f"staging-{uuid.uuid4().hex}.parquet"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _local_landing(lake: Lake) -> Path | None:
    return Path(lake.landing) if lake.landing and not lake.landing.startswith("s3://") else None


@contextmanager
def _local_copy(source: str, scratch: Path, landing: Path | None = None) -> Iterator[Path]:
    """The source as a local file: itself, or a download of an s3:// object removed afterwards.

    A local file is opened once, refusing symbolic links (the file, or a folder under the landing root:
    `open_drop`), and every later read (hash, header, DuckDB) goes through that open file.
    """
    if not source.startswith("s3://"):
        fd = open_drop(Path(source), source, landing)
        try:
            yield pinned_path(fd, Path(source), source)
        finally:
            os.close(fd)
        return
    bucket, _, key = source.removeprefix("s3://").partition("/")
    download = scratch / f"download-{uuid.uuid4().hex}.csv"
    try:
        S3Storage(f"s3://{bucket}").download(key, download)
        yield download
    finally:
        download.unlink(missing_ok=True)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
