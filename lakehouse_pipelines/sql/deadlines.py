"""Query deadlines: one watchdog thread interrupts every cursor that outlives its time limit.

A `threading.Timer` per query costs a thread start per request (0.2-1 ms on 2 busy cores, most of the
sidecar's own overhead on a 1 ms query); a heap of deadlines served by one thread costs a push and a pop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

import duckdb

log = logging.getLogger(__name__)


class Deadlines:
    """Arm a deadline for a cursor, disarm it when the query is done; late cursors get `interrupt()`."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int]] = []  # (deadline, ticket), earliest first
        self._armed: dict[int, duckdb.DuckDBPyConnection] = {}  # disarming drops the cursor at once
        self._tickets = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, cursor: duckdb.DuckDBPyConnection, timeout: float) -> int:
        """Interrupt `cursor` in `timeout` seconds unless `disarm(ticket)` comes first."""
        ticket = next(self._tickets)
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + timeout, ticket))
            self._armed[ticket] = cursor
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="lakehouse-sql-deadlines", daemon=True
                )
                self._thread.start()
            if self._heap[0][1] == ticket:  # a new earliest deadline: the watchdog must wake sooner
                self._wake.notify()
        return ticket

    def disarm(self, ticket: int) -> bool:
        """The query finished (or failed): never interrupt its cursor. Call before closing or reusing the
        cursor. False: the deadline had passed and the cursor was interrupted."""
        with self._wake:
            return self._armed.pop(ticket, None) is not None

    def _watch(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, ticket = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._heap)
                cursor = self._armed.pop(ticket)
                # Under the lock: disarm() (and so the cursor's close) waits until the interrupt is sent.
                try:
                    cursor.interrupt()
                except duckdb.Error as exc:  # e.g. closed without disarm: the watchdog must outlive it
                    log.warning("could not interrupt a query past its deadline: %s", exc)
