"""Encoder benchmark: sentence-transformers/torch fp32 vs our ONNX Runtime fp32 and int8, side by side.

1. Rate: the same generated workers texts embedded by each runtime, in interleaved rounds (the order rotates
   every round); wall and CPU time. torch runs as the local embedder did before ONNX (sentence-transformers
   `encode`, batch 64); ONNX as `LocalEmbedder` does now (length-sorted, batch 16).
2. Quality against torch: cosine of each text's vector; top-10 overlap of brute-force search over the corpus
   for generated queries; role precision@5 for role queries (share of the top 5 whose role is the one asked
   for); the top score of queries with no real match ("dental hygienist") against the role queries'.
3. One query at a time: latency of `embed_query` for new texts, interleaved rounds.
4. Start-up: a fresh process importing the embedder and answering its first query, with its peak RSS.
5. The Ollama client against the loopback stub answering each batch after a fixed delay, at several
   in-flight limits, against what the delay and the limit allow.

    .venv/bin/python bench/bench_encoder.py [--rows 2000] [--rounds 3] [--queries 300]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import CITIES, COLUMNS, ROLES, SHIFTS, worker_rows  # noqa: E402
from lakehouse_pipelines.search import onnx_encoder  # noqa: E402
from lakehouse_pipelines.search.documents import render  # noqa: E402
from lakehouse_pipelines.search.embedders import (  # noqa: E402
    LOCAL_INT8_MODEL_NAME,
    LOCAL_MODEL_NAME,
    LocalEmbedder,
    OllamaEmbedder,
)
from lakehouse_pipelines.search.service import bands_for, match_level  # noqa: E402

WORKERS = load_specs()["workers"]
TORCH, ONNX, INT8 = "sentence-transformers / torch fp32", "ONNX Runtime fp32", "ONNX Runtime int8"
MODEL_OF = {TORCH: LOCAL_MODEL_NAME, ONNX: LOCAL_MODEL_NAME, INT8: LOCAL_INT8_MODEL_NAME}
ROLE_QUERIES = [
    ("forklift operator", "Forklift Operator"),
    ("forklift driver OSHA-30 certified, night shift, Aurora IL", "Forklift Operator"),
    ("welder", "Welder"),
    ("TIG welder who reads blueprints", "Welder"),
    ("electrician", "Electrician"),
    ("electrician with industrial wiring", "Electrician"),
    ("CNC machinist", "CNC Machinist"),
    ("G-code programmer for CNC mills and lathes", "CNC Machinist"),
    ("assembly technician", "Assembly Technician"),
    ("production line assembler who follows torque specs", "Assembly Technician"),
    ("warehouse associate", "Warehouse Associate"),
    ("picks and packs orders with an RF scanner", "Warehouse Associate"),
    ("maintenance mechanic", "Maintenance Mechanic"),
    ("repairs hydraulics, pneumatics and conveyors", "Maintenance Mechanic"),
    ("quality inspector", "Quality Inspector"),
    ("CMM and SPC inspection of machined parts", "Quality Inspector"),
    ("machine operator", "Machine Operator"),
    ("injection molding press operator", "Machine Operator"),
    ("production supervisor", "Production Supervisor"),
    ("leads a production team and runs safety huddles", "Production Supervisor"),
]
NO_MATCH = ["dental hygienist", "pastry chef", "software engineer"]

# A fresh process: import the embedder, answer one query; prints seconds and peak RSS (KiB). VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork + exec.
STARTUP = """
import re, sys, time
started = time.perf_counter()
kind = sys.argv[1]
if kind == "torch":
    from lakehouse_pipelines.search.onnx_encoder import sentence_transformer
    model = sentence_transformer()
    model.encode(["forklift operator night shift"], convert_to_numpy=True, normalize_embeddings=True)
else:
    from lakehouse_pipelines.search.embedders import LocalEmbedder
    LocalEmbedder(kind).embed_query("forklift operator night shift")
elapsed = time.perf_counter() - started
print(elapsed, re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""
# The Ollama stub in a process of its own (its JSON encoding must not share the client's GIL), on loopback,
# until its stdin closes.
STUB = """
import sys
from tests.search_support import OllamaStub
stub = OllamaStub(dim=int(sys.argv[1]))
stub.delay = float(sys.argv[2])
with stub.running():
    print(stub.url, flush=True)
    sys.stdin.read()
"""


class TorchEncoder:
    """The local embedder as it was: sentence-transformers `encode`, batch 64, unit vectors."""

    def __init__(self):
        self.model = onnx_encoder.sentence_transformer()

    def embed_documents(self, texts):
        return self.model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)

    def embed_query(self, text):
        return self.embed_documents([text])[0]


def corpus(rows: int) -> tuple[list[str], list[str]]:
    """(texts rendered by the workers template, each row's role)."""
    data = [dict(zip(COLUMNS, r, strict=True)) for r in worker_rows(rows)]
    return [render(WORKERS.embedding.template, row) for row in data], [row["role"] for row in data]


