"""The `lakehouse` command: ingest by hand, read the catalog, serve, audit, doctor, and MCP over stdio.

Errors print one line and exit 1; no traceback reaches the terminal for a user's mistake. User text (paths,
column names, values, dataset names) is printed literally, never read as Rich markup (`terminal.py`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from lakehouse_pipelines.datasets import DatasetSpec, load_specs
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.terminal import error_line, literal, visible

app = typer.Typer(
    help="lakehouse-pipelines: CSV drops to a queryable, searchable lake.", no_args_is_help=True
)
console = Console(stderr=True)


def fail(message: str) -> None:
    console.print(error_line(message), highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def dataset_spec(name: str) -> DatasetSpec:
    """The declaration for `name` if there is one (its contract applies), else a bare dataset."""
    return load_specs().get(name) or DatasetSpec(name=validate_dataset_name(name))


@app.command()
def ingest(
    csv_files: list[str] = typer.Argument(..., help="CSV files (local paths or s3:// URIs)"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name, e.g. workers"),
) -> None:
    """Ingest CSV files into a dataset: infer types, write Parquet, register the manifest."""
    from lakehouse_pipelines.ingest.publish import ingest as ingest_csv

    try:
        spec = dataset_spec(dataset)
        lake = Lake.open()
        with ingest_progress() as progress:
            files = progress.add_task("ingest", total=len(csv_files))
            for csv_file in csv_files:

                def say(stage: str, f: str = csv_file) -> None:
                    progress.update(files, description=visible(f"{f}: {stage}"))

                say("starting")
                result = ingest_csv(lake, csv_file, spec, progress=say)
                progress.advance(files)
                progress.console.print(
                    Text.assemble(
                        f"{visible(csv_file)}: ",
                        (str(result.status), "bold"),
                        f" {result.object.rows:,} rows -> {result.object.key} (dataset "
                        f"{result.dataset} v{result.manifest.version}, {result.seconds:.2f}s)",
                    ),
                    highlight=False,
                    soft_wrap=True,
                )
    except LakehouseError as exc:
        fail(str(exc))


def ingest_progress() -> Progress:
    """Files done of files given, the current file's stage and the time spent: big drops take minutes."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),  # descriptions carry file names
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # in a pipe or a log the live display only left blank lines
    )


@app.command()
def datasets() -> None:
    """List registered datasets."""
    try:
        manifests = Lake.open().catalog.list()
    except LakehouseError as exc:
        fail(str(exc))
    numbers = (Column(h, justify="right") for h in ("version", "rows", "objects", "size"))
    table = Table(
        "dataset",
        *numbers,
        "schema",
        "updated (UTC)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,  # fits 80 columns, the width of a pipe
    )
    for m in manifests:
        s = m.summary()
        table.add_row(
            m.name, str(m.version), f"{m.row_count:,}", str(s["objects"]), _size(s["bytes"]),
            m.schema_fingerprint[:12], m.updated_at[:16].replace("T", " "),
        )  # fmt: skip
    Console().print(table if manifests else "no datasets registered yet")


@app.command()
def manifest(name: str) -> None:
    """Print a dataset's current manifest as JSON."""
    try:
        current = Lake.open().catalog.get(validate_dataset_name(name))
    except LakehouseError as exc:
        fail(str(exc))
    sys.stdout.write(json.dumps(current.to_dict(), indent=2) + "\n")


@app.command()
def audit(
    dataset: str = typer.Argument(..., help="dataset name, e.g. workers"),
    reference: str | None = typer.Option(None, help="compare with this baseline run id (a prefix is enough)"),
) -> None:
    """Audit a dataset now: record a baseline and print the drift table; exit 1 on a failing verdict."""
    from lakehouse_pipelines.audit.command import audit_command

    audit_command(dataset, reference)


@app.command()
def sample(
    out: Path = typer.Argument(..., help="CSV file to write"),
    rows: int = typer.Option(2_000, help="number of worker rows"),
    seed: int = typer.Option(7, help="random seed; the same seed gives the same file"),
    first_id: int = typer.Option(1, help="worker_id of the first row (a later drop of new workers)"),
) -> None:
    """Write a deterministic sample workers CSV."""
    from lakehouse_pipelines.ingest.sample_workers import write_workers_csv

    write_workers_csv(out, rows, seed, first_id)
    console.print(literal(f"wrote {rows:,} workers to {out}"), highlight=False)


@app.command()
def models() -> None:
    """Export the local model to ONNX (and int8) into the model cache, if not there yet (needs torch once)."""
    from lakehouse_pipelines.search import onnx_encoder

    try:
        for name in onnx_encoder.MODEL_FILES:
            console.print(literal(f"{name}: {onnx_encoder.ensure_model(name).onnx}"), highlight=False)
    except LakehouseError as exc:
        fail(str(exc))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to bind; non-loopback needs LAKEHOUSE_API_TOKEN"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, help="worker processes (each opens its own DuckDB engine)"),
    allow_remote: bool = typer.Option(False, help="serve a non-loopback address without a token"),
) -> None:
    """Serve the HTTP sidecar: SQL over the datasets, the catalog, and search."""
    from lakehouse_pipelines.sidecar.server import serve as run_server

    try:
        run_server(host, port, workers, allow_remote)
    except LakehouseError as exc:
        fail(str(exc))


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON (for scripts)"),
) -> None:
    """Check what the configuration needs (storage, S3, DuckDB, Qdrant, embedder, Dagster); exit 1 if any fails."""
    from lakehouse_pipelines.doctor import run_checks

    report = run_checks()
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        # Lines, not a table: a fix is a command to copy, never cut short to fit a column.
        out = Console(soft_wrap=True, highlight=False)
        marks = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}
        for c in report.checks:
            out.print(f"{marks[c.status]}  {c.name:<18} {escape(c.detail)}")
            if c.fix:
                out.print(f"      fix: {c.fix}", markup=False)
        counts = {s: sum(c.status == s for c in report.checks) for s in marks}
        out.print(f"{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def mcp() -> None:
    """Serve the lake's tools over the Model Context Protocol on stdio (for assistants and IDEs)."""
    from lakehouse_pipelines.mcp_server import serve_stdio

    try:
        serve_stdio()
    except LakehouseError as exc:
        fail(str(exc))
