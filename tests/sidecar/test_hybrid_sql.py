"""Hybrid SQL + semantic search through a real HTTP client: named searches in `POST /sql` become relations
(<id column>, score, match, rank) of that one statement, pre-filtered in the index and joined, filtered and
ranked in SQL, under the unchanged guard, deadline and row cap; search errors keep their codes; hostile
variants (writes smuggled through a relation, names that would shadow a dataset, SQL in a name or a query)
are refused or harmless, and a relation never outlives its request.
"""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.embeddings_build import embed_dataset
from lakehouse_pipelines.search.indexing import index_dataset
from lakehouse_pipelines.search.service import SearchService
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings
from lakehouse_pipelines.settings import LakeSettings, SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from tests.hostile_support import lake_state
from tests.search_support import HashEmbedder, local_embedder

WORKERS = load_specs()["workers"]
ROWS = 300
ISSUE_SQL = (
    "SELECT w.first_name, w.city, h.score FROM hits h JOIN workers w USING (worker_id) "
    "WHERE w.available AND w.state = 'IL' ORDER BY h.score DESC LIMIT 10"
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Lake, EdgeVectorStore]:
    """300 generated workers, embedded by the local model and indexed in Qdrant Edge, once per module."""
    home = tmp_path_factory.mktemp("hybrid-home")
    lake = Lake.open(LakeSettings.under(home))
    ingest(lake, str(write_workers_csv(home / "workers.csv", ROWS)), WORKERS)
    embed_dataset(lake, WORKERS, local_embedder())
    store = EdgeVectorStore(home / "vectors", HnswSettings(max_indexing_threads=2, indexing_threshold_kb=100))
    index_dataset(lake, WORKERS, store)
    yield lake, store
    store.close()


class SharedService(SearchService):
    """A search service over the module's store, which outlives each app built on it."""

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def service(indexed) -> SearchService:
    return SharedService(indexed[1], local_embedder())


@pytest.fixture(scope="module")
def client(indexed, service):
    settings = SidecarSettings(max_rows=100, refresh_interval=0.2, query_timeout=2.0)
    with TestClient(create_app(indexed[0], settings, search=service)) as c:
        yield c


def hybrid(client: TestClient, sql: str, search: dict, **headers: str):
    return client.post("/sql", json={"sql": sql, "search": search}, headers=headers)


def forklift(k: int = 500, **extra) -> dict:
    return {"hits": {"dataset": "workers", "query": "forklift driver, night shift", "k": k, **extra}}


def test_the_issues_query_joins_hits_with_the_dataset(client):
    response = hybrid(client, ISSUE_SQL, forklift())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["name"] for c in body["columns"]] == ["first_name", "city", "score"]
    assert 1 <= body["row_count"] <= 10
    scores = [r[2] for r in body["rows"]]
    assert scores == sorted(scores, reverse=True)
    summary = body["search"]["hits"]
    assert summary["dataset"] == "workers" and summary["k"] == 500
    assert summary["hits"] == ROWS  # k above the dataset's size: every row is a hit
    assert summary["confidence"]["level"] == "high"
    # the same answer a client gets from /search and then /sql with the hits inlined (at /search's k cap)
    same_k = hybrid(client, ISSUE_SQL, forklift(k=100)).json()["rows"]
    hits = client.post(
        "/search", json={"dataset": "workers", "query": "forklift driver, night shift", "k": 100}
    ).json()["hits"]
    values = ", ".join(f"({h['id']}, {h['score']!r})" for h in hits)
    two_trips = client.post(
        "/sql",
        json={"sql": ISSUE_SQL.replace("FROM hits h", f"FROM (VALUES {values}) h(worker_id, score)")},
    ).json()["rows"]
    assert [r[:2] for r in same_k] == [r[:2] for r in two_trips]
    assert [r[2] for r in same_k] == pytest.approx([float(r[2]) for r in two_trips], abs=1e-5)


