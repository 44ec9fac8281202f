"""Rows as the search side reads them: the text a template renders, the payload a hit carries back (JSON types:
dates as ISO strings), and each caller reading only what it uses (embedding the texts, the vectors sync the
payloads)."""

from __future__ import annotations

import datetime as dt

import duckdb

from lakehouse_pipelines.datasets import EmbeddingSpec, load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.search.documents import iter_rows

WORKERS = load_specs()["workers"]
SPEC = EmbeddingSpec(
    template="{role} in {city}", id_column="worker_id", payload=("worker_id", "last_placed", "hourly_rate")
)


def test_texts_and_json_typed_payloads_each_read_only_by_whom_needs_them(lake, tmp_path):
    csv = write_workers_csv(tmp_path / "w.csv", 300)
    ingest(lake, str(csv), WORKERS)
    manifest = lake.catalog.get("workers")
    expected = duckdb.sql(
        f"SELECT worker_id, role, city, last_placed, hourly_rate FROM read_csv('{csv}') ORDER BY worker_id"
    ).fetchall()

    (both,) = iter_rows(lake, manifest, SPEC)
    assert both.ids == [row[0] for row in expected]
    assert both.texts == [f"{role} in {city}" for _, role, city, _, _ in expected]
    assert both.payloads == [
        {"worker_id": i, "last_placed": placed.isoformat() if placed else None, "hourly_rate": rate}
        for i, _, _, placed, rate in expected
    ]
    assert any(isinstance(p["last_placed"], str) for p in both.payloads)
    assert isinstance(expected[0][3], dt.date | None)

    (texts,) = iter_rows(lake, manifest, SPEC, payloads=False)
    (payloads,) = iter_rows(lake, manifest, SPEC, texts=False)
    assert (texts.ids, texts.texts, texts.payloads) == (both.ids, both.texts, [])
    assert (payloads.ids, payloads.texts, payloads.payloads) == (both.ids, [], both.payloads)
