"""Type inference from every row, by the contract's rules, and the casts that apply the result.

A column's type is the first of bool, int64, float64, date, timestamp that every non-empty value fits, else
string. DuckDB evaluates the rules as vectorised SQL over its streaming CSV reader. A cheap pass over the
first rows only *eliminates* candidates (a value that fails a type there fails it for the file), so each
column's first survivor is a guess that only the rest of the file can overturn. Two ways to check it: a
full pass over the few survivors per column (`infer_schema`), or casts that fail at the first value the
guess does not fit (`checked_cast_sql`), which verify while they convert. Neither decides from a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.lake.fingerprint import CANDIDATE_TYPES, Column

SAMPLE_ROWS = 20_000
PROBE_ROWS = 1_000
MAX_CHECKS_PER_PASS = 160
# What a checked cast raises (DuckDB's `error()`): the guess is wrong, not the file.
GUESS_MISSED = "lakehouse ingest: a value past the sample does not fit its column's guessed type"

# The contract's shapes, in RE2 syntax (DuckDB). A number's integer part is `0` or starts with 1-9, so
# zip codes like 00501 stay strings; floats are decimal or exponent notation and include plain integers.
INT_RE = r"[+-]?(0|[1-9][0-9]*)"
FLOAT_RE = r"[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# Only what names one instant exactly; DuckDB's cast is laxer and would store something else. It takes any
# `±HH:MM` (+25:00, +99:99, +05:60 become other instants), hour 24 (the next day) and any number of
# fractional digits (cut to microseconds). So: hours 00-23, minutes and seconds 00-59 (DuckDB refuses a
# leap second 60 anyway), at most 6 fractional digits, real UTC offsets from -12:00 to +14:00 (or Z).
# Month 13 and Feb 30 pass the shape and fail the cast; anything else is a string, kept verbatim.
TIME_RE = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
OFFSET_RE = r"(Z|\+(0[0-9]|1[0-3]):[0-5][0-9]|\+14:00|-(0[0-9]|1[01]):[0-5][0-9]|-12:00)"
TIMESTAMP_RE = f"{DATE_RE}[T ]{TIME_RE}{OFFSET_RE}?"
ZONE_RE = f"{OFFSET_RE}$"
# Years 1-9999, as instants in UTC: DuckDB reads year 0000 as 1 BC and 9999-12-31T23:59-12:00 is in year
# 10000, and neither fits the datetimes of Python and Arrow that read the lake (OverflowError).
DATE_RANGE = "BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'"
INSTANT_RANGE = "BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"


def _value(name: str) -> str:
    """A cell as SQL: empty cells, quoted or not, are null."""
    return f"NULLIF({quote_ident(name)}, '')"


def _timestamp_text(v: str) -> str:
    # DuckDB's cast wants seconds whenever a zone follows; `HH:MM` alone means `HH:MM:00`.
    return f"regexp_replace({v}, '^({DATE_RE})[T ]([0-9]{{2}}:[0-9]{{2}}){OFFSET_RE}?$', '\\1 \\2:00\\3')"


def _fits(logical_type: str, v: str) -> str:
    """SQL that is true when non-null text `v` fits `logical_type` (shape, then range).

    CASE, not AND: DuckDB evaluates only the matching rows' casts, which keeps a string column cheap.
    """
    shape, cast = {
        "bool": (None, f"lower({v}) IN ('true', 'false')"),
        "int64": (INT_RE, f"TRY_CAST({v} AS BIGINT) IS NOT NULL"),
        "float64": (FLOAT_RE, f"isfinite(TRY_CAST({v} AS DOUBLE))"),
        "date": (DATE_RE, f"TRY_CAST({v} AS DATE) {DATE_RANGE}"),
        "timestamp": (TIMESTAMP_RE, f"TRY_CAST({_timestamp_text(v)} AS TIMESTAMPTZ) {INSTANT_RANGE}"),
    }[logical_type]
    if shape is None:
        return cast
    return f"CASE WHEN regexp_full_match({v}, '{shape}') THEN {cast} ELSE false END"


@dataclass(frozen=True)
class InferredSchema:
    columns: tuple[Column, ...]
    rows: int
    zoned: frozenset[str]  # timestamp columns with a UTC offset somewhere: stored as UTC instants


@dataclass(frozen=True)
class _Evidence:
    """What one pass learned about a column."""

    fits: tuple[str, ...]  # candidate types every non-empty value fits, in contract order
    values: int  # non-empty cells
    nulls: bool
    zoned: bool


@dataclass(frozen=True)
class SchemaGuess:
    """What the sample pass learned: the schema itself when the sample was the whole file (`exact`), else
    each column's first type no sampled value ruled out (a column empty so far: `string`, kept empty)."""

    schema: InferredSchema
    exact: bool
    evidence: dict[str, _Evidence]


def infer_schema(
    con: duckdb.DuckDBPyConnection, relation: str, names: list[str], sample_rows: int = SAMPLE_ROWS
) -> InferredSchema:
    """Infer every column's logical type from every row of `relation` (text columns `names`)."""
    guess = guess_schema(con, relation, names, sample_rows)
    return guess.schema if guess.exact else verify_guess(con, relation, guess)


def guess_schema(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    names: list[str],
    sample_rows: int = SAMPLE_ROWS,
    probe_rows: int = PROBE_ROWS,
) -> SchemaGuess:
    """Check every candidate type on the first `sample_rows` rows of `relation` only.

    The first `probe_rows` rows rule out most candidates cheaply (text columns fail every type at once), so
    the sample checks only what survives them: the same survivors as checking everything on the sample.
    """
    candidates = {name: CANDIDATE_TYPES for name in names}
    for limit in sorted({min(probe_rows, sample_rows), sample_rows}):
        rows, evidence = _scan(con, f"(SELECT * FROM {relation} LIMIT {limit})", candidates)
        if rows < limit:
            return SchemaGuess(_schema(rows, evidence), exact=True, evidence=evidence)
        candidates = {name: e.fits for name, e in evidence.items()}
    return SchemaGuess(_schema(rows, evidence), exact=False, evidence=evidence)


