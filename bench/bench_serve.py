"""The sidecar under load against its own ceiling: `/search`, `/sql` and point lookups, two sizes each, one run.

    .venv/bin/python bench/bench_serve.py [--rounds 4] [--search-requests 100000] [--sql-requests 40000]
        [--workers 2] [--points 20000,200000] [--rows 50000,500000] [--starts 3]

One lake home (bench/.work/serve/, rebuilt when the ingest or vector code changes) holds five datasets: the
generated workers at two sizes for SQL (`workers_50k`, `workers_500k`) and three searchable ones (`points_20k`,
`points_200k`, and `points_200k_turbo4` indexed with TurboQuant 4-bit instead of int8: the same generator,
embedded by a stand-in whose vectors cluster around the real model's embedding of each row's role, spread
along 32 fixed directions, so a real query such as "forklift operator night shift" lands among its
neighbours; then indexed by the real vectors step). One `lakehouse serve --workers N` serves them all; then:

1. load: wrk at concurrency 10 on every endpoint in turn, in interleaved rounds (the order rotating), the
   framework's ceiling (`GET /health`, a trivial route of the same app) in every round, so each endpoint's
   rate is reported as a ratio to the ceiling measured minutes (not hours) apart;
2. latency: one keep-alive client, sequential, `count`, group-by and point lookups (a different id each
   round), interleaved;
3. start-up: fresh `lakehouse serve` processes, the time until `/health` says search is ready, and the first
   `/search` after that (a query never seen before).

Writes bench/results/serve.md (and BENCHMARKS.md) through bench/report.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
sys.path.insert(0, str(ROOT.parent))

from bench.bench_sql import free_port, stop  # noqa: E402
from bench.http_load import wrk_post  # noqa: E402
from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.publish import ingest  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.search.embedders import LOCAL_MODEL_NAME, LocalEmbedder, normalize  # noqa: E402
from lakehouse_pipelines.search.embeddings_build import embed_dataset  # noqa: E402
from lakehouse_pipelines.search.indexing import index_dataset  # noqa: E402
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore  # noqa: E402
from lakehouse_pipelines.search.vectors.protocol import HnswSettings  # noqa: E402
from lakehouse_pipelines.settings import LakeSettings  # noqa: E402

WORKERS = load_specs()["workers"]
QUERY = "forklift operator night shift"
CEILING = "ceiling: GET /health"
GO = {"rps": 2_772, "p99": 8.5}
# The code whose output the home holds (the Parquet layout): a change in any of these rebuilds it. Changes
# to the vectors step don't (a rebuild takes minutes): `--rebuild` forces one; so does bumping HOME_VERSION,
# which RoleEmbedder's changes need.
HOME_INPUTS = [
    "lakehouse_pipelines/ingest/publish.py",
    "lakehouse_pipelines/ingest/csv_file.py",
    "lakehouse_pipelines/ingest/type_inference.py",
]
HOME_VERSION = 4


class RoleEmbedder:
    """The real model's name and dimension, vectors near the real model's embedding of each row's role."""

    model = LOCAL_MODEL_NAME
    document_prefix = query_prefix = ""
    dim = 384

    def __init__(self) -> None:
        self._real = LocalEmbedder()
        self._centres: dict[str, np.ndarray] = {}
        # Spread along 32 fixed directions plus a little everywhere: a low intrinsic dimension, as text
        # embeddings have (isotropic noise would make every point of a role equidistant from any query).
        self._basis = np.linalg.qr(np.random.default_rng(0).normal(size=(self.dim, 32)))[0].T

    def _vector(self, text: str) -> np.ndarray:
        role = text.split(" in ", 1)[0]
        centre = self._centres.get(role)
        if centre is None:
            centre = self._centres[role] = self._real.embed_query(role)
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        rng = np.random.default_rng(seed)
        return centre + rng.normal(scale=0.15, size=32) @ self._basis + rng.normal(scale=0.01, size=self.dim)

    def embed_documents(self, texts) -> np.ndarray:
        return normalize(np.stack([self._vector(t) for t in texts])).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def home_key(points: list[int], rows: list[int]) -> str:
    digest = hashlib.sha256(json.dumps([HOME_VERSION, points, rows]).encode())
    for name in HOME_INPUTS:
        digest.update((ROOT.parent / name).read_bytes())
    return digest.hexdigest()[:16]


