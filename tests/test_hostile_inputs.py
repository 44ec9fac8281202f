"""Hostile input, round 2 (issue 13): each class of bad input is refused clearly, at the mechanism that owns it.

Every refusal is checked for the same properties: one line naming the problem (file, line, column, field),
no traceback, and nothing lost (the live manifest byte-identical, the lake tree unchanged). The fuzz tests
(tests/ingest/test_fuzz_ingest.py, tests/sidecar/test_fuzz_sidecar.py) assert the same properties over generated inputs; these are the worked examples.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from lakehouse_pipelines.errors import BadInput
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake import Lake
from tests.hostile_support import check_refusal, lake_state, open_sidecar, post_raw


@pytest.fixture
def live(lake: Lake, tmp_path: Path) -> Lake:
    """A lake with one registered dataset `t` (id, name), so refusals can be checked against live data."""
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,a\n2,b\n")
    ingest(lake, str(good), "t")
    return lake


def refused(lake: Lake, source: str | Path, dataset: str = "t") -> BadInput:
    """Ingest `source`, expecting a refusal that changes nothing in the lake."""
    before = lake_state(lake)
    with pytest.raises(BadInput) as caught:
        ingest(lake, str(source), dataset)
    assert lake_state(lake) == before
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return caught.value


# ------------------------------------------------------------------------------------------ 1. NUL bytes


def test_a_nul_byte_past_the_head_is_refused_naming_its_line(live, tmp_path):
    path = tmp_path / "late_nul.csv"
    row = b"1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"  # 43 bytes: 6 MiB of rows is past the 4 MiB head
    rows = (6 * 1024**2) // len(row)
    path.write_bytes(b"id,name\n" + row * rows + b"2,x\x00y\n" + row * 10)
    error = refused(live, path)
    assert error.line == rows + 2
    assert f"late_nul.csv, line {rows + 2}: binary data: a NUL byte" in str(error)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"id,na\x00me\n1,a\n", 1),
        (b"id,name\n1,\x00\n", 2),
        (b'id,name\n1,"a\nb\x00"\n', 3),  # a physical line: inside a quoted newline
        (b"id,name\n1,a\n2,b\x00", 3),  # the last byte, no trailing newline
    ],
)
def test_a_nul_byte_anywhere_is_refused(live, tmp_path, content, line):
    path = tmp_path / "nul.csv"
    path.write_bytes(content)
    assert refused(live, path).line == line


def test_a_file_without_nul_bytes_still_ingests(lake, tmp_path):
    path = tmp_path / "ok.csv"
    path.write_bytes(b"id,name\n" + b"1,\xe2\x80\x8b\x01x\n" * 3)  # zero-width space, a \x01: text, not NUL
    assert ingest(lake, str(path), "t").object.rows == 3


# --------------------------------------------------------------------------------- 2. Rich markup in the CLI

MARKUP = ["[/x]", "[bold]", "[/]", "[link=file:///etc/passwd]x[/link]", "\\[x]", "[red"]


def cli(*args: str):
    from typer.testing import CliRunner

    from lakehouse_pipelines.cli import app

    result = CliRunner().invoke(app, list(args))
    # CliRunner catches what would have been a traceback; a clean exit is typer.Exit (SystemExit) or none
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def markup_dir(tmp_path: Path, markup: str) -> Path:
    folder = tmp_path / markup.replace("/", "_slash_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("markup", MARKUP)
def test_a_path_with_markup_is_printed_literally_on_success_and_failure(lake_home, tmp_path, markup):
    folder = markup_dir(tmp_path, markup)
    good, bad = folder / f"{markup.replace('/', '')}ok.csv", folder / "bad.csv"
    good.write_text("id,name\n1,a\n")
    bad.write_text("id,name\n1,a,b\n")
    ok = cli("ingest", str(good), "--dataset", "t")
    assert ok.exit_code == 0 and f"{good}: created 1 rows" in ok.output
    failed = cli("ingest", str(bad), "--dataset", "t")
    assert failed.exit_code == 1
    assert failed.output.strip() == f"error: {bad}, line 2: expected 2 fields, found 3 (ragged row)"


@pytest.mark.parametrize("markup", MARKUP)
def test_column_and_dataset_names_with_markup_are_printed_literally(lake_home, tmp_path, markup):
    path = tmp_path / "dup.csv"
    path.write_text(f"{markup},{markup.upper()}\n1,2\n")
    dup = cli("ingest", str(path), "--dataset", "t")
    assert dup.exit_code == 1 and dup.output.count("\n") == 1
    assert f"duplicate column name {markup.upper()!r}" in dup.output
    named = cli("ingest", str(path), "--dataset", markup)
    assert named.exit_code == 1 and f"invalid dataset name {markup!r}" in named.output
    assert cli("manifest", markup).exit_code == 1
    assert cli("audit", markup).exit_code == 1


def test_a_value_with_markup_in_a_contract_error_is_printed_literally(lake_home, workers_csv, tmp_path):
    import csv

    rows = list(csv.reader(workers_csv.open(newline="")))
    rows[1][rows[0].index("state")] = "[/x]"
    bad = tmp_path / "workers.csv"
    with bad.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = cli("ingest", str(bad), "--dataset", "workers")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "column 'state' fails str_matches" in result.output and "'[/x]'" in result.output


def test_schema_drift_naming_markup_columns_is_one_literal_line(lake_home, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id,[b]x[/b]\n1,2\n")
    second.write_text("id,[/x]\n1,2\n")
    assert cli("ingest", str(first), "--dataset", "t").exit_code == 0
    drift = cli("ingest", str(second), "--dataset", "t")
    assert drift.exit_code == 1 and drift.output.count("\n") == 1
    assert "column '[/x]' added" in drift.output and "column '[b]x[/b]' removed" in drift.output


def test_the_installed_command_prints_markup_paths_literally(lake_home, tmp_path):
    """The real process: a valid CSV under a markup path is ingested and reported, exit 0; a bad one exit 1."""
    import os
    import subprocess
    import sys

    folder = markup_dir(tmp_path, "[/x]")
    good, bad = folder / "[/b]good.csv".replace("/", ""), folder / "[red]bad.csv"
    good.write_text("id,name\n1,a\n")
    bad.write_text("id,name\n1,\x00\n")
    lakehouse = str(Path(sys.executable).parent / "lakehouse")
    env = {**os.environ, "COLUMNS": "300"}
    ok = subprocess.run([lakehouse, "ingest", str(good), "-d", "t"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.splitlines() == [ok.stderr.strip()] and ok.stderr.startswith(f"{good}: created 1 rows")
    no = subprocess.run([lakehouse, "ingest", str(bad), "-d", "t"], capture_output=True, text=True, env=env)
    assert no.returncode == 1 and "Traceback" not in no.stderr
    assert (
        no.stderr.strip()
        == f"error: {bad}, line 2: binary data: a NUL byte, which CSV text never holds (byte 10)"
    )


@pytest.mark.parametrize("name", ["a\nb.csv", "a\rb.csv", "\x1b[31mred.csv", "bell\x07.csv", "sep\u2028.csv"])
def test_control_characters_in_a_name_are_shown_escaped_on_one_line(lake_home, tmp_path, name):
    from lakehouse_pipelines.terminal import visible

    good, bad = tmp_path / name, tmp_path / f"bad-{name}"
    good.write_text("id\n1\n")
    bad.write_text("id\n1,2\n")
    ok = cli("ingest", str(good), "--dataset", "t")
    assert ok.exit_code == 0 and ok.output.count("\n") == 1
    assert ok.output.startswith(f"{visible(str(good))}: created 1 rows") and "\x1b" not in ok.output
    no = cli("ingest", str(bad), "--dataset", "t")
    assert no.exit_code == 1 and no.output.count("\n") == 1 and "\x1b" not in no.output
    assert no.output.startswith(f"error: {visible(str(bad))}, line 2")


def test_the_audit_table_renders_column_names_and_values_literally():
    from rich.console import Console

    from lakehouse_pipelines.audit.drift import DriftRow
    from lakehouse_pipelines.audit.report import rich_table

    rows = [DriftRow("top_values", "[/x]", "[bold]a", "[/]", None, "fail", note="[red")]
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(rich_table(rows, title="t: [/y]"))
    text = console.export_text()
    assert "[/x]" in text and "[bold]a" in text and "[/]" in text and "[red" in text and "[/y]" in text


# ------------------------------------------------------------------------------ 3. impossible date/times

REAL_INSTANTS = [
    "2026-01-01T00:00:00+14:00",
    "2026-01-01T00:00:00-12:00",
    "2026-01-01T00:00:00+13:59",
    "2026-01-01T00:00:00-11:59",
    "2026-01-01T00:00:00+05:45",  # Nepal
    "2026-01-01T00:00:00-00:00",
    "2026-01-01 23:59:59.999999Z",
    "2026-01-01T10:20+02:00",
    "2024-02-29T00:00:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
]
NOT_INSTANTS = [
    "2026-01-01T00:00:00+25:00",
    "2026-01-01T00:00:00+99:99",
    "2026-01-01T00:00:00+14:01",
    "2026-01-01T00:00:00+14:30",
    "2026-01-01T00:00:00-12:01",
    "2026-01-01T00:00:00-13:00",
    "2026-01-01T00:00:00+05:60",
    "2026-01-01T00:00:60",  # a leap second
    "2026-01-01T00:60:00",
    "2026-01-01T24:00:00",  # the next day, by DuckDB's cast
    "2026-01-01T25:00:00",
    "2026-13-01T00:00:00",
    "2026-02-30T00:00:00",
    "2023-02-29T00:00:00",
    "2026-04-31T00:00:00",
    "2026-00-10T00:00:00",
    "2026-01-01T00:00:00.1234567",  # finer than microseconds: DuckDB would cut it
    "0000-01-01T00:00:00",  # DuckDB's 1 BC
    "9999-12-31T23:59:59-12:00",  # year 10000 in UTC
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00 UTC",
]


@pytest.mark.parametrize("value", REAL_INSTANTS)
def test_real_instants_are_timestamps(lake, tmp_path, value):
    path = tmp_path / "ok.csv"
    path.write_text(f"id,t\n1,{value}\n")
    assert ingest(lake, str(path), "t").columns[1].type == "timestamp"


@pytest.mark.parametrize("value", NOT_INSTANTS)
def test_impossible_timestamps_stay_verbatim_strings(lake, tmp_path, value):
    import duckdb

    path = tmp_path / "odd.csv"
    path.write_text(f"id,t\n1,{value}\n2,2026-01-01T00:00:00Z\n")
    result = ingest(lake, str(path), "t")
    assert result.columns[1].type == "string"
    stored = duckdb.sql(f"SELECT t FROM '{lake.storage.location(result.object.key)}' ORDER BY id").fetchall()
    assert stored == [(value,), ("2026-01-01T00:00:00Z",)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-30", "string"),
        ("2026-13-01", "string"),
        ("2023-02-29", "string"),
        ("0000-01-01", "string"),
        ("2024-02-29", "date"),
        ("0001-01-01", "date"),
        ("9999-12-31", "date"),
    ],
)
def test_impossible_dates_stay_strings(lake, tmp_path, value, expected):
    path = tmp_path / "dates.csv"
    path.write_text(f"id,d\n1,{value}\n")
    assert ingest(lake, str(path), "t").columns[1].type == expected


def test_offsets_are_applied_exactly_at_the_extremes(lake, tmp_path):
    import duckdb

    path = tmp_path / "extremes.csv"
    path.write_text("id,t\n1,2026-01-01T00:00:00+14:00\n2,2026-01-01T00:00:00-12:00\n")
    result = ingest(lake, str(path), "t")
    stored = duckdb.sql(
        f"SELECT strftime(t AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') FROM "
        f"'{lake.storage.location(result.object.key)}' ORDER BY id"
    ).fetchall()
    assert stored == [("2025-12-31 10:00",), ("2026-01-01 12:00",)]


# ------------------------------------------------------------------- 4. the SQL check never touches a file

CLASSIFY = """
import json, sys
from lakehouse_pipelines.sql.guard import QueryRefused, check_read_only
for line in sys.stdin:
    try:
        check_read_only(json.loads(line))
        verdict = "passed"
    except QueryRefused as exc:
        verdict = str(exc)
    print(json.dumps(verdict), flush=True)
