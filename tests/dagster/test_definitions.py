"""The whole code location loads under a fake production environment: every declared dataset has its assets
(with the metadata Dagster shows before any run), its jobs, the sensors and the schedule, and the resources
carry the environment's variables as EnvVar, configured as the one settings model says."""

import dagster as dg

from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.settings import LakehouseSettings

PRODUCTION = {
    "LAKEHOUSE_STORAGE": "s3://lake-bucket/lake",
    "LAKEHOUSE_LANDING": "s3://lake-bucket/landing",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "AKIAFAKE",
    "AWS_SECRET_ACCESS_KEY": "fake-secret",
    "QDRANT_URL": "http://127.0.0.1:6333",
    "LAKEHOUSE_VECTOR_QUANTIZATION": "turbo4",
    "LAKEHOUSE_EMBEDDER": "ollama",
}


def test_definitions_load_with_every_declared_dataset(lake_home):
    from assets.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for name in load_specs():
        keys = {dg.AssetKey([name, part]) for part in ("parquet", "manifest", "embeddings", "vectors")}
        assert keys <= graph.get_all_asset_keys()
        assert defs.resolve_job_def(f"{name}_ingest")
    assert defs.resolve_sensor_def("landing_drop_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("audit_schedule").cron_schedule == "0 6 * * *"
    assert graph.get(dg.AssetKey(["workers", "manifest"])).parent_keys == {
        dg.AssetKey(["workers", "parquet"])
    }


def test_the_manifest_asset_carries_what_the_ui_shows_before_a_run(lake_home):
    from assets.definitions import build_definitions

    node = build_definitions().resolve_asset_graph().get(dg.AssetKey(["workers", "manifest"]))
    spec = node.to_asset_spec()
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
    assert columns["worker_id"].type == "int64" and columns["worker_id"].constraints.unique
    assert not columns["worker_id"].constraints.nullable
    assert columns["zip"].description == "US ZIP code, leading zeros kept"
    assert "str_matches: ^[0-9]{5}$" in columns["zip"].constraints.other
    assert spec.metadata["dagster/table_name"] == "workers"
    assert "dagster/code_references" in spec.metadata
    assert spec.owners == ["team:staffing-data"]
    assert spec.freshness_policy.fail_window.to_timedelta().total_seconds() == 26 * 3600
    vectors = build_definitions().resolve_asset_graph().get(dg.AssetKey(["workers", "vectors"]))
    assert vectors.pools == {"qdrant_workers"}


def test_resources_read_the_environment_through_envvar(lake_home, monkeypatch):
    from resources import build_resources

    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    resources = build_resources(LakehouseSettings())
    lake = resources["lake"]
    assert lake.storage == dg.EnvVar("LAKEHOUSE_STORAGE")
    assert lake.s3.endpoint_url == dg.EnvVar("AWS_ENDPOINT_URL")
    assert lake.s3.aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    assert resources["vector_store"].qdrant_url == dg.EnvVar("QDRANT_URL")
    assert resources["vector_store"].quantization == dg.EnvVar("LAKEHOUSE_VECTOR_QUANTIZATION")
    with dg.build_resources(
        {"embedder": resources["embedder"], "vector_store": resources["vector_store"]}
    ) as built:
        # the parts doctor probes are the parts the resources configure
        assert built.embedder.settings() == LakehouseSettings().embedder
        assert built.vector_store.settings() == LakehouseSettings().vectors
        assert built.vector_store.open(lake_home).hnsw.quantization == "turbo4"


def test_an_unset_variable_leaves_the_embedded_default(lake_home):
    from resources import build_resources

    lake = build_resources(LakehouseSettings())["lake"]
    assert lake.storage == "" and lake.home == dg.EnvVar("LAKEHOUSE_HOME")
    with dg.build_resources({"lake": lake}) as built:
        assert built.lake.settings() == LakehouseSettings().lake
        assert built.lake.settings().storage == str(lake_home.home / "lake")
