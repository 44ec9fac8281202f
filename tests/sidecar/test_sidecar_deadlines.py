"""The deadline watchdog: one thread interrupts exactly the queries that outlive their time limit."""

from __future__ import annotations

import asyncio
import threading
import time

import duckdb
import httpx
import pyarrow as pa
import pytest

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.settings import SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from lakehouse_pipelines.sql import run as query
from lakehouse_pipelines.sql.deadlines import Deadlines
from lakehouse_pipelines.sql.run import QueryFailed, QueryTimeout
from lakehouse_pipelines.sql.views import ViewManager

SLOW = "SELECT count(*) FROM range(10000000000) t(a) WHERE a % 7 = 3"


def run_in_thread(cursor: duckdb.DuckDBPyConnection, sql: str) -> dict:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["rows"] = cursor.execute(sql).fetchall()
        except duckdb.InterruptException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_late_query_is_interrupted_and_disarmed_one_is_not():
    con = duckdb.connect()
    deadlines = Deadlines()
    slow, fast = con.cursor(), con.cursor()
    deadlines.arm(slow, 0.3)
    ticket = deadlines.arm(fast, 0.1)
    assert fast.execute("SELECT 42").fetchall() == [(42,)]
    deadlines.disarm(ticket)
    started = time.monotonic()
    outcome = run_in_thread(slow, SLOW)
    outcome["thread"].join(timeout=20)
    assert isinstance(outcome.get("error"), duckdb.InterruptException)
    assert time.monotonic() - started < 10
    # the disarmed cursor was never interrupted: it still runs queries after its deadline passed
    assert fast.execute("SELECT 1").fetchall() == [(1,)]


@pytest.mark.parametrize("order", [(0.2, 0.6), (0.6, 0.2)])
def test_each_cursor_is_interrupted_at_its_own_deadline(order):
    con = duckdb.connect()
    deadlines = Deadlines()
    started = time.monotonic()
    outcomes = []
    for timeout in order:
        cursor = con.cursor()
        deadlines.arm(cursor, timeout)
        outcomes.append((timeout, run_in_thread(cursor, SLOW)))
    for timeout, outcome in outcomes:
        outcome["thread"].join(timeout=20)
        assert isinstance(outcome.get("error"), duckdb.InterruptException), timeout
    assert time.monotonic() - started < 10


def test_a_cursor_closed_without_disarm_does_not_stop_the_watchdog():
    con = duckdb.connect()
    deadlines = Deadlines()
    closed = con.cursor()
    deadlines.arm(closed, 0.05)
    closed.close()  # a caller's bug: its interrupt() raises ConnectionException
    time.sleep(0.2)
    cursor = con.cursor()
    deadlines.arm(cursor, 0.2)
    outcome = run_in_thread(cursor, SLOW)
    outcome["thread"].join(timeout=20)
    assert isinstance(outcome.get("error"), duckdb.InterruptException)


def test_reused_cursors_carry_nothing_from_one_query_to_the_next(lake, workers_csv):
    """Cursors go back to a pool after a query; one that was interrupted, failed or had a hybrid relation
    registered is closed instead, so no deadline or relation reaches a later request."""

    ingest(lake, str(workers_csv), load_specs()["workers"])
    views = ViewManager(lake, threads=1, memory_tables_mb=64)
    try:
        views.refresh()
        first = query.run_json(views, "SELECT count(*) FROM workers", timeout=10, max_rows=10)
        assert query.run_json(views, "SELECT count(*) FROM workers", timeout=10, max_rows=10) == first
        with pytest.raises(QueryTimeout):
            query.run_json(views, SLOW, timeout=0.2, max_rows=10)
        time.sleep(0.3)  # past where a leftover deadline would land
        assert query.run_json(views, "SELECT 7", timeout=10, max_rows=10)["rows"] == [[7]]
        hits = pa.table({"worker_id": [1, 2]})
        joined = query.run_json(
            views, "SELECT count(*) FROM hits", timeout=10, max_rows=10, relations={"hits": hits}
        )
        assert joined["rows"] == [[2]]
        for _ in range(3):  # whichever cursor answers: the relation was on that request's cursor only
            with pytest.raises(QueryFailed, match="hits"):
                query.run_json(views, "SELECT count(*) FROM hits", timeout=10, max_rows=10)
    finally:
        views.close()


def test_a_borrowed_cursor_goes_back_after_success_and_is_closed_after_an_error(lake):
    views = ViewManager(lake, threads=1)
    try:
        with views.borrowed() as cursor:
            cursor.execute("SELECT 1")
        with pytest.raises(duckdb.CatalogException), views.borrowed() as again:
            assert again is cursor  # kept for the next query
            again.execute("SELECT * FROM nowhere")
        replacement = views.cursor()
        assert replacement is not cursor
        assert replacement.execute("SELECT 2").fetchone() == (2,)
        with pytest.raises(duckdb.ConnectionException):
            cursor.execute("SELECT 3")  # closed, not reused
    finally:
        views.close()


@pytest.mark.parametrize(("concurrency", "waits"), [(1, True), (2, False)])
def test_queries_past_the_concurrency_limit_wait_their_turn(lake, workers_csv, concurrency, waits):
    """`LAKEHOUSE_SQL_CONCURRENCY` queries run at once per worker: with 1, a fast query sent while a slow
    one runs is answered after the slow one stops (its 1 s deadline); with 2, at once."""

    ingest(lake, str(workers_csv), load_specs()["workers"])
    app = create_app(lake, SidecarSettings(query_timeout=1.0, concurrency=concurrency))

    async def slow_then_fast():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sidecar") as c:
            slow = asyncio.create_task(c.post("/sql", json={"sql": SLOW}))
            await asyncio.sleep(0.2)
            sent = time.monotonic()
            fast = await c.post("/sql", json={"sql": "SELECT 1 AS one"})
            waited = time.monotonic() - sent
            return await slow, fast, waited

    slow, fast, waited = asyncio.run(slow_then_fast())
    assert slow.status_code == 400 and "time limit" in slow.json()["error"]
    assert fast.status_code == 200 and fast.json()["rows"] == [[1]]
    assert (waited >= 0.5) is waits, waited
    app.state.views.close()
