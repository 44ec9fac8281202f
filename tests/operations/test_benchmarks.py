"""The benchmarks stay runnable: each script imports against the current code and answers `--help`.

They run outside the default suite (minutes to hours each), so an API they call can change without a test
noticing: two of them had broken that way (an import moved, a function that now builds one unit).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_loads_and_explains_itself(script):
    run = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout
