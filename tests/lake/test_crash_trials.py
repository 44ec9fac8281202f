"""kill -9 at random points of ingest, register, embedding and vector upsert, on both storage backends.

After every kill: no partial object is visible, the catalog matches storage, the embeddings pointer names
objects that exist, the published collection opens; then a re-run completes with exact counts. 24 trials of
the whole chain with the real model take minutes, so this is a slow test (run with `pytest -m slow`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse_pipelines.errors import NotFound
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.embeddings_build import current_embeddings
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.settings import LakehouseSettings
from tests.lake.test_consistency import assert_consistent

pytestmark = pytest.mark.slow

STAGES = ("ingest", "register", "embed", "upsert")
TRIALS_PER_STAGE = 3
ROWS_PER_DROP = 60
REPO = Path(__file__).resolve().parents[2]


def run_chain(drops: list[Path], kill_after: str | None = None, delay: float = 0.0) -> int:
    """Run the chain; with `kill_after`, SIGKILL its process group `delay` seconds after that stage starts."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.chain_worker", *map(str, drops)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for line in worker.stdout:
            if line.strip() == kill_after:
                time.sleep(delay)
                os.killpg(worker.pid, signal.SIGKILL)
                break
        return worker.wait(timeout=300)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.stdout.close()


def assert_search_state_consistent(lake: Lake, home: Path) -> None:
    manifest = lake.catalog.find("workers")
    try:
        pointer = current_embeddings(lake, "workers")
    except NotFound:
        pointer = None
    if pointer is not None:
        assert lake.storage.exists(pointer.key) and manifest and pointer.manifest_version <= manifest.version
    store = EdgeVectorStore(home / "vectors")
    try:
        info = store.info("workers")
        assert info is None or (pointer is not None and info.points <= manifest.row_count)
    finally:
        store.close()


@pytest.fixture(scope="module")
def drops(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("crash-drops")
    return [
        write_workers_csv(folder / f"drop{i}.csv", ROWS_PER_DROP, seed=40 + i, first_id=1 + i * ROWS_PER_DROP)
        for i in range(2)
    ]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_kill_9_anywhere_in_the_chain_then_a_rerun_completes(backend, drops, tmp_path, monkeypatch, request):
    storage_root = request.getfixturevalue("s3_bucket") if backend == "s3" else None
    rng = random.Random(f"crash-{backend}")
    for trial, stage in enumerate(s for s in STAGES for _ in range(TRIALS_PER_STAGE)):
        home = tmp_path / f"trial{trial}"
        monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
        monkeypatch.setenv(
            "LAKEHOUSE_STORAGE", f"{storage_root}/trial{trial}" if storage_root else str(home / "lake")
        )
        lake = Lake.open(LakehouseSettings().lake)

        delay = rng.uniform(0.0, 1.5)
        assert run_chain(drops, kill_after=stage, delay=delay) == -signal.SIGKILL, (stage, delay)
        assert_consistent(lake)
        assert_search_state_consistent(lake, home)

        assert run_chain(drops) == 0, f"re-run after a kill {delay:.2f}s into {stage} failed"
        rows = ROWS_PER_DROP * len(drops)
        assert lake.catalog.get("workers").row_count == rows
        assert current_embeddings(lake, "workers").rows == rows
        store = EdgeVectorStore(home / "vectors")
        try:
            assert store.info("workers").points == rows
        finally:
            store.close()
