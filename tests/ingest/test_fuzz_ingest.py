"""Property-based hostile input through ingest: generated CSV bytes, header names, file and dataset names.

Whatever the input, ingest either registers it or refuses it with one BadInput-style line naming the file
(never another exception), and a refusal changes nothing: the lake tree and every live manifest are
byte-identical. Values that look like date-times are timestamps only when they name one real instant,
which is then stored exactly; otherwise they are strings, verbatim. The CLI prints any name literally.

Deterministic for CI: hypothesis' example database is off and generation is derandomized.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import LakeSettings
from lakehouse_pipelines.terminal import visible
from tests.hostile_support import fuzz_settings, import_every_project_module, lake_state

import_every_project_module()  # a fixed pool of constants for hypothesis (hostile_support.py)


def fuzz(examples: int) -> settings:
    # one ingest is ~0.1 s; a busy 2-core machine can be 10x slower
    return fuzz_settings(examples, 10, HealthCheck.filter_too_much)


@pytest.fixture(scope="module")
def fuzz_lake(tmp_path_factory) -> Lake:
    """One lake for a module's examples, with a live dataset `t` that every refusal must leave alone."""
    home = tmp_path_factory.mktemp("fuzz-home")
    lake = Lake.open(LakeSettings.under(home))
    live = home / "live.csv"
    live.write_text("id,name\n1,a\n2,b\n")
    ingest(lake, str(live), "t")
    return lake


_names = itertools.count()


def new_dataset() -> str:
    return f"d{next(_names)}"


def ingest_or_refuse(lake: Lake, path: Path, dataset: str):
    """Ingest, asserting the contract's properties either way; the result, or None when refused."""
    before = lake_state(lake)
    live = lake.storage.get("catalog/t/manifest.json")[0]
    try:
        result = ingest(lake, str(path), dataset)
    except LakehouseError as exc:
        message = str(exc)
        assert "\n" not in message and "Traceback" not in message
        assert message.startswith(f"{path}"), message  # names the file
        assert lake_state(lake) == before
        assert not list(lake.scratch.glob("staging-*")) and not list(lake.scratch.glob("download-*"))
        return None
    assert lake.storage.get("catalog/t/manifest.json")[0] == live
    return result


# ------------------------------------------------------------------------------------------- CSV bytes

CELL_PIECES = [
    "", "a", "0", "007", "1.5", "-2", "1e3", "true", "NaN", " ", ",", '"', '""', "\n", "\r\n", "\r", "\t",
    "\x00", "\x01", "\x1f", "é", "€", "😀", "\u2028", "\ufeff", "[/x]", "=cmd()", "\\", "'",
    "2026-01-01", "2026-02-30", "2026-01-01T00:00:00+25:00", "2026-01-01 24:00",
]  # fmt: skip
RAW_PIECES = [b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xff\xfe", b"\r", b'"', b","]


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@st.composite
def csv_bytes(draw) -> bytes:
    """Half well-formed CSV with odd cells, half hostile: ragged rows, bad headers, bad bytes, binary."""
    width = draw(st.integers(1, 4))
    cell = st.one_of(st.sampled_from(CELL_PIECES), st.text(max_size=6))
    if draw(st.booleans()):
        header = [f"c{i}" for i in range(width)]
        rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=6))
        return csv_text([header, *rows]).encode("utf-8", "surrogatepass")
    names = st.sampled_from(["id", "a", "b", "A", "", "x y", "[b]", "é"])
    header = draw(st.lists(names, min_size=width, max_size=width))
    rows = draw(st.lists(st.lists(cell, min_size=max(1, width - 1), max_size=width + 1), max_size=6))
    data = csv_text([header, *rows]).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(RAW_PIECES)) + data[at:]
    if draw(st.integers(0, 4)) == 0:
        data = draw(st.binary(max_size=64))
    return data


@given(data=csv_bytes())
@fuzz(60)
def test_any_csv_bytes_are_ingested_or_refused_cleanly(fuzz_lake, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("csv") / "drop.csv"
    path.write_bytes(data)
    result = ingest_or_refuse(fuzz_lake, path, new_dataset())
    event("ingested" if result else "refused")
    if b"\x00" in data:
        assert result is None  # a NUL anywhere is refused
    if result is not None:
        stored = duckdb.sql(
            f"SELECT count(*) FROM '{fuzz_lake.storage.location(result.object.key)}'"
        ).fetchone()
        assert stored == (result.object.rows,)


@given(padding=st.integers(4 * 1024**2, 5 * 1024**2), offset=st.integers(0, 100))
@fuzz(3)
def test_a_nul_at_any_depth_is_refused_naming_its_line(fuzz_lake, tmp_path_factory, padding, offset):
    path = tmp_path_factory.mktemp("nul") / "late.csv"
    row = b"1,abcdefghijklmnopqrstuvwxyz\n"
    body = row * (padding // len(row) + offset)
    path.write_bytes(b"id,name\n" + body + b"2,\x00\n")
    before = lake_state(fuzz_lake)
    line = body.count(b"\n") + 2
    with pytest.raises(LakehouseError, match=rf"line {line}: binary data: a NUL byte"):
        ingest(fuzz_lake, str(path), new_dataset())
    assert lake_state(fuzz_lake) == before


# -------------------------------------------------------------------------------------- date-time text

ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:\d{2})?"
)


