"""Audit domain code without Dagster: metrics against an independent count of the CSV, the baseline log's
round trip and concurrent appends (local and on a real moto S3 server), drift verdicts on crafted pairs,
distribution drift on a shifted copy of the workers data, and the `lakehouse audit` command's exit codes.
"""

from __future__ import annotations

import csv
import statistics
import threading
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakehouse_pipelines.audit.baseline_log import LOG_KEY, Baseline, BaselineLog
from lakehouse_pipelines.audit.chart import distribution_svg, markdown_image
from lakehouse_pipelines.audit.contract_recheck import contract_problems
from lakehouse_pipelines.audit.distribution import distribution_drift, js_distance, psi
from lakehouse_pipelines.audit.drift import AuditConfig, Threshold, drift_table, relative_verdict, worst
from lakehouse_pipelines.audit.metrics import compute_metrics
from lakehouse_pipelines.audit.report import markdown
from lakehouse_pipelines.audit.runner import identifier_columns, run_audit
from lakehouse_pipelines.cli import app
from lakehouse_pipelines.datasets import DatasetSpec, load_specs
from lakehouse_pipelines.ingest.publish import ingest
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv
from lakehouse_pipelines.lake import Lake


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def shifted_copy(source: Path, dest: Path) -> Path:
    """The same rows with hourly_rate raised by 25 and most shifts moved to nights: a feed that changed."""
    rows = read_csv(source)
    for i, row in enumerate(rows):
        row["hourly_rate"] = f"{float(row['hourly_rate']) + 25:.2f}"
        if i % 4:
            row["shift"] = "night"
    with open(dest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dest


def crafted(row_count: int, null_rate: float, *, fingerprint: str = "f" * 64) -> Baseline:
    columns = {"x": {"type": "int64", "count": row_count, "null_rate": null_rate, "approx_distinct": 10}}
    return Baseline("crafted", fingerprint, 1, {"row_count": row_count, "columns": columns})


def row(rows, metric: str, column: str | None = None):
    return next(r for r in rows if r.metric == metric and r.column == column)


# --- metrics ---------------------------------------------------------------------------------------------


def test_metrics_match_an_independent_count_of_the_csv(lake: Lake, workers_csv: Path):
    manifest = ingest(lake, str(workers_csv), "workers").manifest
    rows = read_csv(workers_csv)
    metrics = compute_metrics(lake, manifest)
    cols = metrics["columns"]

    assert metrics["row_count"] == len(rows)
    empty_dates = sum(1 for r in rows if not r["last_placed"])
    assert cols["last_placed"]["nulls"] == empty_dates
    assert cols["last_placed"]["null_rate"] == pytest.approx(empty_dates / len(rows))
    assert cols["last_placed"]["min"] == min(r["last_placed"] for r in rows if r["last_placed"])

    rates = [float(r["hourly_rate"]) for r in rows]
    hourly = cols["hourly_rate"]
    assert hourly["mean"] == pytest.approx(statistics.fmean(rates))
    assert hourly["stddev"] == pytest.approx(statistics.stdev(rates))
    assert (hourly["min"], hourly["max"]) == (min(rates), max(rates))
    twentieths = statistics.quantiles(rates, n=20, method="inclusive")  # linear, like quantile_cont
    assert hourly["quantiles"]["p5"] == pytest.approx(twentieths[0])
    assert hourly["quantiles"]["p50"] == pytest.approx(statistics.median(rates))
    assert hourly["quantiles"]["p95"] == pytest.approx(twentieths[18])
    assert sum(hourly["histogram"]["counts"]) == len(rates)
    assert len(hourly["histogram"]["counts"]) == len(hourly["histogram"]["edges"]) + 1

    roles = Counter(r["role"] for r in rows)
    assert {v["value"]: v["count"] for v in cols["role"]["top_values"]} == dict(roles)
    assert cols["role"]["length"]["max"] == max(len(r) for r in roles)
    assert cols["shift"]["approx_distinct"] == pytest.approx(4, abs=1)  # HyperLogLog: approximate
    assert "top_values" not in cols["resume_text"]  # identifier-like: no arbitrary "top" rows kept


def test_a_later_audit_bins_into_the_reference_edges(lake: Lake, workers_csv: Path, tmp_path: Path):
    ingest(lake, str(workers_csv), "workers")
    reference = compute_metrics(lake, lake.catalog.get("workers"))
    ingest(lake, str(shifted_copy(workers_csv, tmp_path / "shifted.csv")), "workers")
    later = compute_metrics(lake, lake.catalog.get("workers"), reference)

    ref_hist, new_hist = (
        reference["columns"]["hourly_rate"]["histogram"],
        later["columns"]["hourly_rate"]["histogram"],
    )
    assert new_hist["edges"] == ref_hist["edges"]
    assert new_hist["counts"][-1] > 0 == ref_hist["counts"][-1]  # raised rates overflow the old range
    ref_values = [v["value"] for v in reference["columns"]["shift"]["top_values"]]
    assert set(ref_values) <= {v["value"] for v in later["columns"]["shift"]["top_values"]}


# --- baseline log ----------------------------------------------------------------------------------------


def test_baseline_round_trips_losslessly_and_reads_like_json_lines(lake: Lake, workers_csv: Path):
    manifest = ingest(lake, str(workers_csv), "workers").manifest
    baseline = Baseline(
        "workers", manifest.schema_fingerprint, manifest.version, compute_metrics(lake, manifest)
    )

    assert Baseline.decode(baseline.encode()) == baseline
    log = BaselineLog(lake.storage)
    log.append(baseline)
    other = crafted(5, 0.0)
    log.append(other)
    assert log.read() == [baseline, other]
    assert log.read("workers") == [baseline]
    text = lake.storage.get(LOG_KEY)[0].decode("utf-8")
    assert text.count("\n") == 2
    assert text.startswith('{"schema_version": 1, "run_id": "')
    assert log.find("workers", baseline.run_id[:8]) == baseline


def concurrent_appends(logs: list[BaselineLog], per_writer: int) -> set[str]:
    written: set[str] = set()
    lock = threading.Lock()
    start = threading.Barrier(len(logs))

    def writer(log: BaselineLog) -> None:
        start.wait()
        for _ in range(per_writer):
            baseline = crafted(1, 0.0)
            log.append(baseline)
            with lock:
                written.add(baseline.run_id)

    threads = [threading.Thread(target=writer, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return written


@pytest.mark.s3
def test_two_concurrent_appenders_on_s3_lose_nothing(s3_lake: Lake):
    from lakehouse_pipelines.lake.storage import S3Storage

    writers = [BaselineLog(S3Storage(s3_lake.storage.url)) for _ in range(2)]
    written = concurrent_appends(writers, per_writer=12)
    lines = BaselineLog(s3_lake.storage).read()
    assert len(lines) == 24
    assert {b.run_id for b in lines} == written


def test_two_concurrent_appenders_on_a_local_lake_lose_nothing(lake: Lake):
    from lakehouse_pipelines.lake.storage import LocalStorage

    written = concurrent_appends([BaselineLog(LocalStorage(lake.storage.url)) for _ in range(2)], 12)
    lines = BaselineLog(lake.storage).read()
    assert len(lines) == 24
    assert {b.run_id for b in lines} == written


# --- drift verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "change", "verdict", "note"),
    [
        (100, 100, 0.0, "ok", ""),
        (100, 150, 0.5, "warn", ""),
        (100, 85, -0.15, "ok", ""),
        (0, 0, 0.0, "ok", ""),
        (0.0, 0.3, None, "warn", "from 0"),
        (None, 3, None, "warn", "appeared"),
        (3, None, None, "warn", "vanished"),
        (None, None, None, "ok", ""),
    ],
)
def test_relative_verdicts_spell_out_zero_and_missing_baselines(old, new, change, verdict, note):
    got_change, got_verdict, got_note = relative_verdict(old, new, Threshold())
    assert got_change == (pytest.approx(change) if change is not None else None)
    assert (got_verdict, got_note) == (verdict, note)


def test_drift_table_on_crafted_pairs():
    same = drift_table(crafted(1000, 0.0), crafted(1000, 0.0), [])
    assert worst(same) == "ok"

    grown = drift_table(crafted(1000, 0.0), crafted(1500, 0.0), [])
    assert row(grown, "row_count").verdict == "warn"
    assert row(grown, "row_count").change == pytest.approx(0.5)

    nulls = drift_table(crafted(1000, 0.0), crafted(1000, 0.3), [])
    assert (row(nulls, "null_rate", "x").verdict, row(nulls, "null_rate", "x").change) == ("warn", None)
    assert "inf" not in markdown(nulls).lower()

    relaxed = AuditConfig({"thresholds": {"row_count": {"warn": 1.0}}, "columns": {"x": {"skip": True}}})
    assert worst(drift_table(crafted(1000, 0.0), crafted(1500, 0.3), [], relaxed)) == "ok"

    strict = AuditConfig({"thresholds": {"default": {"warn": 0.05, "fail": 0.4}}})
    assert row(drift_table(crafted(1000, 0.0), crafted(1500, 0.0), [], strict), "row_count").verdict == "fail"

    refingerprinted = drift_table(crafted(10, 0.0), crafted(10, 0.0, fingerprint="e" * 64), [])
    assert row(refingerprinted, "schema_fingerprint").verdict == "fail"


# --- distribution drift ----------------------------------------------------------------------------------


def test_psi_and_js_are_zero_for_identical_counts_and_grow_with_a_shift():
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert psi([10, 20, 30, 0], [0, 10, 20, 30]) > 0.25
    assert js_distance([5, 5], [5, 5]) == pytest.approx(0.0)
    assert js_distance([10, 0], [0, 10]) == pytest.approx(1.0)


def test_distribution_drift_flags_the_shifted_columns_and_not_the_others(
    lake: Lake, workers_csv: Path, tmp_path: Path
):
    reference_manifest = ingest(lake, str(workers_csv), "workers").manifest
    resampled = write_workers_csv(tmp_path / "resampled.csv", 2_000, seed=11)  # same process, new draw
    shifted = shifted_copy(resampled, tmp_path / "shifted.csv")
    reference = compute_metrics(lake, reference_manifest)
    same_feed = compute_metrics(lake, ingest(lake, str(resampled), "workers_resampled").manifest, reference)
    changed = compute_metrics(lake, ingest(lake, str(shifted), "workers_shifted").manifest, reference)

    unshifted = {d.column: d for d in distribution_drift(reference, same_feed)}
    assert unshifted["hourly_rate"].score < 0.1
    assert unshifted["shift"].score < 0.1
    assert unshifted["role"].score < 0.1

    drifted = {d.column: d for d in distribution_drift(reference, changed)}
    assert drifted["hourly_rate"].score >= 0.25  # PSI: drift
    assert drifted["shift"].score >= 0.2  # JS distance: drift
    assert drifted["years_experience"].score < 0.1  # untouched column of the same rows
    assert drifted["role"].score < 0.1

    svg = distribution_svg(drifted["hourly_rate"])
    assert svg.startswith("<svg") and "hourly_rate: PSI" in svg
    assert markdown_image(svg, "hourly_rate").startswith("![hourly_rate](data:image/svg+xml;base64,")


# --- runner and CLI --------------------------------------------------------------------------------------


def test_audit_command_prints_the_table_and_exits_by_verdict(lake: Lake, workers_csv: Path, tmp_path: Path):
    runner = CliRunner()
    ingest(lake, str(workers_csv), "workers")
    first = runner.invoke(app, ["audit", "workers"])
    assert first.exit_code == 0, first.output
    assert "first baseline recorded" in first.output
    pinned = BaselineLog(lake.storage).latest("workers", 1)[0].run_id

    again = runner.invoke(app, ["audit", "workers"])
    assert again.exit_code == 0, again.output
    assert "row_count" in again.output and "verdict: ok" in again.output

    ingest(lake, str(shifted_copy(workers_csv, tmp_path / "shifted.csv")), "workers")
    drifted = runner.invoke(app, ["audit", "workers", "--reference", pinned[:10]])
    assert drifted.exit_code == 1, drifted.output
    assert "verdict: fail" in drifted.output

    unknown = runner.invoke(app, ["audit", "nobody"])
    assert unknown.exit_code == 1
    assert "dataset 'nobody' has no registered data to audit" in unknown.output


def test_pinned_reference_from_the_declaration(lake: Lake, workers_csv: Path):
    ingest(lake, str(workers_csv), "workers")
    first = run_audit(lake, DatasetSpec(name="workers"))
    run_audit(lake, DatasetSpec(name="workers"))
    pinned = run_audit(lake, DatasetSpec(name="workers", audit={"reference": first.baseline.run_id}))
    assert pinned.reference == first.baseline
    assert len(BaselineLog(lake.storage).read("workers")) == 3


@pytest.mark.s3
def test_an_audit_and_the_contract_pass_on_an_s3_lake(s3_lake: Lake, workers_csv: Path):
    ingest(s3_lake, str(workers_csv), "workers")
    run_audit(s3_lake, DatasetSpec(name="workers"))
    again = run_audit(s3_lake, DatasetSpec(name="workers"))
    assert again.verdict == "ok" and again.baseline.metrics["row_count"] == 2_000
    assert [b.run_id for b in BaselineLog(s3_lake.storage).read()][-1] == again.baseline.run_id

    manifest = s3_lake.catalog.get("workers")
    assert contract_problems(s3_lake, load_specs()["workers"], manifest) == []
    strict = {"columns": {"reliability": {"checks": {"le": 0.5}}}}
    [problem] = contract_problems(s3_lake, DatasetSpec(name="workers", contract=strict), manifest)
    assert problem.startswith(f"{manifest.objects[0].key} (from workers.csv): contract for dataset 'workers'")
    assert "column 'reliability' fails less_than_or_equal_to" in problem
    assert not list(s3_lake.scratch.glob("audit-*"))  # the downloaded copies are gone


def test_identifier_columns_get_no_distribution_test(lake: Lake, workers_csv: Path, tmp_path: Path):
    spec = load_specs()["workers"]
    assert identifier_columns(spec) == {"worker_id"}  # contract `unique` and the embedding id_column
    ingest(lake, str(workers_csv), "workers")
    run_audit(lake, spec)
    ingest(lake, str(write_workers_csv(tmp_path / "more.csv", 3_000, seed=11)), "workers")

    declared = run_audit(lake, spec, record=False)
    bare = run_audit(lake, DatasetSpec(name="workers"), record=False)
    assert "worker_id" not in {d.column for d in declared.distributions}
    assert row(declared.rows, "null_rate", "worker_id").verdict == "ok"
    ids = next(d for d in bare.distributions if d.column == "worker_id")
    assert ids.score >= 0.25  # ids 2,001..3,000 fall past the reference range: "drift" on every new drop
