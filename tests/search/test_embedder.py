"""Embedders and the embeddings pipeline: unit vectors from every provider, the Ollama client against a stub
`/api/embed` (prefixes, batching, retries, clear errors), and the content-hash cache that makes an unchanged
re-run embed nothing, an edited row re-embed only itself, and survives restarts (local lake and S3).
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from pydantic import ValidationError

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import COLUMNS, worker_rows, write_workers_csv
from lakehouse_pipelines.search.embedders import (
    NOMIC_DOCUMENT_PREFIX,
    NOMIC_QUERY_PREFIX,
    EmbedderError,
    LocalEmbedder,
    OllamaEmbedder,
    build_embedder,
    normalize,
)
from lakehouse_pipelines.search.embedding_cache import EmbeddingCache, text_sha256
from lakehouse_pipelines.search.embeddings_build import build_embeddings, current_embeddings, iter_embeddings
from lakehouse_pipelines.settings import LakehouseSettings
from tests.search_support import HashEmbedder, OllamaStub, local_embedder, materialize_search

WORKERS = load_specs()["workers"]


def test_normalize_makes_unit_rows_and_refuses_zero_vectors():
    vectors = normalize([[3.0, 4.0], [0.0, 2.0]])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], [0.6, 0.8])
    with pytest.raises(EmbedderError, match="zero"):
        normalize([[0.0, 0.0]])


def test_local_embedder_is_offline_minilm_with_unit_vectors():
    embedder = local_embedder()
    docs = embedder.embed_documents(["forklift operator, night shift", "certified welder"])
    assert (embedder.model, embedder.dim, docs.shape) == ("all-MiniLM-L6-v2", 384, (2, 384))
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # Batching doesn't change a vector: one text alone embeds like it does inside a batch.
    assert np.allclose(embedder.embed_query("certified welder"), docs[1], atol=1e-5)


def test_the_settings_pick_the_provider(monkeypatch):
    assert isinstance(build_embedder(LakehouseSettings().embedder), LocalEmbedder)
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    ollama = build_embedder(LakehouseSettings().embedder)
    assert isinstance(ollama, OllamaEmbedder)
    assert (ollama.model, ollama.host) == ("nomic-embed-text", "http://127.0.0.1:9")
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "openai")
    with pytest.raises(ValidationError, match="lakehouse_embedder"):
        LakehouseSettings()


def test_ollama_concurrency_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "ollama")
    monkeypatch.delenv("LAKEHOUSE_OLLAMA_CONCURRENCY", raising=False)
    assert build_embedder(LakehouseSettings().embedder).concurrency == 4
    monkeypatch.setenv("LAKEHOUSE_OLLAMA_CONCURRENCY", "8")
    assert build_embedder(LakehouseSettings().embedder).concurrency == 8
    for bad in ("many", "0"):
        monkeypatch.setenv("LAKEHOUSE_OLLAMA_CONCURRENCY", bad)
        with pytest.raises(ValidationError, match="lakehouse_ollama_concurrency"):
            LakehouseSettings()


# ---------------------------------------------------------------------------------------- Ollama via a stub


def test_ollama_sends_nomic_prefixes_in_batches_and_normalizes():
    with OllamaStub(dim=8).running() as stub:
        embedder = OllamaEmbedder(host=stub.url, batch_size=3)
        texts = [f"worker {i}" for i in range(7)]
        vectors = embedder.embed_documents(texts)
        query = embedder.embed_query("forklift")
    embeds = [r for r in stub.requests if r["path"] == "/api/embed"]
    documents, query_request = embeds[:-1], embeds[-1]  # the document batches were in flight at once
    assert sorted(len(r["input"]) for r in documents) == [1, 3, 3]
    assert all(r["model"] == "nomic-embed-text" for r in embeds)
    assert NOMIC_DOCUMENT_PREFIX + "worker 0" in [r["input"][0] for r in documents]
    assert query_request["input"] == [NOMIC_QUERY_PREFIX + "forklift"]
    assert vectors.shape == (7, 8) and embedder.dim == 8
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    raw = np.array(stub.raw_vector(NOMIC_DOCUMENT_PREFIX + "worker 4"))
    assert np.allclose(vectors[4], raw / np.linalg.norm(raw), atol=1e-6)  # same direction as Ollama's
    assert np.isclose(np.linalg.norm(query), 1.0)


def test_ollama_keeps_batches_in_flight_and_rows_in_order():
    with OllamaStub(dim=8).running() as stub:
        stub.delay = 0.02  # long enough for the batches to overlap at the stub
        embedder = OllamaEmbedder(host=stub.url, batch_size=5, concurrency=3, document_prefix="")
        texts = [f"worker {i}" for i in range(52)]
        vectors = embedder.embed_documents(texts)
    assert stub.max_in_flight == 3
    assert sorted(len(r["input"]) for r in stub.requests) == [2] + [5] * 10
    expected = normalize([stub.raw_vector(t) for t in texts])
    assert np.allclose(
        vectors, expected, atol=1e-6
    )  # row i is text i's vector, whatever order batches finish


def test_ollama_retries_a_failed_batch_alone():
    delays: list[float] = []
    with OllamaStub(dim=8).running() as stub:
        stub.fail_batch = {"worker 10": [503, 500]}  # the third batch fails twice, then succeeds
        embedder = OllamaEmbedder(
            host=stub.url, batch_size=5, concurrency=4, document_prefix="", sleep=delays.append
        )
        texts = [f"worker {i}" for i in range(30)]
        vectors = embedder.embed_documents(texts)
    sent = [r["input"][0] for r in stub.requests]
    assert sent.count("worker 10") == 3
    assert all(sent.count(f"worker {i}") == 1 for i in (0, 5, 15, 20, 25))
    assert delays == [0.5, 1.0]
    assert np.allclose(vectors, normalize([stub.raw_vector(t) for t in texts]), atol=1e-6)


def test_ollama_batch_that_keeps_failing_is_one_clear_error_and_the_rest_stop():
    with OllamaStub(dim=8).running() as stub:
        stub.delay = 0.01
        stub.fail_batch = {"worker 0": [500] * 10}
        embedder = OllamaEmbedder(
            host=stub.url, batch_size=2, concurrency=2, retries=2, document_prefix="", sleep=lambda _s: None
        )
        with pytest.raises(EmbedderError, match=r"refused to embed.*HTTP 500") as raised:
            embedder.embed_documents([f"worker {i}" for i in range(200)])
    assert "\n" not in str(raised.value)
    sent = [r["input"][0] for r in stub.requests]
    assert sent.count("worker 0") == 3  # its own retries...
    assert len(sent) < 20  # ...while batches not yet started never are


def test_ollama_keeps_the_configured_batches_in_flight():
    """16 batches, each answered after 50 ms, 4 in flight: 4 rounds, 80 batches/s at best. The stub sees 4
    at once, and the rate is well past one-at-a-time's 20/s; the >= 0.9x target itself is measured in
    bench/bench_encoder.py (a timed unit test on shared cores would only measure the neighbours)."""
    delay, batches, concurrency = 0.05, 16, 4
    ideal = concurrency / delay
    with OllamaStub(dim=8).running() as stub:
        stub.delay = delay
        embedder = OllamaEmbedder(host=stub.url, batch_size=4, concurrency=concurrency)
        texts = [f"worker {i}" for i in range(batches * 4)]
        embedder.embed_documents(texts)  # connections open once, as in a long run; the stub's answers too
        rates = []
        for _ in range(5):  # the best of 5: other jobs on these 2 cores only ever slow a round down
            started = time.perf_counter()
            assert embedder.embed_documents(texts).shape == (batches * 4, 8)
            rates.append(batches / (time.perf_counter() - started))
    assert stub.max_in_flight == concurrency
    assert max(rates) >= 0.5 * ideal, (rates, ideal)  # twice the sequential rate: the batches overlapped


def test_ollama_retries_transient_errors_with_backoff():
    delays: list[float] = []
    with OllamaStub().running() as stub:
        stub.fail_next = [503, 429]
        embedder = OllamaEmbedder(host=stub.url, retries=3, backoff=0.25, sleep=delays.append)
        vectors = embedder.embed_documents(["welder"])
    assert vectors.shape == (1, 8)
    assert delays == [0.25, 0.5]


def test_ollama_gives_up_after_the_retries_and_says_why():
    with OllamaStub().running() as stub:
        stub.fail_next = [500] * 5
        embedder = OllamaEmbedder(host=stub.url, retries=2, sleep=lambda _s: None)
        with pytest.raises(EmbedderError, match=r"refused to embed.*HTTP 500"):
            embedder.embed_documents(["welder"])
    assert len(stub.requests) == 3


def test_ollama_missing_model_is_a_clear_error_without_retries():
    with OllamaStub(models=("other-model",)).running() as stub:
        embedder = OllamaEmbedder(host=stub.url, sleep=lambda _s: pytest.fail("must not retry a 404"))
        with pytest.raises(EmbedderError, match="ollama pull nomic-embed-text"):
            embedder.embed_documents(["welder"])


def test_ollama_timeout_is_retried_then_a_clear_error():
    delays: list[float] = []
    with OllamaStub().running() as stub:
        stub.delay = 1.0
        embedder = OllamaEmbedder(host=stub.url, timeout=0.2, retries=1, sleep=delays.append)
        with pytest.raises(EmbedderError, match=r"did not answer in time.*Timeout"):
            embedder.embed_documents(["welder"])
    assert len(stub.requests) == 2 and delays == [0.5]


def test_ollama_unreachable_server_is_a_clear_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    delays: list[float] = []
    embedder = OllamaEmbedder(host=f"http://127.0.0.1:{port}", retries=2, sleep=delays.append)
    with pytest.raises(EmbedderError, match=r"unreachable.*OLLAMA_HOST"):
        embedder.embed_query("welder")
    assert len(delays) == 2


# ------------------------------------------------------------------------------------- pipeline and cache


def _drop(tmp_path, name, rows, edit=None):
    """A workers CSV of generated rows, optionally with some rows edited."""
    import csv

    path = tmp_path / name
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in worker_rows(rows):
            writer.writerow(edit(row) if edit else row)
    return path


def test_rerun_embeds_nothing_and_an_edited_row_only_itself(lake, tmp_path):
    embedder = HashEmbedder()
    ingest(lake, str(_drop(tmp_path, "a.csv", 40)), WORKERS)
    first = build_embeddings(lake, WORKERS, embedder)
    assert (first.rows_embedded, first.rows_reused, first.pointer.rows) == (40, 0, 40)
    assert (first.pointer.model, first.pointer.dim) == ("hash-test", 16)

    again = build_embeddings(lake, WORKERS, embedder)
    assert (again.rows_embedded, again.rows_reused) == (0, 40)
    assert again.pointer.key == first.pointer.key

    def edit(row):  # an incremental export: worker 7's resume changed
        return [*row[:-1], row[-1] + " Now also trained on reach trucks."] if row[0] == "7" else row

    ingest(lake, str(_drop(tmp_path, "b.csv", 40, edit)), WORKERS)
    embedder.embedded.clear()
    edited = build_embeddings(lake, WORKERS, embedder)
    assert (edited.rows_embedded, edited.rows_reused, edited.pointer.rows) == (1, 39, 40)
    assert len(embedder.embedded) == 1 and "reach trucks" in embedder.embedded[0]
    ids, hashes, vectors = next(iter_embeddings(lake, edited.pointer))
    assert ids == list(range(1, 41)) and vectors.shape == (40, 16)
    assert hashes[6] == text_sha256(embedder.embedded[0])


def test_cache_survives_a_restart_and_keys_on_model_and_prefix(lake, tmp_path):
    ingest(lake, str(_drop(tmp_path, "a.csv", 20)), WORKERS)
    build_embeddings(lake, WORKERS, HashEmbedder())
    reopened = EmbeddingCache(lake.storage, "hash-test", "", lake.scratch).load()  # a new process's view
    assert len(reopened) == 20
    other_model = build_embeddings(lake, WORKERS, HashEmbedder(model="hash-test-2"))
    assert other_model.rows_embedded == 20  # another model never reuses these vectors
    assert len(EmbeddingCache(lake.storage, "hash-test", "search_document: ", lake.scratch).load()) == 0


def test_embeddings_pipeline_on_s3(s3_lake, tmp_path):
    csv_path = write_workers_csv(tmp_path / "w.csv", 30)
    ingest(s3_lake, str(csv_path), WORKERS)
    first = build_embeddings(s3_lake, WORKERS, HashEmbedder())
    again = build_embeddings(s3_lake, WORKERS, HashEmbedder())
    assert (first.rows_embedded, again.rows_embedded, again.rows_reused) == (30, 0, 30)
    assert current_embeddings(s3_lake, "workers").key == first.pointer.key
    assert s3_lake.storage.exists(first.pointer.key)
    metadata = first.metadata()
    assert metadata["rows_embedded"] == 30 and metadata["model"] == "hash-test" and metadata["dim"] == 16


def test_dagster_assets_embed_and_index_through_ollama(lake_home, lake, tmp_path):
    """The embeddings and vectors assets under Dagster, with the Ollama provider against the stub."""
    from resources.lake_resource import LakeResource
    from resources.search_resources import EmbedderResource, VectorStoreResource

    ingest(lake, str(_drop(tmp_path, "a.csv", 25)), WORKERS)
    with OllamaStub(dim=8).running() as stub:
        resources = {
            "lake": LakeResource(home=str(lake_home.home)),
            "embedder": EmbedderResource(kind="ollama", ollama_host=stub.url),
            "vector_store": VectorStoreResource(max_indexing_threads=2),
        }
        first = materialize_search(WORKERS, resources)
        again = materialize_search(WORKERS, resources)
    assert first["embeddings"]["rows_embedded"] == 25
    assert first["embeddings"]["model"] == "nomic-embed-text"
    assert (again["embeddings"]["rows_embedded"], again["embeddings"]["rows_reused"]) == (0, 25)
    assert (first["vectors"]["upserted"], first["vectors"]["points"]) == (25, 25)
    assert (again["vectors"]["upserted"], again["vectors"]["unchanged"]) == (0, 25)
    assert all(r["input"][0].startswith(NOMIC_DOCUMENT_PREFIX) for r in stub.requests)
