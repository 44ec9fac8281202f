"""Answers of repeated read queries, kept for as long as the views they read stay the same.

Every dataset's data is immutable for a manifest version (content-addressed Parquet objects), and the
views only change when the view-refresh thread rebuilds them, which bumps `ViewManager.generation`. So a
read query's JSON answer is a function of its text and that generation, unless the query asks for
something else that changes: the time, randomness, the session (`now()`, `random()`, `current_query()`,
...: every function DuckDB does not mark CONSISTENT), or files directly (any table function,
`read_parquet`/`glob` over the lake included, and the time-travel macros); EXPLAIN reports timings. Those
are never cached, judged by DuckDB's own tokens of the text: a column that shares such a name only
costs the cache hit. Nor are errors, answers with hybrid search relations, or CSV/Arrow streams.

A hit skips the thread hand-off, DuckDB and the JSON encoding: a group-by over 500K rows is 2.5 ms of
DuckDB; repeated by a dashboard it is a dict lookup. `LAKEHOUSE_SQL_RESULT_CACHE_MB` bounds the bytes
held per sidecar worker (0 turns it off); the least recently used answers go first.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict

import duckdb

from lakehouse_pipelines.sql.guard import tokens

MAX_ANSWER_SHARE = 0.1  # one answer may take at most this share of the cache
CACHED_TEXT_CHARS = 10_000
VERDICTS = 4_096  # texts whose cacheability is remembered
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_WORD = re.compile(r"[A-Z_][A-Z0-9_]*")
# Special syntax without parentheses that reads the clock or the session
_KEYWORDS = frozenset(
    {"CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP", "CURRENT_USER",
     "SESSION_USER", "USER", "CURRENT_ROLE", "CURRENT_CATALOG", "EXPLAIN"}
)  # fmt: skip


def uncacheable_names(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Upper-cased names whose presence makes a query's answer depend on more than the views.

    Functions DuckDB marks other than CONSISTENT, table functions and table macros; then every scalar macro
    whose definition names one of those, until none is added (`ago(i)` is `current_timestamp - i`).
    """
    rows = con.execute(
        "SELECT DISTINCT upper(function_name) FROM duckdb_functions() "
        "WHERE function_type NOT IN ('scalar', 'aggregate', 'macro') "
        "OR (function_type <> 'macro' AND coalesce(stability, '') <> 'CONSISTENT')"
    ).fetchall()
    names = {r[0] for r in rows} | _KEYWORDS
    macros = con.execute(
        "SELECT upper(function_name), upper(coalesce(macro_definition, '')) FROM duckdb_functions() "
        "WHERE function_type = 'macro'"
    ).fetchall()
    words = {name: set(_WORD.findall(definition)) for name, definition in macros}
    while added := {name for name, used in words.items() if name not in names and not used.isdisjoint(names)}:
        names |= added
    return frozenset(names)


class ResultCache:
    """JSON answers (rendered bytes) by (query text, views generation), least recently used out first."""

    def __init__(self, max_bytes: int, uncacheable: frozenset[str] = frozenset()):
        self.max_bytes = max_bytes
        self.uncacheable = uncacheable
        self._bytes = 0
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._verdict = functools.lru_cache(maxsize=VERDICTS)(self._depends_only_on_views)

    def cacheable(self, sql: str) -> bool:
        """Whether the text's answer depends only on the views (decided once per text)."""
        return self.max_bytes > 0 and len(sql) <= CACHED_TEXT_CHARS and self._verdict(sql)

    def _depends_only_on_views(self, sql: str) -> bool:
        try:
            words = {t.text for t in tokens(sql)}
        except (duckdb.Error, ValueError):
            return False
        # a quoted name can call a function too ("now"()): every double-quoted text counts as a word
        words |= {q.replace('""', '"').upper() for q in _QUOTED.findall(sql)}
        return words.isdisjoint(self.uncacheable)

    def get(self, sql: str, generation: int) -> bytes | None:
        with self._lock:
            answer = self._items.get((sql, generation))
            if answer is not None:
                self._items.move_to_end((sql, generation))
            return answer

    def put(self, sql: str, generation: int, answer: bytes) -> None:
        if len(answer) > self.max_bytes * MAX_ANSWER_SHARE:
            return
        with self._lock:
            old = self._items.pop((sql, generation), None)
            self._bytes += len(answer) - (len(old) if old is not None else 0)
            self._items[(sql, generation)] = answer
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)


def no_cache(request) -> bool:
    """The client asked for a fresh answer: `Cache-Control: no-cache` (or `no-store`)."""
    value = request.headers.get("cache-control", "").lower()
    return "no-cache" in value or "no-store" in value
