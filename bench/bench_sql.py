"""SQL through the sidecar (a real uvicorn process on loopback) vs in-process DuckDB, and a wrk load run.

    python bench/bench_sql.py [--rounds 30] [--duration 40] [--workers 2]

Generates 500K workers rows into bench/.work/ (once), ingests them with `ingest()`, starts
`lakehouse serve` in its own process group, then times the issue's queries interleaved (in-process, then
HTTP, each round), and finally runs wrk with a Lua POST body at concurrency 10. Writes bench/results/sql.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
sys.path.insert(0, str(ROOT.parent))

from lakehouse_pipelines import engine  # noqa: E402
from lakehouse_pipelines.config import Settings  # noqa: E402
from lakehouse_pipelines.csv_source import quote_literal  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest import ingest  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.sample_data import write_workers_csv  # noqa: E402

ROWS = 500_000
QUERIES = {
    "count": "SELECT count(*) FROM workers",
    "group by state": "SELECT state, count(*) AS n FROM workers GROUP BY state ORDER BY n DESC",
    "avg/min/max": "SELECT avg(hourly_rate), min(hourly_rate), max(hourly_rate) FROM workers",
    "filtered count": "SELECT count(*) FROM workers WHERE state = 'OH' AND available",
    "select * order by id limit 5": "SELECT * FROM workers ORDER BY worker_id LIMIT 5",
    "point lookup by id": "SELECT * FROM workers WHERE worker_id = 314159",
}
LOAD_SQL = "SELECT count(*) FROM workers"
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"sql": "%s"}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("STATUS %%d %%d\\n", status, n)) end
  for _, p in ipairs({50, 95, 99, 99.9}) do
    io.write(string.format("PCT %%g %%.3f\\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("TOTAL %%d %%d %%.3f %%d %%d %%d\\n", summary.requests, summary.duration,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


def prepare_lake() -> Lake:
    home = WORK / "home"
    os.environ["LAKEHOUSE_HOME"] = str(home)
    for name in ("LAKEHOUSE_STORAGE", "LAKEHOUSE_LANDING", "LAKEHOUSE_API_TOKEN"):
        os.environ.pop(name, None)
    lake = Lake.open(Settings.from_env())
    csv = WORK / "workers_500k.csv"
    if not csv.exists():
        write_workers_csv(csv, ROWS)
    current = lake.catalog.find("workers")
    if current is None or current.row_count != ROWS:
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


def in_process_connection(lake: Lake):
    con = engine.connect(memory_limit="1GB", scratch=lake.scratch)
    manifest = lake.catalog.get("workers")
    paths = ", ".join(quote_literal(lake.storage.location(o.key)) for o in manifest.objects)
    con.execute(f"CREATE VIEW workers AS SELECT * FROM read_parquet([{paths}])")
    return con


def compare(lake: Lake, base_url: str, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """Interleaved: each round runs every query in process (fresh cursor, fetchall), then over HTTP."""
    con = in_process_connection(lake)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in QUERIES}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for warm in range(3):
            for sql in QUERIES.values():
                con.cursor().execute(sql).fetchall()
                assert http.post("/sql", json={"sql": sql}).status_code == 200, warm
        for _ in range(rounds):
            for name, sql in QUERIES.items():
                started = time.perf_counter()
                cur = con.cursor()
                cur.execute(sql).fetchall()
                cur.close()
                times[name][0].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                response = http.post("/sql", json={"sql": sql})
                response.json()
                times[name][1].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
    con.close()
    return times


def load_run(base_url: str, duration: int, connections: int) -> dict:
    script = WORK / "post_sql.lua"
    script.write_text(WRK_LUA % LOAD_SQL)
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base_url + "/sql",
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    statuses = {int(a): int(b) for a, b in re.findall(r"^STATUS (\d+) (\d+)$", output, re.M)}
    percentiles = {float(a): float(b) for a, b in re.findall(r"^PCT ([\d.]+) ([\d.]+)$", output, re.M)}
    total = re.search(r"^TOTAL (\d+) (\d+) ([\d.]+) (\d+) (\d+) (\d+)$", output, re.M)
    requests, micros = int(total.group(1)), int(total.group(2))
    return {
        "command": " ".join(command),
        "requests": requests,
        "seconds": micros / 1e6,
        "rps": requests / (micros / 1e6),
        "statuses": statuses,
        "percentiles": percentiles,
        "max_ms": float(total.group(3)),
        "socket_errors": int(total.group(4)),
        "non_2xx": int(total.group(5)),
        "timeouts": int(total.group(6)),
    }


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(times, load, args, command: str) -> str:
    lines = [
        "## SQL through the sidecar vs in-process DuckDB",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; sidecar `lakehouse serve --workers {args.workers}` (uvicorn, uvloop + "
        "httptools, access log on), client and wrk on the same cores. Dataset: generated workers, "
        f"{ROWS:,} rows x 18 columns, one zstd Parquet object (32K-row groups, ingest order = worker_id).",
        "",
        f"### Latency per query, ms: median (min-max) over {args.rounds} interleaved rounds",
        "",
        "In process = a fresh cursor on a DuckDB connection with the same view, `execute().fetchall()`. "
        "HTTP = `POST /sql` with a keep-alive httpx client, JSON parsed.",
        "",
        "| query | in process | through HTTP | HTTP - in process (medians) |",
        "|---|---|---|---|",
    ]
    for name, (local, http) in times.items():
        delta = statistics.median(http) - statistics.median(local)
        lines.append(f"| {name} | {fmt(local)} | {fmt(http)} | {delta:+.2f} |")
    p = load["percentiles"]
    codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(load["statuses"].items()))
    lines += [
        "",
        f"### Load: wrk, `POST /sql` `{LOAD_SQL}`, concurrency {args.connections}",
        "",
        f"`{load['command']}` (Lua body, per-status counts from the `response` hook)",
        "",
        f"- requests: {load['requests']:,} in {load['seconds']:.1f} s = **{load['rps']:,.0f} req/s**",
        f"- status codes: {codes}; socket errors {load['socket_errors']}, timeouts {load['timeouts']}, "
        f"non-2xx {load['non_2xx']}",
        f"- latency ms: p50 {p[50.0]:.2f}, p95 {p[95.0]:.2f}, p99 {p[99.0]:.2f}, p99.9 {p[99.9]:.2f}, "
        f"max {load['max_ms']:.2f}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--duration", type=int, default=40, help="wrk seconds (sized for >= 100K requests)")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    command = "python bench/bench_sql.py " + " ".join(sys.argv[1:])
    lake = prepare_lake()
    port = free_port()
    server = start_server(port, args.workers)
    try:
        base_url = f"http://127.0.0.1:{port}"
        times = compare(lake, base_url, args.rounds)
        load = load_run(base_url, args.duration, args.connections)
    finally:
        stop(server)
    text = report(times, load, args, command.strip())
    out = ROOT / "results" / "sql.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
