"""Ingest end to end on a local lake: types, idempotence, drift, contracts, and every kind of bad input."""

import duckdb
import pytest

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.errors import BadInput, ContractViolation, InvalidName, SchemaDrift
from lakehouse_pipelines.ingest import contracts
from lakehouse_pipelines.ingest.publish import ingest


def lake_files(lake) -> list[str]:
    """Every file under the lake root except lock files: what a reader could see."""
    return sorted(
        str(p.relative_to(lake.storage.root))
        for p in lake.storage.root.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    )


def test_workers_ingest_types_and_values(lake, workers_csv):
    result = ingest(lake, str(workers_csv), load_specs()["workers"])
    assert result.status == "created"
    types = {c.name: c.type for c in result.columns}
    assert types["worker_id"] == "int64" and types["zip"] == "string" and types["available"] == "bool"
    assert types["hourly_rate"] == "float64" and types["last_placed"] == "date"
    path = lake.storage.location(result.object.key)
    zips, resumes, rows = duckdb.sql(
        f"SELECT count(*) FILTER (WHERE zip LIKE '0%'), count(*) FILTER (WHERE resume_text LIKE '%\n%\"%'), count(*) FROM '{path}'"
    ).fetchone()
    assert zips > 0 and resumes == rows == 2_000


def test_reingesting_the_same_file_is_a_no_op(lake, workers_csv):
    first = ingest(lake, str(workers_csv), "workers")
    files = lake_files(lake)
    again = ingest(lake, str(workers_csv), "workers")
    assert again.status == "existing" and again.manifest == first.manifest
    assert lake_files(lake) == files


def test_a_second_drop_appends(lake, tmp_path, workers_csv):
    from lakehouse_pipelines.ingest.sample_workers import write_workers_csv

    ingest(lake, str(workers_csv), "workers")
    other = write_workers_csv(tmp_path / "more.csv", 300, seed=8)
    result = ingest(lake, str(other), "workers")
    assert result.status == "appended"
    assert (result.manifest.version, result.manifest.row_count, len(result.manifest.objects)) == (2, 2_300, 2)


