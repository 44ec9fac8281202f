"""The drift table for people: Markdown (Dagster metadata, docs) and a rich table (the terminal).

Both render the same cells: change is a signed percentage for relative rows ("from 0" when the baseline
was zero, never an infinite percentage), the score for distribution rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from lakehouse_pipelines.audit.drift import DriftRow
from lakehouse_pipelines.audit.markdown_table import markdown_table
from lakehouse_pipelines.terminal import literal

HEADERS = ("column", "metric", "old", "new", "change", "verdict", "note")
VERDICT_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}
VERDICT_MARK = {"ok": "ok", "warn": "⚠ warn", "fail": "✖ fail"}


def cells(row: DriftRow) -> tuple[str, ...]:
    """One row as display strings, in HEADERS order."""
    return (
        row.column or "(dataset)",
        row.metric,
        format_value(row.old),
        format_value(row.new),
        format_change(row),
        row.verdict,
        row.note,
    )


def format_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def format_change(row: DriftRow) -> str:
    if row.change is None:
        return row.note or "—"
    if row.kind == "distribution":
        return f"{row.metric.upper()} {row.change:.3f}"
    return f"{row.change:+.1%}"


def markdown(rows: Sequence[DriftRow], *, only_flagged: bool = False) -> str:
    """A GitHub-flavoured Markdown table; `only_flagged` keeps warn/fail rows (long tables in the UI)."""
    shown = [r for r in rows if r.verdict != "ok"] if only_flagged else list(rows)
    if not shown:
        return "_every compared metric is within its threshold_" if rows else "_nothing to compare yet_"
    return markdown_table(
        [dict(zip(HEADERS, (*cells(r)[:5], VERDICT_MARK[r.verdict], r.note), strict=True)) for r in shown]
    )


def rich_table(rows: Sequence[DriftRow], title: str = "") -> Table:
    """The drift table for a terminal, verdicts coloured."""
    table = Table(*HEADERS, title=literal(title) if title else None)
    for row in rows:
        values = [literal(v) for v in cells(row)]  # column names and values are data, not markup
        values[5].stylize(VERDICT_STYLE[row.verdict])
        table.add_row(*values)
    return table