def generated_queries(n: int, seed: int = 11) -> list[str]:
    """Short recruiter-style queries from the generator's vocabulary (skills, certifications, roles, places)."""
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        role = rng.choice(list(ROLES))
        skills, certs, phrases = ROLES[role]
        city, state, _ = rng.choice(CITIES)
        queries.append(
            rng.choice(
                [
                    f"{rng.choice(skills)}",
                    f"{role.lower()} in {city}, {state}",
                    f"{rng.choice(phrases)}",
                    f"{rng.choice(skills)} and {rng.choice(skills)}, {rng.choice(certs)}",
                    f"{rng.choice(SHIFTS)} shift {role.lower()} with {rng.choice(certs)}",
                ]
            )
        )
    return queries


def top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]


def timed(call, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_rates(encoders: dict, texts: list[str], rounds: int) -> tuple[list[str], dict[str, np.ndarray]]:
    names = list(encoders)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            vectors[name], seconds, cpu_seconds = timed(encoders[name].embed_documents, texts)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            print(f"round {r + 1}: {name}: {len(texts) / seconds:.1f} rows/s", flush=True)
    rows = len(texts)
    lines = [
        "| runtime | rows/s (wall) | vs torch (same round) | CPU s per 1,000 rows |",
        "|---|---|---|---|",
    ]
    for name in names:
        ratio = [t / s for t, s in zip(wall[TORCH], wall[name], strict=True)]
        lines.append(
            f"| {name} | {spread([rows / s for s in wall[name]], 1)} | {spread(ratio, 2, 'x')} | "
            f"{spread([c * 1000 / rows for c in cpu[name]], 2)} |"
        )
    return lines, vectors


def bench_quality(encoders: dict, vectors: dict, roles: list[str], queries: list[str]) -> list[str]:
    reference = vectors[TORCH]
    truth = None
    lines = [
        f"| runtime | cosine to torch, min / mean | top-10 overlap with torch ({len(queries)} queries) | "
        f"role precision@5 ({len(ROLE_QUERIES)} queries) | role queries' top score, median | "
        "no-match top scores (" + ", ".join(NO_MATCH) + ") | dental hygienist's level |",
        "|---|---|---|---|---|---|---|",
    ]
    role_array = np.array(roles)
    for name, encoder in encoders.items():
        docs = vectors[name]
        cos = (docs * reference).sum(axis=1)
        query_vectors = np.vstack([encoder.embed_query(q) for q in queries])
        hits = top_k(query_vectors, docs, 10)
        if truth is None:
            truth = hits  # torch first: the reference ranking
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hits, truth, strict=True)])
        role_vectors = np.vstack([encoder.embed_query(q) for q, _ in ROLE_QUERIES])
        role_hits = top_k(role_vectors, docs, 5)
        precision = np.mean(
            [np.mean(role_array[h] == role) for h, (_, role) in zip(role_hits, ROLE_QUERIES, strict=True)]
        )
        role_top = np.max(role_vectors @ docs.T, axis=1)
        absurd_top = [float(np.max(docs @ encoder.embed_query(q))) for q in NO_MATCH]
        level = match_level(absurd_top[0], bands_for(MODEL_OF[name], {}))
        lines.append(
            f"| {name} | {cos.min():.5f} / {cos.mean():.5f} | {overlap:.3f} | {precision:.3f} | "
            f"{np.median(role_top):.3f} ({role_top.min():.3f}-{role_top.max():.3f}) | "
            f"{', '.join(f'{s:.3f}' for s in absurd_top)} | {level} |"
        )
    return lines


