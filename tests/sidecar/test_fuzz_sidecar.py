"""Property-based hostile input through the sidecar: generated JSON bodies for `POST /sql` and `POST /search`.

Bodies hold what Python's json would write but JSON does not allow (NaN, Infinity, lone surrogates as
`\\udXXX` escapes), huge integers, deep nesting, invalid UTF-8, truncations, and SQL built from the
fragments that broke the statement check. Properties, whatever the body:
- never a 5xx: every answer is JSON, 2xx or 4xx with `error` (or `detail`);
- no stack trace, no server path, and no echo of the submitted SQL or query in a refusal;
- the SQL check's answer is the same whether a named directory exists or not;
- the lake is byte-identical afterwards, and the service still answers.

Deterministic for CI: hypothesis' example database is off and generation is derandomized.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lakehouse_pipelines.search.service import BadSearch, parse_filter
from lakehouse_pipelines.sql.guard import QueryRefused, check_read_only
from tests.hostile_support import (
    PAYLOAD_TYPES,
    check_refusal,
    fuzz_settings,
    import_every_project_module,
    lake_state,
    open_sidecar,
    post_raw,
)

import_every_project_module()  # a fixed pool of constants for hypothesis (hostile_support.py)


def fuzz(examples: int) -> settings:
    return fuzz_settings(examples, 5)  # a request is ~1-10 ms; a busy 2-core machine can be far slower


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-sidecar")
    opened = open_sidecar(home)
    trap = home / "export"  # IMPORT DATABASE's target: its existence must never be told
    trap.mkdir()
    (trap / "schema.sql").write_text("CREATE TABLE pwned (a INTEGER);\n")
    (trap / "load.sql").write_text("")
    before = lake_state(opened.lake)
    yield opened
    assert lake_state(opened.lake) == before  # nothing any request did wrote to the lake
    assert opened.client.post("/sql", json={"sql": "SELECT count(*) FROM t"}).json()["rows"] == [[20]]
    opened.close()


# ------------------------------------------------------------------------------------------- JSON values

HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**70, 10**400, 1e308, -0.0, 5e-324]
HOSTILE_TEXT = ["\ud800", "a\udfffb", "\x00", "IL", "2026-01-05", "2026-01-01T00:00:00+25:00", "[/x]"]
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HOSTILE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),  # includes lone surrogates: json.dumps writes them as \udXXX escapes
    st.sampled_from(HOSTILE_TEXT),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def encode(value) -> bytes:
    """What a careless client sends: Python's json, NaN and lone surrogates included (then UTF-8)."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


SPLICES = [b"\xff", b"\xed\xa0\x80", b"\x00", b"\\", b'"', b"NaN", b"\\ud800", b"}"]


@st.composite
def mangled(draw, body: bytes) -> bytes:
    """`body` as is (most often), or truncated, spliced, deeply nested, or replaced by random bytes."""
    kind = draw(st.sampled_from(["as is"] * 5 + ["cut", "splice", "nest", "bytes"]))
    if kind == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if kind == "splice":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from(SPLICES)) + body[at:]
    if kind == "nest":
        depth = draw(st.sampled_from([31, 33, 1_000, 100_000]))
        return b"[" * depth + body + b"]" * depth
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    return body


# ------------------------------------------------------------------------------------------------ /sql

SQL_PIECES = [
    "SELECT", "select", "1", "*", "FROM", "t", "WITH", "a", "AS", "(", ")", "EXPLAIN", "ANALYZE", "IMPORT",
    "DATABASE", "'{trap}'", "'{missing}'", "COPY", "TO", "ATTACH", "PRAGMA", "version", "DESCRIBE", ";", ",",
    "/*", "*/", "--", "\n", "'", '"', "$$", "é", "😀", "\u0080", "\x00", "\ud800", "U&'\\0041'", "'AKIA-MARK'",
    "query('IMPORT DATABASE ''{trap}''')", "read_text('{trap}/schema.sql')",
]  # fmt: skip
LITERALS = ["IL", "AKIA-MARK", "é😀", "a'b", "\x00", "\ud800", "[/x]", "", "2026-01-01T00:00:00+25:00"]
literal = st.one_of(st.sampled_from(LITERALS), st.text(max_size=8)).map(
    lambda v: "'" + v.replace("'", "''") + "'"
)
# Read queries that run (200) or fail inside DuckDB (400) with hostile literals; statements made of the
# fragments that fooled the check; any text.
read_query = st.one_of(
    literal.map(lambda v: f"SELECT {v} AS v"),
    literal.map(lambda v: f"SELECT count(*) FROM t WHERE state = {v}"),
    literal.map(lambda v: f"SELECT id FROM t WHERE state LIKE {v} ORDER BY id LIMIT 3"),
    literal.map(lambda v: f"SELECT CAST({v} AS TIMESTAMPTZ) AS v"),
    st.sampled_from(["SELECT * FROM t", "FROM t LIMIT 2", "DESCRIBE t", "EXPLAIN SELECT 1", "SELECT 1;"]),
)
sql_text = st.one_of(
    read_query,
    read_query,
    st.lists(st.sampled_from(SQL_PIECES), min_size=1, max_size=10).map(" ".join),
    st.text(max_size=30),
)


def sql_body(sql, extra) -> bytes:
    return encode({"sql": sql} if extra is None else {"sql": sql, "x": extra})


