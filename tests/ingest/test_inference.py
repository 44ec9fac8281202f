"""Type inference follows the contract's rules exactly, over every row of the file."""

from pathlib import Path

import pytest

from lakehouse_pipelines.ingest.csv_file import read_csv_sql, read_header
from lakehouse_pipelines.ingest.type_inference import SAMPLE_ROWS, infer_schema
from lakehouse_pipelines.lake import duckdb_connection as engine


def infer(tmp_path: Path, text: str) -> dict[str, tuple[str, bool]]:
    path = tmp_path / "drop.csv"
    path.write_bytes(text.encode())
    names = read_header(path, "drop.csv")
    con = engine.connect(memory_limit="128MB")
    schema = infer_schema(con, read_csv_sql(path, names), names)
    return {c.name: (c.type, c.nullable) for c in schema.columns}


def column_type(tmp_path: Path, *values: str) -> str:
    return infer(tmp_path, "v\n" + "".join(f"{v}\n" for v in values))["v"][0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["true", "FALSE", "True"], "bool"),
        (["1", "-2", "+3", "0"], "int64"),
        (["9223372036854775807", "-9223372036854775808"], "int64"),
        (["9223372036854775808"], "float64"),  # beyond int64, still a number
        (["1", "2.5"], "float64"),  # ints mixed with floats
        (["1e3", "-2.5E-3", ".5", "0.5", "3."], "float64"),
        (["00501", "12345"], "string"),  # zip codes keep their zeros
        (["007"], "string"),
        (["-01.5"], "string"),
        (["0", "0.5"], "float64"),
        (["2024-01-31", "1999-12-01"], "date"),
        (["2024-02-30"], "string"),  # not a calendar date
        (["2024-01-31T10:20", "2024-01-31 10:20:30.123"], "timestamp"),
        (["2024-01-31T10:20:30Z", "2024-01-31 10:20:30+02:00"], "timestamp"),
        (["2024-01-31", "2024-01-31T10:20"], "string"),  # dates and timestamps mixed: no single type fits
        (["NaN", "inf"], "string"),
        (["1", "one"], "string"),
        (["yes", "no"], "string"),
        ([" 1"], "string"),
    ],
)
def test_first_fitting_type_wins(tmp_path, values, expected):
    assert column_type(tmp_path, *values) == expected


def test_empty_cells_are_null_and_do_not_decide_the_type(tmp_path):
    inferred = infer(tmp_path, 'a,b,c\n1,,""\n,x,\n3,,\n')
    assert inferred == {"a": ("int64", True), "b": ("string", True), "c": ("string", True)}


def test_all_empty_column_is_string(tmp_path):
    assert infer(tmp_path, "a,b\n1,\n2,\n")["b"] == ("string", True)


def test_a_late_non_numeric_value_widens_the_column(tmp_path):
    rows = "".join(f"{i}\n" for i in range(SAMPLE_ROWS + 5_000)) + "not-a-number\n"
    assert infer(tmp_path, "v\n" + rows)["v"] == ("string", False)


def test_a_late_float_widens_int_to_float(tmp_path):
    rows = "".join(f"{i}\n" for i in range(SAMPLE_ROWS + 10)) + "1.5\n"
    assert infer(tmp_path, "v\n" + rows)["v"] == ("float64", False)


def test_header_only_file_is_a_valid_empty_schema(tmp_path):
    assert infer(tmp_path, "a,b\n") == {"a": ("string", False), "b": ("string", False)}