def bench_query_latency(encoders: dict, rounds: int, per_round: int = 50) -> list[str]:
    medians: dict[str, list[float]] = {n: [] for n in encoders}
    p99s: dict[str, list[float]] = {n: [] for n in encoders}
    names = list(encoders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            latencies = []
            for i in range(per_round):
                started = time.perf_counter()
                encoders[name].embed_query(f"forklift operator night shift {r}-{i}")
                latencies.append((time.perf_counter() - started) * 1000)
            medians[name].append(statistics.median(latencies))
            p99s[name].append(float(np.percentile(latencies, 99)))
    lines = ["| runtime | p50 | p99 | p50 vs torch |", "|---|---|---|---|"]
    for name in names:
        ratio = [t / s for t, s in zip(medians[TORCH], medians[name], strict=True)]
        lines.append(
            f"| {name} | {spread(medians[name], 2, ' ms')} | {spread(p99s[name], 2, ' ms')} | "
            f"{spread(ratio, 2, 'x')} |"
        )
    return lines


def bench_startup(rounds: int) -> list[str]:
    kinds = {TORCH: "torch", ONNX: LOCAL_MODEL_NAME, INT8: LOCAL_INT8_MODEL_NAME}
    seconds: dict[str, list[float]] = {n: [] for n in kinds}
    rss: dict[str, list[float]] = {n: [] for n in kinds}
    for _ in range(rounds):
        for name, kind in kinds.items():
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", STARTUP, kind],
                cwd=ROOT.parent,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            seconds[name].append(float(out[0]))
            rss[name].append(int(out[1]) / 1024)
            print(f"start-up {name}: {out[0][:5]} s in process, {time.perf_counter() - started:.2f} s in all")
    lines = [
        "| runtime | import + load + first query | peak RSS |",
        "|---|---|---|",
    ]
    for name in kinds:
        lines.append(f"| {name} | {spread(seconds[name], 2, ' s')} | {spread(rss[name], 0, ' MiB')} |")
    return lines


def bench_ollama(rounds: int, delay: float = 0.05, batches: int = 32, limits=(1, 2, 4)) -> list[str]:
    rates: dict[int, list[float]] = {c: [] for c in limits}
    stub = subprocess.Popen(
        [sys.executable, "-c", STUB, "768", str(delay)],
        cwd=ROOT.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = stub.stdout.readline().strip()
        texts = [f"worker {i}" for i in range(batches * 8)]
        embedders = {c: OllamaEmbedder(host=url, batch_size=8, concurrency=c) for c in limits}
        for embedder in embedders.values():
            embedder.embed_documents(texts)  # opens the connections; the stub encodes each answer once
        for _ in range(rounds):
            for c, embedder in embedders.items():
                started = time.perf_counter()
                embedder.embed_documents(texts)
                rates[c].append(batches / (time.perf_counter() - started))
    finally:
        stub.stdin.close()
        try:
            stub.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(stub.pid, signal.SIGKILL)
            stub.wait()
    lines = [
        f"Stub `/api/embed` (tests/search_support.py, in its own process on loopback) answering each batch of "
        f"8 texts with 768-d vectors after {delay * 1000:.0f} ms; {batches} batches per call, {rounds} "
        "interleaved rounds; the stub encodes each answer once (a warm-up call), so what is measured is the "
        "client and the delay. The limit is what the delay allows: in-flight / delay.",
        "",
        "| in flight | batches/s | limit | of the limit |",
        "|---|---|---|---|",
    ]
    for c in limits:
        ideal = c / delay
        lines.append(
            f"| {c} | {spread(rates[c], 1)} | {ideal:.0f} | {spread([r / ideal for r in rates[c]], 2, 'x')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    texts, roles = corpus(args.rows)
    encoders = {
        TORCH: TorchEncoder(),
        ONNX: LocalEmbedder(LOCAL_MODEL_NAME),
        INT8: LocalEmbedder(LOCAL_INT8_MODEL_NAME),
    }
    for encoder in encoders.values():
        encoder.embed_documents(texts[:64])  # warm-up: the model loads and the first batches initialise
    tokens = [len(e.ids) for e in onnx_encoder.encoder()._tokenizer.encode_batch(texts)]
    rate_lines, vectors = bench_rates(encoders, texts, args.rounds)
    quality_lines = bench_quality(encoders, vectors, roles, generated_queries(args.queries))
    int8 = encoders[INT8]
    alone = np.vstack([int8.embed_query(t) for t in texts[:100]])
    int8_stability = float((alone * vectors[INT8][:100]).sum(axis=1).min())
    latency_lines = bench_query_latency(encoders, args.rounds)
    startup_lines = bench_startup(args.rounds)
    ollama_lines = bench_ollama(args.rounds)
    threads = onnx_encoder.default_threads()
    lines = [
        f"### Rate: {args.rows:,} generated workers texts (~{statistics.mean(tokens):.0f} tokens, "
        f"{min(tokens)}-{max(tokens)}), all-MiniLM-L6-v2 on CPU",
        "",
        f"{args.rounds} interleaved rounds, the order rotating each round; each round embeds every text once. "
        f"torch as the local embedder ran before (sentence-transformers `encode`, batch 64, torch's own "
        f"threads); ONNX as `LocalEmbedder` runs now (tokenizers, length-sorted batches of 16, "
        f"intra-op threads {threads}, inter-op 1). Median (min-max).",
        "",
        *rate_lines,
        "",
        "### Quality against torch",
        "",
        f"Brute-force search (exact, so the index plays no part) over the {args.rows:,} texts; the overlap "
        f"queries are {args.queries} short queries generated from the data's vocabulary. The level is the "
        "confidence the search API would report for the best hit under the model's score bands.",
        "",
        *quality_lines,
        "",
        f"int8 activations are quantized per batch, so an int8 vector depends a little on the batch it was in: "
        f"the first 100 texts embedded alone vs in the length-sorted batches, cosine min {int8_stability:.4f}. "
        "fp32 is batch-independent (tests/search/test_embedder.py).",
        "",
        "### One query at a time (`embed_query`, a new text each time)",
        "",
        f"{args.rounds} interleaved rounds of 50 queries.",
        "",
        *latency_lines,
        "",
        "### Start-up: a fresh process imports the embedder and answers one query",
        "",
        "The export exists (it is made once, by `scripts/setup`); torch loads the same weights through "
        "sentence-transformers. Wall time inside the process (interpreter start excluded), peak RSS.",
        "",
        *startup_lines,
        "",
        "### Ollama: batches in flight (`LAKEHOUSE_OLLAMA_CONCURRENCY`)",
        "",
        *ollama_lines,
        "",
    ]
    publish("encoder", "Encoder: sentence-transformers/torch vs ONNX Runtime fp32 and int8", lines)


if __name__ == "__main__":
    main()
