"""Each dataset's asset keys: `<dataset>/parquet` -> `<dataset>/manifest` -> `<dataset>/embeddings` -> `<dataset>/vectors`."""

import dagster as dg


def parquet_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "parquet"])


def manifest_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "manifest"])


def embeddings_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "embeddings"])


def vectors_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "vectors"])
