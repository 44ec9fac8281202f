"""The one-pass conversion answers exactly what the plain way does, on the same data.

The plain way infers every column's type from every row, then writes; the one-pass way writes the sample's
guess (its sample checking only what a smaller probe left standing) with checked casts, and falls back to
the plain way at the first value the guess does not fit. Both must give the same schema (types,
nullability, zones, rows), the same Parquet (types and values) and the same errors. A sample of a few rows
makes guesses, their misses and the fallback happen on small generated files; one drop larger than the
real sample checks the default path end to end.

Deterministic for CI: hypothesis' example database is off and generation is derandomized.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from lakehouse_pipelines.errors import BadInput
from lakehouse_pipelines.ingest.conversion import convert, write_parquet
from lakehouse_pipelines.ingest.csv_file import read_csv_sql, read_header
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.ingest.type_inference import SAMPLE_ROWS, cast_sql, guess_schema, infer_schema
from lakehouse_pipelines.lake import duckdb_connection as engine
from tests.hostile_support import import_every_project_module

import_every_project_module()  # a fixed pool of constants for hypothesis (hostile_support.py)

# Values of every type and near misses of each: a column mostly of one kind with a late other value is
# where a guess from the first rows goes wrong.
KINDS = {
    "bool": ["true", "FALSE", "True"],
    "int": ["0", "1", "-2", "+3", "9223372036854775807"],
    "float": ["1.5", "-2.5E-3", ".5", "3.", "0.5"],
    "date": ["2024-01-31", "1999-12-01", "0001-01-01"],
    "timestamp": ["2024-01-31T10:20", "2024-01-31 10:20:30.123", "2026-01-01T00:00:00-12:00"],
    "naive timestamp": ["2024-01-31T10:20", "2024-01-31 10:20:30"],
    "near miss": ["007", "-01.5", "9223372036854775808", "NaN", "yes", "2024-02-30", "2026-01-01 24:00",
                  "2026-01-01T00:00:00+25:00", " 1", "2024-01-31T10:20Z", "x"],
    "empty": ["", '""'],
}  # fmt: skip


def cell_text(value: str) -> str:
    """The value as a CSV field (quoted where it must be); `\"\"` stays a quoted empty field."""
    if value == '""':
        return value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([value])
    return out.getvalue()


@st.composite
def csv_drops(draw) -> bytes:
    """A header and up to 8 rows of 1-3 columns, each column mostly of one kind; sometimes a bad row."""
    width = draw(st.integers(1, 3))
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=width, max_size=width))
    other = st.sampled_from([v for values in KINDS.values() for v in values])
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        cells = [draw(st.one_of(st.sampled_from(KINDS[k]), st.sampled_from(KINDS["empty"]))) for k in kinds]
        if draw(st.integers(0, 2)) == 0:  # a late value of another kind
            at = draw(st.integers(0, width - 1))
            cells[at] = draw(other)
        rows.append(",".join(cell_text(c) for c in cells))
    if rows and draw(st.integers(0, 9)) == 0:  # a ragged row, or a byte that is not UTF-8
        at = draw(st.integers(0, len(rows) - 1))
        rows[at] = draw(st.sampled_from([rows[at] + ",extra", "\udcff"]))
    header = ",".join(f"c{i}" for i in range(width))
    return ("\n".join([header, *rows]) + "\n").encode("utf-8", "surrogateescape")


def answer(path: Path, out: Path, optimised: bool, sample_rows: int, probe_rows: int = 1) -> tuple:
    """What a conversion gives: the schema and the Parquet's schema and rows, or the error it raised."""
    try:
        names = read_header(path, path.name)
    except BadInput as exc:
        return ("refused", "header", str(exc))
    con = engine.connect(memory_limit="128MB")
    relation = read_csv_sql(path, names)
    try:
        if optimised:
            guess = guess_schema(con, relation, names, sample_rows, probe_rows)
            conversion = convert(con, relation, guess, out, lambda _: None, lambda _: None)
            schema = conversion.schema
            event(conversion.path)
        else:
            schema = infer_schema(con, relation, names, sample_rows)
            write_parquet(con, relation, cast_sql(schema), out)
    except duckdb.Error as exc:
        event("refused")
        return ("refused", type(exc).__name__, str(exc))
    finally:
        con.close()
    return ("written", schema, pq.ParquetFile(out).schema, pq.read_table(out).to_pylist())


def fuzz(examples: int) -> settings:
    return settings(
        database=None,
        derandomize=True,
        max_examples=examples,
        deadline=timedelta(seconds=10),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@given(data=csv_drops(), sample_rows=st.integers(1, 4), probe_rows=st.integers(1, 4))
# a late zone, a column empty in the sample, an int widened to float, a ragged row past the sample
@example(data=b"t\n2024-01-31T10:20\n2024-01-31T10:20\n2024-01-31T10:20Z\n", sample_rows=2, probe_rows=1)
@example(data=b"a,b\n1,\n2,\n3,x\n", sample_rows=2, probe_rows=1)
@example(data=b"a\n1\n2\n1.5\n", sample_rows=2, probe_rows=1)
@example(data=b"a\n1\n2\n3\n4,5\n", sample_rows=2, probe_rows=1)
@fuzz(150)
def test_the_one_pass_conversion_answers_as_the_plain_way(tmp_path, data, sample_rows, probe_rows):
    path = tmp_path / "drop.csv"
    path.write_bytes(data)
    optimised = answer(path, tmp_path / "one.parquet", True, sample_rows, probe_rows)
    plain = answer(path, tmp_path / "plain.parquet", False, sample_rows)
    assert optimised == plain


def test_a_drop_larger_than_the_sample_is_converted_in_one_pass_as_the_plain_way(lake, tmp_path):
    drop = write_workers_csv(tmp_path / "workers.csv", SAMPLE_ROWS + 1_000)
    progress: list[str] = []
    result = ingest(lake, str(drop), "workers", progress=progress.append)
    assert progress.count("writing parquet") == 1 and "inferring types" not in progress  # the guess held
    plain = answer(drop, tmp_path / "plain.parquet", False, SAMPLE_ROWS)
    stored = Path(lake.storage.location(result.object.key))
    assert plain[1].columns == result.columns and plain[1].rows == result.object.rows
    assert pq.ParquetFile(stored).schema == plain[2] and pq.read_table(stored).to_pylist() == plain[3]


@pytest.mark.parametrize(
    ("late", "expected"),
    [("not-a-number", "string"), ("1.5", "float64"), ("", "int64")],
    ids=["widened-to-string", "widened-to-float", "late-null"],
)
def test_a_late_value_past_the_sample_gives_the_type_of_every_row(lake, tmp_path, late, expected):
    path = tmp_path / "late.csv"
    path.write_text("v,w\n" + "".join(f"{i},x\n" for i in range(SAMPLE_ROWS + 10)) + f"{late},x\n")
    result = ingest(lake, str(path), "t")
    assert (result.columns[0].type, result.columns[0].nullable) == (expected, late == "")
    assert result.object.rows == SAMPLE_ROWS + 11
