"""The code location: every declared dataset's asset chain, its ingest job, the drop sensor, resources.

Resources read the contract's environment variables through EnvVar where they are set, so the UI shows
where each setting comes from; unset means the embedded default (a lake under LAKEHOUSE_HOME).
"""

from __future__ import annotations

import os

import dagster as dg

from assets.lake import dataset_lake_assets
from lakehouse_pipelines.datasets import load_specs
from lakehouse_pipelines.drop_sensor import build_drop_sensor, ingest_job_name
from resources.lake import LakeResource


def env_or_default(name: str) -> dg.EnvVar | str:
    """EnvVar(name) when the variable is set, else "" (the resource's embedded default)."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def lake_resource() -> LakeResource:
    return LakeResource(
        home=env_or_default("LAKEHOUSE_HOME"),
        storage=env_or_default("LAKEHOUSE_STORAGE"),
        landing=env_or_default("LAKEHOUSE_LANDING"),
    )


def build_definitions() -> dg.Definitions:
    specs = load_specs()
    assets = [a for spec in specs.values() for a in dataset_lake_assets(spec)]
    jobs = [
        dg.define_asset_job(
            ingest_job_name(name), selection=dg.AssetSelection.groups(name), tags={"lakehouse/dataset": name}
        )
        for name in specs
    ]
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=[build_drop_sensor(specs, jobs)],
        resources={"lake": lake_resource()},
    )


defs = build_definitions()