@given(sql=sql_text, extra=st.one_of(st.none(), st.none(), json_value), shape=st.data())
@fuzz(250)
def test_sql_bodies_never_5xx_never_echo_never_tell_a_path(sidecar, sql, extra, shape):
    trap, missing = sidecar.home / "export", sidecar.home / "missing"
    text = sql.replace("{trap}", str(trap)).replace("{missing}", str(missing))
    body = shape.draw(mangled(sql_body(text, extra)))
    response = post_raw(sidecar.client, "/sql", body)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (body[:200], response.text[:300])
    if response.status_code >= 400:
        echoed = [text.strip()] if len(text.strip()) >= 12 else []
        if "CAST(" not in text:  # DuckDB's conversion error names the text it could not convert
            echoed.append("AKIA-MARK")
        check_refusal(response, sidecar.home, echoed=tuple(echoed))
    if body == sql_body(text, extra) and str(trap) in text:
        # no oracle: the same statement naming a missing directory gets the same answer
        other = post_raw(sidecar.client, "/sql", sql_body(text.replace(str(trap), str(missing)), extra))
        assert (other.status_code, other.text) == (response.status_code, response.text)


@given(sql=st.one_of(sql_text, st.text(max_size=200)))
@fuzz(400)
def test_the_sql_check_only_ever_refuses(sql):
    try:
        check_read_only(sql)
    except QueryRefused as exc:
        message = str(exc)
        assert "\n" not in message and "AKIA-MARK" not in message
        message.encode("utf-8")  # always renderable


# ---------------------------------------------------------------------------------------------- /search

GOOD_VALUES = ["IL", 3, 2.5, True, "2026-01-05", "2026-01-05T00:00:00Z", 2**63 - 1, -(2**63), 0]
good_scalar = st.one_of(st.sampled_from(GOOD_VALUES), st.integers(-100, 100), st.floats(-1e6, 1e6))
loose_scalar = st.one_of(good_scalar, json_scalar)
filter_value = st.one_of(
    good_scalar,
    json_value,
    st.lists(loose_scalar, min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte", "eq"]), loose_scalar, min_size=1, max_size=3),
)
big_int = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**63, -(2**63) - 1, 2**70, 10**400]))
any_float = st.one_of(st.floats(), st.sampled_from(HOSTILE_NUMBERS), big_int)
date_text = st.one_of(
    st.sampled_from(["2026-01-05", "2026-01-05T00:00:00Z", "2026-01-05T10:00:00+14:00", "2026-01-05 10:00"]),
    st.sampled_from(["2026-13-01", "2026-02-30", "2026-01-01T24:00", "2026-01-01T00:00+25:00", "+14:30"]),
    st.sampled_from(["2026-01-01T00:00:00+14:30", "9999-12-31T23:59:59-12:00", "0000-01-01", "\ud800x"]),
    st.text(max_size=12),
)
ranges = st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), any_float, min_size=1, max_size=2)
# Each column with values of its own JSON type, hostile within that type: the checks' boundary.
typed_filter = st.fixed_dictionaries(
    {},
    optional={
        "state": st.one_of(st.text(max_size=6), st.lists(st.text(max_size=6), min_size=1, max_size=3)),
        "n": st.one_of(big_int, st.lists(big_int, min_size=1, max_size=3), ranges),
        "rate": ranges,
        "ok": st.booleans(),
        "when": st.one_of(
            date_text,
            st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), date_text, min_size=1, max_size=2),
        ),
    },
)
search_filter = st.one_of(
    st.none(),
    json_value,
    st.dictionaries(st.sampled_from([*PAYLOAD_TYPES, "id", "\ud800"]), filter_value, max_size=3),
    typed_filter,
    typed_filter,
)
QUERY_MARK = "secret-query-mark"
marked = st.text(max_size=10).map(lambda q: f"{QUERY_MARK} {q}")
query_text = st.one_of(st.just(f"{QUERY_MARK} row"), marked, marked, json_scalar)


def post_search(sidecar, body: bytes) -> None:
    response = post_raw(sidecar.client, "/search", body)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (body[:200], response.text[:300])
    if response.status_code >= 400:
        check_refusal(response, sidecar.home, echoed=(QUERY_MARK,))
    else:
        assert isinstance(response.json()["hits"], list)


@given(
    dataset=st.sampled_from(["t", "nope", "T", "", "\ud800", 5, None]),
    query=query_text,
    k=st.one_of(st.integers(1, 100), json_scalar),
    search_filter=search_filter,
    shape=st.data(),
)
@fuzz(200)
def test_any_search_body_is_answered_without_5xx_or_echo(sidecar, dataset, query, k, search_filter, shape):
    fields = {"dataset": dataset, "query": query, "k": k}
    if search_filter is not None:
        fields["filter"] = search_filter
    post_search(sidecar, shape.draw(mangled(encode(fields))))


@given(query=marked, k=st.integers(1, 30), search_filter=typed_filter)
@fuzz(200)
def test_hostile_filter_values_are_a_400_or_a_search(sidecar, query, k, search_filter):
    """Well-formed bodies whose filter values are hostile within their column's own JSON type."""
    post_search(sidecar, encode({"dataset": "t", "query": query, "k": k, "filter": search_filter}))


@given(search_filter=search_filter)
@fuzz(400)
def test_a_filter_either_is_refused_or_reaches_the_store_as_valid_values(sidecar, search_filter):
    try:
        conditions = parse_filter(search_filter, PAYLOAD_TYPES)
    except BadSearch as exc:
        str(exc).encode("utf-8")
        event("refused")
        return
    event("passed")
    for condition in conditions:
        if condition.kind == "range":
            values = list(condition.value.values())
        else:
            values = list(condition.value) if condition.kind == "any" else [condition.value]
        for value in values:
            if isinstance(value, float):
                assert math.isfinite(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                assert -(2**63) <= value < 2**63
            elif isinstance(value, str):
                value.encode("utf-8")
    # and the real Qdrant Edge collection takes them (a panic or conversion error here was a 500)
    vector = sidecar.client.app.state.search.embedder.embed_query("row")
    sidecar.store.search("t", vector, k=3, conditions=conditions)
