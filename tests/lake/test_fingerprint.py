"""The schema fingerprint and the identity contract: formula, order, nullability, names, ids and keys."""

import hashlib
import uuid

import pytest

from lakehouse_pipelines.errors import InvalidKey, InvalidName
from lakehouse_pipelines.lake.fingerprint import Column, schema_differences, schema_fingerprint
from lakehouse_pipelines.lake.keys import dataset_id, object_key, validate_dataset_name, validate_key

COLUMNS = [Column("id", "int64", False), Column("zip", "string", True)]


def test_fingerprint_is_the_contract_formula():
    expected = hashlib.sha256(b"id\x1fint64\x1ezip\x1fstring").hexdigest()
    assert schema_fingerprint(COLUMNS) == expected


def test_reordering_columns_changes_the_fingerprint():
    assert schema_fingerprint(list(reversed(COLUMNS))) != schema_fingerprint(COLUMNS)


def test_nullability_does_not_change_the_fingerprint():
    flipped = [Column(c.name, c.type, not c.nullable) for c in COLUMNS]
    assert schema_fingerprint(flipped) == schema_fingerprint(COLUMNS)


def test_differences_name_each_column():
    incoming = [Column("id", "string", False), Column("city", "string", True)]
    assert schema_differences(COLUMNS, incoming) == [
        "column 'city' added (string)",
        "column 'zip' removed (was string)",
        "column 'id' changed type int64 -> string",
    ]
    assert schema_differences(COLUMNS, list(reversed(COLUMNS))) == [
        "column order changed: ['id', 'zip'] -> ['zip', 'id']"
    ]


def test_dataset_id_is_uuid5_of_the_name():
    assert dataset_id("workers") == str(
        uuid.uuid5(uuid.UUID("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e"), "workers")
    )


def test_object_key_is_content_addressed():
    fp, sha = "a" * 64, "b" * 64
    assert object_key("workers", fp, sha) == f"datasets/workers/{'a' * 16}/{'b' * 16}.parquet"


@pytest.mark.parametrize("name", ["workers", "w", "a_1", "a" * 63])
def test_valid_dataset_names(name):
    assert validate_dataset_name(name) == name


@pytest.mark.parametrize("name", ["", "Workers", "1abc", "_a", "a-b", "a" * 64, "../etc", "a b", "wörkers"])
def test_invalid_dataset_names(name):
    with pytest.raises(InvalidName, match="invalid dataset name"):
        validate_dataset_name(name)


@pytest.mark.parametrize(
    "key", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "", ".hidden/x", "a\\b", "a/b\x00"]
)
def test_unsafe_keys_are_refused(key):
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_landing_style_keys_are_accepted():
    assert validate_key("workers/drop 2024-01 (final).csv") == "workers/drop 2024-01 (final).csv"
