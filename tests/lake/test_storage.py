"""Both storage backends keep the two promises the catalog relies on: atomic publish and compare-and-swap."""

import boto3
import pytest

from lakehouse_pipelines.errors import InvalidKey, NotFound, PreconditionFailed
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake.storage import LocalStorage, S3Storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "lake")
    return S3Storage(request.getfixturevalue("s3_bucket") + "/lake")


def test_conditional_puts_are_a_compare_and_swap(storage):
    etag = storage.put("catalog/t/manifest.json", b"v1", if_absent=True)
    with pytest.raises(PreconditionFailed):
        storage.put("catalog/t/manifest.json", b"v1-again", if_absent=True)
    new_etag = storage.put("catalog/t/manifest.json", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        storage.put("catalog/t/manifest.json", b"v3", if_match=etag)  # stale: someone wrote v2
    assert storage.get("catalog/t/manifest.json") == (b"v2", new_etag)


def test_publish_never_overwrites(storage, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    assert storage.publish(first, "datasets/t/x.parquet") is True
    assert storage.publish(second, "datasets/t/x.parquet") is False
    assert storage.get("datasets/t/x.parquet")[0] == b"first"


def test_missing_objects_and_bad_keys(storage):
    with pytest.raises(NotFound):
        storage.get("catalog/none/manifest.json")
    with pytest.raises(InvalidKey):
        storage.put("../outside", b"x")


def test_listing_pages_past_a_thousand_objects(storage):
    for i in range(1_005):
        storage.put(f"many/{i:05d}", b"")
    keys = [info.key for info in storage.list("many")]
    assert len(keys) == 1_005 and keys[0] == "many/00000"


def test_large_objects_go_up_in_parts(s3_bucket, tmp_path, monkeypatch):
    storage = S3Storage(s3_bucket + "/lake")
    monkeypatch.setattr(S3Storage, "MULTIPART_THRESHOLD", 5 * 1024**2)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB, over the lowered threshold
    assert storage.publish(big, "datasets/t/big.parquet")
    head = boto3.client("s3").head_object(Bucket=storage.bucket, Key="lake/datasets/t/big.parquet")
    assert head["ETag"].strip('"').rsplit("-", 1)[1] == "2"  # a multipart ETag ends with its part count
    assert storage.get("datasets/t/big.parquet")[0] == big.read_bytes()


def test_ingest_into_s3_lake(s3_lake, workers_csv):
    result = ingest(s3_lake, str(workers_csv), "workers")
    assert result.status == "created"
    assert s3_lake.storage.exists(result.object.key)
    assert s3_lake.catalog.get("workers").row_count == 2_000
    assert ingest(s3_lake, str(workers_csv), "workers").status == "existing"
