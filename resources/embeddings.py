"""The embedder and the vector store as Dagster resources, configured from the contract's variables via EnvVar.

Empty fields mean the embedded defaults: the local MiniLM model, and Qdrant Edge under LAKEHOUSE_HOME.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from lakehouse_pipelines.embedder import DEFAULT_OLLAMA_MODEL, Embedder, LocalEmbedder, OllamaEmbedder
from lakehouse_pipelines.vector_store import EdgeVectorStore, HnswSettings, ServerVectorStore, VectorStore


class EmbedderResource(ConfigurableResource):
    """`local` (all-MiniLM-L6-v2, offline) or `ollama` (official client, nomic-embed-text by default)."""

    kind: str = "local"
    ollama_host: str = ""
    ollama_model: str = DEFAULT_OLLAMA_MODEL
    _embedder: Embedder | None = PrivateAttr(default=None)

    def get(self) -> Embedder:
        """Built once per run: loading the local model takes seconds."""
        if self._embedder is None:
            kind = (self.kind or "local").lower()
            if kind == "ollama":
                self._embedder = OllamaEmbedder(model=self.ollama_model, host=self.ollama_host or None)
            else:
                self._embedder = LocalEmbedder()
        return self._embedder


class VectorStoreResource(ConfigurableResource):
    """Qdrant Edge under `<home>/vectors` unless `qdrant_url` names a server. HNSW parameters are explicit."""

    qdrant_url: str = ""
    qdrant_api_key: str = ""
    m: int = 16
    ef_construct: int = 100
    max_indexing_threads: int = 0  # 0: every core of this machine (Edge's own "auto" used one)

    def open(self, home: Path) -> VectorStore:
        hnsw = HnswSettings(
            m=self.m,
            ef_construct=self.ef_construct,
            max_indexing_threads=self.max_indexing_threads or os.cpu_count() or 1,
        )
        if self.qdrant_url:
            from qdrant_client import QdrantClient

            client = QdrantClient(url=self.qdrant_url, api_key=self.qdrant_api_key or None, timeout=60)
            return ServerVectorStore(client, hnsw)
        return EdgeVectorStore(Path(home) / "vectors", hnsw)
