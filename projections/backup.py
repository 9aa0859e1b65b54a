"""Backups of what the read side keeps, and restores that are checked against the log.

The event log is the source of truth: every read model can be rebuilt by replaying it. A
backup saves the time of that replay (a restore resumes from the saved checkpoints) and
keeps what the log does not hold:

- `readmodel.dump`: `pg_dump --format=custom` of the schema `readmodel` (read models,
  `tracking` checkpoints, `search_outbox`, `projection_lag`, `schema_migrations`), taken
  from one exported snapshot, so the manifest's checkpoints, counts and digest describe
  exactly the rows in the dump;
- `api_tokens.dump`: `public.api_tokens` (+ its migration record) — credentials: only the
  sha256 of each secret is stored, but treat the backup as secret anyway;
- `object-records.jsonl`: the uploader's records in the bucket (`owners/<owner>/<sha>.json`
  dedupe records and `documents/<id>.json`, under `records/<topic prefix>/` when one is
  set): they make re-uploads idempotent and are in no event;
- `blobs/` (only with `blobs=True`): the uploaded files and page images the read models
  point to; content-addressed (`blobs/<sha256>`) and large, so off by default;
- `manifest.json`: piaoxi version/commit, time, server and migration versions, checkpoints
  per topic partition, counts, the read-model digest and the sha256 of every file.

A backup is written into a hidden `.<name>.partial-*` directory beside its destination and
renamed into place at the end: a failed backup leaves nothing. A restore verifies every
checksum first, loads the dump into the shadow schema, resumes the projection from the
restored checkpoints up to the end of the log, rebuilds the same offsets from the log into
a scratch schema and compares digests (the replay check), and only then swaps the restored
copy in (`projections.rebuild.rebuild_postgres`, which catches up the last events under the
projectors' swap lock).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from events.producer import records_prefix
from events.topics import Topics
from piaoxi import __version__
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from projections.migrate import READ_MODEL_SCHEMA, apply_migrations, migrations, quote_schema
from projections.postgres import READ_MODEL_TABLES, create_read_pool, read_model_digest
from projections.rebuild import SHADOW_SCHEMA, project_into, rebuild_postgres, rebuild_search
from projections.tracking import SWAP_LOCK, Partition, TrackingRecorder

log = get_logger(__name__)

FORMAT = "piaoxi-backup/1"
MANIFEST = "manifest.json"
READ_MODEL_DUMP = "readmodel.dump"
TOKENS_DUMP = "api_tokens.dump"
RECORDS_FILE = "object-records.jsonl"
BLOBS_INDEX = "blobs.jsonl"
BLOBS_DIR = "blobs"
TOKEN_TABLES = ("api_tokens", "api_schema_migrations")  # in schema public
HOLD_SCHEMA = "readmodel_restore_hold"
"""The live schema while a restore's pg_restore runs (it can only load into `readmodel`)."""
CHECK_SCHEMA = "readmodel_check"
"""Scratch schema of the replay check: the same offsets rebuilt from the log."""
REJECTED_SCHEMA = "readmodel_restore_rejected"
"""A restored copy that failed the replay check, kept for inspection."""
PROJECTION = "postgres"

Step = Callable[[str], None]
"""step(what is being done now): progress for a person."""


