"""Datasets served from memory (sql/memory_tables.py) answer exactly as the Parquet views do, follow the
manifest like the views, and stay on Parquet when they don't fit the budget."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.sql import run as query
from lakehouse_pipelines.sql.views import ViewManager

WORKERS = load_specs()["workers"]
QUERIES = [
    "SELECT * FROM workers",
    "SELECT * FROM workers WHERE worker_id = 1234",
    "SELECT * FROM workers WHERE worker_id IN (5, 77, 1999) ORDER BY worker_id",
    "SELECT count(*), count(DISTINCT state), sum(years_experience) FROM workers",
    "SELECT state, count(*) AS n, avg(hourly_rate) FROM workers GROUP BY state ORDER BY n DESC, state",
    "SELECT avg(hourly_rate), min(last_placed), max(reliability) FROM workers WHERE available",
    "SELECT * FROM workers ORDER BY last_placed DESC NULLS LAST, worker_id LIMIT 7",
    "SELECT zip, email, resume_text FROM workers WHERE zip LIKE '0%' ORDER BY worker_id LIMIT 20",
    "DESCRIBE workers",
    "SELECT count(*) FROM version('workers', 1)",
]


def answers(views: ViewManager) -> list[dict]:
    return [query.run_json(views, sql, timeout=10, max_rows=5_000) for sql in QUERIES]


def in_memory(views: ViewManager) -> set[str]:
    rows = (
        views.cursor()
        .execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'lakehouse_memory'")
        .fetchall()
    )
    return {r[0].rsplit("__v", 1)[0] for r in rows}


@pytest.fixture
def two_engines(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), WORKERS)
    plain = ViewManager(lake, threads=1)
    memory = ViewManager(lake, threads=1, memory_tables_mb=64)
    assert in_memory(memory) == set()  # start-up builds Parquet views and waits for no copy
    assert memory.refresh() == ["workers"] and plain.refresh() == []  # the refresh thread loads it
    yield lake, plain, memory
    plain.close()
    memory.close()


def test_memory_tables_answer_as_the_parquet_views(two_engines, tmp_path):
    lake, plain, memory = two_engines
    assert in_memory(memory) == {"workers"} and in_memory(plain) == set()
    assert answers(memory) == answers(plain)
    # a second drop: both engines follow the new manifest, and still agree
    ingest(lake, str(write_workers_csv(tmp_path / "more.csv", 300, first_id=10_000)), WORKERS)
    with reading(memory) as seen:  # the copy is replaced in one statement: old rows or new, never neither
        assert plain.refresh() == ["workers"] and memory.refresh() == ["workers"]
    assert seen <= {2_000, 2_300}
    again = answers(memory)
    assert again == answers(plain)
    assert again[3]["rows"][0][0] == 2_300


def test_a_dataset_over_the_budget_stays_on_parquet(lake: Lake, tmp_path):
    ingest(lake, str(write_workers_csv(tmp_path / "w.csv", 20_000)), WORKERS)  # ~1 MiB of Parquet
    tight = ViewManager(lake, threads=1, memory_tables_mb=1)  # a copy is estimated at 4x that
    try:
        tight.refresh()
        assert in_memory(tight) == set() and tight.memory.used == {}
        answer = query.run_json(tight, "SELECT count(*) FROM workers", timeout=10, max_rows=10)
        assert answer["rows"] == [[20_000]]
    finally:
        tight.close()


def test_the_name_is_the_table_itself_and_a_version_too_big_goes_back_to_parquet(lake: Lake, tmp_path):
    """No view in front of a memory table (the search path finds it); a later version over the budget gets
    its Parquet view before the old copy is dropped, and answers with the new rows."""
    ingest(lake, str(write_workers_csv(tmp_path / "small.csv", 500)), WORKERS)
    views = ViewManager(lake, threads=1, memory_tables_mb=2)
    try:
        views.refresh()
        assert in_memory(views) == {"workers"} and dataset_views(views) == set()
        ingest(lake, str(write_workers_csv(tmp_path / "big.csv", 20_000, first_id=1_000)), WORKERS)
        with reading(views) as seen:  # queries all through the switch: never "no such table"
            assert views.refresh() == ["workers"]
        assert in_memory(views) == set() and dataset_views(views) == {"workers"}
        assert seen and seen <= {500, 20_500}
        answer = query.run_json(views, "SELECT count(*) FROM workers", timeout=10, max_rows=10)
        assert answer["rows"] == [[20_500]]
    finally:
        views.close()


@contextmanager
def reading(views: ViewManager):
    """count(*) of workers in a loop on another thread while the block runs; yields the counts seen (an
    error in any query fails the test)."""
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                seen.add(
                    query.run_json(views, "SELECT count(*) FROM workers", timeout=10, max_rows=1)["rows"][0][
                        0
                    ]
                )
            except BaseException as exc:  # handed to the test
                errors.append(exc)
                return

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[0]


def dataset_views(views: ViewManager) -> set[str]:
    with views.borrowed() as cursor:
        rows = cursor.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {r[0] for r in rows if "@" not in r[0]}  # not the version views (workers@1, workers@+1)


def test_a_removed_dataset_leaves_no_memory_table(two_engines):
    lake, _, memory = two_engines
    assert memory.memory.used["workers"] > 0
    lake.storage.delete(lake.catalog.manifest_key("workers"))  # the dataset leaves the catalog
    assert memory.refresh() == ["workers"]
    assert in_memory(memory) == set() and "workers" not in memory.memory.used
