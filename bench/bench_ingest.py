"""Ingest benchmark: our CSV → Parquet ingest vs DuckDB COPY, polars and pandas, side by side, two sizes.

Each engine runs as its own process (so peak RSS is that engine's alone), in interleaved rounds (these
machines drift up to 2x minute to minute), every size in every round; we report the median and min-max wall
time, the peak RSS, whether the Parquet types came out right (zip codes kept as text with their zeros,
dates as dates, booleans as booleans, ids as integers, rates as floats), and where our ingest spent its time
(from its progress stages). `--compare REV` runs our ingest from another git revision side by side.

    .venv/bin/python bench/bench_ingest.py --sizes 50000,500000 --rounds 5 [--compare main]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import machine_note, publish, spread
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv

WORK = Path(__file__).resolve().parent / ".work"
EXPECTED = {
    "worker_id": pa.int64(),
    "zip": pa.string(),
    "available": pa.bool_(),
    "hourly_rate": pa.float64(),
    "last_placed": pa.date32(),
}
BASELINE = "DuckDB COPY read_csv → parquet"

# Our ingest through its Python API, timing each progress stage; argv[3] is the dataset: a bare name, or
# `workers` with its declared contract. `workers-no-pandas` is that ingest as installed without the dev
# extra: pandas (here only for the pandas baseline) cannot be imported, so pandera, whose top-level import
# loads pandas whenever it can (0.3 s), does not.
INGEST = """
import json, os, sys, time
os.environ["LAKEHOUSE_HOME"] = sys.argv[2]
if sys.argv[3] == "workers-no-pandas":
    class NoPandas:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "pandas":
                raise ModuleNotFoundError("No module named 'pandas'")
    sys.meta_path.insert(0, NoPandas())
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.ingest.publish import ingest
stages, last = {}, [None, time.perf_counter()]
def say(stage):
    now = time.perf_counter()
    if last[0]:
        stages[last[0]] = stages.get(last[0], 0) + now - last[1]
    last[:] = [stage, now]
lake = Lake.open()
dataset = load_specs()["workers"] if sys.argv[3].startswith("workers") else sys.argv[3]
result = ingest(lake, sys.argv[1], dataset, progress=say)
say(None)
print(json.dumps({"parquet": lake.storage.location(result.object.key), "stages": stages}))
"""
# The others: argv[1] is the CSV, argv[2] an output folder; each prints the Parquet path.
PROGRAMS = {
    "lakehouse ingest (no contract)": (INGEST, "bench"),
    "lakehouse ingest (workers contract)": (INGEST, "workers"),
    "lakehouse ingest (workers contract, installed without pandas)": (INGEST, "workers-no-pandas"),
    BASELINE: (
        """
import sys, duckdb
out = sys.argv[2] + "/out.parquet"
duckdb.execute("SET enable_progress_bar = false")
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
print(out)
""",
        None,
    ),
    "polars scan_csv → sink_parquet": (
        """
import sys, polars as pl
out = sys.argv[2] + "/out.parquet"
pl.scan_csv(sys.argv[1]).sink_parquet(out, compression="zstd")
print(out)
""",
        None,
    ),
    "pandas read_csv → to_parquet": (
        """
import sys, pandas as pd
out = sys.argv[2] + "/out.parquet"
pd.read_csv(sys.argv[1]).to_parquet(out, compression="zstd")
print(out)
""",
        None,
    ),
}
THIS_TREE = "this tree"
# Appended to every program: its own peak RSS (VmHWM, its address space since exec), into the output folder.
# rusage would not do: Linux counts a child's high-water mark from before its exec, i.e. this process's.
PEAK = """
with open(sys.argv[2] + "/peak_kib", "w") as peak:
    peak.write(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


@dataclass
class Runs:
    """One engine's runs at one size, from one tree."""

    walls: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    types: dict = field(default_factory=dict)


def run_once(engine: str, csv: Path, tree: Path | None, runs: Runs) -> None:
    """One run of `engine` in a fresh process (`tree`: another checkout's code first on the path)."""
    program, dataset = PROGRAMS[engine]
    out = Path(tempfile.mkdtemp(dir=WORK))
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", program + PEAK, str(csv), str(out), *([dataset] if dataset else [])],
        stdout=subprocess.PIPE, text=True, env=env, cwd=tree,
    )  # fmt: skip
    printed = process.stdout.read().strip().splitlines()
    if process.wait() != 0:
        raise RuntimeError(f"{engine} failed with exit code {process.returncode}")
    runs.walls.append(time.perf_counter() - started)
    runs.rss.append(int((out / "peak_kib").read_text()) / 1024)
    if dataset:
        report = json.loads(printed[-1])
        parquet = report["parquet"]
        runs.stages.append(report["stages"])
    else:
        parquet = printed[-1]
    runs.types = parquet_types(parquet)
    shutil.rmtree(out)


