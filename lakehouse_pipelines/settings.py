"""The configuration: one typed model of every variable the product reads (ARCHITECTURE.md, "Configuration").

`LakehouseSettings()` reads the environment once, checks each value's type, and hands each consumer its
part: the lake (`.lake`), S3 (`.aws`), the embedder (`.embedder`), the vector store (`.vectors`) and the
sidecar's limits (`.sidecar`). Nothing below reads the environment again. The Dagster resources are built from
the same model (`resources.build_resources`), docs/configuration.md is checked against its fields
(`tests/operations/test_deploy.py`), and `lakehouse doctor` probes the backends these parts open.

Field names are the variables' names in lower case, so a variable and its field can't drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_FILE_BYTES = 16 * 1024**3
DEFAULT_AUDIT_CRON = "0 6 * * *"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OLLAMA_MODEL = "nomic-embed-text"
DEFAULT_OLLAMA_CONCURRENCY = 4
DEFAULT_MEMORY_TABLES_MB = 256
DEFAULT_RESULT_CACHE_MB = 32
DEFAULT_SQL_CONCURRENCY = 4


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake and the landing area live."""

    home: Path
    storage: str
    landing: str
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    @classmethod
    def under(cls, home: Path | str, storage: str = "", landing: str = "", **kwargs) -> LakeSettings:
        """The embedded defaults under `home`: the lake in `home/lake`, drops in `home/landing`."""
        home = Path(home).absolute()
        return cls(home, storage or str(home / "lake"), landing or str(home / "landing"), **kwargs)

    @property
    def scratch(self) -> Path:
        """Local working space (downloads, staging files) that never holds published data."""
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class AwsSettings:
    """S3 endpoint and credentials; empty values leave boto3's own chain (profiles, instance roles) to decide."""

    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""


@dataclass(frozen=True)
class EmbedderSettings:
    """`local` (all-MiniLM-L6-v2 on ONNX Runtime, offline), `local-int8` (its int8 twin) or `ollama`."""

    kind: Literal["local", "local-int8", "ollama"] = "local"
    ollama_host: str = DEFAULT_OLLAMA_HOST
    ollama_model: str = DEFAULT_OLLAMA_MODEL
    ollama_concurrency: int = DEFAULT_OLLAMA_CONCURRENCY  # batched requests in flight at once
    model_cache: str = ""  # where the local model's ONNX export lives ("": the user's cache folder)
    threads: int | None = None  # the local model's ONNX Runtime threads (None: every core)


@dataclass(frozen=True)
class VectorStoreSettings:
    """A Qdrant server when `qdrant_url` is set, else Qdrant Edge under the lake's home."""

    qdrant_url: str = ""
    qdrant_api_key: str = ""


@dataclass(frozen=True)
class SidecarSettings:
    """Limits that keep one query from taking the service down, and the optional API token.

    `max_rows` caps a JSON result (the response says `truncated`); `max_stream_rows` caps CSV and Arrow
    streams; `query_timeout` is the wall-clock deadline of a query, streaming included. `threads` is the
    engine's DuckDB thread count (None: one per core; `serve --workers N` gives each worker its share).
    """

    token: str | None = None
    query_timeout: float = 5.0
    max_rows: int = 1_000
    max_stream_rows: int = 1_000_000
    refresh_interval: float = 2.0
    memory_limit: str = "1GB"
    threads: int | None = None
    access_log: bool = True
    result_cache_mb: int = DEFAULT_RESULT_CACHE_MB  # repeated queries' JSON answers (sql/results.py)
    memory_tables_mb: int = DEFAULT_MEMORY_TABLES_MB  # datasets copied into each engine's memory up to this (sql/memory_tables.py)
    concurrency: int = DEFAULT_SQL_CONCURRENCY  # queries a worker runs at once; the others wait their turn


