"""Small Markdown tables for Dagster metadata and reports: a preview, not a data export."""

from __future__ import annotations

from collections.abc import Sequence

MAX_CELL = 60


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows (dicts with the same keys) as a GitHub-flavoured Markdown table, long cells shortened."""
    if not rows:
        return "_no rows_"
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
