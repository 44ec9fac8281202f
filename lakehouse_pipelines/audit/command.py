"""`lakehouse audit <dataset>`: audit a dataset now and print its drift table.

It is the same audit the scheduled Dagster checks run (measure, append the baseline to the log, compare
with the previous baseline or the pinned reference). Exit status: 0 when every row is ok or warn, 1 when
any row fails or the audit cannot run; a warning is a reason to look, not to break a shell pipeline.
"""

from __future__ import annotations

import typer
from rich.console import Console

from lakehouse_pipelines.audit.report import rich_table
from lakehouse_pipelines.audit.runner import run_audit
from lakehouse_pipelines.datasets import DatasetSpec, load_specs
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.terminal import error_line, literal


def audit_command(dataset: str, reference: str | None = None) -> None:
    """Audit `dataset`, print the drift table, exit 1 on a failing verdict (typer.Exit)."""
    out, err = Console(), Console(stderr=True)
    try:
        spec = load_specs().get(dataset) or DatasetSpec(name=validate_dataset_name(dataset))
        result = run_audit(Lake.open(), spec, reference=reference)
    except LakehouseError as exc:
        err.print(error_line(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    b = result.baseline
    err.print(
        literal(
            f"audit {b.run_id[:12]} of {dataset} v{b.manifest_version}: "
            f"{b.metrics['row_count']:,} rows in {result.seconds:.2f}s"
        ),
        highlight=False,
    )
    if result.reference is None:
        out.print("first baseline recorded; the next audit compares against it")
        raise typer.Exit(0)
    ref = result.reference
    out.print(
        rich_table(result.rows, title=f"{dataset}: against {ref.run_id[:12]} ({ref.timestamp})"),
    )
    out.print(f"verdict: {result.verdict}", highlight=False)
    raise typer.Exit(1 if result.verdict == "fail" else 0)
