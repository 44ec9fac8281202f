"""Which SQL the sidecar runs: one read statement, classified by DuckDB's own parser and tokenizer.

A prefix regex is fooled by comments, CTEs and string literals; the parser is not. The engine lock in
`views.py` is the second line of defence: it stops file access outside the lake but still lets COPY and
CREATE write inside it, so this check is what keeps the lake read-only.
"""

from __future__ import annotations

import re

import duckdb

from lakehouse_pipelines.errors import LakehouseError

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT})


class QueryRefused(LakehouseError):
    """SQL the sidecar will not run: unparsable, more than one statement, or not a read query."""


def check_read_only(sql: str) -> None:
    """Raise QueryRefused unless `sql` is exactly one SELECT / WITH / EXPLAIN / DESCRIBE / SUMMARIZE."""
    statements = _parse(sql)
    if len(statements) != 1:
        raise QueryRefused(
            f"send exactly one SQL statement (got {len(statements)}); multi-statement payloads are refused"
        )
    _check_statement(statements[0], sql)


def _parse(sql: str) -> list:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"SQL syntax error: {first_line(exc)}") from None


def _check_statement(statement, text: str) -> None:
    kind = statement.type
    # PRAGMA calls are rewritten by the parser into SELECTs over pragma_* functions; refuse them by keyword.
    if first_keyword(text) == "PRAGMA":
        raise QueryRefused("PRAGMA statements are not allowed: only read queries are")
    if kind == duckdb.StatementType.EXPLAIN:
        _check_explained(text)
        return
    if kind not in READ_STATEMENTS:
        raise QueryRefused(f"{kind.name} statements are not allowed: only read queries are")


def _check_explained(text: str) -> None:
    """EXPLAIN ANALYZE runs its statement, so what is explained must itself be a read query."""
    tokens = _tokens(text)
    position = 2 if len(tokens) > 1 and tokens[1][1] == "ANALYZE" else 1
    if position >= len(tokens):
        raise QueryRefused("EXPLAIN needs a query to explain")
    inner = text[tokens[position][0] :]
    statements = _parse(inner)
    if len(statements) != 1:
        raise QueryRefused("send exactly one SQL statement; multi-statement payloads are refused")
    _check_statement(statements[0], inner)


def first_keyword(text: str) -> str | None:
    tokens = _tokens(text)
    return tokens[0][1] if tokens else None


def _tokens(text: str) -> list[tuple[int, str]]:
    """(offset, upper-cased word or operator) of each token by DuckDB's tokenizer, minus comments and `;`."""
    out = []
    for offset, kind in duckdb.tokenize(text):
        if kind == duckdb.token_type.comment:
            continue
        word = _WORD.match(text, offset)
        token = word.group(0).upper() if word else text[offset]
        if token != ";":
            out.append((offset, token))
    return out


def first_line(exc: BaseException) -> str:
    """DuckDB's message without the echoed SQL (`LINE 1: ...`) it appends: errors never carry SQL."""
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
