"""The whole chain in one process, announcing each stage on stdout: the crash trials kill it at those points.

`python -m tests.chain_worker <csv>...`: ingest (publish, then register) each CSV into `workers`, then
embed with the local model and sync the Qdrant Edge collection, as the Dagster assets do.
"""

from __future__ import annotations

import sys

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import publish_drop, register_drop
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.embedders import LocalEmbedder
from lakehouse_pipelines.search.embeddings_build import embed_dataset
from lakehouse_pipelines.search.indexing import index_dataset
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.settings import LakehouseSettings


def announce(stage: str) -> None:
    print(stage, flush=True)


def main(paths: list[str]) -> None:
    settings = LakehouseSettings().lake
    lake, spec = Lake.open(settings), load_specs()["workers"]
    embedder = LocalEmbedder()
    for path in paths:
        announce("ingest")
        drop = publish_drop(lake, path, spec)
        announce("register")
        register_drop(lake, drop)
    announce("embed")
    embed_dataset(lake, spec, embedder)
    announce("upsert")
    store = EdgeVectorStore(settings.home / "vectors")
    try:
        index_dataset(lake, spec, store)
    finally:
        store.close()
    announce("done")


if __name__ == "__main__":
    main(sys.argv[1:])
