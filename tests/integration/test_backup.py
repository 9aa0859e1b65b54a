"""`piaoxi backup` / `piaoxi restore` against the local stack: a restore after the read
models, the API tokens and the uploader's records were lost catches up with the log and
passes the replay check; corrupt or partial backups, non-empty read models and an
unreachable object store are refused with one clear line."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from bench.harness import free_port
from events.producer import Uploader, records_prefix
from events.records import EventBase
from piaoxi.settings import Settings
from projections import synthetic
from projections.backup import (
    READ_MODEL_DUMP,
    RECORDS_FILE,
    BackupError,
    create_backup,
    object_store,
    restore_backup,
)
from tests.integration.test_projections import digest, project_until

pytestmark = pytest.mark.integration

PIAOXI = os.path.join(os.path.dirname(sys.executable), "piaoxi")


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.as_env(), "PIAOXI_LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    return subprocess.run(
        [PIAOXI, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


async def _upload(settings: Settings, text: str, owner: str) -> str:
    async with Uploader(settings) as uploader:
        result = await uploader.upload_bytes(
            text.encode(), filename=f"{owner}.txt", owner=owner, visibility="public"
        )
    return result.document_id


async def _project(settings: Settings, events: int) -> None:
    await project_until(settings, lambda applied, _waiting: applied == events, only="postgres")


async def _published(
    settings: Settings, documents: int, *, pages: int, seed: int, before: int = 0
) -> list[EventBase]:
    """Synthetic histories published and projected (after `before` events already were)."""
    events = synthetic.histories(documents, pages=pages, seed=seed)
    synthetic.publish(settings, events)
    await _project(settings, before + len(events))
    return events


async def _sql(settings: Settings, query: str, *args: object) -> object:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def _record_keys(settings: Settings) -> list[str]:
    client = object_store(settings)
    return sorted(
        o.object_name
        for o in client.list_objects(
            settings.s3_bucket, prefix=records_prefix(settings), recursive=True
        )
    )


async def test_restore_after_losing_everything_catches_up_and_passes_the_replay_check(
    settings: Settings, tmp_path: Path
) -> None:
    from api.db import apply_migrations as api_migrations
    from api.tokens import create_token, lookup_token

    first = synthetic.histories(6, pages=2, seed=60)
    synthetic.publish(settings, first)
    text = f"蘇軾字子瞻，眉州眉山人。{settings.topic_prefix}\n"  # a blob of this test only
    alice = await _upload(settings, text, "alice")
    await _project(settings, len(first) + 1)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await api_migrations(conn)
        secret, _ = await create_token(conn, owner="alice")
    finally:
        await conn.close()

    made = await create_backup(settings, tmp_path / "backup", blobs=True)
    database = made.manifest["database"]
    assert database["counts"]["documents"] == 7
    assert database["events_applied"] == len(first) + 1
    assert database["api_tokens"] == {"total": 1, "active": 1}
    assert made.manifest["object_records"] == 2  # alice's dedupe and document records
    assert sorted(p.name for p in made.path.iterdir()) == sorted(
        ["manifest.json", READ_MODEL_DUMP, "api_tokens.dump", RECORDS_FILE, "blobs", "blobs.jsonl"]
    )
    blobs = made.manifest["blobs"]
    assert blobs["count"] == 1  # alice's file; the synthetic uploads have no blobs stored
    assert len(blobs["missing"]) == 6

    # the system goes on after the backup ...
    second = synthetic.histories(3, pages=2, seed=61)
    synthetic.publish(settings, second)
    await _upload(settings, "王安石變法。\n", "bob")
    total = len(first) + len(second) + 2
    await _project(settings, total)
    undisturbed = await digest(settings)

    # ... then loses the read models, the API tokens and the uploader's records
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("DROP SCHEMA readmodel CASCADE")
        await conn.execute("DROP TABLE public.api_tokens, public.api_schema_migrations")
    finally:
        await conn.close()
    client = object_store(settings)
    for key in _record_keys(settings):
        client.remove_object(settings.s3_bucket, key)
    alice_blob = f"blobs/{hashlib.sha256(text.encode()).hexdigest()}"
    client.remove_object(settings.s3_bucket, alice_blob)

    result = await restore_backup(settings, made.path)
    assert result.check.identical, result.check.differences
    assert result.swapped
    assert result.restored_events == len(first) + 1
    assert result.caught_up == len(second) + 1  # the events after the backup
    assert result.documents == 11
    assert result.tokens_restored == 1
    assert (result.records_restored, result.records_present) == (2, 0)
    assert (result.blobs_restored, result.blobs_present) == (1, 0)
    assert client.stat_object(settings.s3_bucket, alice_blob).size == len(text.encode())
    assert result.search_documents == 11 + 6 * 2 + 3 * 2  # documents + pages of 9 of them
    assert await digest(settings) == undisturbed

    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await lookup_token(conn, secret) is not None
        schemas = await conn.fetchval(
            "SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace"
            " WHERE nspname LIKE 'readmodel%'"
        )
        assert schemas == ["readmodel"]
    finally:
        await conn.close()
    # the restored dedupe record makes alice's content known again
    async with Uploader(settings) as uploader:
        again = await uploader.upload_bytes(text.encode(), filename="alice.txt", owner="alice")
    assert again.duplicate and again.document_id == alice


async def test_corrupt_or_partial_backups_are_refused(settings: Settings, tmp_path: Path) -> None:
    await _published(settings, 2, pages=1, seed=62)
    made = await create_backup(settings, tmp_path / "backup")
    await _sql(settings, "DROP SCHEMA readmodel CASCADE")

    dump = made.path / READ_MODEL_DUMP
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    refused = _cli(settings, "restore", str(made.path))
    assert refused.returncode != 0
    assert "corrupt backup: sha256 of readmodel.dump does not match" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    (made.path / RECORDS_FILE).unlink()
    with pytest.raises(BackupError, match=r"incomplete backup: object-records\.jsonl is missing"):
        await restore_backup(settings, made.path)
    (made.path / "manifest.json").unlink()
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        await restore_backup(settings, made.path)
    assert await _sql(settings, "SELECT to_regclass('readmodel.documents')") is None


async def test_restore_onto_non_empty_read_models_needs_yes_and_keeps_newer_tokens(
    settings: Settings, tmp_path: Path
) -> None:
    from api.db import apply_migrations as api_migrations
    from api.tokens import create_token, list_tokens, revoke_token

    events = await _published(settings, 3, pages=2, seed=63)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await api_migrations(conn)
        _, old = await create_token(conn, owner="alice")
    finally:
        await conn.close()
    made = _cli(settings, "backup", "--out", str(tmp_path / "backup"))
    assert made.returncode == 0, made.stderr
    assert "3 documents" in made.stdout

    conn = await asyncpg.connect(settings.database_url)
    try:
        await revoke_token(conn, old.token_id)  # after the backup
        _, new = await create_token(conn, owner="bob")
    finally:
        await conn.close()
    await _published(settings, 1, pages=2, seed=64, before=len(events))
    before = await digest(settings)

    refused = _cli(settings, "restore", str(tmp_path / "backup"))
    assert refused.returncode != 0
    assert "are not empty (4 documents" in refused.stderr and "--yes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    restored = _cli(settings, "restore", str(tmp_path / "backup"), "--yes", "--no-search")
    assert restored.returncode == 0, restored.stderr
    assert "identical" in restored.stdout
    assert await digest(settings) == before
    conn = await asyncpg.connect(settings.database_url)
    try:
        tokens = {t.token_id: t for t in await list_tokens(conn)}
    finally:
        await conn.close()
    assert set(tokens) == {old.token_id, new.token_id}
    assert tokens[old.token_id].revoked_at is not None  # a restore never revives a token
    assert tokens[new.token_id].active()


async def test_backup_with_the_object_store_down_fails_and_leaves_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    await _published(settings, 1, pages=1, seed=65)
    port = free_port()  # a port nobody listens on
    down = settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{port}"})
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = tmp_path / f".backup0.partial-{gone.pid}-x1y2"  # of a killed backup
    (abandoned / "blobs").mkdir(parents=True)
    with pytest.raises(BackupError, match=f"object store http://127.0.0.1:{port} unreachable"):
        await create_backup(down, tmp_path / "backup")
    failed = await asyncio.to_thread(_cli, down, "backup", "--out", str(tmp_path / "backup2"))
    assert failed.returncode != 0
    assert "unreachable" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert list(tmp_path.iterdir()) == []


async def test_restore_with_the_broker_down_is_refused_before_touching_the_database(
    settings: Settings, tmp_path: Path
) -> None:
    await _published(settings, 1, pages=1, seed=66)
    made = await create_backup(settings, tmp_path / "backup")
    await _sql(settings, "DROP SCHEMA readmodel CASCADE")
    port = free_port()  # a port nobody listens on
    down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    with pytest.raises(BackupError, match=f"broker 127.0.0.1:{port} unreachable"):
        await restore_backup(down, made.path)
    assert (
        await _sql(settings, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'readmodel%'")
        == 0
    )


async def test_a_backup_that_disagrees_with_the_log_fails_the_replay_check(
    settings: Settings, tmp_path: Path
) -> None:
    """A read model that went wrong (a bug, a hand edit) before the backup: the restored
    copy differs from a rebuild of the same offsets, so it is not swapped in."""
    await _published(settings, 2, pages=1, seed=67)
    await _sql(settings, "UPDATE readmodel.documents SET title = 'edited by hand'")
    made = await create_backup(settings, tmp_path / "backup")
    await _sql(settings, "DROP SCHEMA readmodel CASCADE")

    failed = _cli(settings, "restore", str(made.path), "--no-search")
    assert failed.returncode != 0
    assert "differences in documents" in failed.stdout
    assert "replay check failed" in failed.stderr
    assert await _sql(settings, "SELECT count(*) FROM readmodel_restore_rejected.documents") == 2
    assert await _sql(settings, "SELECT to_regclass('readmodel.documents')") is None


async def test_restore_with_yes_under_a_live_projector_ends_like_an_undisturbed_run(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from piaoxi.commands.project import run_projectors
    from tests.integration.test_projections import _counts

    live, reference = make_settings(), make_settings()
    first = synthetic.histories(8, pages=2, seed=68)
    second = synthetic.histories(4, pages=2, seed=69)
    third = synthetic.histories(2, pages=2, seed=70)
    synthetic.publish(live, first)
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projectors(live, only="postgres", stop=stop, handle_signals=False, use_group=False)
    )

    async def projected(count: int) -> None:
        while (await _counts(live))[0] != count:
            assert not projector.done(), projector
            await asyncio.sleep(0.2)

    try:
        await projected(len(first))
        made = await create_backup(live, tmp_path / "backup")
        synthetic.publish(live, second)  # the live projector keeps going meanwhile
        result = await restore_backup(live, made.path, yes=True, search=False)
        synthetic.publish(live, third)
        await projected(len(first) + len(second) + len(third))
    finally:
        stop.set()
        await projector
    assert result.check.identical and result.swapped

    for events in (first, second, third):
        synthetic.publish(reference, events)
    total = len(first) + len(second) + len(third)
    await project_until(reference, lambda applied, _waiting: applied == total, only="postgres")
    assert await digest(live) == await digest(reference)


async def test_a_backup_ahead_of_the_log_is_refused(settings: Settings, tmp_path: Path) -> None:
    """The log lost its events after the backup (topics deleted): the backup's checkpoints
    point beyond its end, which no replay check could reach."""
    from piaoxi.stack import delete_topics

    await _published(settings, 2, pages=1, seed=71)
    made = await create_backup(settings, tmp_path / "backup")
    await _sql(settings, "DROP SCHEMA readmodel CASCADE")
    await asyncio.to_thread(delete_topics, settings)
    with pytest.raises(BackupError, match="but the log ends at -1: the log lost events"):
        await restore_backup(settings, made.path)


async def test_restore_onto_a_new_machine_creates_the_database(
    settings: Settings, tmp_path: Path
) -> None:
    from piaoxi.stack import drop_database

    await _published(settings, 2, pages=1, seed=72)
    before = await digest(settings)
    made = await create_backup(settings, tmp_path / "backup")
    await asyncio.to_thread(drop_database, settings)

    result = await restore_backup(settings, made.path, search=False)
    assert result.check.identical and result.swapped and result.caught_up == 0
    assert await digest(settings) == before
