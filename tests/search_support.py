"""Helpers shared by the embedding, vector store and search tests (not fixtures: plain, importable code).

The local model takes seconds to load, so one instance serves the whole test session. `HashEmbedder` is a
deterministic stand-in for tests about the pipeline's bookkeeping (what is embedded, what is reused), where
the meaning of the vectors doesn't matter and a real model would only add minutes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from lakehouse_pipelines.search.embedders import LocalEmbedder, normalize


@functools.cache
def local_embedder() -> LocalEmbedder:
    return LocalEmbedder()


class HashEmbedder:
    """Unit vectors derived from the text's hash; counts what it was asked to embed."""

    document_prefix = ""
    query_prefix = ""

    def __init__(self, dim: int = 16, model: str = "hash-test"):
        self.model = model
        self._dim = dim
        self.embedded: list[str] = []

    @property
    def dim(self) -> int:
        return self._dim

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self._dim)

    def embed_documents(self, texts):
        self.embedded.extend(texts)
        return normalize([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return normalize([self._vector(text)])[0]


class OllamaStub:
    """A tiny `/api/embed` on loopback, answering like Ollama: raw (non-unit) vectors, errors as JSON."""

    def __init__(self, dim: int = 8, models: tuple[str, ...] = ("nomic-embed-text",)):
        self.dim = dim
        self.models = models
        self.requests: list[dict] = []
        self.fail_next: list[int] = []  # HTTP statuses to answer before succeeding again
        # a batch's first input -> HTTP statuses to answer that batch (only) before succeeding again
        self.fail_batch: dict[str, list[int]] = {}
        self.delay = 0.0  # seconds to wait before answering: a server too slow for the client's timeout
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the stub was answering at once
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Ollama's server does
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    stub.requests.append({"path": self.path, **body})
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.delay)
                    return self._answer(body)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _answer(self, body: dict):
                inputs = body.get("input")
                first = inputs[0] if isinstance(inputs, list) and inputs else inputs
                with stub._lock:
                    failures = stub.fail_batch.get(first, []) if isinstance(first, str) else []
                    status = failures.pop(0) if failures else (stub.fail_next.pop(0) if stub.fail_next else 0)
                if status:
                    return self._send(status, {"error": "server busy"})
                if self.path != "/api/embed":
                    return self._send(404, {"error": "not found"})
                if body["model"] not in stub.models:
                    return self._send(
                        404, {"error": f'model "{body["model"]}" not found, try pulling it first'}
                    )
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                return self._send(200, stub.answer(body["model"], tuple(inputs)))

            def _send(self, status: int, payload: dict | bytes):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one stub per test: the cache dies with it)
    def answer(self, model: str, inputs: tuple[str, ...]) -> bytes:
        """The encoded reply, made once per batch: with 768-d vectors, encoding costs the stub (whose threads
        share one GIL) more than a real server's answer costs it, and would be what a rate test measures."""
        return json.dumps({"model": model, "embeddings": [self.raw_vector(t) for t in inputs]}).encode()

    def raw_vector(self, text: str) -> list[float]:
        """Deterministic, deliberately not unit length (Ollama returns raw vectors)."""
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return (np.random.default_rng(seed).normal(size=self.dim) * 7.0).tolist()

    @contextmanager
    def running(self) -> Iterator[OllamaStub]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


def clustered_vectors(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` random centres: harder for HNSW than uniform noise, like real text."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, size=n)
    return normalize(centres[labels] + rng.normal(scale=0.35, size=(n, dim)))


def asset_metadata(result, dataset: str, name: str) -> dict:
    """The metadata values of `<dataset>/<name>`'s materialization in a Dagster result."""
    import dagster as dg

    key = dg.AssetKey([dataset, name])
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == key)
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def materialize_search(spec, resources: dict) -> dict[str, dict]:
    """Each embedding unit (partition) in its own run, then vectors: what automation runs after an ingest.

    Returns the embeddings' counts summed over the units (and their model), and the vectors' metadata.
    """
    import dagster as dg

    from assets.search_assets import dataset_search_assets

    embeddings, vectors = dataset_search_assets(spec)
    units = [
        asset_metadata(
            dg.materialize([embeddings], resources=resources, partition_key=key), spec.name, "embeddings"
        )
        for key in embeddings.partitions_def.get_partition_keys()
    ]
    totals = {k: sum(u[k] for u in units) for k in ("rows", "rows_embedded", "rows_reused")}
    totals["model"] = units[0]["model"]
    synced = dg.materialize([vectors], resources=resources)
    return {"embeddings": totals, "vectors": asset_metadata(synced, spec.name, "vectors")}
