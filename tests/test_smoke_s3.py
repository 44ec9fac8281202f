"""Ingest into an S3-backed lake on the moto server: the object and manifest land in the bucket."""

from lakehouse_pipelines.ingest import ingest


def test_ingest_into_s3_lake(s3_lake, workers_csv):
    result = ingest(s3_lake, str(workers_csv), "workers")
    assert result.status == "created"
    assert s3_lake.storage.exists(result.object.key)
    assert s3_lake.catalog.get("workers").row_count == 2_000
    assert ingest(s3_lake, str(workers_csv), "workers").status == "existing"
