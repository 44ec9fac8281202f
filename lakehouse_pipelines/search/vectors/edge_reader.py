"""Reading a Qdrant Edge collection: the newest published version of a dataset, swapped when CURRENT changes.

A reader opens the newest version under that version's lock (or a private copy if the lock is taken), and
swaps to a newer one when CURRENT changes: the new version opens in a background thread while queries keep
running on the old one, and in-flight queries finish on the handle they started with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from lakehouse_pipelines.errors import NotFound

log = logging.getLogger(__name__)

READER_REFRESH_SECONDS = 0.5


class EdgeHandle:
    """One opened version, closed once it is retired and its last query has returned."""

    def __init__(self, shard, version: int, dim: int, lock: FileLock | None, private: Path | None):
        self.shard, self.version, self.dim = shard, version, dim
        self._lock, self._private = lock, private
        self._users = 0
        self._retired = False
        self._guard = threading.Lock()

    def enter(self) -> None:
        with self._guard:
            self._users += 1

    def leave(self) -> None:
        with self._guard:
            self._users -= 1
            done = self._retired and self._users == 0
        if done:
            self._close()

    def retire(self) -> None:
        with self._guard:
            self._retired = True
            done = self._users == 0
        if done:
            self._close()

    def _close(self) -> None:
        self.shard.close()
        if self._lock is not None:
            self._lock.release()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)


class EdgeReader:
    """The newest published version of one dataset, swapped when CURRENT changes.

    The first version opens on the first query; later ones open in a background thread (a private copy can
    take seconds) while queries keep running on the version already open, which is retired once the new
    one is in place. A version that fails to open leaves the old one serving and is retried.
    """

    def __init__(self, base: Path, dataset: str, search_threads: int | None = 1):
        self.base = base
        self.dataset = dataset
        self.search_threads = search_threads
        self._handle: EdgeHandle | None = None
        self._checked = 0.0
        self._stamp: tuple[int, int] | None = None
        self._opening = False
        self._closed = False
        self._swap = threading.Lock()

    @property
    def is_open(self) -> bool:
        """A version is open: a query waits for no load or copy (a newer one opens in the background)."""
        return self._handle is not None

    @contextlib.contextmanager
    def shard(self) -> Iterator[tuple[Any, int]]:
        handle = self._current()
        try:
            yield handle.shard, handle.dim
        finally:
            handle.leave()

    def _current(self) -> EdgeHandle:
        with self._swap:
            now = time.monotonic()
            if self._handle is None or (not self._opening and now - self._checked >= READER_REFRESH_SECONDS):
                self._checked = now
                wanted = self._newer_version()
                if wanted is not None and self._handle is None:
                    self._handle = self._open(*wanted)
                elif wanted is not None:
                    self._opening = True
                    threading.Thread(target=self._open_in_background, args=wanted, daemon=True).start()
            if self._handle is None:
                raise NotFound(
                    f"dataset {self.dataset!r} has no search index yet: materialize {self.dataset}/vectors"
                )
            self._handle.enter()
            return self._handle

    def _newer_version(self) -> tuple[int, int] | None:
        """(version, dim) of CURRENT when it names another version than the one open; stat-cheap otherwise."""
        try:
            stat = (self.base / "CURRENT").stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return None
        current = read_current(self.base)
        self._stamp = stamp
        if current is None or (self._handle is not None and self._handle.version == current["version"]):
            return None
        return current["version"], current["dim"]

    def _open_in_background(self, version: int, dim: int) -> None:
        try:
            fresh = self._open(version, dim)
        except Exception as exc:  # keep serving the open version; CURRENT is read again next refresh
            log.warning(
                "could not open %s version %d (%s); still serving the previous one",
                self.dataset,
                version,
                exc,
            )
            fresh = None
        with self._swap:
            self._opening = False
            if fresh is None:
                self._stamp = None
                return
            if self._closed:
                fresh.retire()
                return
            old, self._handle = self._handle, fresh
        if old is not None:
            old.retire()

    def _open(self, version: int, dim: int) -> EdgeHandle:
        from qdrant_edge import EdgeShard

        directory = self.base / "versions" / f"{version:08d}"
        lock = FileLock(str(directory) + ".lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:  # another process serves this version: never open a held shard, read a copy
            private = self.base / "readers" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            shutil.copytree(directory, private)
            set_search_threads(private, self.search_threads)
            return EdgeHandle(EdgeShard.load(str(private)), version, dim, None, private)
        try:
            set_search_threads(directory, self.search_threads)  # under its lock: no one else opens it
            return EdgeHandle(EdgeShard.load(str(directory)), version, dim, lock, None)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        with self._swap:
            self._closed = True
            if self._handle is not None:
                self._handle.retire()
                self._handle = None
                self._stamp = None


def set_search_threads(directory: Path, threads: int | None) -> None:
    """The shard's query-time thread pool, in its config (read by `EdgeShard.load`), replaced atomically.

    By default Edge gives every shard a pool of search threads (8 here, on 2 cores) and a query waits, GIL
    held, while the pool searches the segments: under load that pool spent as much CPU again as the query
    itself (thread wake-ups on oversubscribed cores). With 1, Edge searches on the calling thread: 0.93 ms
    of CPU per `/search` instead of 1.23 at 200K points (bench/results/serve.md). None leaves the file as is.
    """
    if threads is None:
        return
    path = directory / "edge_config.json"
    config = json.loads(path.read_text())
    if config.get("max_search_threads") == threads:
        return
    config["max_search_threads"] = threads
    staged = path.with_name(f".edge_config-{uuid.uuid4().hex}.json")
    staged.write_text(json.dumps(config))
    os.replace(staged, path)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_current(base: Path) -> dict | None:
    try:
        return json.loads((base / "CURRENT").read_text())
    except FileNotFoundError:
        return None
