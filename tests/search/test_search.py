"""Semantic search on generated workers data through the real model and the real Edge index: role queries
find that role, filters hold, a query with no real match is visibly low-confidence; and `POST /search` over
HTTP: the contract's shape and errors, the query-embedding cache, and an event loop never blocked by a search.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.embeddings_build import embed_dataset
from lakehouse_pipelines.search.indexing import index_dataset
from lakehouse_pipelines.search.service import BadSearch, SearchService, parse_filter
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings
from lakehouse_pipelines.settings import LakeSettings
from lakehouse_pipelines.sidecar.routes_search import router
from tests.search_support import local_embedder

WORKERS = load_specs()["workers"]
ROWS = 300


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> SearchService:
    """300 generated workers, embedded by the local model and indexed in Qdrant Edge, once per module."""
    home = tmp_path_factory.mktemp("search-home")
    lake = Lake.open(LakeSettings.under(home))
    ingest(lake, str(write_workers_csv(home / "workers.csv", ROWS)), WORKERS)
    embedder = local_embedder()
    embed_dataset(lake, WORKERS, embedder)
    store = EdgeVectorStore(home / "vectors", HnswSettings(max_indexing_threads=2, indexing_threshold_kb=100))
    index_dataset(lake, WORKERS, store)
    yield SearchService(store, embedder)
    store.close()


@pytest.mark.parametrize(
    ("query", "role"),
    [
        ("electrician with industrial wiring", "Electrician"),
        ("forklift operator", "Forklift Operator"),
        ("TIG welder who reads blueprints", "Welder"),
        ("forklift driver OSHA-30 certified, night shift, Aurora IL", "Forklift Operator"),
    ],
)
def test_role_queries_return_mostly_that_role(service, query, role):
    result = service.search("workers", query, k=5)
    roles = Counter(h.payload["role"] for h in result.hits)
    assert roles[role] >= 4, roles
    assert result.confidence["level"] == "high"


def test_a_state_filter_returns_only_that_state(service):
    result = service.search("workers", "electrician with industrial wiring", k=10, filter={"state": "OH"})
    assert len(result.hits) == 10
    assert {h.payload["state"] for h in result.hits} == {"OH"}
    ohio_electricians = service.search(
        "workers", "electrician", k=100, filter={"state": "OH", "role": "Electrician"}
    )
    first = min(len(ohio_electricians.hits), 10)
    assert first >= 1
    assert {h.payload["role"] for h in result.hits[:first]} == {"Electrician"}  # the role still ranks first


def test_ranges_lists_and_booleans_filter_too(service):
    result = service.search(
        "workers",
        "welder",
        k=10,
        filter={"hourly_rate": {"gte": 20, "lt": 45}, "available": True, "role": ["Welder", "Electrician"]},
    )
    assert result.hits
    for hit in result.hits:
        assert 20 <= hit.payload["hourly_rate"] < 45
        assert hit.payload["available"] is True and hit.payload["role"] in ("Welder", "Electrician")


def test_an_absurd_query_is_visibly_low_confidence(service):
    real = service.search("workers", "forklift operator", k=5)
    absurd = service.search("workers", "dental hygienist", k=5)
    assert len(absurd.hits) == 5  # nearest neighbours always exist...
    assert absurd.confidence["level"] == "low"  # ...but the response says they are not a match
    assert absurd.confidence["score"] < 0.5 <= real.confidence["score"]
    assert real.hits[0].score - absurd.hits[0].score > 0.15
    assert all(absurd.to_dict()["hits"][i]["match"] == "low" for i in range(5))


def test_query_embeddings_are_cached(service):
    first = service.search("workers", "quality inspector with CMM experience", k=3)
    second = service.search("workers", "quality inspector with CMM experience", k=3)
    assert (first.embedding_cached, second.embedding_cached) == (False, True)
    assert [h.id for h in first.hits] == [h.id for h in second.hits]


@pytest.mark.parametrize(
    ("bad_filter", "message"),
    [
        ({"resume_text": "x"}, "cannot filter on 'resume_text'"),
        ({"hourly_rate": 20.5}, "use a range"),
        ({"hourly_rate": {"between": [1, 2]}}, "gt, gte, lt, lte"),
        ({"state": 5}, "not a keyword value"),
        ({"available": "yes"}, "not a bool value"),
        ({"role": []}, "give 1 to"),
        ("state=IL", "must be an object"),
    ],
)
def test_bad_filters_are_rejected_naming_the_column(bad_filter, message):
    types = {"state": "keyword", "hourly_rate": "float", "available": "bool", "role": "keyword"}
    with pytest.raises(BadSearch, match=message):
        parse_filter(bad_filter, types)


# ---------------------------------------------------------------------------------------------- HTTP


def app_for(service) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.search = service

    @app.get("/ping")
    async def ping():
        return {"ok": True}

    return app


def post(app, body):
    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
            return await client.post("/search", json=body)

    return asyncio.run(call())


def test_post_search_returns_hits_with_id_score_payload_and_confidence(service):
    response = post(app_for(service), {"dataset": "workers", "query": "forklift operator", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert len(body["hits"]) == 3
    assert set(body["hits"][0]) >= {"id", "score", "payload"}
    assert body["hits"][0]["payload"]["role"] == "Forklift Operator"
    assert body["hits"][0]["score"] >= body["hits"][1]["score"] >= body["hits"][2]["score"]
    assert body["confidence"]["level"] == "high" and body["model"] == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"dataset": "nope", "query": "welder"}, 404),
        ({"dataset": "Not A Name!", "query": "welder"}, 404),
        ({"dataset": "workers", "query": ""}, 422),
        ({"dataset": "workers", "query": "welder", "k": 0}, 422),
        ({"dataset": "workers", "query": "welder", "k": 10_000}, 422),
        ({"dataset": "workers", "query": "welder", "ef": 0}, 422),
        ({"dataset": "workers", "query": "welder", "filter": {"resume_text": "x"}}, 400),
        ({"dataset": "workers", "query": "   "}, 400),
        ({"dataset": "workers"}, 422),
    ],
)
def test_post_search_errors_follow_the_contract(service, body, status):
    response = post(app_for(service), body)
    assert response.status_code == status
    payload = response.json()
    assert "error" in payload or "detail" in payload
    assert "Traceback" not in response.text


class SlowEmbedder:
    """The real model, one second slower per query: long enough to see whether the event loop waits."""

    def __init__(self, inner):
        self.inner = inner
        self.model, self.document_prefix, self.query_prefix = inner.model, "", ""

    @property
    def dim(self):
        return self.inner.dim

    def embed_documents(self, texts):
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        time.sleep(1.0)
        return self.inner.embed_query(text)


def test_a_slow_search_never_blocks_the_event_loop(service):
    app = app_for(SearchService(service.store, SlowEmbedder(service.embedder)))

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
            search = asyncio.create_task(
                client.post("/search", json={"dataset": "workers", "query": "welder"})
            )
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            ping = await client.get("/ping")
            ping_seconds = time.perf_counter() - started
            return ping, ping_seconds, await search, search.done()

    ping, ping_seconds, searched, _ = asyncio.run(scenario())
    assert ping.status_code == 200 and searched.status_code == 200
    assert ping_seconds < 0.5  # answered while the search was still embedding


def test_the_sidecar_app_factory_serves_search(service, tmp_path):
    """`create_app` includes the search router and serves the SearchService it is given on app.state."""
    from lakehouse_pipelines.sidecar.app import create_app

    lake = Lake.open(LakeSettings.under(tmp_path))
    app = create_app(lake, search=service)
    assert app.state.search is service
    ok = post(app, {"dataset": "workers", "query": "cnc machinist", "k": 2, "filter": {"state": "TX"}})
    assert ok.status_code == 200 and {h["payload"]["state"] for h in ok.json()["hits"]} == {"TX"}
    assert post(app, {"dataset": "ghosts", "query": "cnc machinist"}).status_code == 404


class CountingEmbedder:
    """The module's embedder, counting query embeddings; `fail` makes every call raise."""

    def __init__(self, inner, fail: bool = False):
        self.inner, self.fail = inner, fail
        self.model, self.dim = inner.model, inner.dim
        self.queries = 0

    def embed_documents(self, texts):
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        self.queries += 1
        if self.fail:
            raise LakehouseError("embedder down")
        return self.inner.embed_query(text)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_warm_up_opens_the_model_and_every_collection_before_the_first_search(service):
    store = EdgeVectorStore(service.store.root)
    fresh = SearchService(store, CountingEmbedder(service.embedder))
    assert fresh.readiness == "loading" and not store._readers
    fresh.start_warming(interval=0.05)
    try:
        wait_for(lambda: fresh.readiness == "ready")
        assert fresh.embedder.queries == 1  # the model ran once, off any request
        assert store._readers["workers"]._handle is not None  # the index is open
        time.sleep(0.2)  # later rounds find nothing new to open and never run the model again
        assert fresh.embedder.queries == 1
        assert fresh.search("workers", "forklift operator", k=3).hits
    finally:
        fresh.close()
    assert fresh._warmer is None