def parquet_types(parquet: str) -> dict:
    schema = pq.read_schema(parquet)
    zips = pq.read_table(parquet, columns=["zip"]).column("zip").cast(pa.string()).to_pylist()
    types = {name: schema.field(name).type for name in EXPECTED}
    types["zip_leading_zeros"] = any(z and z.startswith("0") for z in zips)
    return types


def types_right(types: dict) -> str:
    wrong = [f"{n}={types[n]}" for n, t in EXPECTED.items() if types[n] != t]
    if not types["zip_leading_zeros"]:
        wrong.append("zip lost leading zeros")
    return "all right" if not wrong else "wrong: " + ", ".join(wrong)


def variants(trees: dict[str, Path | None]) -> list[tuple[str, str]]:
    """(engine, tree) pairs: our ingest from every tree, the other engines once."""
    ours = [e for e, (_, dataset) in PROGRAMS.items() if dataset]
    return [(e, t) for e in ours for t in trees] + [(e, THIS_TREE) for e in PROGRAMS if e not in ours]


def table(rows: int, csv: Path, results: dict, trees: dict) -> list[str]:
    compared = len(trees) > 1
    baseline = statistics.median(results[(BASELINE, THIS_TREE)].walls)
    lines = [
        f"**{rows:,} rows** ({csv.stat().st_size / 1024**2:.0f} MiB):",
        "",
        "| engine " + ("| code " if compared else "")
        + "| wall median (min-max) | vs DuckDB COPY | peak RSS median (min-max) | types |",
        "|---" + ("|---" if compared else "") + "|---|---|---|---|",
    ]  # fmt: skip
    for engine, tree in variants(trees):
        runs = results[(engine, tree)]
        code = f"| {tree} " if compared else ""
        lines.append(
            f"| {engine} {code}| {spread(runs.walls, unit=' s')} | "
            f"{statistics.median(runs.walls) / baseline:.2f}x | {spread(runs.rss, 0, ' MiB')} | "
            f"{types_right(runs.types)} |"
        )
    return lines


def stage_table(sizes: list[int], results: dict, trees: dict) -> list[str]:
    """Median seconds per progress stage of our ingest (stage names from the code that ran)."""
    lines = [
        "Where our ingest's time goes (median seconds per progress stage; interpreter start, imports and",
        "opening the lake come before the first stage, so the stages do not add up to the wall time):",
        "",
        "| rows | engine | code | stages |",
        "|---|---|---|---|",
    ]
    for rows in sizes:
        for engine, tree in variants(trees):
            runs = results.get((rows, engine, tree))
            if runs is None or not runs.stages:
                continue
            names = list(dict.fromkeys(n for s in runs.stages for n in s))
            shown = ", ".join(f"{n} {statistics.median(s.get(n, 0) for s in runs.stages):.2f}" for n in names)
            lines.append(f"| {rows:,} | {engine} | {tree} | {shown} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50000,500000", help="rows of each generated CSV, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", default="", help="a git revision whose ingest runs side by side")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    trees: dict[str, Path | None] = {THIS_TREE: None}
    if args.compare:
        from bench.bench_serve import checkout  # the revision's tree, extracted once under bench/.work/

        tree = checkout(args.compare)
        trees[f"{args.compare} ({tree.name.removeprefix('rev-')})"] = tree
    csvs = {}
    for rows in sizes:
        csvs[rows] = WORK / f"workers_{rows}.csv"
        if not csvs[rows].exists():
            write_workers_csv(csvs[rows], rows)
    results: dict[tuple, Runs] = {}
    for round_number in range(args.rounds):
        for rows in sizes:
            for engine, tree in variants(trees):
                runs = results.setdefault((rows, engine, tree), Runs())
                run_once(engine, csvs[rows], trees[tree], runs)
                print(f"round {round_number + 1}, {rows:,} rows: {engine} ({tree}): {runs.walls[-1]:.2f}s",
                      file=sys.stderr)  # fmt: skip
    lines = [
        f'Input: generated workers rows, 18 columns (quoted newlines, `""` quotes, zips with leading zeros). '
        f"{args.rounds} interleaved rounds, every size and engine in each, each engine a fresh process "
        "(wall includes interpreter start and imports). Our ingest hashes the file, infers every column's "
        "type from every row by the contract's rules, writes 16K-row groups and fsyncs the file, publishes "
        "and registers it; DuckDB COPY sniffs a sample and writes.",
        "",
    ]
    for rows in sizes:
        by_engine = {(e, t): r for (n, e, t), r in results.items() if n == rows}
        lines += [*table(rows, csvs[rows], by_engine, trees), ""]
    lines += stage_table(sizes, results, trees)
    publish("ingest", "Ingest: CSV → Parquet", lines)


if __name__ == "__main__":
    print(machine_note(), file=sys.stderr)
    main()
