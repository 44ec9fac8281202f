"""The deploy recipes, tested as far as a machine without a Docker engine can: docker-compose.yml names every
production service and only variables the code reads; docs/configuration.md lists exactly the variables the
code and the Dagster YAML files read; the production dagster.yaml validates; the Dockerfile installs torch
first and the project with constraints.txt; the compose commands exist, and the code location's command
really serves the definitions over gRPC (on loopback here).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lakehouse_pipelines.cli import app
from lakehouse_pipelines.settings import LakehouseSettings
from tests.conftest import free_port, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CODE_DIRS = ("lakehouse_pipelines", "assets", "resources", "schemas")
ENV_NAME = re.compile(r"(LAKEHOUSE|QDRANT|OLLAMA|AWS|DAGSTER)_[A-Z0-9_]+")
PROJECT_SERVICES = {"code-location", "dagster-webserver", "dagster-daemon", "sidecar"}
PRODUCTION_SERVICES = {"minio", "qdrant", "ollama", "postgres"} | PROJECT_SERVICES

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]


def code_variables() -> set[str]:
    """Environment variable names the code reads: the settings model's fields, string constants that are
    exactly such a name, plus `env:` references in the Dagster YAML files."""
    names = {field.upper() for field in LakehouseSettings.model_fields}
    for directory in CODE_DIRS:
        for path in (REPO / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and ENV_NAME.fullmatch(str(node.value)):
                    names.add(node.value)
    for config in ("dagster.yaml", "dagster.production.yaml"):
        names |= set(re.findall(r"env:\s*([A-Z0-9_]+)", (REPO / config).read_text()))
    return names


def documented_variables() -> set[str]:
    """The first column of docs/configuration.md's tables."""
    text = (REPO / "docs" / "configuration.md").read_text()
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_the_configuration_reference_lists_exactly_what_the_code_reads():
    code, documented = code_variables(), documented_variables()
    assert code - documented == set(), "read by the code but missing from docs/configuration.md"
    assert documented - code == set(), "documented but read by nothing"


def test_compose_names_every_production_service_and_only_defined_ones():
    assert set(SERVICES) >= PRODUCTION_SERVICES
    volumes = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        assert set(service.get("depends_on", {})) <= set(SERVICES), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in volumes or source.startswith(("/", ".")), (name, source)


def test_project_services_set_only_variables_the_code_reads():
    readable = documented_variables()
    for name in PROJECT_SERVICES:
        service = SERVICES[name]
        assert service["build"] == "."
        environment = set(service["environment"])
        assert environment - readable == set(), name
    assert "LAKEHOUSE_API_TOKEN" in SERVICES["sidecar"]["environment"]
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", (REPO / "docker-compose.yml").read_text()))
    operations = (REPO / "docs" / "operations.md").read_text()
    assert {v for v in interpolated if v not in operations} == set(), "secrets the operator must set"


def test_the_production_dagster_yaml_is_a_valid_postgres_instance_config(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    for source in ("dagster.production.yaml", "dagster.yaml"):
        home = tmp_path / source
        home.mkdir()
        shutil.copy(REPO / source, home / "dagster.yaml")
        config, custom_class = dagster_instance_config(str(home))
        assert custom_class is None
    assert set(config["storage"]) == {"sqlite"}
    production, _ = dagster_instance_config(str(tmp_path / "dagster.production.yaml"))
    database = production["storage"]["postgres"]["postgres_db"]
    assert database["scheme"] == "postgresql+psycopg2"
    assert {database[k]["env"] for k in ("hostname", "port", "db_name", "username", "password")} == {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_DB",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
    }


def test_the_dockerfile_installs_torch_first_then_the_pinned_project():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    runs = [line for line in lines if line.startswith("RUN pip install")]
    assert "torch==2.13.0" in runs[0] and "--index-url" in runs[0]
    assert runs[1] == "RUN pip install -c constraints.txt ."
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    for line in lines:
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), source
                assert source not in ignored, source
    workspace = yaml.safe_load((REPO / "workspace.production.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] in SERVICES
    assert str(grpc["port"]) in SERVICES["code-location"]["command"]


@pytest.mark.parametrize(
    ("service", "program"),
    [("dagster-webserver", ["dagster-webserver"]), ("dagster-daemon", ["dagster-daemon", "run"])],
)
def test_the_dagster_service_commands_take_the_options_compose_passes(service, program):
    command = SERVICES[service]["command"]
    assert command[: len(program)] == program
    usage = subprocess.run(
        [str(BIN / program[0]), *program[1:], "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (w for w in command if w.startswith("-")):
        assert re.search(rf"(^|[\s,]){re.escape(option)}[\s,]", usage), (service, option)


def test_the_sidecar_command_is_the_cli_serve():
    command = SERVICES["sidecar"]["command"]
    assert command[:2] == ["lakehouse", "serve"]
    usage = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).stdout
    for option in (w for w in command if w.startswith("--")):
        assert option in usage


def test_the_code_location_command_serves_the_definitions_over_grpc(lake_home):
    command = SERVICES["code-location"]["command"]
    port = str(free_port())
    loopback = {"0.0.0.0": "127.0.0.1", "4000": port}  # the same command, bound to loopback here
    local = [loopback.get(word, word) for word in command]
    process = subprocess.Popen(
        [str(BIN / local[0]), *local[1:]],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(lake_home.home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(int(port), timeout=120)
        check = SERVICES["code-location"]["healthcheck"]["test"][1:]
        health = [port if word == "4000" else word for word in check]
        subprocess.run([str(BIN / health[0]), *health[1:]], check=True, capture_output=True, timeout=60)
    finally:
        stop_process_group(process)