def test_warm_up_without_collections_leaves_the_model_unloaded(tmp_path, service):
    fresh = SearchService(EdgeVectorStore(tmp_path / "vectors"), CountingEmbedder(service.embedder))
    assert fresh.warm() == [] and fresh.readiness == "ready" and fresh.embedder.queries == 0
    fresh.close()


def test_a_failed_warm_up_is_reported_and_search_still_answers_errors(service, caplog):
    fresh = SearchService(EdgeVectorStore(service.store.root), CountingEmbedder(service.embedder, fail=True))
    fresh.start_warming(interval=0.05)
    try:
        wait_for(lambda: fresh.readiness == "unavailable")
        assert "search warm-up failed: embedder down" in caplog.text
    finally:
        fresh.close()


def test_health_says_when_search_is_ready(service, tmp_path):
    from fastapi.testclient import TestClient

    from lakehouse_pipelines.sidecar.app import create_app

    fresh = SearchService(EdgeVectorStore(service.store.root), CountingEmbedder(service.embedder))
    with TestClient(create_app(Lake.open(LakeSettings.under(tmp_path)), search=fresh)) as client:
        assert client.get("/health").json()["search"] in ("loading", "ready")
        wait_for(lambda: client.get("/health").json()["search"] == "ready")
        assert fresh.embedder.queries == 1
        assert client.post("/search", json={"dataset": "workers", "query": "welder"}).status_code == 200


def test_an_immediate_search_answers_as_the_threaded_one(service):
    """The event-loop path (cached embedding, open Edge index) gives the threaded path's answer."""
    store = EdgeVectorStore(service.store.root)
    fresh = SearchService(store, service.embedder)
    try:
        assert fresh.search_if_immediate("workers", "welder", k=5) is None  # no reader open yet
        for options in ({"k": 5}, {"k": 8, "filter": {"state": "TX"}}, {"k": 3, "ef": 16}):
            threaded = fresh.search("workers", "tig welder", **options)
            immediate = fresh.search_if_immediate("workers", "tig welder", **options)
            assert immediate is not None and immediate.embedding_cached
            assert [(h.id, h.score, h.payload) for h in immediate.hits] == [
                (h.id, h.score, h.payload) for h in threaded.hits
            ]
            assert immediate.confidence == threaded.confidence
        assert fresh.search_if_immediate("workers", "a query never embedded", k=5) is None
        with pytest.raises(BadSearch):
            fresh.search_if_immediate("workers", "tig welder", filter={"nope": 1})
        assert fresh.search_if_immediate("ghosts", "tig welder") is None  # the threaded path says 404
    finally:
        store.close()
