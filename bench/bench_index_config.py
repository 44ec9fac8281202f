"""HNSW build settings on the real model's vectors: build time, recall@10 with and without a filter, query cost.

bench_pipeline's zero-cost vectors (random noise around 64 centres) lose recall at 200K points without
Qdrant's per-payload links (`payload_m`), and those links triple the build. This settles the default on
sentence embeddings instead: generated workers rows embedded by the local model (its int8 export, ~2.4x the
rate of fp32 and cosine 0.99 to it, so the vectors have the same structure), indexed by `index_dataset`
under each configuration, then searched by role queries (bench_edge_query's, embedded by the same model),
with no filter, with filters of four selectivities and with ANDs of two of them, against numpy brute force
over the same vectors.

    .venv/bin/python bench/bench_index_config.py [--rows 200000] [--queries 200]

The embedded lake is kept under bench/.work/index-config/ (embedding 200K rows takes ~8 min here), so a
re-run only rebuilds the indexes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work" / "index-config"
sys.path.insert(0, str(ROOT.parent))

from bench.bench_edge_query import query_texts  # noqa: E402
from bench.report import publish  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.publish import ingest  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.search.documents import iter_rows  # noqa: E402
from lakehouse_pipelines.search.embedders import LOCAL_INT8_MODEL_NAME, LocalEmbedder  # noqa: E402
from lakehouse_pipelines.search.embeddings_build import current_embeddings, embed_dataset, iter_embeddings  # noqa: E402
from lakehouse_pipelines.search.indexing import index_dataset  # noqa: E402
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore  # noqa: E402
from lakehouse_pipelines.search.vectors.protocol import Condition, HnswSettings  # noqa: E402
from lakehouse_pipelines.settings import LakeSettings  # noqa: E402

WORKERS = load_specs()["workers"]

CONFIGS = {
    "default: int8, payload_m 8, ACORN on 2+ filters": HnswSettings(),
    "turbo4 instead of int8": HnswSettings(quantization="turbo4"),
    "payload_m 8, no links for numeric columns": HnswSettings(range_links=False),
    "payload_m 4": HnswSettings(payload_m=4),
    "payload_m 0": HnswSettings(payload_m=0),
}
# Query-time settings measured again on a configuration's own build (so the build's own variation is out).
REQUERY = {
    "default: int8, payload_m 8, ACORN on 2+ filters": {
        "the same build, without ACORN": replace(HnswSettings(), acorn_conditions=None)
    }
}

# (label, column, payload type, value of the row the filter takes): each query's filter keeps the rows
# sharing that value with a row picked per query, so every filter has matches.
FILTERS = [
    ("available (~50%)", "available", "bool"),
    ("shift (~25%)", "shift", "keyword"),
    ("role (~1/30)", "role", "keyword"),
    ("state (~1/50)", "state", "keyword"),
]
# (label, column, share of the rows): a range of that share of the column's values, starting at a random row's
RANGES = [("hourly_rate range 25%", "hourly_rate", 0.25), ("hourly_rate range 5%", "hourly_rate", 0.05)]
# (label, the filters above it ANDs): no single column's payload links cover these.
COMBINED = [
    ("shift and available (~1/8)", ("shift (~25%)", "available (~50%)")),
    ("available and hourly_rate 25% (~1/8)", ("available (~50%)", "hourly_rate range 25%")),
    ("role and available (~1/60)", ("role (~1/30)", "available (~50%)")),
]

LABELS = ["none", *(f[0] for f in FILTERS), *(r[0] for r in RANGES), *(c[0] for c in COMBINED)]


def embedded_home(rows: int) -> Path:
    """A lake with `rows` generated workers, embedded by the local int8 model; built once, then reused."""
    home = WORK / f"home-{rows}"
    if (home / "READY").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    lake = Lake.open(LakeSettings.under(home))
    csv = write_workers_csv(WORK / f"workers-{rows}.csv", rows)
    ingest(lake, str(csv), WORKERS)
    csv.unlink()
    started = time.perf_counter()
    embed_dataset(lake, WORKERS, LocalEmbedder(LOCAL_INT8_MODEL_NAME))
    print(f"embedded {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    (home / "READY").write_text("ok")
    return home


def load_vectors(lake: Lake) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Every row's id, vector and the filter columns, in one id order."""
    ids, vectors = [], []
    for unit in WORKERS.embedding.all_units():
        for batch_ids, _, batch in iter_embeddings(lake, current_embeddings(lake, WORKERS.name, unit)):
            ids += batch_ids
            vectors.append(batch)
    columns: dict[str, dict] = {column: {} for _, column, *_ in FILTERS + RANGES}
    for batch in iter_rows(lake, lake.catalog.get(WORKERS.name), WORKERS.embedding):
        for row_id, payload in zip(batch.ids, batch.payloads, strict=True):
            for column, values in columns.items():
                values[row_id] = payload[column]
    order = np.asarray(ids)
    return order, np.vstack(vectors), {c: np.asarray([v[i] for i in ids]) for c, v in columns.items()}


