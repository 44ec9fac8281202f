"""DuckDB connections with the extensions this project needs, loaded offline from installed packages.

Locked-down hosts (and this one) cannot download extensions, so `icu` (time zones) and `httpfs` (s3://)
come from the `duckdb-extension-*` wheels and are loaded by path. Every connection is pinned to UTC so a
timestamp means the same instant on every machine.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import duckdb


def extension_path(name: str) -> Path:
    """The extension file shipped by the `duckdb-extension-<name>` package for this DuckDB version."""
    package = importlib.import_module(f"duckdb_extension_{name}")
    return (
        Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    )


def connect(*, memory_limit: str, scratch: Path | None = None, s3: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory connection bounded in memory, spilling to `scratch`, in UTC; with httpfs if `s3`."""
    config = {
        "memory_limit": memory_limit,
        "threads": os.cpu_count() or 1,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if scratch is not None:
        config["temp_directory"] = str(scratch / "duckdb")
    con = duckdb.connect(config=config)
    load_extension(con, "icu")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # it would print into stdout of the CLI and of runs
    if s3:
        load_extension(con, "httpfs")
    return con


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"LOAD '{extension_path(name)}'")


def sandboxed(**config) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can open no file and no network, load nothing, in UTC, with its
    configuration locked: for work on values alone (classifying SQL, checking records)."""
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_persistent_secrets": False,
            **config,
        },
    )
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con
