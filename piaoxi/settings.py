"""The one settings object: every knob is an environment variable with the PIAOXI_ prefix.

Defaults point at the local stack that `piaoxi stack up` starts; production sets the
endpoint variables instead. A `.env` file in the working directory is read too.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration for every piaoxi process (producer, worker, projector, API)."""

    model_config = SettingsConfigDict(
        env_prefix="PIAOXI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- where local state lives -------------------------------------------------------
    home: Path = Field(
        Path(".piaoxi"), description="Local state: pid files, logs, data (made absolute)."
    )

    # --- local stack ports (all bound to 127.0.0.1) -----------------------------------
    kafka_port: int = Field(9092, description="Port of the local Kafka-API broker (Tansu).")
    s3_port: int = Field(
        8333, description="Port of the local S3 store (SeaweedFS; gRPC on this + 10000)."
    )
    search_port: int = Field(9200, description="Port of the local search server (osmem).")
    broker_storage: Literal["s3", "memory"] = Field(
        "s3", description="Local broker storage: durable `s3` on SeaweedFS, or `memory`."
    )
    broker_bucket: str = Field(
        "piaoxi-broker", description="Bucket of the local broker's `s3` storage (own bucket)."
    )
    seaweed_master_port: int = Field(
        9333, description="SeaweedFS master port (its gRPC port is this + 10000)."
    )
    seaweed_volume_port: int = Field(
        9340, description="SeaweedFS volume port (its gRPC port is this + 10000)."
    )
    seaweed_filer_port: int = Field(
        8888, description="SeaweedFS filer port (its gRPC port is this + 10000)."
    )
    seaweed_admin_port: int = Field(
        23646, description="SeaweedFS admin port (its gRPC port is this + 10000)."
    )
    stack_ready_timeout_s: float = Field(
        90.0, description="How long `piaoxi stack up` waits for one service to be ready."
    )

    # --- endpoints (derived from the ports above unless set) --------------------------
    kafka_bootstrap: str = Field(
        "", description="Kafka bootstrap servers, host:port[,...]; empty: the local broker."
    )
    s3_endpoint: str = Field("", description="S3 endpoint URL; empty: the local store.")
    s3_access_key: str = Field("", description="S3 access key (local stack: generated).")
    s3_secret_key: str = Field("", description="S3 secret key (local stack: generated).")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_bucket: str = Field("piaoxi-blobs", description="Bucket for uploaded blobs.")
    search_url: str = Field(
        "", description="Elasticsearch/OpenSearch URL; empty: the local server."
    )
    search_username: str = Field("", description="Search server user (empty: no auth).")
    search_password: str = Field("", description="Search server password.")
    search_index_prefix: str = Field("piaoxi", description="Prefix of index names and aliases.")
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/piaoxi", description="PostgreSQL DSN."
    )
    database_pool_size: int = Field(10, description="asyncpg pool size per process.")
    schema_registry_url: str = Field(
        "", description="External Confluent-compatible registry; empty = embedded (_schemas)."
    )

    # --- the pipeline ------------------------------------------------------------------
    topic_prefix: str = Field("", description="Prefix for every topic name (multi-tenant).")
    topic_partitions: int = Field(
        8,
        ge=1,
        description="Partitions of each event topic piaoxi creates: the most worker processes"
        " per stage (existing topics keep theirs). The local broker pays object-store writes"
        " per partition written: 2 cut its CPU by a third or more (bench/PROFILE.md).",
    )
    topic_replication_factor: int = Field(
        1,
        ge=1,
        description="Replication factor of the topics piaoxi creates when missing (1 on the"
        " local single broker; 3 on a production cluster, whose topics are usually made by"
        " its operator first).",
    )
    worker_group_id: str = Field("piaoxi-workers", description="Consumer group of workers.")
    projector_group_id: str = Field("piaoxi-projector", description="Group of projectors.")
    pool_size: int = Field(0, description="OCR/model process-pool size; 0 = number of cores.")
    page_timeout_s: float = Field(300.0, description="Per-page stage timeout, seconds.")
    max_attempts: int = Field(3, description="Attempts for transient errors before failing.")
    ocr_engine: Literal["rapidocr", "tesseract"] = Field("rapidocr", description="OCR engine.")
    clean_fold_variants: bool = Field(
        False,
        description="Cleaning folds variant characters (爲 → 為) in the cleaned text too; by"
        " default it keeps the source's forms and folds them only in the search key.",
    )
    max_upload_bytes: int = Field(200 * 1024 * 1024, description="Largest accepted file.")
    max_pages: int = Field(
        2000,
        description="Most pages in one document: a longer one is refused whole, never cut"
        " (ProcessingFailed naming the limit).",
    )
    max_image_pixels: int = Field(
        120_000_000,
        description="Largest image in pixels (decompression-bomb guard): a larger one is"
        " refused at upload, or by the worker when another producer sent it.",
    )
    cleanup_temp_files: bool = Field(True, description="Delete stage temp files when done.")
    cleanup_on_error: bool = Field(False, description="Delete temp files of failed pages too.")

    backup_dir: str = Field(
        "", description="Where `piaoxi backup` writes backups; empty: PIAOXI_HOME/backups."
    )

    # --- API -----------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, description="API port.")

    # --- health endpoints of the worker and projector --------------------------------
    health_host: str = Field(
        "127.0.0.1",
        description="Bind address of the worker's and projector's /health and /metrics"
        " (0.0.0.0 in a container).",
    )
    worker_health_port: int = Field(
        0,
        description="Worker /health/live, /health/ready, /metrics port; 0 = none. With"
        " --processes N, worker i serves on this port + i.",
    )
    projector_health_port: int = Field(
        0, description="Projector /health/live, /health/ready, /metrics port; 0 = none."
    )

    # --- logging -------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = console on a terminal, JSON lines otherwise."
    )

    @model_validator(mode="after")
    def _derive_endpoints(self) -> Settings:
        self.home = self.home.expanduser().absolute()
        if not self.kafka_bootstrap:
            self.kafka_bootstrap = f"127.0.0.1:{self.kafka_port}"
        if not self.s3_endpoint:
            self.s3_endpoint = f"http://127.0.0.1:{self.s3_port}"
        if not self.search_url:
            self.search_url = f"http://127.0.0.1:{self.search_port}"
        if not self.s3_access_key or not self.s3_secret_key:
            creds = self.local_s3_credentials()
            if creds:
                self.s3_access_key = self.s3_access_key or creds["access_key"]
                self.s3_secret_key = self.s3_secret_key or creds["secret_key"]
        if self.pool_size <= 0:
            self.pool_size = os.cpu_count() or 1
        return self

    @property
    def s3_credentials_file(self) -> Path:
        """Where `piaoxi stack up` writes the generated S3 credentials."""
        return self.home / "s3-credentials.json"

    def local_s3_credentials(self) -> dict[str, str] | None:
        try:
            data: dict[str, str] = json.loads(self.s3_credentials_file.read_text())
        except (OSError, ValueError):
            return None
        return data

    def as_env(self) -> dict[str, str]:
        """These settings as PIAOXI_* environment variables (for child processes)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"PIAOXI_{name.upper()}"] = text
        return env

    def topic(self, name: str) -> str:
        """The full topic name for a logical topic name."""
        return f"{self.topic_prefix}{name}"


def settings_table() -> str:
    """The README's settings table (Markdown), generated from the `Settings` fields."""
    rows = ["| Variable | Default | Description |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if isinstance(default, Path):
            default = str(default)
        elif isinstance(default, bool):
            default = str(default).lower()
        shown = "*(empty)*" if default == "" else f"`{default}`"
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `PIAOXI_{name.upper()}` | {shown} | {description} |")
    return "\n".join(rows) + "\n"


TABLE_START = "<!-- settings-table:start (generated: piaoxi settings table --write README.md) -->"
TABLE_END = "<!-- settings-table:end -->"


def replace_settings_table(text: str) -> str:
    """`text` (the README) with the part between the table markers regenerated."""
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    return text[:start] + "\n" + settings_table() + text[end:]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