class BackupError(Exception):
    """A backup or restore refused or failed; the message is one line for a person."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float
    bytes: int


@dataclass
class CheckResult:
    """The replay check: restored + caught-up read models against a rebuild from the log."""

    identical: bool
    events: int  # replayed into the scratch schema
    seconds: float
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RestoreResult:
    path: Path
    created_at: str
    backup_documents: int  # in the backup
    documents: int  # after catching up
    restored_events: int  # events the backup's checkpoints had applied
    caught_up: int  # events after the backup, applied from the log
    check: CheckResult
    swapped: bool
    tokens_restored: int
    records_restored: int
    records_present: int
    blobs_restored: int
    blobs_present: int
    search_documents: int | None
    search_error: str | None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- tools ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgTool:
    path: str
    major: int
    version: str


def pg_tool(name: str, server_major: int) -> PgTool:
    """`pg_dump`/`pg_restore` of a major version not older than the server's (Debian keeps
    each version's client under /usr/lib/postgresql/<N>/bin; /usr/bin has the newest)."""
    seen: list[PgTool] = []
    for path in (f"/usr/lib/postgresql/{server_major}/bin/{name}", shutil.which(name)):
        if not path or not os.access(path, os.X_OK):
            continue
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        match = re.search(r"\(PostgreSQL\)\s+(\d+)(\S*)", out.stdout)
        if not match:
            continue
        tool = PgTool(path, int(match.group(1)), match.group(1) + match.group(2))
        if tool.major >= server_major:
            return tool
        seen.append(tool)
    package = f"postgresql-client-{server_major}"
    if not seen:
        raise BackupError(
            f"{name} not found: install the Debian package {package}"
            " (infra/local/install-system.sh installs postgresql-client)"
        )
    raise BackupError(
        f"{name} {seen[0].version} ({seen[0].path}) is older than the PostgreSQL"
        f" {server_major} server: install {package}"
    )


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database URL without its password, and an environment with PGPASSWORD (so the
    password is not on a command line)."""
    parts = urlsplit(settings.database_url)
    env = dict(os.environ)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        from urllib.parse import unquote

        env["PGPASSWORD"] = unquote(password)
        parts = parts._replace(netloc=f"{user}@{hostport}")
    return urlunsplit(parts), env


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))
    return url


async def _run_tool(argv: list[str], env: dict[str, str], what: str) -> str:
    proc = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


async def _connect(settings: Settings, **kw: Any) -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(settings.database_url, timeout=10, **kw)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BackupError(
            f"database {_redacted(settings.database_url)} unreachable: {_short(exc)}"
        ) from exc
    return conn


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)  # urllib3's wrapped OSError
    if errno:
        return errno.group(0).strip()
    return text if len(text) < 200 else text[:197] + "..."


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_commit() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"version": __version__, "commit": None}
    commit = head.stdout.strip() if head.returncode == 0 else None
    return {"version": __version__, "commit": commit, "dirty": bool(status.stdout.strip())}


# -- object store ---------------------------------------------------------------------------


def object_store(settings: Settings) -> Any:
    """A minio client for the settings' store: short timeouts, a couple of quick retries."""
    import urllib3

    from events.objectstore import s3_client

    return s3_client(
        settings, connect_timeout=3.0, retries=urllib3.Retry(total=2, backoff_factor=0.2)
    )


async def _store_call(settings: Settings, what: str, fn: Callable[[], Any]) -> Any:
    from minio.error import S3Error

    try:
        return await asyncio.to_thread(fn)
    except BackupError:
        raise
    except S3Error as exc:
        raise BackupError(f"object store refused {what}: {exc.code}") from exc
    except Exception as exc:
        raise BackupError(
            f"object store {settings.s3_endpoint} unreachable while {what}: {_short(exc)}"
        ) from exc


def _missing(exc: Exception) -> bool:
    from minio.error import S3Error

    return isinstance(exc, S3Error) and exc.code in (
        "NoSuchKey",
        "NoSuchObject",
        "NoSuchBucket",
        "ResourceNotFound",
    )


def _record_keys(client: Any, settings: Settings) -> list[str]:
    """Keys of the uploader's records of this deployment (events/producer.py)."""
    from minio.error import S3Error

    bucket = settings.s3_bucket
    try:
        if not client.bucket_exists(bucket):
            return []
    except S3Error as exc:
        if _missing(exc):
            return []
        raise
    prefix = records_prefix(settings)
    keys: list[str] = []
    for kind in ("owners/", "documents/"):
        for obj in client.list_objects(bucket, prefix=prefix + kind, recursive=True):
            if not obj.is_dir:
                keys.append(obj.object_name)
    return sorted(keys)


