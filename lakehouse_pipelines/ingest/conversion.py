"""CSV text → typed Parquet, verifying the sample's type guess while converting: one pass, not two.

Inference must see every value and the write must read every row; a pass of its own for inference cost
0.4-0.6 s at 500K workers rows, next to 0.9 s for the write. So the sample pass's guess (`type_inference.guess_schema`) is written with checked casts
that verify every value on the way (`checked_cast_sql`). The first value that does not fit stops that
pass, and the drop is then done the plain way: infer from every row, check, write. The plain way also
serves a guess that the dataset's schema already refuses (the full file may still widen to a schema it
accepts, and drift must be refused before anything is converted). Either way the schema, the Parquet and
the errors are the same (tests/ingest/test_conversion.py); the staging file is private throughout.

A miss costs the pass it stopped: at worst, a value on the last of 500K workers rows that fits no guess
took 2.9 s where the plain way alone took 2.5 s (a guess that holds: 1.4 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import duckdb

from lakehouse_pipelines.errors import SchemaDrift
from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.ingest.type_inference import (
    GUESS_MISSED,
    InferredSchema,
    SchemaGuess,
    cast_sql,
    checked_cast_sql,
    verify_guess,
)
from lakehouse_pipelines.lake.fingerprint import Column

# Small row groups keep a point lookup's read (and the wide resume column it decompresses) small;
# min/max statistics per group let DuckDB skip the rest, which works when a drop arrives clustered on its
# key (rows keep the drop's order). At 500K workers rows, 16K rows per group cut a lookup by id from ~10-11
# to ~7.5-9 ms and cost scans ~1 ms of per-query footer work (bench/bench_sql.py); 8K and smaller cost more.
ROW_GROUP_ROWS = 16_384

Accept = Callable[[Sequence[Column]], object]  # raises SchemaDrift for columns the dataset refuses
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Conversion:
    schema: InferredSchema  # its `rows` are the rows written
    # "sample": the sample was the whole file; "one pass": the guess held while writing; "two passes":
    # inferred from every row, then written
    path: Literal["sample", "one pass", "two passes"]


def convert(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    guess: SchemaGuess,
    staged: Path,
    accept: Accept,
    say: Progress,
) -> Conversion:
    """Write `relation` to `staged` as Parquet in the types inferred from every row, starting from the
    sample pass's `guess` over it.

    `accept` sees the schema before any Parquet is written from it; a guess it refuses is not written.
    """
    if guess.exact:
        accept(guess.schema.columns)
        say("writing parquet")
        write_parquet(con, relation, cast_sql(guess.schema), staged)
        return Conversion(guess.schema, "sample")
    if _accepts(accept, guess.schema.columns):
        say("writing parquet")
        try:
            written = write_parquet(con, relation, checked_cast_sql(guess), staged)
        except duckdb.InvalidInputException as exc:
            if GUESS_MISSED not in str(exc):
                raise
        else:
            columns = tuple(replace(c, nullable=written.nulls(c.name) > 0) for c in guess.schema.columns)
            schema = replace(guess.schema, columns=columns, rows=written.rows)
            return Conversion(schema, "one pass")
    say("inferring types")
    schema = verify_guess(con, relation, guess)
    accept(schema.columns)
    say("writing parquet")
    write_parquet(con, relation, cast_sql(schema), staged)
    return Conversion(schema, "two passes")


def _accepts(accept: Accept, columns: Sequence[Column]) -> bool:
    try:
        accept(columns)
    except SchemaDrift:
        return False
    return True


@dataclass(frozen=True)
class Written:
    rows: int
    statistics: dict[str, dict[str, str]]  # DuckDB's per-column statistics, keyed by the quoted name

    def nulls(self, name: str) -> int:
        return int(self.statistics[quote_ident(name)]["null_count"])


def write_parquet(con: duckdb.DuckDBPyConnection, relation: str, select: str, staged: Path) -> Written:
    """Write `SELECT select FROM relation` to `staged` (zstd, durable), with the writer's statistics.

    The statistics (`RETURN_STATS`) are gathered by the writer anyway; their null counts give a column's
    nullability without a pass of its own.
    """
    result = con.execute(
        f"COPY (SELECT {select} FROM {relation}) TO {quote_literal(str(staged))} "
        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, RETURN_STATS)"
    )
    fields = [d[0] for d in result.description]
    row = dict(zip(fields, result.fetchone(), strict=True))
    with open(staged, "rb") as f:
        os.fsync(f.fileno())
    return Written(int(row["count"]), row["column_statistics"] or {})
