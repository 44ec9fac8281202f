"""Embedding units that share a machine: ONNX Runtime threads per unit, every core each vs cores / units.

The run queue starts several embedding units at once on one machine (dagster.yaml: 2). Each process runs the
local model; this measures them side by side, the same generated workers texts in every process, interleaved
rounds: `--units` processes at once with every core's threads each (ONNX Runtime's default), then with
cores / units threads each (what `resources.search_resources.local_run_threads` gives a local run), and one
process alone with every core for reference.

    .venv/bin/python bench/bench_unit_threads.py [--rows 1500] [--units 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.report import publish, spread  # noqa: E402
from lakehouse_pipelines.search.onnx_encoder import default_threads  # noqa: E402

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from bench.bench_encoder import corpus
from lakehouse_pipelines.search.embedders import LocalEmbedder
texts, _ = corpus({rows})
embedder = LocalEmbedder(threads={threads})
embedder.embed_documents(texts[:64])  # loads the model
print("ready", flush=True)
sys.stdin.readline()  # every process starts at once
started = time.perf_counter()
embedder.embed_documents(texts)
print(json.dumps({{"rate": len(texts) / (time.perf_counter() - started)}}), flush=True)
"""


def run_at_once(processes: int, threads: int, rows: int) -> list[float]:
    """Each process's rows/s when `processes` embed the same texts at once with `threads` threads each."""
    code = CHILD.format(root=str(ROOT.parent), rows=rows, threads=threads)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    rates = [json.loads(child.stdout.readline())["rate"] for child in children]
    for child in children:
        child.wait()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_500)
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = default_threads()
    shared = max(1, cores // args.units)
    setups = {
        f"{args.units} units at once, {cores} threads each (every core)": (args.units, cores),
        f"{args.units} units at once, {shared} thread(s) each (cores / units)": (args.units, shared),
        f"1 unit alone, {cores} threads": (1, cores),
    }
    totals: dict[str, list[float]] = {name: [] for name in setups}
    each: dict[str, list[float]] = {name: [] for name in setups}
    names = list(setups)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            rates = run_at_once(*setups[name], args.rows)
            totals[name].append(sum(rates))
            each[name].extend(rates)
            print(f"round {r + 1}: {name}: {sum(rates):.0f} rows/s together", flush=True)
        time.sleep(1)
    base = statistics.median(totals[names[0]])
    lines = [
        f"{args.rows:,} generated workers texts embedded by the local model (ONNX Runtime fp32) in every process, "
        f"{args.rounds} interleaved rounds, median (min-max); {cores} cores.",
        "",
        "| setup | rows/s together | rows/s each | vs every core each |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        median = statistics.median(totals[name])
        lines.append(
            f"| {name} | {spread(totals[name], 0)} | {spread(each[name], 0)} | {median / base:.2f}x |"
        )
    publish("unit_threads", "Embedding units sharing a machine: encoder threads per unit", lines)


if __name__ == "__main__":
    main()