def prepare_home(points: list[int], rows: list[int], rebuild: bool = False) -> Path:
    """The lake home with every dataset, reused while its inputs are unchanged."""
    home = WORK / "serve" / "home"
    stamp = home / "READY"
    key = home_key(points, rows)
    if stamp.exists() and stamp.read_text() == key and not rebuild:
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    lake = Lake.open(LakeSettings.under(home))
    for n in rows:
        csv = WORK / "serve" / f"workers-{n}.csv"
        if not csv.exists():
            write_workers_csv(csv, n)
        ingest(lake, str(csv), replace(WORKERS, name=name_of("workers", n)))
    embedder = RoleEmbedder()
    for n in points:
        csv = WORK / "serve" / f"workers-{n}.csv"
        if not csv.exists():
            write_workers_csv(csv, n)
        for name, hnsw in searchable(n, points).items():
            spec = replace(WORKERS, name=name)
            ingest(lake, str(csv), spec)
            started = time.perf_counter()
            embed_dataset(lake, spec, embedder)
            store = EdgeVectorStore(home / "vectors", hnsw)
            result = index_dataset(lake, spec, store)
            store.close()
            print(f"{name}: {result.points:,} points in {time.perf_counter() - started:.0f}s", flush=True)
    stamp.write_text(key)
    return home


def searchable(n: int, points: list[int]) -> dict[str, HnswSettings]:
    """The collections of `n` points: the default build, and at the largest size a turbo4 one beside it
    (TurboQuant 4-bit instead of int8), so that one run measures what the quantization changes."""
    out = {name_of("points", n): HnswSettings()}
    if n == max(points):
        out[f"{name_of('points', n)}_turbo4"] = HnswSettings(quantization="turbo4")
    return out


def name_of(kind: str, n: int) -> str:
    return f"{kind}_{n // 1000}k"


def checkout(rev: str) -> Path:
    """The tree of git revision `rev`, extracted once under bench/.work/serve/ (for `--compare`)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT.parent, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = WORK / "serve" / f"rev-{sha}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT.parent, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def home_of(home: Path, tree: Path | None) -> Path:
    return home if tree is None else variant_home(home, tree)


def variant_home(home: Path, tree: Path) -> Path:
    """A copy of `home` for another checkout's server: a reader may rewrite files of the version it opens
    (its search threads, see edge_reader.set_search_threads), which must not reach the other variant."""
    copy = WORK / "serve" / f"home-{tree.name}"
    if (copy / "READY").exists() and (copy / "READY").read_text() == (home / "READY").read_text():
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("work", "readers", "embeddings", "tmp"))
    return copy


def start_server(home: Path, port: int, workers: int, tree: Path | None = None) -> subprocess.Popen:
    """`lakehouse serve` on `home`; `tree`: another checkout's code (ahead of this one on the path)."""
    for leftover in home.glob("vectors/*/readers/*"):  # private copies of killed readers: GBs of page cache
        shutil.rmtree(leftover, ignore_errors=True)
    env = {**os.environ, "LAKEHOUSE_HOME": str(home)}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    for name in ("LAKEHOUSE_STORAGE", "LAKEHOUSE_LANDING", "LAKEHOUSE_API_TOKEN", "QDRANT_URL"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-c", "from lakehouse_pipelines.cli import app; app()", "serve",
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env,
        cwd=tree or ROOT.parent,  # `python -c` puts the working directory first on sys.path
    )  # fmt: skip


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system, every thread) of the processes in process group `pgid`: a server's cost,
    which other jobs on the machine disturb far less than its rate."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def health(port: int) -> dict | None:
    """One `/health` on a new connection (so successive calls can land on different workers)."""
    http = HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        http.request("GET", "/health")
        response = http.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except OSError:
        return None
    finally:
        http.close()


