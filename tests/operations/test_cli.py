"""The `lakehouse` command for hand work: ingesting several files shows live progress on a terminal and one
result line per file, and `datasets` prints the catalog as a table that fits a pipe's 80 columns.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from typer.testing import CliRunner

from lakehouse_pipelines.cli import app
from lakehouse_pipelines.ingest.sample_workers import write_workers_csv

LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def test_ingest_reports_each_file_and_datasets_prints_the_catalog(lake_home, workers_csv, tmp_path):
    second = write_workers_csv(tmp_path / "more.csv", 500, seed=3)
    ingested = CliRunner().invoke(app, ["ingest", str(workers_csv), str(second), "--dataset", "workers"])
    assert ingested.exit_code == 0, ingested.output
    assert f"{workers_csv}: created 2,000 rows" in ingested.output
    assert f"{second}: appended 500 rows" in ingested.output

    listed = CliRunner().invoke(app, ["datasets"])
    lines = listed.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    header = next(line for line in lines if "dataset" in line)
    assert header.split() == ["dataset", "version", "rows", "objects", "size", "schema", "updated", "(UTC)"]
    row = next(line.split() for line in lines if line.strip().startswith("workers"))
    assert row[:4] == ["workers", "2", "2,500", "2"]


def test_ingest_on_a_terminal_shows_progress(lake_home, workers_csv, tmp_path):
    second = write_workers_csv(tmp_path / "more.csv", 500, seed=3)
    screen = bytearray()
    main, terminal = pty.openpty()

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        subprocess.run(
            [str(LAKEHOUSE), "ingest", str(workers_csv), str(second), "--dataset", "workers"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "160"},
            check=True,
            timeout=120,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(main)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))  # colours, cursor moves
    assert "0/2" in shown and "1/2" in shown  # files done of files given
    assert any(stage in shown for stage in ("hashing", "inferring types", "writing parquet", "publishing"))
    assert "created 2,000 rows" in shown and "appended 500 rows" in shown
