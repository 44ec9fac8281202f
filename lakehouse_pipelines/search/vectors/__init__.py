"""One HNSW collection per dataset: Qdrant Edge in process (the embedded default) or a Qdrant server.

`protocol` is the contract and its types, `sync_diff` the incremental sync both backends share,
`edge_store` / `edge_reader` the Edge writer with its versioned publishes and the reader that swaps
between them, `server_store` the qdrant-client backend. `open_vector_store` picks one from the settings.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings, VectorStore
from lakehouse_pipelines.search.vectors.server_store import ServerVectorStore
from lakehouse_pipelines.settings import VectorStoreSettings


def open_vector_store(
    home: Path, settings: VectorStoreSettings | None = None, hnsw: HnswSettings | None = None
) -> VectorStore:
    """A Qdrant server when `settings.qdrant_url` is set (QDRANT_URL, QDRANT_API_KEY), else Edge under `home/vectors`."""
    settings = settings or VectorStoreSettings()
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=60)
        return ServerVectorStore(client, hnsw)
    return EdgeVectorStore(Path(home) / "vectors", hnsw)
