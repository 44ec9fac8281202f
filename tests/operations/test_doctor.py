"""`lakehouse doctor`: the embedded defaults pass; S3 on the moto server passes; each broken piece (a stopped
S3 endpoint, missing credentials, an unreachable or model-less Ollama, an unreachable Qdrant, an unset or
unreachable Postgres) fails with its fix and exit 1; `--json` has a stable shape; no secret is ever printed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from lakehouse_pipelines.cli import app
from tests.conftest import free_port
from tests.search_support import OllamaStub

REPO = Path(__file__).resolve().parents[2]
CONFIG_VARIABLES = (
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "LAKEHOUSE_EMBEDDER",
    "LAKEHOUSE_OLLAMA_MODEL",
    "OLLAMA_HOST",
    "LAKEHOUSE_API_TOKEN",
    "DAGSTER_HOME",
)


@pytest.fixture
def defaults(lake_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Embedded defaults: a lake under LAKEHOUSE_HOME and DAGSTER_HOME holding the project's dagster.yaml."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    (lake_home.home / "landing").mkdir(parents=True)
    return dagster_home


def doctor() -> tuple[int, dict[str, dict]]:
    """Run `lakehouse doctor --json`: (exit code, checks by name)."""
    result = CliRunner().invoke(app, ["doctor", "--json"])
    report = json.loads(result.stdout)
    assert report["ok"] is (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in report["checks"]}


def test_embedded_defaults_pass(defaults):
    code, checks = doctor()
    assert code == 0
    assert set(checks) == {
        "lake storage",
        "landing",
        "duckdb extensions",
        "vector store",
        "embedder",
        "dagster instance",
        "sidecar auth",
    }
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert "Qdrant Edge" in checks["vector store"]["detail"]
    assert "SqliteRunStorage" in checks["dagster instance"]["detail"]


def test_json_shape_and_the_readable_table(defaults):
    _, checks = doctor()
    for check in checks.values():
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "warn", "fail")
    table = CliRunner().invoke(app, ["doctor"])
    assert table.exit_code == 0
    for name in checks:
        assert name in table.stdout


def test_a_landing_folder_not_made_yet_is_a_warning_not_a_failure(defaults, lake_home):
    (lake_home.home / "landing").rmdir()
    code, checks = doctor()
    assert code == 0
    assert checks["landing"]["status"] == "warn"
    assert checks["landing"]["fix"].startswith(f"mkdir -p {lake_home.home / 'landing'}/<dataset>")


@pytest.mark.s3
def test_s3_storage_and_landing_on_the_moto_server_pass(defaults, s3_bucket, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_STORAGE", f"{s3_bucket}/lake")
    monkeypatch.setenv("LAKEHOUSE_LANDING", f"{s3_bucket}/landing")
    code, checks = doctor()
    assert code == 0, checks
    assert checks["s3 credentials"]["status"] == "ok"
    assert checks["lake storage"]["detail"] == f"{s3_bucket}/lake writable"
    assert checks["landing"]["status"] == "ok"
    left = boto3.client("s3").list_objects_v2(Bucket=s3_bucket.removeprefix("s3://")).get("Contents", [])
    assert left == []  # the write probe cleaned up after itself


@pytest.mark.s3
def test_a_missing_bucket_says_how_to_create_it(defaults, s3_bucket, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_STORAGE", "s3://no-such-bucket/lake")
    code, checks = doctor()
    assert code == 1
    assert "does not exist" in checks["lake storage"]["detail"]
    assert "aws s3 mb s3://no-such-bucket" in checks["lake storage"]["fix"]


def test_a_stopped_s3_endpoint_fails_with_its_fix(defaults, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("LAKEHOUSE_STORAGE", "s3://lake/prefix")
    code, checks = doctor()
    assert code == 1
    assert checks["lake storage"]["status"] == "fail"
    assert "unreachable" in checks["lake storage"]["detail"]
    assert "AWS_ENDPOINT_URL" in checks["lake storage"]["fix"]


def test_missing_s3_credentials_fail_with_their_fix(defaults, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # No shared files, and no instance-metadata lookup (it would leave the machine).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LAKEHOUSE_STORAGE", "s3://lake/prefix")
    code, checks = doctor()
    assert code == 1
    assert checks["s3 credentials"]["status"] == "fail"
    assert "AWS_ACCESS_KEY_ID" in checks["s3 credentials"]["fix"]


def test_an_unreachable_ollama_fails_with_its_fix(defaults, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    code, checks = doctor()
    assert code == 1
    assert "unreachable" in checks["embedder"]["detail"]
    assert "ollama serve" in checks["embedder"]["fix"] and "OLLAMA_HOST" in checks["embedder"]["fix"]


def test_ollama_without_the_model_says_pull_it_and_with_it_passes(defaults, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_EMBEDDER", "ollama")
    with OllamaStub(dim=768, models=("other-model",)).running() as stub:
        monkeypatch.setenv("OLLAMA_HOST", stub.url)
        code, checks = doctor()
        assert code == 1
        assert checks["embedder"]["fix"].startswith("ollama pull nomic-embed-text")
        monkeypatch.setenv("LAKEHOUSE_OLLAMA_MODEL", "other-model")
        code, checks = doctor()
    assert code == 0
    assert "other-model embeds 768-d vectors" in checks["embedder"]["detail"]


def test_an_unreachable_qdrant_fails_with_its_fix(defaults, monkeypatch):
    monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{free_port()}")
    code, checks = doctor()
    assert code == 1
    assert "unreachable" in checks["vector store"]["detail"]
    assert "QDRANT_URL" in checks["vector store"]["fix"]


def test_the_production_instance_names_unset_variables_then_an_unreachable_postgres(defaults, monkeypatch):
    shutil.copy(REPO / "dagster.production.yaml", defaults / "dagster.yaml")
    for name in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_DB",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    code, checks = doctor()
    assert code == 1
    assert checks["dagster instance"]["fix"] == (
        "set DAGSTER_PG_DB, DAGSTER_PG_HOST, DAGSTER_PG_PASSWORD, DAGSTER_PG_PORT, DAGSTER_PG_USER"
    )
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(free_port()),
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "pg-password-do-not-print",
    }.items():
        monkeypatch.setenv(name, value)
    code, checks = doctor()
    assert code == 1
    assert "Postgres does not answer" in checks["dagster instance"]["detail"]
    assert "docker compose up -d postgres" in checks["dagster instance"]["fix"]


def test_no_secret_is_ever_printed(defaults, monkeypatch):
    port = free_port()
    secrets = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID0001",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-example-secret",
        "QDRANT_API_KEY": "qdrant-key-do-not-print",
        "LAKEHOUSE_API_TOKEN": "api-token-do-not-print",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LAKEHOUSE_STORAGE", "s3://lake/prefix")
    monkeypatch.setenv("QDRANT_URL", f"http://admin:url-password-do-not-print@127.0.0.1:{port}")
    text = CliRunner().invoke(app, ["doctor"]).output
    as_json = CliRunner().invoke(app, ["doctor", "--json"]).output
    assert "127.0.0.1" in as_json  # the endpoints are named...
    for value in [*secrets.values(), "url-password-do-not-print"]:
        assert value not in text and value not in as_json  # ...the secrets are not