def verify_guess(con: duckdb.DuckDBPyConnection, relation: str, guess: SchemaGuess) -> InferredSchema:
    """The schema from every row: one pass checking each column's surviving candidates."""
    rows, evidence = _scan(con, relation, {name: e.fits for name, e in guess.evidence.items()})
    return _schema(rows, evidence)


def _schema(rows: int, evidence: dict[str, _Evidence]) -> InferredSchema:
    columns = tuple(
        Column(name, e.fits[0] if e.values and e.fits else "string", e.nulls) for name, e in evidence.items()
    )
    zoned = frozenset(c.name for c in columns if c.type == "timestamp" and evidence[c.name].zoned)
    return InferredSchema(columns=columns, rows=rows, zoned=zoned)


def _scan(
    con: duckdb.DuckDBPyConnection, relation: str, candidates: dict[str, tuple[str, ...]]
) -> tuple[int, dict[str, _Evidence]]:
    """Check each column's remaining candidate types, in as few aggregate passes over `relation` as planning allows.

    DuckDB's planning time grows with the square of a SELECT list's length (250 columns x 7 checks: 4 s to
    plan, 0.01 s to run), so wide files are checked a batch of columns per pass.
    """
    rows, evidence, batch, size = 0, {}, {}, 0
    for name, types in candidates.items():
        batch[name] = types
        size += len(types) + 2
        if size >= MAX_CHECKS_PER_PASS:
            rows, found = _scan_batch(con, relation, batch)
            evidence |= found
            batch, size = {}, 0
    if batch or not candidates:
        rows, found = _scan_batch(con, relation, batch)
        evidence |= found
    return rows, evidence


def _scan_batch(
    con: duckdb.DuckDBPyConnection, relation: str, candidates: dict[str, tuple[str, ...]]
) -> tuple[int, dict[str, _Evidence]]:
    """One aggregate pass over `relation` checking the given columns' candidate types."""
    selects = ["count(*)"]
    for name, types in candidates.items():
        v = _value(name)
        selects.append(f"count({v})")
        selects += [f"bool_and({v} IS NULL OR coalesce({_fits(t, v)}, false))" for t in types]
        if "timestamp" in types:
            selects.append(f"coalesce(bool_or(regexp_matches({v}, '{ZONE_RE}')), false)")
    values = iter(con.execute(f"SELECT {', '.join(selects)} FROM {relation}").fetchone())
    rows = next(values)
    evidence = {}
    for name, types in candidates.items():
        present = next(values)
        fits = tuple(t for t in types if next(values) is not False)
        zoned = bool(next(values)) if "timestamp" in types else False
        evidence[name] = _Evidence(fits=fits, values=present, nulls=present < rows, zoned=zoned)
    return rows, evidence


def fits_sql(logical_type: str, name: str) -> str:
    """SQL that is true when text column `name` is empty or fits `logical_type`: the rule inference applies
    to every value (record validation checks a record's field with it). Any text fits `string`."""
    if logical_type == "string":
        return "true"
    v = _value(name)
    return f"({v} IS NULL OR coalesce({_fits(logical_type, v)}, false))"


def cast_column_sql(column: Column, zoned: bool) -> str:
    """SQL of text column `column.name` cast to its logical type, as ingest writes it (`zoned`: as UTC)."""
    return _cast(column, zoned)


def cast_sql(schema: InferredSchema) -> str:
    """The SELECT list that turns the text columns into their inferred types."""
    return ", ".join(f"{_cast(c, c.name in schema.zoned)} AS {quote_ident(c.name)}" for c in schema.columns)


def checked_cast_sql(guess: SchemaGuess) -> str:
    """The SELECT list that casts to the guessed types and raises GUESS_MISSED at the first value that does
    not fit its column's guess by the inference rules.

    The sample ruled out every type before each column's guess, so a file whose values all fit their
    guesses has exactly the schema a full pass would infer, and these casts write what `cast_sql` of that
    schema writes. A guessed `string` column with values takes anything; one empty so far must stay empty;
    a naive timestamp guess takes no value with a UTC offset (that would make the column zoned).
    """
    schema = guess.schema
    return ", ".join(
        f"{_checked_cast(c, guess.evidence[c.name].values > 0, c.name in schema.zoned)} AS {quote_ident(c.name)}"
        for c in schema.columns
    )


def _checked_cast(column: Column, seen: bool, zoned: bool) -> str:
    v = _value(column.name)
    if column.type == "string":
        if seen:
            return _cast(column, zoned)
        fits = f"{v} IS NULL"
    else:
        fits = fits_sql(column.type, column.name)
    if column.type == "timestamp" and not zoned:
        fits += f" AND NOT coalesce(regexp_matches({v}, '{ZONE_RE}'), false)"
    return f"CASE WHEN {fits} THEN {_cast(column, zoned)} ELSE error({quote_literal(GUESS_MISSED)}) END"


def _cast(column: Column, zoned: bool) -> str:
    v = _value(column.name)
    return {
        "string": v,
        "bool": f"lower({v}) = 'true'",
        "int64": f"CAST({v} AS BIGINT)",
        "float64": f"CAST({v} AS DOUBLE)",
        "date": f"CAST({v} AS DATE)",
        "timestamp": f"CAST({_timestamp_text(v)} AS {'TIMESTAMPTZ' if zoned else 'TIMESTAMP'})",
    }[column.type]
