"""SQL through the sidecar (a real uvicorn process on loopback) vs in-process DuckDB, the Parquet layout
behind it, and a wrk load run.

    .venv/bin/python bench/bench_sql.py [--rounds 30] [--requests 100000] [--max-seconds 600] [--workers 2]

Generates 500K workers rows into bench/.work/ (once), ingests them into a fresh lake with `ingest()` (so
the layout measured is the one ingest writes), and then, in one run:
1. layouts: the same data rewritten with other row-group sizes, the issue's queries in process, interleaved;
2. the issue's queries in process and through `lakehouse serve`, interleaved per round;
3. wrk with a Lua POST body at concurrency 10, stopped at `--requests` or `--max-seconds`, whichever first.
Writes bench/results/sql.md (and BENCHMARKS.md) through bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
sys.path.insert(0, str(ROOT.parent))

from bench.http_load import load_summary, wrk_post  # noqa: E402
from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.conversion import ROW_GROUP_ROWS  # noqa: E402
from lakehouse_pipelines.ingest.csv_file import quote_literal  # noqa: E402
from lakehouse_pipelines.ingest.publish import ingest  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.lake import duckdb_connection as engine  # noqa: E402
from lakehouse_pipelines.settings import LakehouseSettings  # noqa: E402
from lakehouse_pipelines.sidecar.server import engine_threads  # noqa: E402

ROWS = 500_000
QUERIES = {
    "count": "SELECT count(*) FROM workers",
    "group by state": "SELECT state, count(*) AS n FROM workers GROUP BY state ORDER BY n DESC",
    "avg/min/max": "SELECT avg(hourly_rate), min(hourly_rate), max(hourly_rate) FROM workers",
    "filtered count": "SELECT count(*) FROM workers WHERE state = 'OH' AND available",
    "select * order by id limit 5": "SELECT * FROM workers ORDER BY worker_id LIMIT 5",
    "point lookup by id": "SELECT * FROM workers WHERE worker_id = 314159",
}
OTHER_LAYOUTS = (32_768, 122_880)  # the previous ingest setting, and DuckDB's default
LOAD_SQL = "SELECT count(*) FROM workers"


def prepare_lake() -> Lake:
    """A fresh lake holding the 500K workers, written by today's ingest."""
    home = WORK / "sql_home"
    shutil.rmtree(home, ignore_errors=True)
    os.environ["LAKEHOUSE_HOME"] = str(home)
    for name in ("LAKEHOUSE_STORAGE", "LAKEHOUSE_LANDING", "LAKEHOUSE_API_TOKEN", "LAKEHOUSE_SQL_THREADS"):
        os.environ.pop(name, None)
    lake = Lake.open(LakehouseSettings().lake)
    csv = WORK / "sql_workers_500k.csv"
    if not csv.exists():
        write_workers_csv(csv, ROWS)
    result = ingest(lake, str(csv), load_specs()["workers"])
    print(f"ingested {result.object.rows:,} rows in {result.seconds:.1f}s", file=sys.stderr)
    return lake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", "from lakehouse_pipelines.cli import app; app()", "serve",
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(process)
    raise SystemExit("sidecar did not start")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def connection(lake: Lake, paths: list[str], threads: int) -> duckdb.DuckDBPyConnection:
    """In process, configured like one sidecar worker's engine: same threads, a view over `paths`."""
    con = engine.connect(memory_limit="1GB", scratch=lake.scratch)
    con.execute(f"SET threads = {threads}")
    listed = ", ".join(quote_literal(p) for p in paths)
    con.execute(f"CREATE VIEW workers AS SELECT * FROM read_parquet([{listed}])")
    return con


