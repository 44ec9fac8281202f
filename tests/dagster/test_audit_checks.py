"""The audit checks as Dagster runs them: after an ingest through `materialize`, alone through the scheduled
job, with their severities and blocking behaviour (a downstream asset stands in for `<dataset>/embeddings`),
and the schedule that launches them.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.asset_keys import manifest_key
from assets.audit_checks import (
    CONTRACT_CHECK,
    DISTRIBUTION_CHECK,
    NULL_RATE_CHECK,
    ROW_COUNT_CHECK,
    SCHEMA_CHECK,
    dataset_audit_checks,
)
from assets.audit_schedule import AUDIT_JOB_NAME, CRON_VARIABLE, SCHEDULE_NAME
from assets.ingest_assets import dataset_ingest
from lakehouse_pipelines.audit.baseline_log import Baseline, BaselineLog
from lakehouse_pipelines.datasets import DatasetSpec, load_specs
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.settings import DEFAULT_AUDIT_CRON as DEFAULT_CRON
from resources.lake_resource import LakeResource
from tests.audit.test_audit_domain import shifted_copy

WORKERS = load_specs()["workers"]
DOWNSTREAM = dg.AssetKey(["workers", "downstream"])


@dg.asset(key=DOWNSTREAM, deps=[manifest_key("workers")])
def downstream() -> None:
    """Stands in for `workers/embeddings`: whatever must not run on bad data."""


def ingest_run(lake_home, sources: list[Path], spec: DatasetSpec = WORKERS) -> dg.ExecuteInProcessResult:
    """The dataset's chain, its audit checks and a downstream asset, materialized like an ingest run."""
    return dg.materialize(
        [dataset_ingest(spec), dataset_audit_checks(spec), downstream],
        resources={"lake": LakeResource(home=str(lake_home.home))},
        run_config={"ops": {"workers__ingest": {"config": {"sources": [str(s) for s in sources]}}}},
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def test_first_ingest_records_a_baseline_and_every_check_passes(lake_home, workers_csv):
    result = ingest_run(lake_home, [workers_csv])

    assert result.success
    evaluations = checks(result)
    assert set(evaluations) == {
        SCHEMA_CHECK,
        CONTRACT_CHECK,
        ROW_COUNT_CHECK,
        NULL_RATE_CHECK,
        DISTRIBUTION_CHECK,
    }
    assert all(e.passed for e in evaluations.values())
    assert "first baseline recorded" in evaluations[ROW_COUNT_CHECK].description
    assert "all 1 objects satisfy the contract" in evaluations[CONTRACT_CHECK].description
    log = BaselineLog(Lake.open(lake_home).storage).read("workers")
    assert [b.run_id for b in log] == [result.run_id]  # one audit per run, not one per check
    assert DOWNSTREAM in materialized(result)


def test_drift_warns_or_errors_without_blocking_and_shows_table_and_chart(lake_home, workers_csv, tmp_path):
    ingest_run(lake_home, [workers_csv])
    result = ingest_run(lake_home, [shifted_copy(workers_csv, tmp_path / "shifted.csv")])

    evaluations = checks(result)
    rows = evaluations[ROW_COUNT_CHECK]
    assert (rows.passed, rows.severity) == (False, dg.AssetCheckSeverity.WARN)  # 2,000 -> 4,000 rows
    assert rows.description == "warn: row_count +100.0%"
    assert "| row_count | 2,000 | 4,000 | +100.0% | ⚠ warn |" in rows.metadata["drift_table"].value
    assert "hourly_rate" in rows.metadata["all_metrics"].value

    distribution = evaluations[DISTRIBUTION_CHECK]
    assert (distribution.passed, distribution.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert distribution.description.startswith("fail: hourly_rate PSI")
    assert "shift JS" in distribution.description and "role" not in distribution.description
    charts = distribution.metadata["charts"].value
    assert charts.startswith("**hourly_rate** (PSI") and "](data:image/svg+xml;base64," in charts

    assert all(evaluations[name].passed for name in (SCHEMA_CHECK, CONTRACT_CHECK, NULL_RATE_CHECK))
    assert result.success and DOWNSTREAM in materialized(result)  # drift alone never blocks
    assert len(BaselineLog(Lake.open(lake_home).storage).read("workers")) == 2


def test_a_declared_fail_threshold_blocks_the_downstream_asset(lake_home, workers_csv, tmp_path):
    strict = dataclasses.replace(WORKERS, audit={"thresholds": {"row_count": {"fail": 0.5}}})
    ingest_run(lake_home, [workers_csv], strict)
    result = ingest_run(lake_home, [shifted_copy(workers_csv, tmp_path / "shifted.csv")], strict)

    rows = checks(result)[ROW_COUNT_CHECK]
    assert (rows.passed, rows.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert not result.success
    assert manifest_key("workers") in materialized(result)  # the data landed ...
    assert DOWNSTREAM not in materialized(result)  # ... and nothing downstream ran on it
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "blocking asset check failed with ERROR severity" in failure.event_specific_data.error.message
    assert "row_count_drift" in failure.event_specific_data.error.message


def test_a_tightened_contract_fails_on_registered_data_and_blocks(lake_home, workers_csv):
    ingest_run(lake_home, [workers_csv])
    contract = {"columns": {"hourly_rate": {"checks": {"in_range": {"min_value": 0, "max_value": 30}}}}}
    result = ingest_run(lake_home, [workers_csv], dataclasses.replace(WORKERS, contract=contract))

    evaluation = checks(result)[CONTRACT_CHECK]
    assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.ERROR)
    problems = evaluation.metadata["problems"].value
    assert "datasets/workers/" in problems and "(from workers.csv)" in problems
    assert "column 'hourly_rate' fails in_range" in problems
    assert DOWNSTREAM not in materialized(result)


def test_a_changed_schema_fingerprint_fails_and_blocks(lake_home, workers_csv):
    ingest_run(lake_home, [workers_csv])
    log = BaselineLog(Lake.open(lake_home).storage)
    previous = log.latest("workers", 1)[0]
    log.append(Baseline("workers", "0" * 64, previous.manifest_version, previous.metrics))  # an older schema
    result = ingest_run(lake_home, [workers_csv])

    evaluation = checks(result)[SCHEMA_CHECK]
    assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert evaluation.description == "fail: schema_fingerprint schema changed"
    assert evaluation.metadata["reference_schema_fingerprint"].value == "0" * 64
    assert DOWNSTREAM not in materialized(result)


# --- the code location: ingest job, audit job, schedule ----------------------------------------------------


def test_the_ingest_job_runs_the_checks_and_the_audit_job_runs_only_them(lake_home, workers_csv):
    from assets.definitions import build_definitions

    defs = build_definitions()
    ingest_nodes = [n.name for n in defs.resolve_job_def("workers_ingest").nodes_in_topological_order]
    assert "workers_audit" in ingest_nodes
    audit_job = defs.resolve_job_def(AUDIT_JOB_NAME)
    assert [n.name for n in audit_job.nodes_in_topological_order] == [f"{n}_audit" for n in load_specs()]

    empty = audit_job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert {e.description for e in empty.get_asset_check_evaluations()} == {
        "dataset 'workers' has no registered data yet"
    }
    assert {e.severity for e in empty.get_asset_check_evaluations()} == {dg.AssetCheckSeverity.WARN}

    shutil.copy(workers_csv, lake_home.home / "workers.csv")
    ingest_run(lake_home, [lake_home.home / "workers.csv"])
    audited = audit_job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert audited.success and not audited.get_asset_materialization_events()
    assert all(e.passed for e in audited.get_asset_check_evaluations())
    assert len(BaselineLog(Lake.open(lake_home).storage).read("workers")) == 2


def test_the_schedule_requests_a_run_of_the_audit_job(lake_home, monkeypatch):
    from assets.definitions import build_definitions

    schedule = build_definitions().resolve_schedule_def(SCHEDULE_NAME)
    assert (schedule.cron_schedule, schedule.job_name) == (DEFAULT_CRON, AUDIT_JOB_NAME)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = schedule.evaluate_tick(dg.build_schedule_context())
    assert len(tick.run_requests) == 1 and tick.run_requests[0].tags["dagster/schedule_name"] == SCHEDULE_NAME

    monkeypatch.setenv(CRON_VARIABLE, "30 2 * * 1")
    assert build_definitions().resolve_schedule_def(SCHEDULE_NAME).cron_schedule == "30 2 * * 1"
    monkeypatch.setenv(CRON_VARIABLE, "every morning")
    with pytest.raises(LakehouseError, match="LAKEHOUSE_AUDIT_CRON='every morning' is not a 5-field cron"):
        build_definitions()
