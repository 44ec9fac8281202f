"""S3 going away mid-run: the run fails with a clear error, the catalog is unchanged, and a retry completes.

The outage is a TCP proxy on loopback in front of the moto server, switched off at each stage of an ingest
(moto keeps its objects in memory, so stopping it would lose the lake; cutting the network path does not).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dagster as dg
import pytest

from assets.ingest_assets import dataset_ingest
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.errors import StorageUnavailable
from lakehouse_pipelines.ingest.publish import ingest, publish_drop, register_drop
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import LakehouseSettings, LakeSettings
from resources.lake_resource import LakeResource

pytestmark = pytest.mark.s3

WORKERS = load_specs()["workers"]


class NetworkSwitch:
    """A loopback TCP proxy to `upstream` that can be cut (open connections reset, new ones closed at once)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.up = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for s in self._sockets:
                s.close()
            self._sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()


@pytest.fixture
def switch(s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkSwitch]:
    host, port = moto_endpoint.removeprefix("http://").split(":")
    proxy = NetworkSwitch((host, int(port)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def flaky_lake(switch: NetworkSwitch, s3_bucket: str, lake_home: LakeSettings, monkeypatch) -> Lake:
    monkeypatch.setenv("LAKEHOUSE_STORAGE", f"{s3_bucket}/lake")
    return Lake.open(LakehouseSettings().lake)


def consistent(lake: Lake) -> None:
    """Every object the current manifest names is in storage."""
    manifest = lake.catalog.get("workers")
    assert all(lake.storage.exists(o.key) for o in manifest.objects)
    assert manifest.row_count == sum(o.rows for o in manifest.objects)


@pytest.mark.parametrize("stage", ["hashing", "writing parquet", "publishing", "registering"])
def test_an_outage_at_any_stage_fails_clearly_and_a_retry_completes(
    stage, flaky_lake, switch, workers_csv, tmp_path
):
    ingest(flaky_lake, str(workers_csv), WORKERS)
    before = flaky_lake.catalog.get("workers")
    second = write_workers_csv(tmp_path / "second.csv", 300, seed=11)

    def cut_at(reached: str) -> None:
        if reached == stage:
            switch.cut()

    with pytest.raises(StorageUnavailable, match="S3 is unreachable") as failure:
        drop = publish_drop(flaky_lake, str(second), WORKERS, progress=cut_at)
        cut_at("registering")
        register_drop(flaky_lake, drop)
    assert "testing-secret" not in str(failure.value) and "AWS" not in str(failure.value)

    switch.restore()
    assert flaky_lake.catalog.get("workers") == before
    consistent(flaky_lake)
    retried = ingest(flaky_lake, str(second), WORKERS)
    assert (retried.manifest.version, retried.manifest.row_count) == (2, 2_300)
    consistent(flaky_lake)


def test_a_dagster_run_during_an_outage_fails_with_the_reason_and_the_rerun_ingests(
    flaky_lake, switch, workers_csv, s3_bucket, lake_home
):
    resources = {"lake": LakeResource(home=str(lake_home.home), storage=f"{s3_bucket}/lake")}
    config = {"ops": {"workers__ingest": {"config": {"sources": [str(workers_csv)]}}}}
    switch.cut()
    failed = dg.materialize(
        [dataset_ingest(WORKERS)], resources=resources, run_config=config, raise_on_error=False
    )
    assert not failed.success
    reasons = " ".join(str(e.event_specific_data.error) for e in failed.all_events if e.is_step_failure)
    assert "S3 is unreachable" in reasons
    switch.restore()
    assert flaky_lake.catalog.find("workers") is None

    rerun = dg.materialize([dataset_ingest(WORKERS)], resources=resources, run_config=config)
    assert rerun.success and flaky_lake.catalog.get("workers").row_count == 2_000
