"""Audit baselines and drift: metrics over a dataset's Parquet, a baseline log in the lake, drift tables.

Plain Python (DuckDB does the counting); the Dagster checks in `assets/audit_checks.py` and the
`lakehouse audit` command are thin callers of `runner.run_audit`. See docs/audit.md for the maths.
"""
