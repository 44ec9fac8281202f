"""The real `dg dev` (UI + daemon), started as scripts/dev starts it, loads the code location without a
deprecation or beta warning; its GraphQL API shows assets, the drop sensor, the search automation sensor and the audit schedule,
all running."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parents[2]
QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  name assetNodes { assetKey { path } } sensors { name sensorState { status } }
  schedules { name scheduleState { status } } } } } }"""


def test_dagster_dev_serves_the_code_location(tmp_path):
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parents[1])
    dg = Path(sys.executable).parent / "dg"
    log = tmp_path / "dev.log"
    process = subprocess.Popen(
        [str(dg), "dev", "--target-path", str(REPO), "--host", "127.0.0.1", "--port", str(port)],
        cwd=dagster_home,  # as scripts/dev runs it
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # `dagster dev` ignores SIGTERM from a non-interactive parent otherwise
    )
    try:
        wait_for_port(port, timeout=120)
        nodes = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not nodes:
            response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30)
            nodes = response.json()["data"]["repositoriesOrError"].get("nodes")
            time.sleep(0.5)
        assert nodes, "the code location never loaded"
        assets = {"/".join(a["assetKey"]["path"]) for a in nodes[0]["assetNodes"]}
        assert {"workers/parquet", "workers/manifest", "workers/embeddings", "workers/vectors"} <= assets
        sensors = {s["name"]: s["sensorState"]["status"] for s in nodes[0]["sensors"]}
        assert sensors["landing_drop_sensor"] == sensors["search_automation_sensor"] == "RUNNING"
        schedules = {s["name"]: s["scheduleState"]["status"] for s in nodes[0]["schedules"]}
        assert schedules["audit_schedule"] == "RUNNING"
    finally:
        stop_process_group(process)
    output = log.read_text()
    for warning in ("superseded", "Deprecat", "BetaWarning"):
        assert warning not in output, output
