"""Terminal output that carries user text: always `rich.text.Text`, never a markup string, never raw controls.

Rich reads `[...]` in a printed string as markup, so a path, column name, value or dataset name holding
`[/x]` either raises MarkupError (a traceback instead of the error line) or restyles the line. Styles are
applied to our own words only; everything else is literal text. Control characters in user text (a newline
or an escape sequence in a file name) are shown escaped, as `\\n` or `\\x1b`: Rich passes them through, and
they would split the one error line or drive the terminal.
"""

from __future__ import annotations

import re

from rich.text import Text

_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def visible(text: object) -> str:
    """`text` with control characters, line separators and lone surrogates escaped (`\\n`, `\\x1b`)."""
    return _INVISIBLE.sub(lambda m: repr(m.group())[1:-1], str(text))


def error_line(message: object) -> Text:
    """`error: <message>`, the message verbatim but for escaped control characters."""
    return Text.assemble(("error:", "red"), " ", visible(message))


def literal(text: object, style: str = "") -> Text:
    return Text(visible(text), style=style)
