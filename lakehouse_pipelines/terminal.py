"""Terminal output that carries user text: always `rich.text.Text`, never a markup string.

Rich reads `[...]` in a printed string as markup, so a path, column name, value or dataset name holding
`[/x]` either raises MarkupError (a traceback instead of the error line) or restyles the line. Styles are
applied to our own words only; everything else is literal text.
"""

from __future__ import annotations

from rich.text import Text


def error_line(message: object) -> Text:
    """`error: <message>`, the message verbatim."""
    return Text.assemble(("error:", "red"), " ", str(message))


def literal(text: object, style: str = "") -> Text:
    return Text(str(text), style=style)
