"""The parquet and manifest assets through Dagster's own `materialize`, with real resources on a temp lake."""

import shutil

import dagster as dg
import pytest

from assets.ingest_assets import dataset_ingest
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.lake import Lake
from resources.lake_resource import LakeResource

WORKERS = load_specs()["workers"]


def landing(lake_home):
    folder = lake_home.home / "landing" / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run(lake_home, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [dataset_ingest(WORKERS)], resources={"lake": LakeResource(home=str(lake_home.home))}, **kwargs
    )


def materialization(result, *path):
    return next(
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key == dg.AssetKey(list(path))
    )


def test_materializing_ingests_every_landed_drop(lake_home, workers_csv):
    shutil.copy(workers_csv, landing(lake_home) / "drop1.csv")
    result = run(lake_home)
    assert result.success
    parquet = materialization(result, "workers", "parquet").metadata
    assert parquet["dagster/row_count"].value == 2_000 and parquet["objects_added"].value == 1
    assert parquet["preview"].records[0].data["worker_id"] == 1
    assert [c.name for c in parquet["dagster/column_schema"].schema.columns][:2] == [
        "worker_id",
        "first_name",
    ]
    manifest = materialization(result, "workers", "manifest").metadata
    assert (manifest["version"].value, manifest["dagster/row_count"].value) == (1, 2_000)
    assert Lake.open(lake_home).catalog.get("workers").row_count == 2_000


def test_rematerializing_with_nothing_new_changes_nothing(lake_home, workers_csv):
    shutil.copy(workers_csv, landing(lake_home) / "drop1.csv")
    run(lake_home)
    again = run(lake_home)
    assert materialization(again, "workers", "parquet").metadata["objects_added"].value == 0
    assert materialization(again, "workers", "manifest").metadata["version"].value == 1


def test_drift_fails_the_run_with_the_column_diff_and_changes_nothing(lake_home, workers_csv, tmp_path):
    shutil.copy(workers_csv, landing(lake_home) / "drop1.csv")
    run(lake_home)
    before = Lake.open(lake_home).catalog.get("workers")
    drifted = tmp_path / "drifted.csv"
    text = workers_csv.read_text()
    drifted.write_text(text.replace("worker_id,", "worker_code,", 1))
    with pytest.raises(dg.Failure, match="column 'worker_code' added"):
        run(lake_home, run_config={"ops": {"workers__ingest": {"config": {"sources": [str(drifted)]}}}})
    assert Lake.open(lake_home).catalog.get("workers") == before


def test_good_drops_land_and_bad_ones_fail_the_run_by_name(lake_home, workers_csv, tmp_path):
    bad = tmp_path / "ragged.csv"
    bad.write_text("worker_id,first_name\n1\n")
    config = {"ops": {"workers__ingest": {"config": {"sources": [str(workers_csv), str(bad)]}}}}
    result = run(lake_home, run_config=config, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "ragged.csv, line 2: expected 2 fields, found 1" in failure.event_specific_data.error.message
    assert Lake.open(lake_home).catalog.get("workers").row_count == 2_000


def test_no_step_hands_a_python_object_to_the_next(lake_home, workers_csv, tmp_path):
    """The lake is the only state between steps: nothing goes through the IO manager (no pickles)."""
    shutil.copy(workers_csv, landing(lake_home) / "drop1.csv")
    io = tmp_path / "io"
    result = dg.materialize(
        [dataset_ingest(WORKERS)],
        resources={
            "lake": LakeResource(home=str(lake_home.home)),
            "io_manager": dg.FilesystemIOManager(base_dir=str(io)),
        },
    )
    assert result.success
    assert not [p for p in io.rglob("*") if p.is_file()]
