"""Names, ids and keys: the contract that outside checks rely on (ARCHITECTURE.md, "Identity and keys")."""

from __future__ import annotations

import re
import uuid

from lakehouse_pipelines.errors import InvalidKey, InvalidName

DATASET_NAMESPACE = uuid.UUID("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e")
DATASET_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
# Landing drops may have spaces, commas or parentheses in their names; nothing else needs more.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_=+@,()-][A-Za-z0-9 ._=+@,()-]*")


def validate_dataset_name(name: str) -> str:
    """Return `name` if it is a legal dataset name, else raise InvalidName saying what the rule is."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid dataset name {name!r}: use 1-63 characters of a-z, 0-9 and _, starting with a letter"
        )
    return name


def dataset_id(name: str) -> str:
    """The dataset's stable id: the same name gives the same id on every machine, forever."""
    return str(uuid.uuid5(DATASET_NAMESPACE, validate_dataset_name(name)))


def object_key(name: str, fingerprint: str, source_sha256: str) -> str:
    """Content-addressed key of one ingested drop.

    Keyed by schema and source bytes, so a drifted or repeated file can never overwrite live data.
    """
    validate_dataset_name(name)
    return f"datasets/{name}/{fingerprint[:16]}/{source_sha256[:16]}.parquet"


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative storage key.

    Checked at the storage boundary so that no caller, however it built the key, can escape the lake root.
    """
    if not key or len(key) > 1024:
        raise InvalidKey(f"invalid storage key {key[:80]!r}: empty or longer than 1024 characters")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or not _KEY_SEGMENT.fullmatch(segment):
            raise InvalidKey(f"invalid storage key {key[:200]!r}: bad path segment {segment[:80]!r}")
    return key
