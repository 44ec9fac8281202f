"""Scaling curve: ingest (ours vs DuckDB COPY) and the HNSW index (vs numpy brute force) as the data grows.

Ingest: each engine in a fresh process per run (bench_ingest's programs), rounds interleaved between the
engines at every size; wall, rows/s and peak RSS (os.wait4), median (min-max). Index: bench_search's
build-and-query harness at every vector count (a writer process builds it, this process searches the
published copy), then one summary table of how build time, latency and recall grow.

    .venv/bin/python bench/bench_scaling.py --rows 10000 100000 500000 1000000 --vectors 10000 100000 500000
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.bench_e2e import cached_workers_csv  # noqa: E402
from bench.bench_ingest import BASELINE, WORK, Runs, run_once  # noqa: E402
from bench.bench_search import bench_index  # noqa: E402
from bench.report import publish, spread  # noqa: E402

ENGINES = {"ours": "lakehouse ingest (no contract)", "duckdb": BASELINE}  # bench_ingest's PROGRAMS
SUMMARY_EF = "128"


def ingest_curve(sizes: list[int], rounds: int) -> list[str]:
    lines = [
        f"### Ingest: lakehouse ingest (no contract) vs DuckDB COPY, {rounds} interleaved rounds",
        "",
        "Wall includes interpreter start and imports (about 0.3 s for ours, less for DuckDB): the fixed cost "
        "paid once per file is why the small sizes show a larger ratio.",
        "",
        "| rows | CSV MiB | ours wall s | ours rows/s | ours RSS MiB | DuckDB wall s | DuckDB rows/s | "
        "DuckDB RSS MiB | ours / DuckDB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rows in sizes:
        csv = cached_workers_csv(WORK / f"scaling_workers_{rows}.csv", rows)
        runs = {engine: Runs() for engine in ENGINES}
        for _ in range(rounds):
            for engine, program in ENGINES.items():
                run_once(program, csv, None, runs[engine])
        walls = {engine: r.walls for engine, r in runs.items()}
        rss = {engine: r.rss for engine, r in runs.items()}
        ours, duck = statistics.median(walls["ours"]), statistics.median(walls["duckdb"])
        lines.append(
            f"| {rows:,} | {csv.stat().st_size / 1024**2:.0f} | {spread(walls['ours'])} | {rows / ours:,.0f} | "
            f"{spread(rss['ours'], 0)} | {spread(walls['duckdb'])} | {rows / duck:,.0f} | "
            f"{spread(rss['duckdb'], 0)} | {ours / duck:.2f}x |"
        )
        print(lines[-1], flush=True)
    return [*lines, ""]


def index_summary(tables: dict[int, list[str]]) -> list[str]:
    """One row per size and set at ef=128, read back from bench_search's tables by their column names."""
    lines = [
        f"### HNSW index: how cost grows (ef={SUMMARY_EF}; the full tables follow)",
        "",
        "| vectors | set | build (writer process) | build vectors/s | search p50 | p99 | recall@10 | "
        "brute force/query | p50 speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, table in tables.items():
        header = next(line for line in table if line.startswith("| set |"))
        names = [c.strip() for c in header.strip("|").split("|")]
        for line in table:
            cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|")), strict=False))
            if line.startswith("| ") and "did not finish" in cells.get("build", ""):
                lines.append(f"| {n:,} | {cells['set']} | {cells['build']} | | | | | | |")
            if not line.startswith("| ") or cells.get("ef") != SUMMARY_EF:
                continue
            build = float(cells["build"].removesuffix(" s"))
            p50 = float(cells["search p50"].removesuffix(" ms"))
            brute = float(cells["brute force/query"].removesuffix(" ms"))
            lines.append(
                f"| {n:,} | {cells['set']} | {cells['build']} | {n / build:,.0f} | {cells['search p50']} | "
                f"{cells['p99']} | {cells['recall@10']} | {cells['brute force/query']} | {brute / p50:,.0f}x |"
            )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 500_000, 1_000_000])
    parser.add_argument("--vectors", type=int, nargs="*", default=[10_000, 100_000, 500_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-build-seconds", type=int, default=900, help="cap on each index build")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    lines = ingest_curve(args.rows, args.rounds)
    tables = {n: bench_index(WORK / f"scaling_index_{n}", n, args.max_build_seconds) for n in args.vectors}
    if tables:
        lines += [
            *index_summary(tables),
            "One build per set and size (a build takes minutes at 500K), so the index rows are single runs; "
            "latency percentiles are over the queries. The build's peak RSS is not measured (bench_search's "
            "writer is a multiprocessing child).",
            "",
            *(line for table in tables.values() for line in table),
        ]
    publish("scaling", "Scaling: ingest and the HNSW index as data grows", lines)


if __name__ == "__main__":
    main()