"""


def classify_without_opening(statements: list[str], timeout: float = 60.0) -> list[str]:
    """The guard's verdicts, from a child process. The trap files are FIFOs: a parser opening one to read
    blocks (holding the GIL), so a child that stops answering opened a file."""
    import json
    import subprocess
    import sys

    from tests.conftest import stop_process_group

    child = subprocess.Popen(
        [sys.executable, "-c", CLASSIFY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = child.communicate("".join(json.dumps(s) + "\n" for s in statements), timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(child, timeout=5)
        out, _ = child.communicate()
    verdicts = [json.loads(line) for line in out.splitlines()]
    if len(verdicts) < len(statements):
        pytest.fail(f"classifying {statements[len(verdicts)]!r} opened a file (it blocked on the FIFO)")
    return verdicts


@pytest.fixture
def trap_dir(tmp_path: Path) -> Path:
    import os

    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("schema.sql", "load.sql"):
        os.mkfifo(folder / name)
    return folder


IMPORT_TRICKS = [
    "IMPORT DATABASE '{d}'",
    "import database '{d}'",
    "/* SELECT */ IMPORT DATABASE '{d}'",
    "-- x\nIMPORT DATABASE '{d}';",
    "SELECT 1; IMPORT DATABASE '{d}'",
    "SELECT 1 /* ; */; IMPORT DATABASE '{d}'",
    "EXPLAIN IMPORT DATABASE '{d}'",
    "EXPLAIN ANALYZE IMPORT DATABASE '{d}'",
    "WITH a AS (SELECT 1) IMPORT DATABASE '{d}'",
    "SELECT U&'\\0041'; IMPORT DATABASE '{d}'",
    "SELECT 'é'; IMPORT DATABASE '{d}'",  # the tokenizer's offsets are UTF-8 bytes
    "(IMPORT DATABASE '{d}')",
    "SELECT * FROM query('IMPORT DATABASE ''{d}''')",  # a read query: the engine lock refuses the call
]


def test_classifying_sql_never_opens_a_file_nor_names_it(trap_dir, tmp_path):
    statements = [t.format(d=d) for t in IMPORT_TRICKS for d in (trap_dir, tmp_path / "missing")]
    verdicts = classify_without_opening(statements)
    for verdict in verdicts:
        assert str(tmp_path) not in verdict and "schema.sql" not in verdict, verdict
    assert verdicts[0::2] == verdicts[1::2]  # no oracle: an existing and a missing directory read the same
    assert "passed" not in verdicts[:-2]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'é' ; SELECT 2",
        'SELECT "ü€😀", 1; DROP VIEW t',
        "SELECT '😀😀😀😀';;SELECT 1",
        "\u0080:; SELECT 1",
    ],
)
def test_statements_are_split_after_non_ascii_text(sql):
    from lakehouse_pipelines.sql.guard import QueryRefused, check_read_only

    with pytest.raises(QueryRefused, match=r"exactly one SQL statement \(got 2\)"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql", ["SELECT 1\x00; DROP VIEW workers", "SELECT '\x00'", "\x00", "SELECT 1 -- \x00", "SELECT '\ud800'"]
)
def test_sql_with_a_nul_or_a_lone_surrogate_is_refused(sql):
    from lakehouse_pipelines.sql.guard import QueryRefused, check_read_only

    with pytest.raises(QueryRefused, match=r"NUL character|lone surrogate"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'a' 'AKIASECRET'",
        "SELECT 'unterminated AKIASECRET",
        "SELECT 1 FROM x WHERE y = $$AKIASECRET$$ z",
        'SELECT"AKIASECRET\r',  # the message is cut at the line break, before the closing quote
        "SELECT 'AKIASECRET\nmore",
    ],
)
def test_syntax_errors_never_show_a_literal(sql):
    from lakehouse_pipelines.sql.guard import QueryRefused, check_read_only

    with pytest.raises(QueryRefused, match="syntax error") as caught:
        check_read_only(sql)
    assert "AKIASECRET" not in str(caught.value)


# ------------------------------------------------------------- 5. malformed JSON bodies are 422, not 500


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    opened = open_sidecar(tmp_path_factory.mktemp("sidecar"))
    yield opened
    opened.close()


SQL_MARK = "SELECT 'AKIA-SQL-MARK' AS secret_query_mark"
QUERY_MARK = "secret-query-mark forklift"

MALFORMED = [
    b'{"sql": "\\ud800"}',
    b'{"sql": "SELECT \\udc00 1"}',
    b'{"sql": NaN}',
    b'{"sql": Infinity}',
    b'{"sql": -Infinity}',
    b'{"sql": 1e400}',
    b'{"sql": ' + b"9" * 5000 + b"}",
    b'{"sql": "SELECT 1", "extra": NaN}',
    b'{"\\ud800": "SELECT 1"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"sql": ' + b'{"a": ' * 50 + b"1" + b"}" * 50 + b"}",
    b'{"sql": "caf\xe9"}',
    b"\xef\xbb\xbf" + b'{"sql": "SELECT 1"}',
    b'{"sql": "SELECT 1"',
    b'{"sql": "SELECT 1"} trailing',
    b"",
    b"null",
    b"[]",
    b'"SELECT 1"',
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
@pytest.mark.parametrize("path", ["/sql", "/search"])
def test_malformed_bodies_are_422_json_never_500(sidecar, path, body):
    response = post_raw(sidecar.client, path, body)
    assert response.status_code == 422, response.text[:300]
    body = check_refusal(response, sidecar.home)
    assert "error" in body and isinstance(body["detail"], list)
    assert all(set(d) == {"loc", "msg", "type"} for d in body["detail"])


@pytest.mark.parametrize(
    "body",
    [
        {"sql": 5, "mark": SQL_MARK},
        {"sql": [SQL_MARK]},
        {"sql": {"q": SQL_MARK}},
        {"sql": SQL_MARK + " " * 100_000},  # over the length limit
        {"query": SQL_MARK},
    ],
)
def test_validation_errors_never_echo_the_sql(sidecar, body):
    response = sidecar.client.post("/sql", json=body)
    assert response.status_code == 422
    check_refusal(response, sidecar.home, echoed=("AKIA-SQL-MARK", "secret_query_mark"))


@pytest.mark.parametrize(
    "body",
    [
        {"dataset": "t", "query": QUERY_MARK, "k": "ten"},
        {"dataset": "t", "query": QUERY_MARK, "k": 10_000},
        {"dataset": "t", "query": QUERY_MARK, "k": 2**70},
        {"dataset": "t", "query": QUERY_MARK, "k": True},
        {"dataset": "t", "query": QUERY_MARK, "k": 2.0},
        {"dataset": "t", "query": QUERY_MARK, "k": "5"},
        {"dataset": "t", "query": QUERY_MARK, "ef": False},
        {"dataset": "t", "query": QUERY_MARK, "filter": "state=IL"},
        {"dataset": "t", "query": QUERY_MARK, "unknown": QUERY_MARK},
        {"dataset": "t", "query": [QUERY_MARK]},
        {"dataset": QUERY_MARK * 10, "query": QUERY_MARK},
        {"dataset": "t", "query": QUERY_MARK * 1000},
    ],
)
def test_search_validation_errors_never_echo_the_query(sidecar, body):
    response = sidecar.client.post("/search", json=body)
    assert response.status_code in (400, 404, 422), response.text[:300]
    check_refusal(response, sidecar.home, echoed=("secret-query-mark",))


def test_a_nul_in_sql_is_400_not_cut(sidecar):
    response = sidecar.client.post("/sql", json={"sql": "SELECT 1\u0000; DROP VIEW t"})
    assert response.status_code == 400 and "NUL" in check_refusal(response, sidecar.home)["error"]
    assert sidecar.client.post("/sql", json={"sql": "SELECT count(*) FROM t"}).json()["rows"] == [[20]]


def test_every_route_with_a_body_parses_it_strictly(sidecar):
    """A route added later without StrictJsonRoute would take NaN and lone surrogates again."""
    routes = [
        (path, method)
        for path, methods in sidecar.client.get("/openapi.json").json()["paths"].items()
        for method, operation in methods.items()
        if "requestBody" in operation
    ]
    assert {("/sql", "post"), ("/search", "post")} <= set(routes)
    for path, method in routes:
        url = path.replace("{name}", "t")  # the fixture's dataset: the body, not the name, must be refused
        for body in (b'{"x": NaN}', b'{"x": "\\ud800"}', b'{"records": [{"worker_id": NaN}]}'):
            response = sidecar.client.request(
                method, url, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, (path, body, response.text)
            answer = response.json()
            # FastAPI-parsed bodies say json_invalid; a route that reads its body itself (validate) says why
            assert answer["detail"][0]["type"] == "json_invalid" if "detail" in answer else answer["error"]
            assert "ud800" not in response.text and "NaN" not in answer.get("detail", "")


def test_parse_json_accepts_strict_json_unchanged():
    import json

    from lakehouse_pipelines.sidecar.bodies import parse_json

    value = {"a": [1, -2.5e10, "caf\u00e9 \U0001f600", None, True], "b": {"c": "\u2028"}, "d": 2**70}
    assert parse_json(json.dumps(value).encode()) == value
    assert parse_json(json.dumps(value, ensure_ascii=False).encode()) == value


# --------------------------------------------------------------- 6. search filters are checked by type


@pytest.mark.parametrize(
    ("search_filter", "message"),
    [
        ({"rate": {"gte": float("nan")}}, "'rate': not a finite number"),
        ({"rate": {"lte": float("inf")}}, "'rate': not a finite number"),
        ({"rate": {"gte": 2**1100}}, "'rate': not a finite number"),
        ({"n": {"gte": -(2**1100)}}, "'n': not a finite number"),
        ({"n": 2**63}, "'n': an integer outside the 64-bit range"),
        ({"n": -(2**63) - 1}, "'n': an integer outside the 64-bit range"),
        ({"n": [1, 2**70]}, "'n': an integer outside the 64-bit range"),
        ({"n": 1.5}, "'n': not an integer value"),
        ({"n": True}, "'n': not an integer value"),
        ({"state": "\ud800"}, "'state': text with invalid Unicode"),
        ({"state": ["IL", "\udfff"]}, "'state': text with invalid Unicode"),
        ({"state": None}, "'state': not a keyword value"),
        ({"state": {"gte": "A"}}, "'state': ranges work on numbers"),
        ({"ok": 1}, "'ok': not a bool value"),
        ({"ok": [True]}, "'ok': a list of values works"),
        ({"when": {"gte": "garbage"}}, "'when': not an ISO date"),
        ({"when": {"gte": "2026-13-01"}}, "'when': not an ISO date"),
        ({"when": {"gte": "2026-01-01T00:00:00+25:00"}}, "'when': not an ISO date"),
        ({"when": {"gte": "2026-01-01T00:00:00+14:30"}}, "'when': a UTC offset"),
        ({"when": {"gte": "\ud800"}}, "'when': text with invalid Unicode"),
        ({"when": {"gte": 5}}, "'when': not a datetime value"),
        ({"when": "2026-01-32"}, "'when': not an ISO date"),
        ({"when": ["2026-01-01"]}, "'when': a list of values works"),
    ],
)
def test_bad_filter_values_are_400_naming_the_column(sidecar, search_filter, message):
    from lakehouse_pipelines.search.service import BadSearch, parse_filter
    from tests.hostile_support import PAYLOAD_TYPES

    with pytest.raises(BadSearch, match=re.escape(message)):
        parse_filter(search_filter, PAYLOAD_TYPES)
    if any(isinstance(v, float) and v != v for v in _leaves(search_filter)):
        return  # NaN has no JSON spelling; the body parser refuses it (above)
    body = json.dumps({"dataset": "t", "query": "row", "filter": search_filter}).encode()
    response = post_raw(sidecar.client, "/search", body.replace(b"Infinity", b"1e999"))
    assert response.status_code in (400, 422), response.text
    if response.status_code == 400:
        assert message in check_refusal(response, sidecar.home)["error"]


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@pytest.mark.parametrize(
    ("search_filter", "ids"),
    [
        ({"n": 2**63 - 1}, set()),
        ({"n": [3, 4]}, {3, 4}),
        ({"rate": {"gte": 9, "lt": 2**70}}, {18, 19, 20}),
        ({"state": "IL", "n": {"lte": 5}}, {1, 3, 5}),
        ({"ok": True, "n": {"lte": 6}}, {3, 6}),
        ({"when": {"gte": "2026-01-19"}}, {19, 20}),
        ({"when": {"gte": "2026-01-19T23:00:00-01:00"}}, {20}),
        ({"when": {"lt": "2026-01-02T00:00:00Z"}}, {1}),
        ({"when": "2026-01-19T00:00:00"}, {19}),  # a match compares the text as given
    ],
)
def test_good_filters_still_filter(sidecar, search_filter, ids):
    response = sidecar.client.post(
        "/search", json={"dataset": "t", "query": "row", "k": 20, "filter": search_filter}
    )
    assert response.status_code == 200, response.text
    assert {h["id"] for h in response.json()["hits"]} == ids


# -------------------------------------------------------------------------- 7. symbolic links are refused


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A readable, comma-free file outside everything the user pointed at."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\nsecret line\n")
    return secret


def test_the_cli_refuses_a_symlink_naming_it(lake_home, tmp_path, outside):
    import os

    link = tmp_path / "drop.csv"
    link.symlink_to(outside)
    lake = Lake.open(lake_home)
    before = lake_state(lake)
    result = cli("ingest", str(link), "--dataset", "t")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {link}: the file is a symbolic link: links are not followed, give the file itself "
        "(docs/hostile-inputs.md)"
    )
    assert lake_state(lake) == before and lake.catalog.find("t") is None
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    assert "is a symbolic link" in cli("ingest", str(dangling), "--dataset", "t").output
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "not a regular file (a named pipe)" in cli("ingest", str(fifo), "--dataset", "t").output
    assert "not a regular file (a directory)" in cli("ingest", str(tmp_path), "--dataset", "t").output
    (tmp_path / "private.csv").write_text("id\n1\n")
    (tmp_path / "private.csv").chmod(0)
    if os.geteuid() != 0:  # root reads anything
        assert "permission denied" in cli("ingest", str(tmp_path / "private.csv"), "-d", "t").output


def test_a_folder_link_above_a_file_outside_the_landing_is_the_users_own_path(lake, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "drop.csv").write_text("id\n1\n")
    (tmp_path / "via").symlink_to(real)
    assert ingest(lake, str(tmp_path / "via" / "drop.csv"), "t").object.rows == 1


def test_ingest_refuses_a_link_anywhere_under_the_landing_root(lake_home, tmp_path, outside):
    lake = Lake.open(lake_home)
    landing = Path(lake.landing)
    (landing / "workers").mkdir(parents=True)
    (landing / "workers" / "link.csv").symlink_to(outside)
    (landing / "linked").symlink_to(outside.parent)
    (landing / "deep").mkdir()
    (landing / "deep" / "hop").symlink_to(outside.parent)
    before = lake_state(lake)
    for source, where in [
        (landing / "workers" / "link.csv", "the file"),
        (landing / "linked" / "secret.txt", "its folder 'linked'"),
        (landing / "deep" / "hop" / "secret.txt", "its folder 'hop'"),
    ]:
        with pytest.raises(BadInput, match=f"{re.escape(where)} is a symbolic link"):
            ingest(lake, str(source), "t")
    assert lake_state(lake) == before and lake.catalog.find("t") is None


def test_a_file_swapped_for_a_link_after_it_was_opened_is_still_the_file_opened(tmp_path, outside):
    from lakehouse_pipelines.ingest.publish import _local_copy

    drop = tmp_path / "drop.csv"
    drop.write_text("id\n1\n")
    with _local_copy(str(drop), tmp_path) as path:
        drop.unlink()
        drop.symlink_to(outside)
        assert path.read_text() == "id\n1\n"


def test_the_landing_listing_and_the_sensor_refuse_links_and_special_files(
    lake_home, tmp_path, outside, capfd
):
    import os

    import dagster as dg

    from assets.dataset_defs import ingest_job_name
    from assets.drop_sensor import build_drop_sensor
    from lakehouse_pipelines.datasets import load_specs
    from lakehouse_pipelines.ingest.landing_scan import Cursor, scan
    from lakehouse_pipelines.lake.storage import LocalStorage
    from resources.lake_resource import LakeResource

    landing = lake_home.home / "landing"
    (landing / "workers").mkdir(parents=True)
    (landing / "workers" / "good.csv").write_text("worker_id\n1\n")
    (landing / "workers" / "link.csv").symlink_to(outside)
    (landing / "workers" / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (landing / "workers" / "folder.csv").symlink_to(outside.parent)
    os.mkfifo(landing / "workers" / "pipe.csv")
    (landing / "workers" / "odd[1].csv").write_text("worker_id\n2\n")
    (landing / "elsewhere").symlink_to(outside.parent)

    storage = LocalStorage(landing)
    passed_over: list = []
    assert [o.key for o in storage.list(refused=passed_over)] == ["workers/good.csv", "workers/odd[1].csv"]
    assert sorted(r.info.key for r in passed_over) == [
        "elsewhere", "workers/dangling.csv", "workers/folder.csv", "workers/link.csv", "workers/pipe.csv",
    ]  # fmt: skip
    assert list(LocalStorage(landing).list("elsewhere")) == []

    specs = load_specs()
    result = scan(storage, specs, Cursor())
    assert [d.key for b in result.batches for d in b.drops] == ["workers/good.csv"]
    refused = dict(result.refused)
    assert set(refused) == {
        "elsewhere", "workers/dangling.csv", "workers/folder.csv", "workers/link.csv", "workers/pipe.csv",
        "workers/odd[1].csv",
    }  # fmt: skip
    assert "symbolic link" in refused["workers/link.csv"] and "pipe" in refused["workers/pipe.csv"]
    assert "invalid storage key" in refused["workers/odd[1].csv"]
    assert scan(storage, specs, result.cursor).refused == []  # reported once, like undeclared drops

    sensor = build_drop_sensor(specs, [dg.define_asset_job(ingest_job_name(n)) for n in specs])
    lake = LakeResource(home=str(lake_home.home), landing=str(landing))
    capfd.readouterr()
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, cursor=None, resources={"lake": lake}) as context,
    ):
        ticked = sensor(context)
    runs = [
        s for r in ticked.run_requests for s in r.run_config["ops"]["workers__ingest"]["config"]["sources"]
    ]
    assert runs == [str(landing / "workers" / "good.csv")]
    logged = capfd.readouterr().err  # dagster's own handler writes to stderr
    assert "workers/link.csv: refused, a symbolic link" in logged and "elsewhere: refused" in logged


def test_a_panic_inside_the_vector_store_is_a_json_error_not_an_escaped_base_exception(sidecar, monkeypatch):
    class PanicException(BaseException):  # what PyO3 raises for a Rust panic
        pass

    def panic(*args, **kwargs):
        raise PanicException("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(sidecar.store, "search", panic)
    response = sidecar.client.post("/search", json={"dataset": "t", "query": "row"})
    assert response.status_code == 503
    assert response.json() == {"error": "the 't' index failed on this search"}