def test_the_relation_has_the_id_column_score_match_and_rank(client):
    body = hybrid(client, "SELECT * FROM hits ORDER BY rank", forklift(k=20)).json()
    assert body["columns"] == [
        {"name": "worker_id", "type": "BIGINT"},
        {"name": "score", "type": "DOUBLE"},
        {"name": "match", "type": "VARCHAR"},
        {"name": "rank", "type": "INTEGER"},
    ]
    assert [r[3] for r in body["rows"]] == list(range(1, 21))
    scores = [r[1] for r in body["rows"]]
    assert scores == sorted(scores, reverse=True)
    assert {r[2] for r in body["rows"]} <= {"high", "medium", "low"}
    roles = hybrid(
        client,
        "SELECT w.role, count(*) FROM hits h JOIN workers w USING (worker_id) WHERE h.rank <= 5 GROUP BY 1",
        forklift(k=20),
    ).json()["rows"]
    assert dict(roles).get("Forklift Operator", 0) >= 4


def test_filters_prefilter_in_the_index_and_sql_postfilters(client):
    body = hybrid(
        client,
        "SELECT w.state, w.role, h.rank FROM hits h JOIN workers w USING (worker_id) ORDER BY h.rank",
        {"hits": {"dataset": "workers", "query": "welder", "k": 1000, "filter": {"state": "OH"}}},
    ).json()
    assert body["row_count"] >= 1
    assert {r[0] for r in body["rows"]} == {"OH"}
    assert body["search"]["hits"]["k"] == 1000


def test_two_named_searches_in_one_statement(client):
    body = hybrid(
        client,
        "SELECT count(*) FROM welders JOIN electricians USING (worker_id)",
        {
            "welders": {"dataset": "workers", "query": "TIG welder", "k": 50},
            "electricians": {"dataset": "workers", "query": "industrial electrician", "k": 50},
        },
    ).json()
    assert body["rows"][0][0] <= 50
    assert set(body["search"]) == {"welders", "electricians"}


def test_csv_and_arrow_answers_carry_the_relation(client):
    response = hybrid(
        client, "SELECT worker_id, rank FROM hits ORDER BY rank", forklift(k=30), accept="text/csv"
    )
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == "worker_id,rank" and len(lines) == 31
    arrow = hybrid(
        client,
        "SELECT * FROM hits",
        forklift(k=30),
        accept="application/vnd.apache.arrow.stream",
    )
    table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert table.num_rows == 30 and table.schema.names == ["worker_id", "score", "match", "rank"]


def test_the_row_cap_and_deadline_apply_unchanged(client):
    capped = hybrid(client, "SELECT * FROM hits", forklift(k=500)).json()
    assert capped["row_count"] == 100 and capped["truncated"] is True
    slow = hybrid(
        client,
        "SELECT count(*) FROM hits a, hits b, range(100000) r WHERE (a.score + b.score + r.range) % 7 = 3",
        forklift(k=300),
    )
    assert slow.status_code == 400
    assert "time limit" in slow.json()["error"]


def test_k_and_the_number_of_searches_are_bounded(client):
    assert hybrid(client, "SELECT 1", forklift(k=1001)).status_code == 422
    assert hybrid(client, "SELECT 1", forklift(k=0)).status_code == 422
    many = {f"s{i}": {"dataset": "workers", "query": "welder"} for i in range(5)}
    response = hybrid(client, "SELECT 1", many)
    assert response.status_code == 400 and "at most 4 named searches" in response.json()["error"]
    extra = hybrid(client, "SELECT 1", forklift(limit=5))
    assert extra.status_code == 422


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("workers", "is the name of a dataset"),
        ("version", "time-travel macro"),
        ("as_of", "time-travel macro"),
        ("select", "SQL keyword"),
        ("Hits", "must be 1-63 characters"),
        ('hits"; DROP VIEW workers; --', "must be 1-63 characters"),
        ("workers@1", "must be 1-63 characters"),
        ("", "must be 1-63 characters"),
        ("h" * 64, "must be 1-63 characters"),
    ],
)
def test_a_name_that_would_shadow_a_dataset_or_is_not_an_identifier_is_a_400(client, service, name, message):
    misses = service.cache.misses
    response = hybrid(client, "SELECT count(*) FROM workers", {name: forklift()["hits"]})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert service.cache.misses == misses  # refused before anything was embedded


