"""The local model on ONNX Runtime: the same vectors as sentence-transformers (so collections built before stay
valid), the int8 variant close but under its own name, an export cache that two processes can fill at once,
and query embedding that never imports torch.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import COLUMNS, worker_rows, write_workers_csv
from lakehouse_pipelines.search import onnx_encoder
from lakehouse_pipelines.search.documents import render
from lakehouse_pipelines.search.embedders import (
    LOCAL_INT8_MODEL_NAME,
    LOCAL_MODEL_NAME,
    EmbedderError,
    LocalEmbedder,
    build_embedder,
)
from lakehouse_pipelines.search.embeddings_build import embed_dataset
from lakehouse_pipelines.search.indexing import index_dataset
from lakehouse_pipelines.search.service import IndexMismatch, SearchService
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings
from lakehouse_pipelines.settings import EmbedderSettings
from tests.search_support import local_embedder

REPO = Path(__file__).resolve().parents[2]
WORKERS = load_specs()["workers"]
QUERIES = ["forklift operator", "welder", "dental hygienist", "TIG welder who reads blueprints"]


@functools.cache
def texts() -> list[str]:
    """300 generated workers rendered by the dataset's template, a few queries, and one text over 256 tokens."""
    rows = [render(WORKERS.embedding.template, dict(zip(COLUMNS, r, strict=True))) for r in worker_rows(300)]
    long = " ".join(rows[:4])  # ~320 tokens: truncation at max_seq_length must match too
    return [*rows, *QUERIES, long]


@functools.cache
def reference() -> np.ndarray:
    """sentence-transformers on torch, as the local embedder worked before ONNX."""
    model = onnx_encoder.sentence_transformer()
    return model.encode(texts(), batch_size=64, convert_to_numpy=True, normalize_embeddings=True)


@functools.cache
def int8_embedder() -> LocalEmbedder:
    return LocalEmbedder(LOCAL_INT8_MODEL_NAME)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_vectors_equal_sentence_transformers():
    assert onnx_encoder.model_info(LOCAL_MODEL_NAME) == (256, 384)
    assert len(onnx_encoder.encoder()._tokenizer.encode(texts()[-1]).ids) == 256  # truncated like ST
    vectors = local_embedder().embed_documents(texts())
    assert vectors.shape == (len(texts()), 384) and vectors.dtype == np.float32
    assert cosines(vectors, reference()).min() >= 0.9999
    query = local_embedder().embed_query("welder")  # alone, unpadded
    assert cosines(query[None], reference()[[texts().index("welder")]])[0] >= 0.9999


def test_int8_is_close_named_apart_and_selected_by_configuration():
    int8 = int8_embedder()
    assert (int8.model, int8.dim) == ("all-MiniLM-L6-v2-int8", 384)
    assert int8.model != local_embedder().model  # caches and collections keep the two apart
    vectors = int8.embed_documents(texts())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(vectors, reference()).min() >= 0.98
    # Activation scales are computed per batch: a text alone is close to, not equal to, itself in a batch.
    alone = int8.embed_query("welder")
    assert cosines(alone[None], vectors[[texts().index("welder")]])[0] >= 0.98
    assert build_embedder(EmbedderSettings("local-int8")).model == "all-MiniLM-L6-v2-int8"
    assert build_embedder(EmbedderSettings("local")).model == "all-MiniLM-L6-v2"
    with pytest.raises(EmbedderError, match="unknown local model"):
        LocalEmbedder("all-MiniLM-L12-v2")


def test_int8_vectors_never_reuse_or_serve_fp32_ones(lake, tmp_path):
    """The model-mismatch rule: another model name re-embeds every row and a collection answers only its own."""
    ingest(lake, str(write_workers_csv(tmp_path / "w.csv", 20)), WORKERS)
    fp32 = embed_dataset(lake, WORKERS, local_embedder())
    int8 = embed_dataset(lake, WORKERS, int8_embedder())
    embedded = [sum(r.rows_embedded for r in runs) for runs in (fp32, int8)]
    assert (*embedded, sum(r.rows_reused for r in int8)) == (20, 20, 0)
    assert (fp32[0].pointer.model, int8[0].pointer.model) == ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2-int8")
    store = EdgeVectorStore(tmp_path / "vectors", HnswSettings(max_indexing_threads=2))
    try:
        index_dataset(lake, WORKERS, store)  # the current embeddings: int8's
        assert SearchService(store, int8_embedder()).search("workers", "welder", k=3).hits
        with pytest.raises(IndexMismatch, match="all-MiniLM-L6-v2-int8"):
            SearchService(store, local_embedder()).search("workers", "welder", k=3)
    finally:
        store.close()


