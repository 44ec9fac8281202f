"""The audit at scale: metrics, the drift table and the contract re-check over 500K workers rows.

    .venv/bin/python bench/bench_audit.py [--rows 500000] [--rounds 5]

Generates the rows into bench/.work/audit_* (once), ingests them into a fresh lake there with `ingest()`,
records a first baseline, then times in interleaved rounds: the first audit's metrics (fresh histogram
edges and top values), a later audit's metrics (counted into the reference's edges and categories), a
whole `run_audit` (reference lookup, metrics, drift table; not recorded), and the contract re-check of the
registered object (pandera, batch by batch). Writes bench/results/audit.md (and BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
sys.path.insert(0, str(ROOT.parent))

from bench.report import publish  # noqa: E402
from lakehouse_pipelines.audit.contract_recheck import contract_problems  # noqa: E402
from lakehouse_pipelines.audit.metrics import compute_metrics  # noqa: E402
from lakehouse_pipelines.audit.runner import run_audit  # noqa: E402
from lakehouse_pipelines.datasets import load_specs  # noqa: E402
from lakehouse_pipelines.ingest.publish import ingest  # noqa: E402
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv  # noqa: E402
from lakehouse_pipelines.lake import Lake  # noqa: E402
from lakehouse_pipelines.settings import LakeSettings  # noqa: E402


def prepare(rows: int) -> Lake:
    csv = WORK / f"audit_workers_{rows}.csv"
    if not csv.exists():
        write_workers_csv(csv, rows)
    home = WORK / "audit_home"
    shutil.rmtree(home, ignore_errors=True)
    lake = Lake.open(LakeSettings.under(home))
    ingest(lake, str(csv), load_specs()["workers"])
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    lake = prepare(args.rows)
    spec = load_specs()["workers"]
    manifest = lake.catalog.get("workers")
    reference = run_audit(lake, spec).baseline.metrics  # the first baseline, recorded
    cases: dict[str, Callable[[], object]] = {
        "first audit's metrics (fresh edges)": lambda: compute_metrics(lake, manifest),
        "later audit's metrics (reference edges)": lambda: compute_metrics(lake, manifest, reference),
        "run_audit (metrics + drift table)": lambda: run_audit(lake, spec, record=False),
        "contract re-check (pandera)": lambda: contract_problems(lake, spec, manifest),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"{args.rows:,} workers rows x 18 columns, one Parquet object, local lake; {args.rounds} interleaved "
        f"rounds, median (min-max) seconds. Peak RSS of the whole process: {peak:.0f} MiB.",
        "",
        "| step | median s | min-max s |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {statistics.median(t):.2f} | {min(t):.2f}-{max(t):.2f} |"
            for name, t in times.items()
        ),
        "",
        f"Baseline envelope size: {len(run_audit(lake, spec, record=False).baseline.encode()):,} bytes. "
        f"DuckDB runs with {os.cpu_count()} threads and a 512 MB memory limit.",
    ]
    publish("audit", "Audit metrics and drift at scale", lines)


if __name__ == "__main__":
    main()
