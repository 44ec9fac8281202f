"""Which SQL the sidecar runs: one read statement, classified by DuckDB's own tokenizer and parser.

A prefix regex is fooled by comments, CTEs and string literals; the tokenizer and parser are not. The
engine lock in `views.py` is the second line of defence: it stops file access outside the lake but still
lets COPY and CREATE write inside it, so this check is what keeps the lake read-only.

Classifying never reads a file, whatever the input. DuckDB's parser is not pure: `IMPORT DATABASE '<dir>'`
is expanded while it is parsed, by opening `<dir>/schema.sql` (a file-existence oracle whose error echoed
the path). So the check goes in this order:
1. text DuckDB would silently cut (a NUL) or cannot encode (a lone surrogate) is refused;
2. the tokenizer (which opens nothing) splits statements at top-level `;` and finds the leading keyword:
   more than one statement, or one that does not start like a read query, is refused here, by keyword;
3. only then does the parser see the text, on a dedicated in-memory connection with external access
   off and its configuration locked, and its statement type is checked. A parser message is passed on
   without string literals; any other failure there is reported without its message, which could name a
   path.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import NamedTuple

import duckdb

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import duckdb_connection

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEAR = re.compile(r'at or near "(.*)$')  # no closing quote when the token held a line break
# What a parser message may show of the text near an error: a word, or a short operator; never a literal.
_SHOWN_NEAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}|[^\w'\"$]{1,3}")
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT})
# How a read statement can begin (each parses to SELECT or EXPLAIN; PIVOT may add a CREATE, refused by
# type). Everything else (IMPORT, COPY, ATTACH, PRAGMA, CALL, SET, ...) is refused before parsing.
READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "FROM", "VALUES", "TABLE", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE", "PIVOT",
     "UNPIVOT", "EXPLAIN", "("}
)  # fmt: skip


class QueryRefused(LakehouseError):
    """SQL the sidecar will not run: unparsable, more than one statement, or not a read query."""


def check_read_only(sql: str) -> None:
    """Raise QueryRefused unless `sql` is exactly one SELECT / WITH / EXPLAIN / DESCRIBE / SUMMARIZE.

    The verdict depends on the text alone, so texts found read-only are remembered (`functools.lru_cache`
    of READ_ONLY_CACHE texts up to CACHED_TEXT_CHARS: it keeps no exceptions, so refusals are checked every
    time): tokenizing and parsing took ~0.1 ms of a 1 ms request, paid twice (the route checks before taking
    a thread, `run.start` again).
    """
    if len(sql) <= CACHED_TEXT_CHARS:
        _checked_read_only(sql)
    else:
        _check(sql)


READ_ONLY_CACHE = 1_024
CACHED_TEXT_CHARS = 10_000


@functools.lru_cache(maxsize=READ_ONLY_CACHE)
def _checked_read_only(sql: str) -> None:
    _check(sql)


def _check(sql: str) -> None:
    _check_text(sql)
    statements = _split(sql)
    if len(statements) != 1:
        raise QueryRefused(
            f"send exactly one SQL statement (got {len(statements)}); multi-statement payloads are refused"
        )
    _check_statement(sql, statements[0])


def _check_text(sql: str) -> None:
    if "\x00" in sql:
        raise QueryRefused("SQL must not contain a NUL character")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryRefused("SQL must be valid Unicode text (it holds a lone surrogate)") from None


def _split(sql: str) -> list[list[Token]]:
    """The tokens of each non-empty statement, split at top-level `;` (a `;` in a string is in its token)."""
    statements: list[list[Token]] = [[]]
    for token in tokens(sql):
        if token.text == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def _check_statement(sql: str, tokens: list[Token]) -> None:
    first = tokens[0]
    if first.text not in READ_KEYWORDS:
        if first.keyword:
            raise QueryRefused(f"{first.text} statements are not allowed: only read queries are")
        raise QueryRefused(
            "SQL syntax error: a read query starts with SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE, "
            "SHOW or EXPLAIN"
        )
    if first.text == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: what is explained must be a read
        position = 2 if len(tokens) > 1 and tokens[1].text == "ANALYZE" else 1
        if position >= len(tokens):
            raise QueryRefused("EXPLAIN needs a query to explain")
        start = tokens[position].offset
        inner = [Token(t.offset - start, t.text, t.keyword) for t in tokens[position:]]
        if inner[0].text == "EXPLAIN":
            raise QueryRefused("EXPLAIN of an EXPLAIN is not allowed")
        _check_statement(sql[start:], inner)
        return
    statements = _parse(sql)
    if len(statements) != 1:
        raise QueryRefused("send exactly one SQL statement; multi-statement payloads are refused")
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        raise QueryRefused(f"{kind.name} statements are not allowed: only read queries are")


_parsers = threading.local()
_parser_lock = threading.Lock()
_parser_database: duckdb.DuckDBPyConnection | None = None


def _parser() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the parse-only database: in memory, no file access, configuration locked."""
    global _parser_database
    cursor = getattr(_parsers, "cursor", None)
    if cursor is None:
        with _parser_lock:
            if _parser_database is None:
                _parser_database = duckdb_connection.sandboxed()
            cursor = _parsers.cursor = _parser_database.cursor()
    return cursor


def _parse(sql: str) -> list:
    try:
        return _parser().extract_statements(sql)
    except duckdb.ParserException as exc:
        raise QueryRefused(f"SQL syntax error: {_without_literals(first_line(exc))}") from None
    except duckdb.Error:
        # e.g. a permission error naming a path: never passed on
        raise QueryRefused("SQL could not be classified as a read query") from None


def _without_literals(message: str) -> str:
    """DuckDB's `at or near "<token>"` without the token when it is a literal (it may hold a secret)."""
    if (match := _NEAR.search(message)) and not _SHOWN_NEAR.fullmatch(match.group(1).removesuffix('"')):
        message = message[: match.start()] + "at or near a literal"
    return message


class Token(NamedTuple):
    offset: int
    text: str  # an upper-cased word, or the token's first character
    keyword: bool  # a DuckDB keyword (not an identifier or literal of the user's)


def tokens(text: str) -> list[Token]:
    """Each token by DuckDB's tokenizer (which opens nothing), minus comments."""
    tokens = duckdb.tokenize(text)
    offsets = _char_offsets(text, [offset for offset, _ in tokens])
    out = []
    for offset, (_, kind) in zip(offsets, tokens, strict=True):
        if kind == duckdb.token_type.comment or offset >= len(text):
            continue
        word = _WORD.match(text, offset)
        token = word.group(0).upper() if word else text[offset]
        out.append(Token(offset, token, kind == duckdb.token_type.keyword))
    return out


def _char_offsets(text: str, byte_offsets: list[int]) -> list[int]:
    """The tokenizer counts UTF-8 bytes; Python indexes characters (they differ after any non-ASCII)."""
    if text.isascii():
        return byte_offsets
    data = text.encode("utf-8")
    out, chars, previous = [], 0, 0
    for offset in byte_offsets:
        chars += len(data[previous:offset].decode("utf-8", "replace"))
        previous = offset
        out.append(chars)
    return out


def first_line(exc: BaseException) -> str:
    """DuckDB's message without the echoed SQL (`LINE 1: ...`) it appends: errors never carry SQL."""
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