def test_drift_touches_no_live_data(lake, tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("id,zip\n1,00501\n")
    ingest(lake, str(first), "t")
    files, manifest = lake_files(lake), lake.catalog.get("t")
    drifted = tmp_path / "b.csv"
    drifted.write_text("id,zip\nx,00501\n")
    with pytest.raises(SchemaDrift, match="column 'id' changed type int64 -> string"):
        ingest(lake, str(drifted), "t")
    assert lake_files(lake) == files and lake.catalog.get("t") == manifest


def test_contract_violation_names_columns_and_rows_and_registers_nothing(lake, tmp_path, workers_csv):
    lines = workers_csv.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad_workers.csv"
    # reliability is the 14th column: push row 3's value out of [0, 1]
    header, rows = lines[0], "".join(lines[1:])
    bad.write_text(header + rows.replace(",0.", ",7.", 1))
    with pytest.raises(ContractViolation, match=r"column 'reliability' fails in_range.*row 1"):
        ingest(lake, str(bad), load_specs()["workers"])
    assert lake.catalog.find("workers") is None
    assert not [f for f in lake_files(lake) if f.startswith("datasets/")]


def test_contract_rows_are_counted_across_batches(lake, tmp_path, workers_csv, monkeypatch):
    monkeypatch.setattr(contracts, "MIN_BATCH_ROWS", 1)
    monkeypatch.setattr(contracts, "BATCH_BYTES", 30_000)  # the 2,000 rows' checked columns in ~4 batches
    lines = workers_csv.read_text().splitlines(keepends=True)
    late = 1_901  # the data row whose reliability leaves [0, 1]
    record = next(i for i, line in enumerate(lines) if line.startswith(f"{late},"))
    lines[record] = lines[record].replace(",0.", ",7.", 1)
    bad = tmp_path / "late_bad_workers.csv"
    bad.write_text("".join(lines))
    with pytest.raises(
        ContractViolation, match=rf"reliability' fails in_range\(0, 1\) in 1 row\(s\), e.g. row {late}:"
    ):
        ingest(lake, str(bad), load_specs()["workers"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.csv, line 1: the file is empty"),
        (b"a,b\n1,2\n3\n", r"line 3: expected 2 fields, found 1 \(ragged row\)"),
        (b"a,b\n1,2,3\n", r"line 2: expected 2 fields, found 3"),
        (b"a,,c\n1,2,3\n", r"empty column name at position 2"),
        (b"a,b,A\n1,2,3\n", r"duplicate column name 'A' \(positions 1 and 3\)"),
        (b"a,b\n1,\xff\xfe\n", r"line 2: invalid UTF-8"),
        (b"\xc3\x28a,b\n1,2\n", r"line 1: invalid UTF-8"),
        (b"a,b\n\x00\x01\x02\x03,1\n", r"binary data"),
        (b'a,b\n1,"unterminated\n', r"quoted field is never closed|not valid CSV"),
        (
            "id,name\n1,José\n".encode("utf-16"),
            r"line 1: UTF-16 text \(byte-order mark\): save the file as UTF-8",
        ),
        ("id,name\n1,José\n".encode("latin-1"), r"line 2: invalid UTF-8"),
        (
            b"id,blob\n1," + b"x" * (40 * 1024**2) + b"\n2,y\n",
            r"a line is longer than the reader's limit of 2 MiB",
        ),
        (
            ",".join(f"c{i}" for i in range(10_000)).encode() + b"\n",
            r"10000 columns is more than the limit of 2048",
        ),
    ],
    ids=[
        "empty",
        "short-row",
        "long-row",
        "empty-name",
        "duplicate-name",
        "bad-utf8",
        "bad-utf8-header",
        "binary",
        "unterminated-quote",
        "utf16",
        "latin1",
        "huge-line",
        "10k-columns",
    ],
)
def test_bad_input_is_named_and_leaves_nothing(lake, tmp_path, content, message):
    path = tmp_path / ("empty.csv" if not content else "bad.csv")
    path.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        ingest(lake, str(path), "t")
    assert lake.catalog.find("t") is None
    assert not [f for f in lake_files(lake) if not f.startswith(".")]
    assert not list(lake.scratch.glob("staging-*"))


def test_a_wide_file_is_ingested_with_every_column(lake, tmp_path):
    """Inference checks wide files a batch of columns per pass: DuckDB plans a long SELECT list slowly."""
    path = tmp_path / "wide.csv"
    path.write_text(
        ",".join(f"c{i}" for i in range(600)) + "\n" + ",".join(str(i) for i in range(600)) + "\n"
    )
    result = ingest(lake, str(path), "wide")
    assert len(result.columns) == 600 and {c.type for c in result.columns} == {"int64"}
    assert duckdb.sql(f"SELECT c599 FROM '{lake.storage.location(result.object.key)}'").fetchone() == (599,)


def test_rfc4180_bom_crlf_quotes_and_newlines(lake, tmp_path):
    path = tmp_path / "rfc.csv"
    path.write_bytes('\ufeffid,text\r\n1,"a, b"\r\n2,"line1\nline2 ""quoted"""\r\n3,plain\r\n'.encode())
    result = ingest(lake, str(path), "t")
    assert [c.name for c in result.columns] == ["id", "text"]
    rows = duckdb.sql(f"SELECT text FROM '{lake.storage.location(result.object.key)}' ORDER BY id").fetchall()
    assert rows == [("a, b",), ('line1\nline2 "quoted"',), ("plain",)]


def test_oversize_file_is_refused(lake, tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("a\n" + "1\n" * 100)
    object.__setattr__(lake, "max_file_bytes", 50)
    with pytest.raises(BadInput, match="over the 50-byte limit"):
        ingest(lake, str(path), "t")


def test_bad_dataset_name_is_refused_before_reading(lake, workers_csv):
    with pytest.raises(InvalidName):
        ingest(lake, str(workers_csv), "../etc")


def test_formula_injection_is_kept_as_inert_text(lake, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("id,note\n1,\"=cmd|' /C calc'!A0\"\n2,@SUM(1+1)\n")
    result = ingest(lake, str(path), "t")
    notes = duckdb.sql(
        f"SELECT note FROM '{lake.storage.location(result.object.key)}' ORDER BY id"
    ).fetchall()
    assert notes == [("=cmd|' /C calc'!A0",), ("@SUM(1+1)",)]
