"""What one Qdrant Edge query costs, by search parameter, and what each setting gives in recall@10.

    .venv/bin/python bench/bench_edge_query.py [--queries 200] [--rounds 3]

Opens bench_serve's collections (`points_20k`, `points_200k`: built by bench/bench_serve.py, which see) as
the sidecar does, embeds `--queries` role queries with the real model, and for each query runs every
configuration in turn (the order rotating), `--rounds` times. The query holds the GIL for its whole run, so
its time is what a sidecar worker cannot spend on anything else. Recall@10 is against numpy brute force over
the same float vectors.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.bench_serve import WORK, WORKERS, name_of  # noqa: E402
from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import ROLES  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.search.embedders import LocalEmbedder  # noqa: E402
from lakehouse_pipelines.search.embeddings_build import current_embeddings, iter_embeddings  # noqa: E402
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore  # noqa: E402
from lakehouse_pipelines.settings import LakeSettings  # noqa: E402

# (label, hnsw_ef, quantization: None = ignore the quantized copy, else oversampling with rescoring, payload)
CONFIGS = [
    ("ef 256, quantized x3 rescored, payload (the default before)", 256, 3.0, True),
    ("ef 128, quantized x3 rescored, payload", 128, 3.0, True),
    ("ef 64, quantized x3 rescored, payload", 64, 3.0, True),
    ("ef 128, quantized x2 rescored, payload", 128, 2.0, True),
    ("ef 128, quantized x1 rescored, payload", 128, 1.0, True),
    ("ef 128, quantized, not rescored, payload", 128, 0.0, True),
    ("ef 128, float vectors (quantized copy ignored), payload", 128, None, True),
    ("ef 128, quantized x3 rescored, no payload", 128, 3.0, False),
]


def query_texts(n: int) -> list[str]:
    """Role queries with a qualifier, like users type: "welder night shift", "CNC machinist in Ohio"."""
    tails = ["", " night shift", " with OSHA-30", " available now", " 10 years experience", " in Ohio"]
    words = ["", *(w for skills, _, _ in ROLES.values() for w in skills[:2])]
    rng = random.Random(3)
    roles = list(ROLES)
    return [
        f"{roles[i % len(roles)]}{rng.choice(tails)} {rng.choice(words)}".strip().lower() for i in range(n)
    ]


def request(vector: np.ndarray, k: int, ef: int, oversampling: float | None, payload: bool):
    from qdrant_edge import QuantizationSearchParams, Query, QueryRequest, SearchParams

    quantization = (
        QuantizationSearchParams(ignore=True)
        if oversampling is None
        else QuantizationSearchParams(rescore=oversampling > 0, oversampling=max(oversampling, 1.0))
    )
    return QueryRequest(
        limit=k,
        query=Query.Nearest(vector.tolist()),
        params=SearchParams(hnsw_ef=ef, quantization=quantization),
        with_payload=payload,
    )


def measure(home: Path, dataset: str, queries: np.ndarray, rounds: int) -> list[str]:
    lake = Lake.open(LakeSettings.under(home))
    ids, vectors = [], []
    for unit in WORKERS.embedding.all_units():
        for batch_ids, _, batch in iter_embeddings(lake, current_embeddings(lake, dataset, unit)):
            ids += batch_ids
            vectors.append(batch)
    matrix = np.vstack(vectors)
    ids_arr = np.asarray(ids)
    exact = [set(ids_arr[np.argsort(-(matrix @ q))[:10]].tolist()) for q in queries]
    store = EdgeVectorStore(home / "vectors")
    times: dict[str, list[list[float]]] = {c[0]: [[] for _ in range(rounds)] for c in CONFIGS}
    recall: dict[str, list[float]] = {c[0]: [] for c in CONFIGS}
    with store._reader(dataset).shard() as (shard, _dim):
        for r in range(rounds):
            for i, q in enumerate(queries):
                order = CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]
                for label, ef, over, payload in order:
                    req = request(q, 10, ef, over, payload)
                    started = time.perf_counter()
                    points = shard.query(req)
                    times[label][r].append((time.perf_counter() - started) * 1000)
                    if r == 0:
                        got = (
                            {p.payload["_id"] for p in points}
                            if payload
                            else {int(p.id.int) if hasattr(p.id, "int") else p.id for p in points}
                        )
                        recall[label].append(len(got & exact[i]) / 10 if payload else float("nan"))
    store.close()
    lines = [
        f"#### {dataset}: {len(ids):,} points ({quantization_of(home, dataset)} quantization), "
        f"{len(queries)} queries x {rounds} rounds",
        "",
        "| search parameters | p50 ms | p99 ms | recall@10 |",
        "|---|---|---|---|",
    ]
    for label, *_ in CONFIGS:
        p50 = [statistics.median(t) for t in times[label]]
        p99 = [float(np.percentile(t, 99)) for t in times[label]]
        rec = recall[label]
        shown = f"{statistics.mean(rec):.3f}" if not any(np.isnan(rec)) else "(as above)"
        lines.append(f"| {label} | {spread(p50, 3)} | {spread(p99, 3)} | {shown} |")
    return [*lines, ""]


def quantization_of(home: Path, dataset: str) -> str:
    """The quantization `dataset`'s collection was built with (its Edge config's key: scalar, turbo)."""
    config = next((home / "vectors" / dataset).glob("versions/*/edge_config.json"))
    return ", ".join(json.loads(config.read_text()).get("quantization_config") or {}) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--points", default="20000,200000")
    args = parser.parse_args()
    home = WORK / "serve" / "home"
    if not (home / "READY").exists():
        raise SystemExit("run bench/bench_serve.py first: it builds the collections")
    texts = query_texts(args.queries)
    queries = LocalEmbedder().embed_documents(texts)
    lines = [
        "Each query runs every configuration in turn (order rotating), in this process, on the sidecar's "
        "reader of the published version; p50/p99 per round, median (min-max) over the rounds. Queries: "
        f"{len(texts)} role queries with qualifiers (`{texts[1]}`, `{texts[-1]}`), embedded by the real "
        "model; the collections' vectors sit around the model's embedding of each row's role. HNSW m=16, "
        "ef_construct=100, k=10; each collection's quantization as its Edge config says.",
        "",
    ]
    for n in (int(s) for s in args.points.split(",")):
        lines += measure(home, name_of("points", n), queries, args.rounds)
        print("\n".join(lines[-12:]), flush=True)
    publish("search_params", "One Qdrant Edge query: cost and recall by search parameter", lines)


if __name__ == "__main__":
    main()