class LakehouseSettings(BaseSettings):
    """Every variable the product reads (Dagster's own `DAGSTER_*` are Dagster's to read)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    # the lake
    lakehouse_home: Path = Path(".lakehouse")
    lakehouse_storage: str = ""
    lakehouse_landing: str = ""
    lakehouse_max_file_bytes: int = Field(DEFAULT_MAX_FILE_BYTES, gt=0)
    lakehouse_schemas: str = ""
    lakehouse_audit_cron: str = DEFAULT_AUDIT_CRON
    # S3: any endpoint
    aws_endpoint_url: str = ""
    aws_endpoint_url_s3: str = ""
    aws_region: str = ""
    aws_default_region: str = ""
    aws_access_key_id: SecretStr = SecretStr("")
    aws_secret_access_key: SecretStr = SecretStr("")
    aws_session_token: SecretStr = SecretStr("")
    # search
    qdrant_url: str = ""
    qdrant_api_key: SecretStr = SecretStr("")
    lakehouse_vector_quantization: Literal["int8", "turbo4", "none"] = "int8"
    lakehouse_embedder: Literal["local", "local-int8", "ollama"] = "local"
    lakehouse_model_cache: str = ""
    lakehouse_encoder_threads: int | None = Field(None, gt=0)
    ollama_host: str = DEFAULT_OLLAMA_HOST
    lakehouse_ollama_model: str = DEFAULT_OLLAMA_MODEL
    lakehouse_ollama_concurrency: int = Field(DEFAULT_OLLAMA_CONCURRENCY, gt=0)
    lakehouse_search_bands: str = ""
    # the sidecar and MCP
    lakehouse_api_token: SecretStr = SecretStr("")
    lakehouse_sql_timeout: float = Field(5.0, gt=0)
    lakehouse_sql_max_rows: int = Field(1_000, gt=0)
    lakehouse_sql_max_stream_rows: int = Field(1_000_000, gt=0)
    lakehouse_sql_memory_limit: str = "1GB"
    lakehouse_sql_threads: int | None = Field(None, gt=0)
    lakehouse_sql_memory_tables_mb: int = Field(DEFAULT_MEMORY_TABLES_MB, ge=0)
    lakehouse_sql_result_cache_mb: int = Field(DEFAULT_RESULT_CACHE_MB, ge=0)
    lakehouse_sql_concurrency: int = Field(DEFAULT_SQL_CONCURRENCY, gt=0)
    lakehouse_view_refresh_seconds: float = Field(2.0, gt=0)
    lakehouse_access_log: bool = True
    # Dagster's production instance reads it from the environment itself; here so output can blank it
    dagster_pg_password: SecretStr = SecretStr("")

    @property
    def lake(self) -> LakeSettings:
        return LakeSettings.under(
            self.lakehouse_home,
            self.lakehouse_storage,
            self.lakehouse_landing,
            max_file_bytes=self.lakehouse_max_file_bytes,
        )

    @property
    def aws(self) -> AwsSettings:
        return AwsSettings(
            endpoint_url=self.aws_endpoint_url_s3 or self.aws_endpoint_url,
            region=self.aws_region or self.aws_default_region,
            access_key_id=self.aws_access_key_id.get_secret_value(),
            secret_access_key=self.aws_secret_access_key.get_secret_value(),
            session_token=self.aws_session_token.get_secret_value(),
        )

    @property
    def embedder(self) -> EmbedderSettings:
        return EmbedderSettings(
            self.lakehouse_embedder,
            self.ollama_host,
            self.lakehouse_ollama_model,
            self.lakehouse_ollama_concurrency,
            self.lakehouse_model_cache,
            self.lakehouse_encoder_threads,
        )

    @property
    def vectors(self) -> VectorStoreSettings:
        return VectorStoreSettings(self.qdrant_url, self.qdrant_api_key.get_secret_value())

    @property
    def sidecar(self) -> SidecarSettings:
        return SidecarSettings(
            token=self.lakehouse_api_token.get_secret_value() or None,
            query_timeout=self.lakehouse_sql_timeout,
            max_rows=self.lakehouse_sql_max_rows,
            max_stream_rows=self.lakehouse_sql_max_stream_rows,
            refresh_interval=self.lakehouse_view_refresh_seconds,
            memory_limit=self.lakehouse_sql_memory_limit,
            threads=self.lakehouse_sql_threads,
            access_log=self.lakehouse_access_log,
            memory_tables_mb=self.lakehouse_sql_memory_tables_mb,
            result_cache_mb=self.lakehouse_sql_result_cache_mb,
            concurrency=self.lakehouse_sql_concurrency,
        )

    @property
    def secrets(self) -> list[str]:
        """The secret values set, so that output can blank them (`doctor.redact`)."""
        fields = (
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.aws_session_token,
            self.qdrant_api_key,
            self.lakehouse_api_token,
            self.dagster_pg_password,
        )
        return [v for v in (f.get_secret_value() for f in fields) if v]