def real_instant(text: str) -> dt.datetime | None:
    """The instant `text` names under the contract, computed independently of DuckDB; None if it names none."""
    match = ISO.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        naive = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )  # fmt: skip
    except ValueError:  # month 13, Feb 30, hour 24, second 60, year 0
        return None
    offset = dt.timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if minutes >= 60:
            return None
        offset = sign * dt.timedelta(hours=hours, minutes=minutes)
        if not dt.timedelta(hours=-12) <= offset <= dt.timedelta(hours=14):
            return None
    try:
        return (naive - offset).replace(tzinfo=dt.UTC)
    except OverflowError:
        return None


two = st.integers(0, 99).map(lambda n: f"{n:02d}")


def mostly(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Valid parts three times as often: one bad part in a value is enough to make it a string."""
    return st.sampled_from(valid * 3 + invalid)


date_time_text = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}{s}{frac}{zone}",
    mostly(["0001", "1970", "2024", "2026", "9999"], ["0000"]),
    mostly(["01", "02", "12"], ["00", "13"]),
    mostly(["01", "28", "29"], ["00", "30", "31", "32"]),
    st.sampled_from(["T", " "]),
    mostly(["00", "09", "23"], ["24", "25"]),
    mostly(["00", "30", "59"], ["60"]),
    mostly(["", ":00", ":59"], [":60"]),
    mostly(["", ".5", ".123456"], [".1234567"]),
    st.one_of(
        mostly(["", "Z", "+14:00", "-12:00", "+05:45", "-00:00", "+13:59"], ["+14:01", "-12:30", "+24:00"]),
        st.builds(lambda s, h, m: f"{s}{h}:{m}", st.sampled_from("+-"), two, two),
    ),
)


@given(values=st.lists(date_time_text, min_size=1, max_size=3))
@fuzz(80)
def test_a_timestamp_column_holds_only_real_instants_stored_exactly(fuzz_lake, tmp_path_factory, values):
    path = tmp_path_factory.mktemp("ts") / "times.csv"
    path.write_text(csv_text([["id", "t"], *([str(i), v] for i, v in enumerate(values))]))
    result = ingest_or_refuse(fuzz_lake, path, new_dataset())
    assert result is not None
    instants = [real_instant(v) for v in values]
    column = result.columns[1].type
    assert column == ("timestamp" if all(instants) else "string"), (values, instants)
    location = fuzz_lake.storage.location(result.object.key)
    if column == "string":
        stored = [v for (v,) in duckdb.sql(f"SELECT t FROM '{location}' ORDER BY id").fetchall()]
        assert stored == values  # verbatim
    else:
        zoned = any(v.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", v) for v in values)
        epoch = "epoch_us(t)" if zoned else "epoch_us(t::TIMESTAMP)"
        stored = [v for (v,) in duckdb.sql(f"SELECT {epoch} FROM '{location}' ORDER BY id").fetchall()]
        expected = [
            int((i - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1)) for i in instants
        ]
        assert stored == expected, values


# ----------------------------------------------------------------------------- names through the CLI

NAME_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="/\x00", min_codepoint=1, max_codepoint=0x1F64F
)
MARKUP = ["[", "]", "[/x]", "[bold]", "[/]", "\\", "[link=x]", "a", " ", "é", "\n", "\x1b[31m", "\r"]
markup_name = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=30),
    st.lists(st.sampled_from(MARKUP), min_size=1, max_size=6).map("".join),
)
# `[/x]` in a path spans folders (`dir[` / `x].csv`): components joined by `/` make that markup.
name_component = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=20),
    st.lists(st.sampled_from([m for m in MARKUP if "/" not in m]), min_size=1, max_size=6).map("".join),
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 120)
relative_path = st.lists(name_component, min_size=1, max_size=3).map("/".join)


@given(
    file_name=relative_path,
    header=st.one_of(st.sampled_from(["name", "[/x]", "[bold]b[/bold]"]), markup_name),
    dataset=st.one_of(st.just("ok"), st.just("ok"), markup_name),
    good=st.sampled_from([True, True, False]),
)
@fuzz(40)
def test_the_cli_prints_any_name_literally_and_exits_cleanly(
    fuzz_lake, tmp_path_factory, file_name, header, dataset, good
):
    from typer.testing import CliRunner

    from lakehouse_pipelines.cli import app

    path = tmp_path_factory.mktemp("names") / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text([["id", header], ["1", "x"]] if good else [["id", header], ["1", "x", "extra"]]))
    name = new_dataset() if dataset == "ok" else dataset
    env = {"LAKEHOUSE_HOME": str(Path(fuzz_lake.scratch).parent), "COLUMNS": "1000"}
    before = lake_state(fuzz_lake)
    result = CliRunner(env=env).invoke(app, ["ingest", str(path), "--dataset", name])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    event(f"exit {result.exit_code}")
    if result.exit_code == 0:
        assert lines[0].startswith(f"{visible(str(path))}: created 1 rows"), lines
    else:
        assert result.exit_code == 1 and lines[0].startswith("error: "), lines
        assert visible(str(path)) in lines[0] or visible(repr(name)) in lines[0], lines  # file or dataset
        assert lake_state(fuzz_lake) == before