def truth(matrix: np.ndarray, ids: np.ndarray, query: np.ndarray, mask: np.ndarray | None) -> set:
    scores = matrix @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return set(ids[np.argpartition(-scores, 10)[:10]].tolist())


def filter_of(label: str, columns: dict[str, np.ndarray], pick: int) -> tuple[tuple, np.ndarray | None]:
    """The conditions of filter `label` for the query whose random row is `pick`, and the rows they keep."""
    for name, column, kind in FILTERS:
        if name == label:
            value = columns[column][pick]
            return (Condition(column, "match", value.item(), kind),), columns[column] == value
    for name, column, share in RANGES:
        if name == label:
            ordered = np.sort(columns[column])
            start = min(int(np.searchsorted(ordered, columns[column][pick])), int(len(ordered) * (1 - share)))
            low, high = float(ordered[start]), float(ordered[start + int(len(ordered) * share) - 1])
            keep = (columns[column] >= low) & (columns[column] <= high)
            return (Condition(column, "range", {"gte": low, "lte": high}, "float"),), keep
    for name, parts in COMBINED:
        if name == label:
            both = [filter_of(part, columns, pick) for part in parts]
            return sum((c for c, _ in both), ()), np.logical_and.reduce([m for _, m in both])
    return (), None


def measure(store: EdgeVectorStore, data, queries: np.ndarray, picks: np.ndarray) -> dict[str, tuple]:
    """(recall@10, p50 ms) per filter ('none' included), every query once."""
    ids, matrix, columns = data
    out = {}
    for label in LABELS:
        found, times = 0, []
        for query, pick in zip(queries, picks, strict=True):
            conditions, mask = filter_of(label, columns, pick)
            started = time.perf_counter()
            hits = store.search(WORKERS.name, query, k=10, conditions=conditions)
            times.append((time.perf_counter() - started) * 1000)
            found += len({h.id for h in hits} & truth(matrix, ids, query, mask))
        out[label] = (found / (10 * len(queries)), statistics.median(times))
    return out


def row(scores: dict[str, tuple], labels: list[str]) -> str:
    """A table row's recall cells, then the p50 latencies of three of its filters."""
    p50 = " / ".join(f"{scores[x][1]:.2f}" for x in ("none", "role (~1/30)", "shift and available (~1/8)"))
    return " | ".join(f"{scores[x][0]:.3f}" for x in labels) + f" | {p50} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    home = embedded_home(args.rows)
    lake = Lake.open(LakeSettings.under(home))
    data = load_vectors(lake)
    embedder = LocalEmbedder(LOCAL_INT8_MODEL_NAME)
    queries = np.vstack([embedder.embed_query(t) for t in query_texts(args.queries)])
    picks = np.random.default_rng(5).integers(0, len(data[0]), len(queries))
    labels = LABELS
    lines = [
        f"{args.rows:,} generated workers rows embedded by `{LOCAL_INT8_MODEL_NAME}` (the workers template: "
        f"role, city, skills, certifications, shift, resume); {len(queries)} role queries embedded by the same "
        "model. `index_dataset` into a fresh Qdrant Edge collection per configuration (int8 scalar "
        "quantization unless it says turbo4, Qdrant's TurboQuant at 4 bits, rescoring with oversampling 3, "
        "ef_construct 100, 2 indexing threads, 11 payload indexes), then each query with no filter, with an "
        "equality filter on a column (the value taken from a random row, so it matches) and with a range of "
        "hourly_rate holding 25% or 5% of the rows (from a random row's value), and with two of those "
        "filters at once. Recall@10 against numpy brute force over the same vectors (filtered: over the "
        "matching rows); search ef 128, "
        "k=10; one build per configuration (a build's recall varies by ~0.02 from one build to the next).",
        "",
        "| configuration | index s | HNSW s | vectors/s | "
        + " | ".join(f"recall@10 {x}" for x in labels)
        + " | p50 ms none / role / shift and available |",
        "|---|---:|---:|---:|" + "---:|" * len(labels) + "---|",
    ]
    worst: dict[str, float] = {}
    for name, hnsw in CONFIGS.items():
        target = Path(WORK / "vectors")
        shutil.rmtree(target, ignore_errors=True)
        store = EdgeVectorStore(target, hnsw)
        started = time.perf_counter()
        result = index_dataset(lake, WORKERS, store)
        seconds = time.perf_counter() - started
        built = f"{seconds:.1f} | {result.phases.get('index', 0):.1f} | {result.points / seconds:,.0f}"
        for label, settings in {name: hnsw, **REQUERY.get(name, {})}.items():
            store.hnsw = settings
            scores = measure(store, data, queries, picks)
            lines.append(
                f"| {label} | {built if settings is hnsw else 'same build | | '} | " + row(scores, labels)
            )
            print(lines[-1], flush=True)
            worst[label] = min(scores.values())[0]
        store.close()
        shutil.rmtree(target, ignore_errors=True)
    lines += [
        "",
        "Lowest recall@10 over the filters: " + "; ".join(f"{n} {r:.3f}" for n, r in worst.items()) + ".",
    ]
    publish("index_config", "HNSW settings on the real model's vectors: build time and recall", lines)


if __name__ == "__main__":
    main()
