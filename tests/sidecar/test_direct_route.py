"""The direct path (bodies.py) answers every body exactly as FastAPI's own handler does: the same model,
the same endpoint, the same requests, once through each; and the OpenAPI they document is the same."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from lakehouse_pipelines.sidecar.bodies import StrictJsonRoute, validation_error
from lakehouse_pipelines.sidecar.body_limit import BodyLimit
from lakehouse_pipelines.sidecar.fast_json import FastJSONResponse
from lakehouse_pipelines.sidecar.models import SqlRequest
from lakehouse_pipelines.sidecar.routes_search import SearchRequest


class ThroughFastApi(StrictJsonRoute):
    direct = False


async def search(body: SearchRequest, request: Request):
    return FastJSONResponse({"echo": body.model_dump(), "path": request.url.path})


async def sql(body: SqlRequest, request: Request):
    return FastJSONResponse({"echo": body.model_dump(), "path": request.url.path})


def both_ways() -> FastAPI:
    app = FastAPI()
    for prefix, route_class in (("/direct", StrictJsonRoute), ("/fastapi", ThroughFastApi)):
        router = APIRouter(prefix=prefix, route_class=route_class)
        router.post("/search")(search)
        router.post("/sql")(sql)
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(BodyLimit, max_bytes=10_000)
    return app


JSON = "application/json"
CASES = [
    ("/search", b'{"dataset": "workers", "query": "forklift", "k": 3}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "filter": {"state": "TX"}, "ef": 64}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x"}', "application/json; charset=utf-8"),
    ("/search", b'{"dataset": "workers", "query": "x"}', "application/problem+json"),
    ("/search", b'{"dataset": "workers", "query": "x"}', "text/plain"),
    ("/search", b'{"dataset": "workers", "query": "x"}', "application/xml"),
    ("/search", b"dataset=workers&query=x", "application/x-www-form-urlencoded"),
    ("/search", b'{"dataset": "workers", "query": "x"}', "APPLICATION/JSON"),
    ("/search", b'{"dataset": "workers", "query": "x"}', "json"),
    ("/search", b'{"dataset": "workers", "query": "x"}', None),
    ("/search", b"", JSON),
    ("/search", b"{", JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "k": NaN}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "k": 1e999}', JSON),
    ("/search", b'{"dataset": "workers", "query": "\\ud800"}', JSON),
    ("/search", b'{"dataset": "w", "query": "x"}' + b"\xff", JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "k": true}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "k": 2.0}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "k": 0}', JSON),
    ("/search", b'{"dataset": "workers", "query": "x", "color": "red"}', JSON),
    ("/search", b'{"query": "x"}', JSON),
    ("/search", b"[1, 2]", JSON),
    ("/search", b'"workers"', JSON),
    ("/search", b"null", JSON),
    ("/search", b"[" * 40 + b"]" * 40, JSON),
    ("/search", b'{"dataset": "' + b"w" * 20_000 + b'", "query": "x"}', JSON),
    ("/sql", b'{"sql": "SELECT 1"}', JSON),
    ("/sql", b'{"sql": ""}', JSON),
    ("/sql", b'{"sql": "SELECT 1", "search": {"s": {"dataset": "workers"}}}', JSON),
    ("/sql", b'{"sql": 1}', JSON),
]


@pytest.mark.parametrize(("path", "body", "content_type"), CASES)
def test_the_direct_path_answers_as_fastapi_does(path: str, body: bytes, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    with TestClient(both_ways()) as client:
        direct = client.post(f"/direct{path}", content=body, headers=headers)
        fastapi = client.post(f"/fastapi{path}", content=body, headers=headers)
    assert direct.status_code == fastapi.status_code
    expected = fastapi.json()
    if direct.status_code == 200:
        expected["path"] = f"/direct{path}"
    assert direct.json() == expected


async def status_when_the_client_leaves(app: FastAPI, path: str) -> int:
    """POST half a body, then the client disconnects: the status the route answers."""
    parts = [
        {"type": "http.request", "body": b'{"dataset": "wor', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return parts.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "headers": [(b"content-type", b"application/json")],
    }  # fmt: skip
    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_a_client_leaving_mid_body_is_answered_alike():
    app = both_ways()
    direct = asyncio.run(status_when_the_client_leaves(app, "/direct/search"))
    assert direct == asyncio.run(status_when_the_client_leaves(app, "/fastapi/search")) == 400


def test_both_paths_document_the_same_request_bodies():
    paths = TestClient(both_ways()).get("/openapi.json").json()["paths"]
    for route in ("/search", "/sql"):
        direct, fastapi = paths[f"/direct{route}"]["post"], paths[f"/fastapi{route}"]["post"]
        assert direct["requestBody"] == fastapi["requestBody"]
        assert direct["responses"] == fastapi["responses"]


def test_only_a_body_model_and_the_request_take_the_direct_path():
    router = APIRouter(route_class=StrictJsonRoute)

    @router.post("/both")
    async def both(body: SearchRequest, request: Request):
        return FastJSONResponse({})

    @router.post("/with_a_query/{name}")
    async def with_a_query(name: str, body: SearchRequest, request: Request):
        return FastJSONResponse({})

    @router.post("/returns_a_dict")
    async def returns_a_dict(body: SearchRequest, request: Request):
        return {"not": "a response"}

    handlers = {r.path: r.get_route_handler() for r in router.routes}
    assert handlers["/both"].__qualname__.startswith("_direct_handler")
    assert not handlers["/with_a_query/{name}"].__qualname__.startswith("_direct_handler")
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(TypeError, match="must return a Response"):
        TestClient(app).post("/returns_a_dict", json={"dataset": "workers", "query": "x"})