def _get_bytes(client: Any, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.stat_object(bucket, key)
    except Exception as exc:
        if _missing(exc):
            return False
        raise
    return True


def _ensure_bucket(client: Any, bucket: str) -> None:
    from minio.error import S3Error

    if client.bucket_exists(bucket):
        return
    try:
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


# -- the end of the log ---------------------------------------------------------------------


async def broker_log_end(settings: Settings, timeout_s: float = 30.0) -> dict[Partition, int]:
    """Last offset per partition of the event topics, from the high watermarks of fetch
    responses (the broker's ListOffsets 'latest' is not trusted: wrong on Tansu)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from projections.tracking import ensure_topics

    topics = Topics.from_settings(settings).event_topics()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=64 * 1024,
        metadata_max_age_ms=5000,
        client_id="piaoxi-log-end",
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)  # fails fast when it is down
    except Exception as exc:
        raise BackupError(f"broker {settings.kafka_bootstrap} unreachable: {_short(exc)}") from exc
    try:
        await asyncio.to_thread(ensure_topics, settings, topics)
        deadline = time.monotonic() + timeout_s
        partitions: list[Any] = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            while not numbers:
                if time.monotonic() > deadline:
                    raise BackupError(f"broker {settings.kafka_bootstrap}: no metadata of {topic}")
                await consumer._client.force_metadata_update()
                numbers = consumer.partitions_for_topic(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            await consumer.getmany(timeout_ms=200, max_records=1)
            marks = {tp: consumer.highwater(tp) for tp in partitions}
            if all(v is not None for v in marks.values()):
                return {(tp.topic, tp.partition): v - 1 for tp, v in marks.items() if v}
            if time.monotonic() > deadline:
                raise BackupError(f"broker {settings.kafka_bootstrap}: no high watermarks")
    finally:
        await consumer.stop()


# -- backup ---------------------------------------------------------------------------------


def default_backup_path(settings: Settings, now: datetime | None = None) -> Path:
    base = Path(settings.backup_dir) if settings.backup_dir else settings.home / "backups"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return base.expanduser().absolute() / f"piaoxi-{stamp}"


async def _schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema))


async def _table_exists(conn: asyncpg.Connection, qualified: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1)", qualified) is not None


async def _server_major(conn: asyncpg.Connection) -> tuple[int, str]:
    number = int(await conn.fetchval("SHOW server_version_num"))
    return number // 10000, str(await conn.fetchval("SHOW server_version"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_PARTIAL = re.compile(r"^\..+\.partial-(\d+)-[^/]+$")


def _remove_abandoned(folder: Path) -> None:
    """Remove the partial directories of backups whose process is gone (killed)."""
    import psutil

    for entry in folder.iterdir():
        match = _PARTIAL.match(entry.name)
        if match and entry.is_dir() and not psutil.pid_exists(int(match.group(1))):
            log.info("removing an abandoned partial backup", path=str(entry))
            shutil.rmtree(entry, ignore_errors=True)


async def create_backup(
    settings: Settings,
    out: Path | None = None,
    *,
    blobs: bool = False,
    step: Step | None = None,
) -> BackupResult:
    """Write a backup directory (see the module docstring); return where and what."""
    say = step or (lambda _what: None)
    started = time.perf_counter()
    final = (out or default_backup_path(settings)).expanduser().absolute()
    if final.exists():
        raise BackupError(f"{final} exists already: choose another --out")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(final.parent)
        work = Path(
            tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent)
        )
    except OSError as exc:
        raise BackupError(f"cannot create {final}: {_short(exc)}") from exc
    try:
        manifest = await _write_backup(settings, work, blobs=blobs, say=say)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _fsync_dir(work)
        os.rename(work, final)
        _fsync_dir(final.parent)
    except OSError as exc:  # disk full, permissions
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"writing the backup beside {final} failed: {_short(exc)}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = sum(f["bytes"] for f in manifest["files"].values())
    seconds = time.perf_counter() - started
    log.info("backup written", path=str(final), bytes=size, seconds=round(seconds, 2))
    return BackupResult(final, manifest, seconds, size)


async def _write_backup(
    settings: Settings, work: Path, *, blobs: bool, say: Step
) -> dict[str, Any]:
    say("checking the object store")
    client = object_store(settings)
    bucket = settings.s3_bucket
    await _store_call(settings, "checking the bucket", lambda: client.bucket_exists(bucket))
    conn = await _connect(settings, server_settings={"search_path": f"{READ_MODEL_SCHEMA}, public"})
    try:
        major, server_version = await _server_major(conn)
        pg_dump = pg_tool("pg_dump", major)
        if not await _schema_exists(conn, READ_MODEL_SCHEMA):
            raise BackupError(
                f"nothing to back up: no schema {READ_MODEL_SCHEMA} in"
                f" {_redacted(settings.database_url)} (has a projector run?)"
            )
        url, env = _libpq(settings)
        # one snapshot for the dumps and everything the manifest says about them
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            token_tables = [t for t in TOKEN_TABLES if await _table_exists(conn, f"public.{t}")]
            common = [pg_dump.path, "--format=custom", f"--snapshot={snapshot}", f"--dbname={url}"]

            async def dump() -> None:
                await _run_tool(
                    [*common, f"--schema={READ_MODEL_SCHEMA}", f"--file={work / READ_MODEL_DUMP}"],
                    env,
                    "pg_dump of the read models",
                )
                if "api_tokens" in token_tables:
                    await _run_tool(
                        [
                            *common,
                            *(f"--table=public.{t}" for t in token_tables),
                            f"--file={work / TOKENS_DUMP}",
                        ],
                        env,
                        "pg_dump of the API tokens",
                    )

            # pg_dump (its own sessions) and the digest (this one) read the same snapshot
            say("pg_dump and digest of the read models")
            described, dumped = await asyncio.gather(
                _describe_database(conn, token_tables), dump(), return_exceptions=True
            )
            for outcome in (dumped, described):  # both finished: the session is free again
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(described, dict)
            database = described
            blob_keys = await _blob_keys(conn) if blobs else []
        database.update(
            server_version=server_version, server_major=major, pg_dump_version=pg_dump.version
        )
    finally:
        await conn.close()

    # listed after the snapshot: the uploader writes a record before it publishes, so every
    # upload in the dump has its record here (later ones too, which does no harm)
    say("object-store records")
    record_keys: list[str] = await _store_call(
        settings, "listing the records", lambda: _record_keys(client, settings)
    )

    def fetch_records() -> int:
        with (work / RECORDS_FILE).open("w", encoding="utf-8") as out:
            for key in record_keys:
                data = _get_bytes(client, bucket, key)
                entry: dict[str, Any] = {"key": key, "sha256": hashlib.sha256(data).hexdigest()}
                try:
                    entry["text"] = data.decode("utf-8")
                except UnicodeDecodeError:
                    entry["base64"] = base64.b64encode(data).decode()
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return len(record_keys)

    await _store_call(settings, "reading the records", fetch_records)

    blob_summary: dict[str, Any] = {"included": blobs}
    if blobs:
        say(f"blobs ({len(blob_keys)})")

        def fetch_blobs() -> tuple[int, list[str]]:
            (work / BLOBS_DIR).mkdir()
            missing: list[str] = []
            stored = 0
            with (work / BLOBS_INDEX).open("w", encoding="utf-8") as index:
                for key in blob_keys:
                    name = f"{BLOBS_DIR}/{stored:07d}"
                    try:
                        client.fget_object(bucket, key, str(work / name))
                    except Exception as exc:
                        if _missing(exc):
                            missing.append(key)
                            continue
                        raise
                    index.write(json.dumps({"key": key, "file": name}) + "\n")
                    stored += 1
            return stored, missing

        stored, missing = await _store_call(settings, "reading the blobs", fetch_blobs)
        blob_summary.update(count=stored, missing=missing)

    say("checksums")
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            os.fsync(f.fileno())
        files[path.relative_to(work).as_posix()] = {
            "bytes": path.stat().st_size,
            "sha256": _sha256_file(path),
        }
    return {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "piaoxi": _source_commit(),
        "topic_prefix": settings.topic_prefix,
        "bucket": bucket,
        "records_prefix": records_prefix(settings),
        "database": database,
        "object_records": len(record_keys),
        "blobs": blob_summary,
        "files": files,
    }


async def _describe_database(conn: asyncpg.Connection, token_tables: list[str]) -> dict[str, Any]:
    """Migration version, checkpoints, counts and digest of the read models (snapshot)."""
    versions = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    checkpoints = await conn.fetch(
        'SELECT projection, topic, partition, "offset" FROM tracking'
        " ORDER BY projection, topic, partition"
    )
    digest = await read_model_digest(conn)
    counts = {table: n for table, (n, _) in digest.items()}
    counts["search_outbox"] = await conn.fetchval("SELECT count(*) FROM search_outbox")
    tokens: dict[str, int] | None = None
    if "api_tokens" in token_tables:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now())) AS active FROM public.api_tokens"
        )
        tokens = {"total": row["total"], "active": row["active"]}
    return {
        "schema": READ_MODEL_SCHEMA,
        "migration_version": max((r["version"] for r in versions), default=0),
        "migrations": [r["name"] for r in versions],
        "checkpoints": [
            {
                "projection": r["projection"],
                "topic": r["topic"],
                "partition": r["partition"],
                "offset": r["offset"],
            }
            for r in checkpoints
        ],
        "events_applied": sum(
            r["offset"] + 1 for r in checkpoints if r["projection"] == PROJECTION
        ),
        "counts": counts,
        "digest": {table: list(value) for table, value in digest.items()},
        "token_tables": token_tables,
        "api_tokens": tokens,
    }


async def _blob_keys(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT k FROM (SELECT blob_key AS k FROM document_versions"
        " UNION SELECT blob_key FROM documents UNION SELECT image_blob_key FROM pages) u"
        " WHERE k IS NOT NULL ORDER BY k"
    )
    return [r["k"] for r in rows]


# -- verification ---------------------------------------------------------------------------


def verify_backup(path: Path) -> dict[str, Any]:
    """The manifest of the backup at `path` once every file's size and sha256 are right."""
    path = path.expanduser().absolute()
    if not path.is_dir():
        raise BackupError(f"{path}: no such backup directory")
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{path}: no {MANIFEST}: not a backup, or an unfinished one") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path}/{MANIFEST} is unreadable: {_short(exc)}") from exc
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{path}: not a {FORMAT} backup (format {manifest.get('format')!r})")
    for name, expected in sorted(manifest["files"].items()):
        file = path / name
        if not file.resolve().is_relative_to(path.resolve()):
            raise BackupError(f"{path}: manifest names a file outside the backup: {name}")
        if not file.is_file():
            raise BackupError(f"{path}: incomplete backup: {name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise BackupError(
                f"{path}: corrupt backup: {name} has {file.stat().st_size} bytes,"
                f" the manifest says {expected['bytes']}"
            )
        if _sha256_file(file) != expected["sha256"]:
            raise BackupError(f"{path}: corrupt backup: sha256 of {name} does not match")
    if READ_MODEL_DUMP not in manifest["files"]:
        raise BackupError(f"{path}: incomplete backup: no {READ_MODEL_DUMP} in the manifest")
    return manifest


