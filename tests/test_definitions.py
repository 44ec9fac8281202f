"""The whole code location loads: every declared dataset has its chain, ingest job and the drop sensor."""

import dagster as dg

from lakehouse_pipelines.datasets import load_specs


def test_definitions_load_with_every_declared_dataset(lake_home):
    from lakehouse_pipelines.definitions import build_definitions

    defs = build_definitions()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for name in load_specs():
        assert {f"{name}/parquet", f"{name}/manifest"} <= keys
        assert defs.resolve_job_def(f"{name}_ingest")
    assert defs.resolve_sensor_def("landing_drop_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["workers", "manifest"])).parent_keys == {
        dg.AssetKey(["workers", "parquet"])
    }


def test_resources_read_the_environment_through_envvar(lake_home, monkeypatch, tmp_path):
    from lakehouse_pipelines.definitions import lake_resource

    monkeypatch.setenv("LAKEHOUSE_STORAGE", str(tmp_path / "elsewhere"))
    assert lake_resource().storage == dg.EnvVar("LAKEHOUSE_STORAGE")
    with dg.build_resources({"lake": lake_resource()}) as resources:
        assert resources.lake.settings().storage == str(tmp_path / "elsewhere")
        assert resources.lake.settings().landing == str(lake_home.home / "landing")
