"""Helpers shared by the hostile-input and fuzz tests (plain, importable code, not fixtures).

`Sidecar` is the real app over a real lake and a real Qdrant Edge collection, with the deterministic
`HashEmbedder` instead of the model (seconds to load, and the meaning of vectors doesn't matter here):
every request goes through body parsing, validation, the SQL check, DuckDB, filter checks and Edge.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.search.service import SearchService
from lakehouse_pipelines.search.vectors.edge_store import EdgeVectorStore
from lakehouse_pipelines.search.vectors.protocol import HnswSettings, VectorBatch
from lakehouse_pipelines.settings import LakeSettings, SidecarSettings
from lakehouse_pipelines.sidecar.app import create_app
from tests.search_support import HashEmbedder


def import_every_project_module() -> None:
    """Import every module of the project, so hypothesis' generation is the same whatever tests run.

    Hypothesis draws some values from the constants of the "local" modules loaded so far (sys.modules), so
    with only its database off and derandomize on, a fuzz test still saw other examples when the whole
    suite ran than when it ran alone. Loading the whole project first makes that pool fixed.
    """
    import importlib
    import pkgutil

    import assets
    import lakehouse_pipelines
    import resources
    import schemas

    for package in (lakehouse_pipelines, assets, resources, schemas):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


PAYLOAD_TYPES = {"state": "keyword", "n": "integer", "rate": "float", "ok": "bool", "when": "datetime"}


def lake_state(lake: Lake, *, locks: bool = False) -> dict[str, str]:
    """Every file under the lake root with the sha256 of its bytes; lock files (empty) only with `locks`."""
    root = Path(lake.storage.root)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (locks or ".locks" not in p.parts)
    }


def fuzz_settings(examples: int, deadline_seconds: float, *quiet: HealthCheck) -> settings:
    """Hypothesis settings of every fuzz test: no example database, derandomized (the same examples on
    every run), `examples` of them, a generous deadline for a busy 2-core machine; `quiet` health checks
    besides too_slow and data_too_large are not reported."""
    return settings(
        database=None,
        derandomize=True,
        max_examples=examples,
        deadline=timedelta(seconds=deadline_seconds),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, *quiet],
    )


@dataclass
class Sidecar:
    home: Path
    lake: Lake
    client: TestClient
    store: EdgeVectorStore

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.store.close()


def open_sidecar(home: Path) -> Sidecar:
    """A lake with dataset `t` (id, state, n), an Edge collection `t` with one payload column per type."""
    lake = Lake.open(LakeSettings.under(home))
    csv = home / "t.csv"
    csv.write_text(
        "id,state,n\n" + "".join(f"{i},{'IL' if i % 2 else 'TX'},{i * 10}\n" for i in range(1, 21))
    )
    ingest(lake, str(csv), "t")
    embedder = HashEmbedder(dim=16)
    store = EdgeVectorStore(home / "vectors", HnswSettings(max_indexing_threads=1))
    ids = list(range(1, 21))
    payloads = [
        {
            "state": "IL" if i % 2 else "TX",
            "n": i,
            "rate": i / 2,
            "ok": i % 3 == 0,
            "when": f"2026-01-{i:02d}T00:00:00",
        }
        for i in ids
    ]
    store.sync(
        "t",
        model=embedder.model,
        dim=embedder.dim,
        payload_types=PAYLOAD_TYPES,
        batches=iter(
            [
                VectorBatch(
                    ids=ids,
                    vectors=np.asarray(embedder.embed_documents([f"row {i}" for i in ids]), dtype=np.float32),
                    payloads=payloads,
                    text_hashes=[f"h{i}" for i in ids],
                )
            ]
        ),
    )
    app = create_app(
        lake, SidecarSettings(max_rows=50, query_timeout=2.0), search=SearchService(store, embedder)
    )
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()
    return Sidecar(home, lake, client, store)


def post_raw(client: TestClient, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def check_refusal(response: httpx.Response, home: Path, echoed: tuple[str, ...] = ()) -> dict:
    """A refusal as the contract wants it: 4xx JSON with `error` or `detail`, no trace, no server path, and
    none of `echoed` (what was submitted) in it. Returns the body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert isinstance(body, dict) and ("error" in body or "detail" in body), body
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    assert str(home) not in text and "/site-packages/" not in text
    decoded = json.dumps(body, ensure_ascii=False)
    for value in echoed:
        assert value not in text and value not in decoded, (value, text[:300])
    return body
