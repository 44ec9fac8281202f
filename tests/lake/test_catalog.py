"""Register semantics: created, appended, existing, drift refused with live data untouched; history kept."""

import json

import pytest

from lakehouse_pipelines.errors import SchemaDrift
from lakehouse_pipelines.lake.catalog import Catalog, DataObject, Manifest
from lakehouse_pipelines.lake.fingerprint import Column
from lakehouse_pipelines.lake.keys import dataset_id
from lakehouse_pipelines.lake.storage import LocalStorage

COLUMNS = (Column("id", "int64", False), Column("name", "string", False))


def obj(n: int, rows: int = 10) -> DataObject:
    return DataObject(f"datasets/t/fp/{n:016x}.parquet", rows, 100 * rows, f"drop{n}.csv", f"{n:064x}")


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    return Catalog(LocalStorage(tmp_path / "lake"))


def test_new_name_is_version_1(catalog):
    registration = catalog.register("t", COLUMNS, obj(1))
    assert registration.status == "created"
    manifest = registration.manifest
    assert (manifest.version, manifest.row_count, manifest.dataset_id) == (1, 10, dataset_id("t"))
    assert manifest.created_at == manifest.updated_at


def test_same_fingerprint_new_source_appends(catalog):
    catalog.register("t", COLUMNS, obj(1))
    nullable = (Column("id", "int64", False), Column("name", "string", True))
    registration = catalog.register("t", nullable, obj(2, rows=5))
    assert registration.status == "appended"
    assert (registration.manifest.version, registration.manifest.row_count) == (2, 15)
    assert registration.manifest.columns[1].nullable  # nullability is merged, not part of identity


def test_known_source_is_a_no_op(catalog):
    first = catalog.register("t", COLUMNS, obj(1)).manifest
    again = catalog.register("t", COLUMNS, obj(1))
    assert again.status == "existing"
    assert again.manifest == first


def test_drift_is_refused_naming_columns_and_changes_nothing(catalog):
    catalog.register("t", COLUMNS, obj(1))
    before = catalog.storage.get(Catalog.manifest_key("t"))
    drifted = (Column("id", "string", False), Column("name", "string", False))
    with pytest.raises(SchemaDrift, match="column 'id' changed type int64 -> string"):
        catalog.register("t", drifted, obj(2))
    assert catalog.storage.get(Catalog.manifest_key("t")) == before


def test_history_keeps_every_version(catalog):
    for n in range(1, 4):
        catalog.register("t", COLUMNS, obj(n))
    assert [m.version for m in catalog.history("t")] == [1, 2, 3]
    assert [len(m.objects) for m in catalog.history("t")] == [1, 2, 3]


def test_manifest_json_round_trip_has_the_contract_fields(catalog):
    manifest = catalog.register("t", COLUMNS, obj(1)).manifest
    raw = json.loads(manifest.to_json())
    assert set(raw) == {
        "dataset_id", "name", "schema_fingerprint", "columns", "objects", "row_count", "version",
        "created_at", "updated_at",
    }  # fmt: skip
    assert set(raw["columns"][0]) == {"name", "type", "nullable"}
    assert set(raw["objects"][0]) == {"key", "rows", "bytes", "source", "source_sha256"}
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_list_returns_every_dataset(catalog):
    catalog.register("b", COLUMNS, obj(1))
    catalog.register("a", COLUMNS, obj(2))
    assert [m.name for m in catalog.list()] == ["a", "b"]