def in_process(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    """ms for a fresh cursor's `execute().fetchall()`: what a sidecar request does minus HTTP and JSON."""
    started = time.perf_counter()
    cursor = con.cursor()
    cursor.execute(sql).fetchall()
    cursor.close()
    return (time.perf_counter() - started) * 1000


def interleave(runners: dict[str, Callable[[str], float]], rounds: int) -> dict[tuple[str, str], list[float]]:
    """Each round runs every query on every runner, so drift hits all of them alike; 3 warm-up rounds."""
    times: dict[tuple[str, str], list[float]] = {(r, q): [] for r in runners for q in QUERIES}
    for round_ in range(rounds + 3):
        for query, sql in QUERIES.items():
            for name, run in runners.items():
                ms = run(sql)
                if round_ >= 3:
                    times[(name, query)].append(ms)
    return times


def compare_layouts(lake: Lake, threads: int, rounds: int) -> list[str]:
    """The ingested object and the same rows rewritten with other row-group sizes, in process."""
    shipped = lake.storage.location(lake.catalog.get("workers").objects[0].key)
    files = {ROW_GROUP_ROWS: Path(shipped)}
    for rows in OTHER_LAYOUTS:
        files[rows] = WORK / f"sql_layout_{rows}.parquet"
        duckdb.execute(
            f"COPY (FROM read_parquet({quote_literal(shipped)})) TO {quote_literal(str(files[rows]))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {rows})"
        )
    cons = {rows: connection(lake, [str(path)], threads) for rows, path in files.items()}
    times = interleave(
        {str(rows): (lambda sql, c=con: in_process(c, sql)) for rows, con in cons.items()}, rounds
    )
    lines = [
        f"### Parquet layout: the issue's queries in process, ms, median over {rounds} interleaved rounds",
        "",
        f"The same 500K rows (zstd, in worker_id order as dropped) with different row-group sizes; DuckDB "
        f"with {threads} thread(s), as one sidecar worker. Min/max statistics let the id filter skip every "
        "group but one; smaller groups mean less of the wide `resume_text` column to decompress for it.",
        "",
        "| rows per group | groups | MiB | " + " | ".join(QUERIES) + " |",
        "|---" * (3 + len(QUERIES)) + "|",
    ]
    for rows, con in cons.items():
        groups = con.execute(
            f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata({quote_literal(str(files[rows]))})"
        ).fetchone()[0]
        label = f"{rows:,}" + (" (ingest)" if rows == ROW_GROUP_ROWS else "")
        cells = [f"{statistics.median(times[(str(rows), q)]):.2f}" for q in QUERIES]
        lines.append(
            f"| {label} | {groups} | {files[rows].stat().st_size / 2**20:.1f} | " + " | ".join(cells) + " |"
        )
        con.close()
    return [*lines, ""]


def compare_http(lake: Lake, port: int, threads: int, rounds: int) -> list[str]:
    """Each round runs every query in process (fresh cursor, fetchall), then over HTTP (JSON parsed)."""
    manifest = lake.catalog.get("workers")
    con = connection(lake, [lake.storage.location(o.key) for o in manifest.objects], threads)
    http = HTTPConnection("127.0.0.1", port, timeout=30)

    def over_http(sql: str) -> float:
        started = time.perf_counter()
        http.request("POST", "/sql", json.dumps({"sql": sql}), {"content-type": "application/json"})
        response = http.getresponse()
        json.loads(response.read())
        assert response.status == 200, response.status
        return (time.perf_counter() - started) * 1000

    times = interleave({"local": lambda sql: in_process(con, sql), "http": over_http}, rounds)
    http.close()
    con.close()
    lines = [
        f"### Through the sidecar vs in process, ms: median (min-max) over {rounds} interleaved rounds",
        "",
        f"In process = a fresh cursor on a DuckDB connection with the same view and {threads} thread(s) (one "
        "sidecar worker's engine), `execute().fetchall()`. HTTP = `POST /sql` on one keep-alive stdlib "
        "`http.client` connection, JSON parsed (httpx would add ~0.5 ms of its own per request).",
        "",
        "| query | in process | through HTTP | HTTP - in process (medians) |",
        "|---|---|---|---|",
    ]
    for query in QUERIES:
        local, http = times[("local", query)], times[("http", query)]
        delta = statistics.median(http) - statistics.median(local)
        lines.append(f"| {query} | {spread(local)} | {spread(http)} | {delta:+.2f} |")
    return [*lines, ""]


def load_lines(load: dict, args: argparse.Namespace) -> list[str]:
    return [
        f"### Load: wrk, `POST /sql` `{LOAD_SQL}`, concurrency {args.connections}",
        "",
        f"`{load['command']}` (Lua body; each wrk thread stops after its share of {args.requests:,} "
        f"requests, `-d` is only the time cap; per-status counts from the `response` hook)",
        "",
        *load_summary(load),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=100_000, help="wrk stops after this many")
    parser.add_argument("--max-seconds", type=int, default=600, help="wrk's time cap")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    threads = engine_threads(args.workers)
    lake = prepare_lake()
    layouts = compare_layouts(lake, threads, args.rounds)
    port = free_port()
    server = start_server(port, args.workers)
    try:
        base_url = f"http://127.0.0.1:{port}"
        http = compare_http(lake, port, threads, args.rounds)
        load = wrk_post(
            base_url + "/sql", {"sql": LOAD_SQL}, requests=args.requests, max_seconds=args.max_seconds,
            connections=args.connections, work=WORK / "sql_post",
        )  # fmt: skip
    finally:
        stop(server)
    intro = [
        f"Sidecar `lakehouse serve --workers {args.workers}` (uvicorn, uvloop + httptools, access log on; each "
        f"worker's DuckDB engine gets {threads} thread(s)); the client, wrk and other agents' jobs share the same "
        f"2 cores, so absolute numbers drift. Dataset: generated workers, {ROWS:,} rows x 18 columns, one zstd "
        f"Parquet object written by ingest ({ROW_GROUP_ROWS:,}-row groups, rows in worker_id order).",
        "",
    ]
    publish(
        "sql",
        "SQL through the sidecar vs in-process DuckDB",
        [*intro, *layouts, *http, *load_lines(load, args)],
    )


if __name__ == "__main__":
    main()
