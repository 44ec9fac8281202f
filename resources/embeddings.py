"""The embedder and the vector store as Dagster resources, configured from the contract's variables via EnvVar.

Empty fields mean the embedded defaults: the local MiniLM model, and Qdrant Edge under LAKEHOUSE_HOME. The
fields map one to one onto the variables, so a resource and the sidecar (`search_service_from_env`) build
their backends through the same two functions.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from lakehouse_pipelines.embedder import Embedder, embedder_from_env
from lakehouse_pipelines.vector_store import HnswSettings, VectorStore, vector_store_from_env


class EmbedderResource(ConfigurableResource):
    """`local` (all-MiniLM-L6-v2, offline) or `ollama` (official client, nomic-embed-text by default)."""

    kind: str = ""  # LAKEHOUSE_EMBEDDER
    ollama_host: str = ""  # OLLAMA_HOST
    ollama_model: str = ""  # LAKEHOUSE_OLLAMA_MODEL
    _embedder: Embedder | None = PrivateAttr(default=None)

    def get(self) -> Embedder:
        """Built once per run: loading the local model takes seconds."""
        if self._embedder is None:
            self._embedder = embedder_from_env(
                {
                    "LAKEHOUSE_EMBEDDER": self.kind,
                    "OLLAMA_HOST": self.ollama_host,
                    "LAKEHOUSE_OLLAMA_MODEL": self.ollama_model,
                }
            )
        return self._embedder


class VectorStoreResource(ConfigurableResource):
    """Qdrant Edge under `<home>/vectors` unless `qdrant_url` names a server. HNSW parameters are explicit."""

    qdrant_url: str = ""  # QDRANT_URL
    qdrant_api_key: str = ""  # QDRANT_API_KEY
    m: int = 16
    ef_construct: int = 100
    max_indexing_threads: int = 0  # 0: every core of this machine (Edge's own "auto" used one)

    def open(self, home: Path) -> VectorStore:
        hnsw = HnswSettings(
            m=self.m,
            ef_construct=self.ef_construct,
            max_indexing_threads=self.max_indexing_threads or os.cpu_count() or 1,
        )
        environ = {"QDRANT_URL": self.qdrant_url, "QDRANT_API_KEY": self.qdrant_api_key}
        return vector_store_from_env(home, environ, hnsw)
