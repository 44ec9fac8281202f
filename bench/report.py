"""Benchmark results as Markdown sections: bench/results/<name>.md, assembled into BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def machine_note() -> str:
    return f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}, {datetime.now(UTC):%Y-%m-%d}"


def spread(values: list[float], digits: int = 2, unit: str = "") -> str:
    """Median (min-max), the way every table here reports repeated measurements; one value stands alone."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{unit}"
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def publish(name: str, title: str, lines: list[str]) -> Path:
    """Write the section with the command line that produced it, and print it."""
    command = " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    path = write_section(name, title, command, lines)
    print(path.read_text())
    return path


def write_section(name: str, title: str, command: str, lines: list[str]) -> Path:
    """Write one benchmark's section (title, the command that produced it, the machine) and rebuild BENCHMARKS.md."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    body = [f"## {title}", "", f"Command: `{command}`  ", f"Machine: {machine_note()}", "", *lines, ""]
    path.write_text("\n".join(body))
    assemble()
    return path


def assemble() -> None:
    """BENCHMARKS.md is every section in bench/results/, in name order, under one heading."""
    sections = [p.read_text() for p in sorted(RESULTS.glob("*.md"))]
    header = (
        "# Benchmarks\n\nMeasured on this project's 2-core machines; each section says the command that produced\n"
        "it. Figures are medians of interleaved rounds with min-max: these machines drift up to 2x minute to minute.\n"
        "`bench/run_all` runs every benchmark in sequence (about two and a half hours; `bench/run_all --plan`\n"
        "lists the steps and their estimates) and rewrites this file.\n\n"
    )
    (BENCH.parent / "BENCHMARKS.md").write_text(header + "\n".join(sections))
