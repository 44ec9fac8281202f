"""Object storage for the lake: a local directory or an S3 prefix, behind one interface.

Two primitives carry every consistency guarantee of the catalog:
- `publish` makes an immutable object visible all at once, never half-written, never overwriting;
- `put` with `if_match` / `if_absent` is a compare-and-swap, so concurrent registers lose nothing.
Locally these are `os.link` (atomic create-if-absent) and a file lock; on S3, conditional writes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK, S_ISREG

from filelock import FileLock

from lakehouse_pipelines.errors import NotFound, PreconditionFailed, StorageUnavailable
from lakehouse_pipelines.lake.keys import validate_key
from lakehouse_pipelines.settings import AwsSettings


@dataclass(frozen=True)
class ObjectInfo:
    """A listed object: enough for a sensor cursor (modified) and a run key (etag)."""

    key: str
    size: int
    modified: float
    etag: str


@dataclass(frozen=True)
class Refused:
    """An entry a listing passed over, and why (see `Storage.list`)."""

    info: ObjectInfo
    reason: str


LINK_REASON = "a symbolic link: links are not followed, copy the file itself in"
OTHER_REASON = "not a regular file (a pipe, socket or device)"


class Storage(ABC):
    """The lake's objects, addressed by validated relative keys."""

    url: str

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """Return (content, etag); raise NotFound."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        """Write small content atomically and return its etag; raise PreconditionFailed on a lost race."""

    @abstractmethod
    def publish(self, local_file: Path, key: str) -> bool:
        """Make an immutable object visible atomically; False if the key already existed (left as is)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "", *, refused: list[Refused] | None = None) -> Iterator[ObjectInfo]:
        """Objects under `prefix`, in key order.

        Only regular files are objects: a symbolic link, FIFO, socket or device found under `prefix` is
        never listed (a reader would follow the link outside the lake or landing folder, or block on the
        pipe); each is appended to `refused` when that list is given. S3 has none of them.
        """

    @abstractmethod
    def download(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def location(self, key: str) -> str:
        """Where a reader (DuckDB, polars) finds the object: a local path or an s3:// URI."""


class LocalStorage(Storage):
    """A directory. Staging and lock files live in dot-folders that listings skip."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.url = str(self.root)
        self._staging = self.root / ".staging"
        self._locks = self.root / ".locks"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object {key!r} in the lake") from None
        return data, _etag(data)

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        path = self._path(key)
        self._locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self._locks / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"))
        with lock:
            if if_absent or if_match is not None:
                try:
                    current = _etag(path.read_bytes())
                except FileNotFoundError:
                    current = None
                if if_absent and current is not None:
                    raise PreconditionFailed(f"object {key!r} already exists")
                if if_match is not None and current != if_match:
                    raise PreconditionFailed(f"object {key!r} changed since it was read")
            staged = self._stage_bytes(data)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, path)
            _fsync_dir(path.parent)
        return _etag(data)

    def publish(self, local_file: Path, key: str) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = self._staging_path()
        try:
            os.link(local_file, staged)
        except OSError:
            shutil.copyfile(local_file, staged)
            _fsync_file(staged)
        try:
            os.link(staged, path)
            created = True
        except FileExistsError:
            created = False
        finally:
            staged.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return created

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "", *, refused: list[Refused] | None = None) -> Iterator[ObjectInfo]:
        base = self.root / validate_key(prefix.rstrip("/")) if prefix.strip("/") else self.root
        # The root may be a link (it is configuration); nothing beneath it is followed (os.walk lists
        # linked folders among `dirnames` without entering them).
        beneath = [
            p for p in (*reversed(base.parents), base) if p.is_relative_to(self.root) and p != self.root
        ]
        if link := next((p for p in beneath if p.is_symlink()), None):
            self._refuse(refused, link, LINK_REASON)
            return
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            folder = Path(dirpath)
            for name in sorted(d for d in dirnames if not d.startswith(".") and (folder / d).is_symlink()):
                self._refuse(refused, folder / name, LINK_REASON)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and not (folder / d).is_symlink()
            )
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = folder / filename
                try:
                    stat = path.lstat()
                except FileNotFoundError:  # removed since the folder was read
                    continue
                if not S_ISREG(stat.st_mode):
                    self._refuse(refused, path, LINK_REASON if S_ISLNK(stat.st_mode) else OTHER_REASON)
                    continue
                yield self._info(path, stat)

    def _info(self, path: Path, stat: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            modified=stat.st_mtime,
            # Hashing every landed file on each listing would cost a full read; size + mtime_ns
            # changes whenever the bytes do, which is what a run key needs.
            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
        )

    def _refuse(self, refused: list[Refused] | None, path: Path, reason: str) -> None:
        if refused is not None:
            with suppress(FileNotFoundError):  # removed since the folder was read
                refused.append(Refused(self._info(path, path.lstat()), reason))

    def download(self, key: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError:
            raise NotFound(f"no object {key!r} in the lake") from None

    def location(self, key: str) -> str:
        return str(self._path(key))

    def _staging_path(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging / f"{uuid.uuid4().hex}.tmp"

    def _stage_bytes(self, data: bytes) -> Path:
        staged = self._staging_path()
        with open(staged, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return staged


class S3Storage(Storage):
    """An S3 prefix on any endpoint; credentials and endpoint come from the standard AWS variables."""

    MULTIPART_THRESHOLD = 64 * 1024**2

    def __init__(self, url: str, client=None):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError("an S3 storage URL looks like s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client or s3_client()

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> tuple[bytes, str]:
        with _s3_errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), response["ETag"]

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        conditions: dict[str, str] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        with _s3_errors(key):
            response = self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **conditions
            )
            return response["ETag"]

    def publish(self, local_file: Path, key: str) -> bool:
        from boto3.s3.transfer import TransferConfig

        # An S3 object becomes visible only once its (multipart) upload completes, so readers never see a
        # partial object. Keys are content-addressed: two writers racing on one key upload the same bytes.
        if self.exists(key):
            return False
        with _s3_errors(key):
            self._client.upload_file(
                str(local_file),
                self.bucket,
                self._key(key),
                Config=TransferConfig(multipart_threshold=self.MULTIPART_THRESHOLD),
            )
        return True

    def exists(self, key: str) -> bool:
        try:
            with _s3_errors(key):
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with _s3_errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "", *, refused: list[Refused] | None = None) -> Iterator[ObjectInfo]:
        full_prefix = self._key(prefix.rstrip("/")) + "/" if prefix.strip("/") else self._list_root()
        paginator = self._client.get_paginator("list_objects_v2")
        with _s3_errors(prefix or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=obj["Key"][len(self._list_root()) :],
                        size=obj["Size"],
                        modified=obj["LastModified"].timestamp(),
                        etag=obj["ETag"].strip('"'),
                    )

    def download(self, key: str, dest: Path) -> None:
        if not self.exists(key):
            raise NotFound(f"no object {key!r} in {self.url}")
        with _s3_errors(key):
            self._client.download_file(self.bucket, self._key(key), str(dest))

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _list_root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""


def s3_client(aws: AwsSettings | None = None):
    """A boto3 S3 client, failing fast: from `aws` where it says, else boto3's own chain (the AWS variables)."""
    import boto3
    from botocore.config import Config

    aws = aws or AwsSettings()
    explicit = {
        "endpoint_url": aws.endpoint_url,
        "region_name": aws.region,
        "aws_access_key_id": aws.access_key_id,
        "aws_secret_access_key": aws.secret_access_key,
        "aws_session_token": aws.session_token,
    }
    return boto3.client(
        "s3",
        **{k: v for k, v in explicit.items() if v},
        config=Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"},
        ),
    )


@contextmanager
def _s3_errors(key: str) -> Iterator[None]:
    """Translate botocore failures into the product's errors, naming the key and never the credentials."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            raise NotFound(f"no object {key!r} in the lake") from None
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status in (409, 412):
            raise PreconditionFailed(f"object {key!r} changed concurrently") from None
        raise StorageUnavailable(f"S3 refused the request for {key!r}: {code or status}") from None
    except BotoCoreError as exc:
        raise StorageUnavailable(f"S3 is unreachable for {key!r}: {type(exc).__name__}") from None


def open_storage(url: str, *, aws: AwsSettings | None = None, client=None) -> Storage:
    """A local path or `s3://bucket/prefix` (through `client`, or a client made from `aws`)."""
    if url.startswith("s3://"):
        return S3Storage(url, client=client or s3_client(aws))
    return LocalStorage(url)


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