def wait_ready(port: int, timeout: float = 120) -> tuple[float, bool]:
    """Seconds until `/health` says search is ready on 8 fresh connections in a row; False: it never says."""
    started = time.perf_counter()
    streak = 0
    while time.perf_counter() - started < timeout:
        body = health(port)
        if body is not None and "search" not in body:  # a sidecar that doesn't report readiness
            return time.perf_counter() - started, False
        streak = streak + 1 if body is not None and body["search"] == "ready" else 0
        if streak >= 8:
            return time.perf_counter() - started, True
        time.sleep(0.02)
    raise SystemExit("the sidecar never reported search ready")


def post(http: HTTPConnection, path: str, body: dict, headers: dict | None = None) -> tuple[float, dict]:
    started = time.perf_counter()
    http.request("POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})})
    response = http.getresponse()
    answer = json.loads(response.read())
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200, (response.status, answer)
    return elapsed, answer


NO_CACHE = {"cache-control": "no-cache"}


def endpoints(points: list[int], rows: list[int]) -> dict[str, tuple[str, dict | None, str, dict]]:
    """name -> (path, body or None for GET, kind, headers). Each query twice: repeated as it is (answered
    by the result cache after the first), and with `Cache-Control: no-cache` (DuckDB every time). Searches
    have no result cache: the index answers every one (the query embedding is cached)."""
    out: dict[str, tuple[str, dict | None, str, dict]] = {CEILING: ("/health", None, "ceiling", {})}
    for n in points:
        for name in searchable(n, points):
            body = {"dataset": name, "query": QUERY, "k": 10}
            label = ", turbo4" if name.endswith("_turbo4") else ""
            out[f"/search {n:,} points{label}"] = ("/search", body, "search", {})
    for n in rows:
        table = name_of("workers", n)
        count = {"sql": f"SELECT count(*) FROM {table}"}
        group = {"sql": f"SELECT state, count(*) AS n FROM {table} GROUP BY state ORDER BY n DESC"}
        out[f"/sql count(*) {n:,} rows"] = ("/sql", count, "sql", {})
        out[f"/sql count(*) {n:,} rows, no-cache"] = ("/sql", count, "sql", NO_CACHE)
        out[f"/sql group by state {n:,} rows"] = ("/sql", group, "sql", {})
        out[f"/sql group by state {n:,} rows, no-cache"] = ("/sql", group, "sql", NO_CACHE)
    return out


def load_rounds(
    ports: dict[str, int], pgids: dict[str, int], args: argparse.Namespace, targets: dict
) -> dict[tuple, list[dict]]:
    """(variant, endpoint) -> one wrk run per round; every endpoint on every variant in each round."""
    runs: dict[tuple, list[dict]] = {(v, name): [] for name in targets for v in ports}
    keys = list(runs)
    rates = {key: probe_rate(ports[key[0]], targets[key[1]], args) for key in keys}
    for r in range(args.rounds):
        for variant, name in keys[r % len(keys) :] + keys[: r % len(keys)]:
            path, body, kind, headers = targets[name]
            share = (args.search_requests if kind == "search" else args.sql_requests) // args.rounds
            # wrk runs for as long as the probed rate needs for the share (its `response` hook, which
            # counts answers, costs wrk ~10% of a cheap route's rate on these shared cores: http_load.py)
            seconds = min(args.max_seconds, max(2, math.ceil(1.1 * share / rates[(variant, name)])))
            cpu = group_cpu(pgids[variant])
            load = wrk_post(
                f"http://127.0.0.1:{ports[variant]}{path}", body, requests=share, max_seconds=args.max_seconds,
                connections=args.connections, work=WORK / "serve" / "wrk", headers=headers, seconds=seconds,
            )  # fmt: skip
            load["cpu_ms"] = (group_cpu(pgids[variant]) - cpu) * 1000 / load["requests"]
            runs[(variant, name)].append(load)
            print(
                f"round {r + 1} {variant} {name}: {load['rps']:,.0f} req/s p50 {load['percentiles'][50.0]:.2f} "
                f"p99 {load['percentiles'][99.0]:.2f} cpu {load['cpu_ms']:.3f} ms/req non-2xx {load['non_2xx']} errors {load['socket_errors']}",
                flush=True,
            )
    return runs


def probe_rate(port: int, target: tuple, args: argparse.Namespace) -> float:
    """Requests/s of a 2-second run: what sizes the endpoint's timed runs."""
    path, body, _, headers = target
    load = wrk_post(
        f"http://127.0.0.1:{port}{path}", body, requests=0, max_seconds=2, connections=args.connections,
        work=WORK / "serve" / "wrk", headers=headers, seconds=2,
    )  # fmt: skip
    return max(load["rps"], 1.0)


def latency_rounds(ports: dict[str, int], rows: list[int], rounds: int) -> dict[tuple, list[float]]:
    """(variant, query) -> ms per round; each round asks every query of every variant (3 warm-up rounds)."""
    clients = {v: HTTPConnection("127.0.0.1", port, timeout=30) for v, port in ports.items()}
    rng = random.Random(7)
    times: dict[tuple, list[float]] = {}
    for r in range(rounds + 3):
        for n in rows:
            table = name_of("workers", n)
            worker = rng.randint(1, n)
            queries = {
                f"count(*), {n:,} rows": (f"SELECT count(*) FROM {table}", NO_CACHE),
                f"count(*), {n:,} rows, repeated (result cache)": (f"SELECT count(*) FROM {table}", {}),
                f"group by state, {n:,} rows": (
                    f"SELECT state, count(*) AS n FROM {table} GROUP BY state",
                    NO_CACHE,
                ),
                f"point lookup by id, {n:,} rows": (
                    f"SELECT * FROM {table} WHERE worker_id = {worker}",
                    NO_CACHE,
                ),
            }
            for label, (sql, headers) in queries.items():
                answers = []
                for variant, http in clients.items():
                    ms, answer = post(http, "/sql", {"sql": sql}, headers)
                    answers.append(answer["rows"])
                    if r >= 3:
                        times.setdefault((variant, label), []).append(ms)
                assert all(a == answers[0] for a in answers), f"variants disagree on {label}"
                if "point lookup" in label:
                    assert len(answers[0]) == 1, answers[0]
    for http in clients.values():
        http.close()
    return times


def start_rounds(home: Path, args: argparse.Namespace, dataset: str, trees: dict) -> dict[str, list[dict]]:
    """Fresh servers of each variant in turn: seconds to ready, then the first search (a new query) and a
    second one."""
    out: dict[str, list[dict]] = {v: [] for v in trees}
    for i in range(args.starts):
        for variant, tree in trees.items():
            out[variant].append(start_once(home, args, dataset, tree, i))
            print(f"start {i + 1} {variant}: {out[variant][-1]}", flush=True)
    return out


def start_once(home: Path, args: argparse.Namespace, dataset: str, tree: Path | None, i: int) -> dict:
    port = free_port()
    spawned = time.perf_counter()
    server = start_server(home_of(home, tree), port, args.workers, tree)
    try:
        while health(port) is None:
            if time.perf_counter() - spawned > 120:
                raise SystemExit("sidecar did not start")
            time.sleep(0.02)
        listening = time.perf_counter() - spawned
        ready, reports = wait_ready(port)
        http = HTTPConnection("127.0.0.1", port, timeout=30)
        first, _ = post(http, "/search", {"dataset": dataset, "query": f"crane rigger {i} {time.time()}"})
        second, _ = post(http, "/search", {"dataset": dataset, "query": f"pallet racking {i} {time.time()}"})
        http.close()
    finally:
        stop(server)
    return {
        "listening": listening,
        "ready": listening + ready,
        "reports": reports,
        "first": first,
        "second": second,
    }


def pct(load: dict, p: float) -> float:
    return load["percentiles"][p]


def report(args, targets, runs, times, starts, variants: list[str]) -> list[str]:
    compared = len(variants) > 1
    lines = [
        f"One `lakehouse serve --workers {args.workers}` (uvicorn, uvloop + httptools, access log on, stderr to "
        "/dev/null) serving five datasets; wrk (2 threads, concurrency "
        f"{args.connections}, no Lua response hook: each run lasts what a 2-second probe's rate needs for its "
        f"share of the requests) on the same 2 cores. {args.rounds} interleaved rounds, "
        "the order rotating; each round runs every endpoint, the framework's own ceiling (`GET /health`, a "
        "trivial route of the same app) included, so *of ceiling* compares rates measured minutes apart. "
        "Rates and percentiles: median (min-max) over the rounds; requests and non-2xx: totals over them. "
        "*Server CPU*: user + system time of the sidecar's processes (every worker and thread) per request "
        "during the run, the figure other jobs on the machine disturb least. "
        f"Search: cached query embedding (`{QUERY}`), k=10, Qdrant Edge in process, the synthetic collections "
        "described in the script's docstring.",
        "",
    ]
    if compared:
        lines += [
            f"Two sidecars side by side, their runs interleaved: *{variants[0]}* and *{variants[1]}* (the same "
            "lake; the other's code from `git archive`, ahead on PYTHONPATH).",
            "",
        ]
    lines += [
        "### Load",
        "",
        ("| code " if compared else "")
        + "| endpoint | req/s | of ceiling | p50 ms | p99 ms | server CPU ms/request | requests | non-2xx + socket errors |",
        ("|---" if compared else "") + "|---|---|---|---|---|---|---|---|",
    ]
    for name in targets:
        for variant in variants:
            loads, ceiling = runs[(variant, name)], runs[(variant, CEILING)]
            ratio = [load["rps"] / c["rps"] for load, c in zip(loads, ceiling, strict=True)]
            bad = sum(load["non_2xx"] + load["socket_errors"] + load["timeouts"] for load in loads)
            lines.append(
                (f"| {variant} " if compared else "")
                + f"| {name} | {spread([load['rps'] for load in loads], 0)} | {spread(ratio, 2, 'x')} | "
                f"{spread([pct(load, 50.0) for load in loads])} | {spread([pct(load, 99.0) for load in loads])} | "
                f"{spread([load['cpu_ms'] for load in loads], 3)} | {sum(load['requests'] for load in loads):,} | {bad} |"
            )
    lines += [
        "",
        f"For comparison, the Go lakehouse: {GO['rps']:,} req/s, p99 {GO['p99']} ms, zero errors over 101K "
        "requests (another machine). Targets: `/search` >= 2,772 req/s at p99 <= 8.5 ms; `/sql` count and "
        "group-by >= 2,000 req/s at p99 <= 10 ms.",
        "",
        f"### Latency, one client, sequential: ms, median (min-max) over {args.latency_rounds} interleaved rounds",
        "",
        "Keep-alive stdlib `http.client`, JSON parsed, `Cache-Control: no-cache` but where it says repeated; "
        "each point lookup asks for another id"
        + (" (the same id of both sidecars, whose answers must be equal)." if compared else "."),
        "",
        "| query | " + " | ".join(variants) + " |",
        "|---" * (1 + len(variants)) + "|",
    ]
    labels = list(dict.fromkeys(label for _, label in times))
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(spread(times[(v, label)]) for v in variants) + " |")
    lines += [
        "",
        "Target: point lookup p50 <= 5 ms through HTTP.",
        "",
        f"### Start-up: {args.starts} fresh `lakehouse serve --workers {args.workers}` processes"
        + (" of each" if compared else ""),
        "",
        "*listening*: spawn to the first `/health` answer; *ready*: to `/health` saying search is ready on 8 "
        "fresh connections in a row (so both workers); then the first `/search` (a query never seen: "
        "embedding included) and a second one.",
        "",
        ("| code " if compared else "")
        + "| listening s | search ready s | first /search ms | second /search ms |",
        ("|---" if compared else "") + "|---|---|---|---|",
    ]
    for variant in variants:
        rows = starts[variant]
        ready = spread([s["ready"] for s in rows]) if all(s["reports"] for s in rows) else "not reported"
        lines.append(
            (f"| {variant} " if compared else "")
            + f"| {spread([s['listening'] for s in rows])} | {ready} | {spread([s['first'] for s in rows], 1)} | "
            f"{spread([s['second'] for s in rows], 1)} |"
        )
    lines += ["", "Target: the first `/search` after ready under 100 ms."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--search-requests", type=int, default=100_000, help="per search endpoint, all rounds"
    )
    parser.add_argument("--sql-requests", type=int, default=40_000, help="per SQL endpoint and the ceiling")
    parser.add_argument("--max-seconds", type=int, default=300, help="wrk's time cap per run")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--points", default="20000,200000")
    parser.add_argument("--rows", default="50000,500000")
    parser.add_argument("--latency-rounds", type=int, default=30)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument(
        "--only", default="", help="endpoint kinds to load (search,sql), or `starts` for start-up only"
    )
    parser.add_argument("--compare", default="", help="a git revision to run side by side with this tree")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the lake home and its indexes")
    parser.add_argument("--no-publish", action="store_true", help="print the section, leave results alone")
    args = parser.parse_args()
    points = [int(s) for s in args.points.split(",")]
    rows = [int(s) for s in args.rows.split(",")]
    home = prepare_home(points, rows, args.rebuild)
    targets = endpoints(points, rows)
    if args.only and args.only != "starts":
        kinds = {"ceiling", *args.only.split(",")}
        targets = {k: v for k, v in targets.items() if v[2] in kinds}
    trees: dict[str, Path | None] = {"this tree": None}
    if args.compare:
        trees[args.compare] = checkout(args.compare)
    runs, times = ({}, {}) if args.only == "starts" else load_and_latency(home, args, targets, trees, rows)
    starts = start_rounds(home, args, name_of("points", max(points)), trees)
    lines = report(args, targets if runs else {}, runs, times, starts, list(trees))
    if args.no_publish:
        print("\n".join(lines))
    else:
        publish(
            "serve", "The sidecar under load: /search, /sql and point lookups against its own ceiling", lines
        )


def load_and_latency(home: Path, args, targets: dict, trees: dict, rows: list[int]) -> tuple[dict, dict]:
    """Every variant's server up at once; wrk rounds over every endpoint, then the sequential latencies."""
    ports = {v: free_port() for v in trees}
    servers = [start_server(home_of(home, tree), ports[v], args.workers, tree) for v, tree in trees.items()]
    try:
        for port in ports.values():
            while health(port) is None:
                time.sleep(0.1)
            wait_ready(port)
            for path, body, kind, _ in targets.values():  # every worker embeds the query once
                if kind == "search":
                    wrk_post(
                        f"http://127.0.0.1:{port}{path}", body, requests=2_000, max_seconds=60,
                        connections=args.connections, work=WORK / "serve" / "warm",
                    )  # fmt: skip
        runs = load_rounds(ports, {v: s.pid for v, s in zip(trees, servers, strict=True)}, args, targets)
        times = latency_rounds(ports, rows, args.latency_rounds)
    finally:
        for server in servers:
            stop(server)
    return runs, times


if __name__ == "__main__":
    main()