# -- restore --------------------------------------------------------------------------------


async def _positions(pool: asyncpg.Pool) -> dict[Partition, int]:
    async with pool.acquire() as conn:
        return await TrackingRecorder(PROJECTION).positions(conn)


async def _digest(pool: asyncpg.Pool) -> dict[str, tuple[int, str]]:
    async with pool.acquire() as conn:
        return await read_model_digest(conn)


async def _ensure_database(settings: Settings) -> None:
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        from piaoxi.stack import create_database

        await asyncio.to_thread(create_database, settings)
        return
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise BackupError(
            f"database {_redacted(settings.database_url)} unreachable: {_short(exc)}"
        ) from exc
    await conn.close()


async def restore_backup(
    settings: Settings,
    path: Path,
    *,
    yes: bool = False,
    search: bool = True,
    step: Step | None = None,
) -> RestoreResult:
    """Restore the backup at `path` and run the replay check (module docstring).

    Refuses (BackupError) a corrupt or partial backup, a backup of another event log (topic
    prefix), one from a newer schema, and non-empty read models unless `yes`."""
    say = step or (lambda _what: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    say("verifying checksums")
    path = path.expanduser().absolute()
    manifest = verify_backup(path)
    database = manifest["database"]
    if manifest["topic_prefix"] != settings.topic_prefix:
        raise BackupError(
            f"the backup is of the event log with topic prefix {manifest['topic_prefix']!r},"
            f" these settings use {settings.topic_prefix!r}: its checkpoints would not match"
        )
    newest = max((m.version for m in migrations()), default=0)
    if database["migration_version"] > newest:
        raise BackupError(
            f"the backup has read-model migration {database['migration_version']}, this piaoxi"
            f" knows up to {newest}: restore it with a newer piaoxi"
        )
    say("checking the broker")
    _check_log_holds(database, await broker_log_end(settings))
    lap("verify")

    await _ensure_database(settings)
    admin = await _connect(settings)
    notes: list[str] = []
    try:
        major, _ = await _server_major(admin)
        pg_restore = pg_tool("pg_restore", major)
        if pg_restore.major < int(database["pg_dump_version"].split(".")[0]):
            raise BackupError(
                f"pg_restore {pg_restore.version} cannot read a dump of pg_dump"
                f" {database['pg_dump_version']}: install a newer postgresql-client"
            )
        await _recover_interrupted(admin, notes)
        if await _table_exists(admin, f"{READ_MODEL_SCHEMA}.documents") and not yes:
            documents = await admin.fetchval(f"SELECT count(*) FROM {READ_MODEL_SCHEMA}.documents")
            applied = await admin.fetchval(
                f'SELECT coalesce(sum("offset" + 1), 0) FROM {READ_MODEL_SCHEMA}.tracking'
            )
            if documents or applied:
                raise BackupError(
                    f"the read models in {_redacted(settings.database_url)} are not empty"
                    f" ({documents} documents, {applied} events applied):"
                    " pass --yes to replace them"
                )
        if await _schema_exists(admin, SHADOW_SCHEMA):
            await admin.execute(f"DROP SCHEMA {quote_schema(SHADOW_SCHEMA)} CASCADE")
            notes.append(f"dropped {SHADOW_SCHEMA} (left by an interrupted rebuild or restore)")
        say("pg_restore of the read models (into a shadow schema)")
        await _load_dump_into_shadow(settings, admin, path / READ_MODEL_DUMP, pg_restore)
        lap("pg_restore")
        say("API tokens")
        tokens = 0
        if TOKENS_DUMP in manifest["files"]:
            tokens = await _restore_tokens(settings, admin, path / TOKENS_DUMP, pg_restore)
        lap("tokens")
    finally:
        await admin.close()

    shadow = await create_read_pool(settings, schema=SHADOW_SCHEMA, min_size=1, max_size=4)
    try:
        restored_digest = await _digest(shadow)
        if {t: list(v) for t, v in restored_digest.items()} != database["digest"]:
            raise BackupError(
                "the restored read models differ from the backup's digest (pg_restore"
                f" {pg_restore.version} into {SHADOW_SCHEMA}); the live schema is untouched"
            )
        async with shadow.acquire() as conn:
            await apply_migrations(conn, SHADOW_SCHEMA)  # a backup of an older schema
        lap("verify_restored")

        say("object-store records")
        records = await _restore_records(settings, path)
        blob_counts = (0, 0)
        if manifest["blobs"].get("included"):
            say("blobs")
            blob_counts = await _restore_blobs(settings, path)
        lap("object_store")

        say("catching up with the log from the restored checkpoints")
        before = await _positions(shadow)
        end = await broker_log_end(settings)
        stop_at = {k: max(v, before.get(k, -1)) for k, v in end.items()}
        caught_up = await project_into(settings, shadow, stop_at)
        lap("catch_up")

        say("replay check: the same offsets rebuilt from the log")
        check = await replay_check(settings, shadow)
        lap("replay_check")
        async with shadow.acquire() as conn:
            documents = int(await conn.fetchval("SELECT count(*) FROM documents"))
    finally:
        await shadow.close()

    if not check.identical:
        admin = await _connect(settings)
        try:
            await admin.execute(f"DROP SCHEMA IF EXISTS {quote_schema(REJECTED_SCHEMA)} CASCADE")
            await admin.execute(
                f"ALTER SCHEMA {quote_schema(SHADOW_SCHEMA)} RENAME TO {REJECTED_SCHEMA}"
            )
        finally:
            await admin.close()
        notes.append(
            f"not swapped in: the restored copy is kept as schema {REJECTED_SCHEMA};"
            " `piaoxi replay projections` rebuilds the read models from the log"
        )
        swapped = False
    else:
        say("swapping the restored read models in")

        async def end_of_log() -> dict[Partition, int]:
            return await broker_log_end(settings)

        swap = await rebuild_postgres(settings, log_end=end_of_log)
        caught_up += swap.events
        swapped = True
    lap("swap")

    search_documents: int | None = None
    search_error: str | None = None
    if swapped and search:
        say("rebuilding the search index from the restored read models")
        try:
            search_documents = (await rebuild_search(settings)).events
        except Exception as exc:
            search_error = _short(exc)
            notes.append(
                "search index not rebuilt: run `piaoxi replay projections --target search`"
            )
        lap("search")

    return RestoreResult(
        path=path,
        created_at=manifest["created_at"],
        backup_documents=database["counts"]["documents"],
        documents=documents,
        restored_events=database["events_applied"],
        caught_up=caught_up,
        check=check,
        swapped=swapped,
        tokens_restored=tokens,
        records_restored=records[0],
        records_present=records[1],
        blobs_restored=blob_counts[0],
        blobs_present=blob_counts[1],
        search_documents=search_documents,
        search_error=search_error,
        seconds=timings,
        notes=notes,
    )


def _check_log_holds(database: dict[str, Any], end: dict[Partition, int]) -> None:
    """Refuse a backup whose checkpoints lie beyond the end of the log: the log lost events
    (or is another one), and the replay check could never reach those offsets."""
    for checkpoint in database["checkpoints"]:
        key = (checkpoint["topic"], checkpoint["partition"])
        if checkpoint["projection"] == PROJECTION and checkpoint["offset"] > end.get(key, -1):
            raise BackupError(
                f"the backup has applied {key[0]}[{key[1]}] up to offset {checkpoint['offset']},"
                f" but the log ends at {end.get(key, -1)}: the log lost events or is another"
                " one (the log is the source of truth: `piaoxi replay projections`)"
            )


async def _recover_interrupted(admin: asyncpg.Connection, notes: list[str]) -> None:
    """Put back the live schema an interrupted restore had set aside."""
    if await _schema_exists(admin, HOLD_SCHEMA):
        if await _schema_exists(admin, READ_MODEL_SCHEMA):
            raise BackupError(
                f"schemas {READ_MODEL_SCHEMA} and {HOLD_SCHEMA} (left by an interrupted restore)"
                f" both exist: drop the one you do not want"
            )
        await admin.execute(f"ALTER SCHEMA {HOLD_SCHEMA} RENAME TO {READ_MODEL_SCHEMA}")
        notes.append(f"an interrupted restore had set {READ_MODEL_SCHEMA} aside: put back")


async def _pg_restore_whole(settings: Settings, tool: PgTool, dump: Path, what: str) -> None:
    """Everything in `dump`, in one transaction (nothing is left of a failed restore)."""
    url, env = _libpq(settings)
    options = ["--single-transaction", "--exit-on-error", "--no-owner", "--no-acl"]
    await _run_tool([tool.path, *options, f"--dbname={url}", str(dump)], env, what)


async def _load_dump_into_shadow(
    settings: Settings, admin: asyncpg.Connection, dump: Path, pg_restore: PgTool
) -> None:
    """pg_restore can only load the dump into the schema it came from (`readmodel`): the
    live schema is set aside for that while the projectors' swap lock is held, the loaded
    copy renamed to the shadow and the live one put back. Readers see no read models for
    that while (seconds); projectors wait."""
    live = await _schema_exists(admin, READ_MODEL_SCHEMA)
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    await admin.execute("SELECT pg_advisory_lock($1)", SWAP_LOCK)
    try:
        if live:
            await admin.execute(f"ALTER SCHEMA {READ_MODEL_SCHEMA} RENAME TO {HOLD_SCHEMA}")
        try:
            await _pg_restore_whole(settings, pg_restore, dump, "pg_restore of the read models")
            async with admin.transaction():
                await admin.execute(f"ALTER SCHEMA {READ_MODEL_SCHEMA} RENAME TO {SHADOW_SCHEMA}")
                if live:
                    await admin.execute(f"ALTER SCHEMA {HOLD_SCHEMA} RENAME TO {READ_MODEL_SCHEMA}")
        except BaseException:
            if live and await _schema_exists(admin, HOLD_SCHEMA):
                await admin.execute(f"DROP SCHEMA IF EXISTS {READ_MODEL_SCHEMA} CASCADE")
                await admin.execute(f"ALTER SCHEMA {HOLD_SCHEMA} RENAME TO {READ_MODEL_SCHEMA}")
            raise
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", SWAP_LOCK)


_COPY = re.compile(r"^COPY public\.api_tokens \((.*)\) FROM stdin;$")


async def _restore_tokens(
    settings: Settings, admin: asyncpg.Connection, dump: Path, pg_restore: PgTool
) -> int:
    """API tokens: loaded as they are when the table is missing; else merged — tokens
    issued since the backup stay, a token revoked on either side stays revoked. Returns
    the tokens added."""
    _, env = _libpq(settings)
    if not await _table_exists(admin, "public.api_tokens"):
        if await _table_exists(admin, "public.api_schema_migrations"):
            raise BackupError(
                "public.api_schema_migrations exists without public.api_tokens: drop it"
                " (or start the API once) before restoring the tokens"
            )
        await _pg_restore_whole(settings, pg_restore, dump, "pg_restore of the API tokens")
        return int(await admin.fetchval("SELECT count(*) FROM public.api_tokens"))
    # the data as pg_restore writes it (COPY text format: one row per line), into a
    # temporary table, then merged
    script = await _run_tool(
        [
            pg_restore.path,
            "--data-only",
            "--schema=public",
            "--table=api_tokens",
            "--file=-",
            str(dump),
        ],
        env,
        "pg_restore of the API tokens",
    )
    lines = script.split("\n")
    start = next((i for i, line in enumerate(lines) if _COPY.match(line)), None)
    if start is None:
        return 0
    match = _COPY.match(lines[start])
    assert match is not None
    columns = [c.strip().strip('"') for c in match.group(1).split(",")]
    end = lines.index("\\.", start + 1)
    rows = "".join(line + "\n" for line in lines[start + 1 : end]).encode()
    async with admin.transaction():
        await admin.execute(
            "CREATE TEMP TABLE restored_api_tokens (LIKE public.api_tokens) ON COMMIT DROP"
        )
        await admin.copy_to_table(
            "restored_api_tokens", source=io.BytesIO(rows), columns=columns, format="text"
        )
        added = await admin.fetch(
            "INSERT INTO public.api_tokens AS t SELECT * FROM restored_api_tokens"
            " ON CONFLICT (token_id) DO UPDATE"
            " SET revoked_at = coalesce(t.revoked_at, EXCLUDED.revoked_at)"
            " RETURNING (xmax = 0) AS inserted"
        )
    return sum(1 for r in added if r["inserted"])


async def _put_missing(
    settings: Settings,
    what: str,
    entries: list[dict[str, Any]],
    put: Callable[[Any, dict[str, Any]], None],
) -> tuple[int, int]:
    """`put(client, entry)` for each entry whose key the store lacks; an object the store
    has is kept (as new as the backup's, or newer). Returns (restored, already present)."""
    client = object_store(settings)

    def put_each() -> tuple[int, int]:
        _ensure_bucket(client, settings.s3_bucket)
        restored = present = 0
        for entry in entries:
            if _exists(client, settings.s3_bucket, entry["key"]):
                present += 1
                continue
            put(client, entry)
            restored += 1
        return restored, present

    result: tuple[int, int] = await _store_call(settings, f"restoring the {what}", put_each)
    return result


def _jsonl(file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in file.read_text("utf-8").splitlines() if line]


async def _restore_records(settings: Settings, path: Path) -> tuple[int, int]:
    """The uploader's records the store lacks."""

    def put(client: Any, entry: dict[str, Any]) -> None:
        if "text" in entry:
            data = entry["text"].encode("utf-8")
        else:
            data = base64.b64decode(entry["base64"])
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BackupError(f"corrupt record in the backup: {entry['key']}")
        client.put_object(
            settings.s3_bucket,
            entry["key"],
            io.BytesIO(data),
            len(data),
            content_type="application/json",
        )

    return await _put_missing(settings, "records", _jsonl(path / RECORDS_FILE), put)


async def _restore_blobs(settings: Settings, path: Path) -> tuple[int, int]:
    """The blobs the store lacks."""

    def put(client: Any, entry: dict[str, Any]) -> None:
        client.fput_object(settings.s3_bucket, entry["key"], str(path / entry["file"]))

    return await _put_missing(settings, "blobs", _jsonl(path / BLOBS_INDEX), put)


async def replay_check(settings: Settings, restored: asyncpg.Pool) -> CheckResult:
    """Rebuild, from the log, exactly the offsets the `restored` schema has applied into a
    scratch schema and compare the read-model digests (projections.postgres)."""
    started = time.perf_counter()
    positions = {k: v for k, v in (await _positions(restored)).items() if v >= 0}
    admin = await _connect(settings)
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {quote_schema(CHECK_SCHEMA)} CASCADE")
        await apply_migrations(admin, CHECK_SCHEMA)
    finally:
        await admin.close()
    scratch = await create_read_pool(settings, schema=CHECK_SCHEMA, min_size=1, max_size=4)
    try:
        events = await project_into(settings, scratch, positions)
        rebuilt, mine = await asyncio.gather(_digest(scratch), _digest(restored))
    finally:
        await scratch.close()
        admin = await _connect(settings)
        try:
            await admin.execute(f"DROP SCHEMA IF EXISTS {quote_schema(CHECK_SCHEMA)} CASCADE")
        finally:
            await admin.close()
    differences = {
        table: {"restored": list(mine[table]), "rebuilt": list(rebuilt[table])}
        for table, _ in READ_MODEL_TABLES
        if mine[table] != rebuilt[table]
    }
    return CheckResult(not differences, events, time.perf_counter() - started, differences)