def test_search_errors_keep_their_codes(client, indexed):
    unknown = hybrid(client, "SELECT * FROM hits", {"hits": {"dataset": "nope", "query": "welder"}})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad_filter = hybrid(client, "SELECT * FROM hits", forklift(filter={"resume_text": "x"}))
    assert bad_filter.status_code == 400 and "cannot filter on 'resume_text'" in bad_filter.json()["error"]
    other_model = SharedService(indexed[1], HashEmbedder(dim=384, model="another-model"))
    with TestClient(create_app(indexed[0], SidecarSettings(), search=other_model)) as c:
        mismatch = hybrid(c, "SELECT * FROM hits", forklift())
        assert mismatch.status_code == 409 and "another-model" in mismatch.json()["error"]
        c.app.state.search = None
        unconfigured = hybrid(c, "SELECT * FROM hits", forklift())
        assert unconfigured.status_code == 503 and "not configured" in unconfigured.json()["error"]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO hits VALUES (1, 0.9, 'high', 1)",
        "CREATE TABLE stolen AS SELECT * FROM hits",
        "COPY hits TO '{root}/datasets/workers/hits.parquet'",
        "COPY (SELECT * FROM hits JOIN workers USING (worker_id)) TO '{root}/datasets/workers/x.parquet'",
        "SELECT * FROM hits; DROP VIEW workers",
        "UPDATE hits SET score = 1",
        "DELETE FROM hits",
        "CREATE OR REPLACE VIEW workers AS SELECT * FROM hits",
        "ATTACH '{root}/x.duckdb' AS x",
        "WITH h AS (SELECT * FROM hits) INSERT INTO workers SELECT * FROM h",
    ],
)
def test_a_search_relation_cannot_smuggle_a_write(client, indexed, service, statement):
    lake = indexed[0]
    before = lake_state(lake, locks=True)
    misses = service.cache.misses
    response = hybrid(client, statement.format(root=lake.storage.root), forklift())
    assert response.status_code == 400, response.text
    assert service.cache.misses == misses  # the guard refused it before any search ran
    assert lake_state(lake, locks=True) == before
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM workers"}).json()["rows"] == [[ROWS]]


def test_sql_in_a_query_is_only_text_to_embed(client):
    response = hybrid(
        client,
        "SELECT count(*) FROM hits",
        {"hits": {"dataset": "workers", "query": "'); DROP VIEW workers; --", "k": 5}},
    )
    assert response.status_code == 200 and response.json()["rows"] == [[5]]
    assert client.post("/sql", json={"sql": "SELECT count(*) FROM workers"}).json()["rows"] == [[ROWS]]


def test_a_relation_lives_for_its_statement_only(client):
    assert hybrid(client, "SELECT count(*) FROM hits", forklift(k=7)).json()["rows"] == [[7]]
    later = client.post("/sql", json={"sql": "SELECT * FROM hits"})
    assert later.status_code == 400
    assert "unknown table 'hits'" in later.json()["error"]


def test_concurrent_requests_each_see_their_own_relation(client):
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def ask(k: int) -> None:
        try:
            for _ in range(5):
                body = hybrid(client, "SELECT count(*), max(rank) FROM hits", forklift(k=k)).json()
                results.setdefault(k, []).append(body["rows"][0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(k,)) for k in (3, 11, 29)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {k: {tuple(r) for r in rows} for k, rows in results.items()} == {
        3: {(3, 3)},
        11: {(11, 11)},
        29: {(29, 29)},
    }


def test_hybrid_and_time_travel_together(client):
    body = hybrid(
        client,
        "SELECT count(*) FROM hits JOIN version('workers', 1) USING (worker_id)",
        forklift(k=25),
    ).json()
    assert body["rows"] == [[25]]
