"""The embedder and the vector store as Dagster resources.

Empty or default fields mean the embedded defaults: the local MiniLM model, and Qdrant Edge under the lake's
home. Each resource turns its fields into the settings part the domain opens its backend from, the same part
the sidecar and `lakehouse doctor` use.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource, DagsterInstance, DefaultRunLauncher, InitResourceContext
from pydantic import PrivateAttr

from lakehouse_pipelines.search.embedders import Embedder, build_embedder
from lakehouse_pipelines.search.onnx_encoder import default_threads
from lakehouse_pipelines.search.vectors import open_vector_store
from lakehouse_pipelines.search.vectors.protocol import HnswSettings, VectorStore, quantization_named
from lakehouse_pipelines.settings import (
    DEFAULT_OLLAMA_CONCURRENCY,
    DEFAULT_OLLAMA_HOST,
    DEFAULT_OLLAMA_MODEL,
    EmbedderSettings,
    VectorStoreSettings,
)


class EmbedderResource(ConfigurableResource):
    """`local` (all-MiniLM-L6-v2 on ONNX Runtime, offline), `local-int8`, or `ollama` (nomic-embed-text by default)."""

    kind: str = "local"
    ollama_host: str = DEFAULT_OLLAMA_HOST
    ollama_model: str = DEFAULT_OLLAMA_MODEL
    ollama_concurrency: int = DEFAULT_OLLAMA_CONCURRENCY
    model_cache: str = ""
    threads: int = 0  # the local model's threads; 0: this machine's cores shared by the runs on it
    _embedder: Embedder | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._embedder = build_embedder(self.settings(self.threads or local_run_threads(context.instance)))

    def settings(self, threads: int | None = None) -> EmbedderSettings:
        return EmbedderSettings(
            self.kind, self.ollama_host, self.ollama_model, self.ollama_concurrency, self.model_cache, threads
        )

    def get(self) -> Embedder:
        """The run's embedder (the local model itself loads on first use: seconds, once per process)."""
        assert self._embedder is not None, "EmbedderResource is used outside a run"
        return self._embedder


def local_run_threads(instance: DagsterInstance | None) -> int | None:
    """The local model's threads in a run that shares this machine with the others the queue runs at once.

    The embedding units arrive together and the run queue lets `max_concurrent_runs` of them run at a time:
    with ONNX Runtime's default of every core each, two units on 2 cores ran at 65 rows/s each, with one
    thread each at 89, as fast as one unit alone on both cores (bench/results/unit_threads.md). A run
    launched elsewhere (Kubernetes, Docker, ECS: a machine of its own) keeps every core (None).
    """
    if instance is None or not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None
    at_once = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
    if at_once <= 0:  # no limit: every unit at once
        return 1
    return max(1, default_threads() // at_once)


class VectorStoreResource(ConfigurableResource):
    """Qdrant Edge under `<home>/vectors` unless `qdrant_url` names a server. HNSW parameters are explicit.

    `quantization` (int8, turbo4 or none) applies to collections created from now on: an existing one keeps
    the quantization it was built with (a Qdrant server before 1.18 has no turbo4).
    """

    qdrant_url: str = ""
    qdrant_api_key: str = ""
    quantization: str = (
        HnswSettings.quantization or "none"
    )  # a str, so that EnvVar can set it; `open` checks it
    m: int = HnswSettings.m
    ef_construct: int = HnswSettings.ef_construct
    max_indexing_threads: int = 0  # 0: every core of this machine (Edge's own "auto" used one)

    def settings(self) -> VectorStoreSettings:
        return VectorStoreSettings(self.qdrant_url, self.qdrant_api_key)

    def open(self, home: Path) -> VectorStore:
        hnsw = HnswSettings(
            quantization=quantization_named(self.quantization),
            m=self.m,
            ef_construct=self.ef_construct,
            max_indexing_threads=self.max_indexing_threads or os.cpu_count() or 1,
        )
        return open_vector_store(home, self.settings(), hnsw)