FIRST_USE = textwrap.dedent(
    """
    import json, logging, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    from lakehouse_pipelines.search import onnx_encoder
    started = time.time()
    files = onnx_encoder.ensure_model()
    vector = onnx_encoder.OnnxEncoder(files, threads=1).encode(["certified welder"])[0]
    print(json.dumps({"start": started, "end": time.time(), "path": str(files.onnx), "vector": vector.tolist()}))
    """
)


def test_two_processes_doing_first_use_at_once_export_once(tmp_path):
    cache = tmp_path / "models"
    env = {**os.environ, "LAKEHOUSE_MODEL_CACHE": str(cache)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    exports = sum(err.count("exporting all-MiniLM-L6-v2 to ONNX") for _, err in outputs)
    assert exports == 1, [err[-2000:] for _, err in outputs]
    # They really did overlap: the second waited on the lock while the first exported.
    assert max(r["start"] for r in results) < min(r["end"] for r in results)
    (key_dir,) = cache.iterdir()
    assert key_dir.name == onnx_encoder.weights_sha256()[:16]
    assert sorted(p.name for p in key_dir.iterdir()) == [".export.lock", "model.onnx", "model.onnx.json"]
    assert {r["path"] for r in results} == {str(key_dir / "model.onnx")}
    meta = json.loads((key_dir / "model.onnx.json").read_text())
    assert meta["weights_sha256"] == onnx_encoder.weights_sha256() and meta["opset"] == 17
    # Loadable, and the same model as the shared cache's.
    expected = local_embedder().embed_query("certified welder")
    for result in results:
        assert float(np.dot(result["vector"], expected)) >= 0.9999


def test_a_file_from_another_recipe_or_a_dead_exporter_is_not_used(tmp_path, monkeypatch):
    key_dir = tmp_path / onnx_encoder.weights_sha256()[:16]
    key_dir.mkdir()
    (key_dir / "model.onnx").write_bytes(b"an old export")
    (key_dir / "model.onnx.json").write_text(json.dumps({"recipe": "r0"}))
    (key_dir / ".model.onnx.tmp-1-dead").write_bytes(b"half")
    exported: list[Path] = []

    def fake_export(directory, target):
        exported.append(target)
        tmp = onnx_encoder._temporary(target)
        tmp.write_bytes(b"new")
        onnx_encoder._publish(tmp, target, {})

    monkeypatch.setattr(onnx_encoder, "_export_fp32", fake_export)
    files = onnx_encoder.ensure_model(LOCAL_MODEL_NAME, cache=tmp_path)
    assert exported == [key_dir / "model.onnx"] and files.onnx.read_bytes() == b"new"
    assert not list(key_dir.glob(".*.tmp*"))
    onnx_encoder.ensure_model(LOCAL_MODEL_NAME, cache=tmp_path)
    assert len(exported) == 1  # published now: found without the lock


NO_TORCH = textwrap.dedent(
    """
    import sys, time
    started = time.perf_counter()
    from lakehouse_pipelines.search.embedders import build_embedder
    from lakehouse_pipelines.search.service import SearchService
    from lakehouse_pipelines.settings import EmbedderSettings
    embedder = build_embedder(EmbedderSettings(sys.argv[1]))
    vector = embedder.embed_query("forklift operator")
    elapsed = time.perf_counter() - started
    documents = embedder.embed_documents(["welder", "certified electrician, night shift"])
    heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
    print(len(vector), documents.shape[0], ",".join(heavy) or "none", round(elapsed, 3))
    """
)


@pytest.mark.parametrize("kind", ["local", "local-int8"])
def test_embedding_never_imports_torch(kind):
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH, kind], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    dim, rows, heavy, _seconds = run.stdout.split()
    assert (dim, rows, heavy) == ("384", "2", "none")
