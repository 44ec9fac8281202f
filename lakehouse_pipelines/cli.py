"""The `lakehouse` command: ingest by hand, read the catalog, and (in later modules) serve and audit.

Errors print one line and exit 1; no traceback reaches the terminal for a user's mistake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lakehouse_pipelines.datasets import DatasetSpec, load_specs
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.identity import validate_dataset_name
from lakehouse_pipelines.lake import Lake

app = typer.Typer(
    help="lakehouse-pipelines: CSV drops to a queryable, searchable lake.", no_args_is_help=True
)
console = Console(stderr=True)


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
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
    from lakehouse_pipelines.ingest import ingest as ingest_csv

    try:
        spec = dataset_spec(dataset)
        lake = Lake.open()
        for csv_file in csv_files:
            with console.status(f"{csv_file}: starting") as status:
                result = ingest_csv(
                    lake, csv_file, spec, progress=lambda s, f=csv_file: status.update(f"{f}: {s}")
                )
            console.print(
                f"{csv_file}: [bold]{result.status}[/bold] {result.object.rows:,} rows -> {result.object.key} "
                f"(dataset {result.dataset} v{result.manifest.version}, {result.seconds:.2f}s)",
                highlight=False,
            )
    except LakehouseError as exc:
        fail(str(exc))


@app.command()
def datasets() -> None:
    """List registered datasets."""
    try:
        manifests = Lake.open().catalog.list()
    except LakehouseError as exc:
        fail(str(exc))
    table = Table("dataset", "version", "rows", "objects", "size", "fingerprint", "updated")
    for m in manifests:
        s = m.summary()
        table.add_row(
            m.name, str(m.version), f"{m.row_count:,}", str(s["objects"]), _size(s["bytes"]),
            m.schema_fingerprint[:16], m.updated_at,
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
def sample(
    out: Path = typer.Argument(..., help="CSV file to write"),
    rows: int = typer.Option(2_000, help="number of worker rows"),
    seed: int = typer.Option(7, help="random seed; the same seed gives the same file"),
) -> None:
    """Write a deterministic sample workers CSV."""
    from lakehouse_pipelines.sample_data import write_workers_csv

    write_workers_csv(out, rows, seed)
    console.print(f"wrote {rows:,} workers to {out}")


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
