"""Search wired into the product: the code location carries each dataset's embeddings and vectors assets and
the embedder / vector store resources (EnvVar from the contract's variables); a drop materialized through
the chain is found by `POST /search` on a real sidecar process; an unchanged re-run embeds nothing; the
sidecar keeps answering while another process ingests, then sees the new rows; and a restart serves the same.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest

from assets.ingest_assets import dataset_ingest, ingest_run_config
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.sidecar.app import create_app
from tests.conftest import free_port, wait_for_port
from tests.search_support import materialize_search

WORKERS = load_specs()["workers"]
LAKEHOUSE = [sys.executable, "-c", "from lakehouse_pipelines.cli import app; app()"]
# The ingest job as the drop sensor launches it, then the search job as automation follows it, in a process
# of their own (the Dagster runs' process).
INGEST_RUN = """
import sys
from assets.definitions import build_definitions
from assets.ingest_assets import ingest_run_config
defs = build_definitions()
ingest = defs.resolve_job_def("workers_ingest").execute_in_process(run_config=ingest_run_config("workers", sys.argv[1:]))
embeddings = defs.resolve_job_def("workers_embeddings")
units = [embeddings.execute_in_process(partition_key=key).success for key in embeddings.partitions_def.get_partition_keys()]
vectors = defs.resolve_job_def("workers_vectors").execute_in_process()
sys.exit(0 if ingest.success and all(units) and vectors.success else 1)
"""
SEARCH_VARIABLES = (
    "LAKEHOUSE_EMBEDDER",
    "OLLAMA_HOST",
    "LAKEHOUSE_OLLAMA_MODEL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
)


@pytest.fixture
def search_env(lake_home, monkeypatch):
    """The embedded defaults: local model, Qdrant Edge under LAKEHOUSE_HOME."""
    for name in SEARCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return lake_home


def test_search_assets_follow_the_ingest_in_runs_of_their_own(search_env):
    from assets.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    embeddings, vectors = dg.AssetKey(["workers", "embeddings"]), dg.AssetKey(["workers", "vectors"])
    assert graph.get(embeddings).parent_keys == {dg.AssetKey(["workers", "manifest"])}
    assert graph.get(vectors).parent_keys == {embeddings}
    # A drop's run ends once the data is registered and checked; embeddings and vectors follow on their own.
    job = defs.resolve_job_def("workers_ingest")
    assert set(job.asset_layer.selected_asset_keys) == {
        dg.AssetKey(["workers", "parquet"]),
        dg.AssetKey(["workers", "manifest"]),
    }
    assert graph.get(embeddings).automation_condition is not None
    assert graph.get(vectors).automation_condition is not None
    assert graph.get(embeddings).partitions_def.get_partition_keys() == ["00", "01", "02", "03"]
    assert defs.resolve_job_def("workers_embeddings").partitions_def is not None
    assert set(defs.resolve_job_def("workers_vectors").asset_layer.selected_asset_keys) == {vectors}
    sensor = defs.resolve_sensor_def("search_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.build_resources(defs.resources) as resources:
        assert resources.embedder.get().model == "all-MiniLM-L6-v2"
        store = resources.vector_store.open(search_env.home)
        assert store.root == search_env.home / "vectors"


def test_search_resources_read_the_contract_variables_through_envvar(search_env, monkeypatch):
    from pydantic import ValidationError

    from lakehouse_pipelines.search.embedders import OllamaEmbedder
    from lakehouse_pipelines.search.vectors.server_store import ServerVectorStore
    from lakehouse_pipelines.settings import LakehouseSettings
    from resources import build_resources

    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "k-123")
    configured = build_resources(LakehouseSettings())
    assert configured["embedder"].kind == dg.EnvVar("LAKEHOUSE_EMBEDDER")
    assert configured["embedder"].ollama_model == "nomic-embed-text"  # unset: the default
    assert configured["vector_store"].qdrant_api_key == dg.EnvVar("QDRANT_API_KEY")
    with dg.build_resources(
        {"embedder": configured["embedder"], "vector_store": configured["vector_store"]}
    ) as res:
        embedder = res.embedder.get()
        assert isinstance(embedder, OllamaEmbedder)
        assert (embedder.model, embedder.host, embedder.document_prefix) == (
            "nomic-embed-text",
            "http://127.0.0.1:9",
            "search_document: ",
        )
        assert isinstance(res.vector_store.open(search_env.home), ServerVectorStore)
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "openai")
    with pytest.raises(ValidationError, match="lakehouse_embedder"):
        LakehouseSettings()


def test_local_runs_share_the_cores_among_the_runs_the_queue_allows(tmp_path, monkeypatch):
    """Units launched as local processes (dagster.yaml: 2 runs at a time) take cores / 2 encoder threads
    each; in-process runs and LAKEHOUSE_ENCODER_THREADS keep what they say."""
    from lakehouse_pipelines.search.onnx_encoder import default_threads
    from lakehouse_pipelines.settings import LakehouseSettings
    from resources import build_resources
    from resources.search_resources import EmbedderResource, local_run_threads

    queue = {"concurrency": {"runs": {"max_concurrent_runs": 2}}}
    with dg.instance_for_test(overrides=queue, temp_dir=str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        shared = max(1, default_threads() // 2)
        assert local_run_threads(instance) == shared
        with dg.build_resources({"embedder": EmbedderResource()}, instance=instance) as res:
            assert res.embedder.get().threads == shared
        with dg.build_resources({"embedder": EmbedderResource(threads=3)}, instance=instance) as res:
            assert res.embedder.get().threads == 3
    assert local_run_threads(dg.DagsterInstance.ephemeral()) is None  # in process: every core
    monkeypatch.setenv("LAKEHOUSE_ENCODER_THREADS", "5")
    monkeypatch.setenv("LAKEHOUSE_OLLAMA_CONCURRENCY", "8")
    configured = build_resources(LakehouseSettings())["embedder"]
    assert configured.threads == dg.EnvVar.int("LAKEHOUSE_ENCODER_THREADS")
    with dg.build_resources({"embedder": configured}) as res:  # int variables resolve to ints
        assert res.embedder.get().threads == 5
        assert res.embedder.ollama_concurrency == 8


# ------------------------------------------------------------------------------------- end to end


@contextmanager
def sidecar(home: Path) -> Iterator[httpx.Client]:
    """`lakehouse serve` on a free loopback port, in its own process group, stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [*LAKEHOUSE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_ACCESS_LOG": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def search(client: httpx.Client, query: str, **body) -> dict:
    response = client.post("/search", json={"dataset": "workers", "query": query, **body})
    assert response.status_code == 200, response.text
    return response.json()


def materialize_drop(drop: Path) -> dict[str, dict]:
    """parquet -> manifest, then each embedding unit, then vectors, as the runs automation starts."""
    from assets.definitions import build_definitions

    resources = build_definitions().resources
    dg.materialize(
        [dataset_ingest(WORKERS)], resources=resources, run_config=ingest_run_config("workers", [str(drop)])
    )
    return materialize_search(WORKERS, resources)


def test_a_materialized_drop_is_found_by_post_search_and_a_rerun_embeds_nothing(search_env, tmp_path):
    drop = write_workers_csv(tmp_path / "w1.csv", 100)
    first = materialize_drop(drop)
    assert first["embeddings"]["rows_embedded"] == 100
    assert (first["vectors"]["upserted"], first["vectors"]["points"]) == (100, 100)
    again = materialize_drop(drop)
    assert (again["embeddings"]["rows_embedded"], again["embeddings"]["rows_reused"]) == (
        0,
        100,
    )
    assert (again["vectors"]["upserted"], again["vectors"]["version"]) == (0, 1)

    async def scenario() -> list[httpx.Response]:
        app = create_app()  # everything from the environment, as `lakehouse serve` builds it
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
                return [
                    await client.post("/search", json={"dataset": "workers", "query": q, "k": 5, **extra})
                    for q, extra in [
                        ("forklift operator", {}),
                        ("dental hygienist", {}),
                        ("welder", {"filter": {"state": "TX"}}),
                        ("welder", {"filter": {"salary": 5}}),
                        ("welder", {"k": 0}),
                    ]
                ]

    forklift, dental, texas, bad_filter, bad_k = asyncio.run(scenario())
    hits = forklift.json()["hits"]
    assert [h["payload"]["role"] for h in hits].count("Forklift Operator") >= 4
    assert forklift.json()["confidence"]["level"] == "high" and dental.json()["confidence"]["level"] == "low"
    assert texas.json()["hits"] and {h["payload"]["state"] for h in texas.json()["hits"]} == {"TX"}
    assert (bad_filter.status_code, bad_k.status_code) == (400, 422)
    assert "salary" in bad_filter.json()["error"]


@pytest.mark.slow
def test_search_keeps_answering_while_another_process_ingests_and_survives_a_restart(search_env, tmp_path):
    home = search_env.home
    materialize_drop(write_workers_csv(tmp_path / "w1.csv", 100))
    newcomers = {"worker_id": {"gte": 1_001}}
    with sidecar(home) as client:
        assert search(client, "forklift operator", filter=newcomers)["hits"] == []

        # The next drop is ingested by the drop sensor's job in another process while searches keep coming.
        second_drop = write_workers_csv(tmp_path / "w2.csv", 100, seed=8, first_id=1_001)
        statuses: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(base_url=client.base_url, timeout=30) as own:
                while not stop.is_set():
                    body = {"dataset": "workers", "query": "electrician with industrial wiring", "k": 10}
                    statuses.append(own.post("/search", json=body).status_code)

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        try:
            run = subprocess.run(
                [sys.executable, "-c", INGEST_RUN, str(second_drop)],
                env={**os.environ, "LAKEHOUSE_HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            stop.set()
            searcher.join()
        assert run.returncode == 0, run.stderr[-2_000:]
        assert len(statuses) > 20 and set(statuses) == {200}

        # The sidecar swaps to the published version within its refresh interval (0.5 s).
        deadline = time.monotonic() + 10
        while not (new := search(client, "forklift operator", k=10, filter=newcomers))["hits"]:
            assert time.monotonic() < deadline, "the sidecar never saw the new version"
            time.sleep(0.2)
        assert all(h["id"] >= 1_001 for h in new["hits"])
        before_restart = search(client, "TIG welder who reads blueprints", k=10)

    with sidecar(home) as restarted:
        after_restart = search(restarted, "TIG welder who reads blueprints", k=10)
    assert len(before_restart["hits"]) == 10
    assert [(h["id"], h["score"]) for h in after_restart["hits"]] == [
        (h["id"], h["score"]) for h in before_restart["hits"]
    ]
