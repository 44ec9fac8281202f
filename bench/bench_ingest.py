"""Ingest benchmark: our CSV → Parquet ingest vs DuckDB COPY, polars and pandas, side by side.

Each engine runs as its own process (so peak RSS is that engine's alone), in interleaved rounds (these
machines drift up to 2x minute to minute); we report the median and min-max wall time, the peak RSS, and
whether the Parquet types came out right (zip codes kept as text with their zeros, dates as dates,
booleans as booleans, ids as integers, rates as floats).

    .venv/bin/python bench/bench_ingest.py --rows 500000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import machine_note, publish
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv

WORK = Path(__file__).resolve().parent / ".work"
EXPECTED = {
    "worker_id": pa.int64(),
    "zip": pa.string(),
    "available": pa.bool_(),
    "hourly_rate": pa.float64(),
    "last_placed": pa.date32(),
}

ENGINES = {
    "lakehouse ingest (no contract)": "ingest_plain",
    "lakehouse ingest (workers contract)": "ingest_contract",
    "DuckDB COPY read_csv → parquet": "duckdb",
    "polars scan_csv → sink_parquet": "polars",
    "pandas read_csv → to_parquet": "pandas",
}

# Each engine as a tiny program: argv[1] is the CSV, argv[2] an output folder; it prints the Parquet path.
PROGRAMS = {
    "ingest_plain": """
import os, sys
os.environ["LAKEHOUSE_HOME"] = sys.argv[2]
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.ingest.publish import ingest
lake = Lake.open()
print(lake.storage.location(ingest(lake, sys.argv[1], "bench").object.key))
""",
    "ingest_contract": """
import os, sys
os.environ["LAKEHOUSE_HOME"] = sys.argv[2]
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.ingest.publish import ingest
lake = Lake.open()
print(lake.storage.location(ingest(lake, sys.argv[1], load_specs()["workers"]).object.key))
""",
    "duckdb": """
import sys, duckdb
out = sys.argv[2] + "/out.parquet"
duckdb.execute("SET enable_progress_bar = false")
duckdb.sql(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
print(out)
""",
    "polars": """
import sys, polars as pl
out = sys.argv[2] + "/out.parquet"
pl.scan_csv(sys.argv[1]).sink_parquet(out, compression="zstd")
print(out)
""",
    "pandas": """
import sys, pandas as pd
out = sys.argv[2] + "/out.parquet"
pd.read_csv(sys.argv[1]).to_parquet(out, compression="zstd")
print(out)
""",
}


def run_once(program: str, csv: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS in MiB, and the output's types, for one run in a fresh process."""
    out = Path(tempfile.mkdtemp(dir=WORK))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", program, str(csv), str(out)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    parquet = process.stdout.read().strip().splitlines()[-1]
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"engine failed with exit code {process.returncode}")
    schema = pq.read_schema(parquet)
    zeros_kept = pq.read_table(parquet, columns=["zip"]).column("zip").cast(pa.string()).to_pylist()
    types = {name: schema.field(name).type for name in EXPECTED}
    types["zip_leading_zeros"] = any(z and z.startswith("0") for z in zeros_kept)
    shutil.rmtree(out)
    return wall, usage.ru_maxrss / 1024, types


def types_right(types: dict) -> str:
    wrong = [f"{n}={types[n]}" for n, t in EXPECTED.items() if types[n] != t]
    if not types["zip_leading_zeros"]:
        wrong.append("zip lost leading zeros")
    return "all right" if not wrong else "wrong: " + ", ".join(wrong)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    csv = WORK / f"workers_{args.rows}.csv"
    if not csv.exists():
        write_workers_csv(csv, args.rows)
    results: dict[str, list[tuple[float, float, dict]]] = {name: [] for name in ENGINES}
    for round_number in range(args.rounds):
        for name, program in ENGINES.items():
            results[name].append(run_once(PROGRAMS[program], csv))
            print(f"round {round_number + 1}: {name}: {results[name][-1][0]:.2f}s", file=sys.stderr)
    baseline = statistics.median(w for w, _, _ in results["DuckDB COPY read_csv → parquet"])
    lines = [
        f"Input: {args.rows:,} generated workers rows, 18 columns, {csv.stat().st_size / 1024**2:.0f} MiB "
        f'(quoted newlines, `""` quotes, zips with leading zeros). {args.rounds} interleaved rounds, each '
        "engine a fresh process (wall includes interpreter start and imports).",
        "",
        "| engine | wall median (min-max) | vs DuckDB COPY | peak RSS median | types |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, runs in results.items():
        walls, rss = [w for w, _, _ in runs], [r for _, r, _ in runs]
        lines.append(
            f"| {name} | {statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}) | "
            f"{statistics.median(walls) / baseline:.2f}x | {statistics.median(rss):.0f} MiB | {types_right(runs[-1][2])} |"
        )
    publish("ingest", "Ingest: CSV → Parquet", lines)


if __name__ == "__main__":
    print(machine_note(), file=sys.stderr)
    main()
