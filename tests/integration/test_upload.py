"""The producer against the local stack: blobs stored once, events only after their blob,
re-uploads recognised, bad input refused at the door, unreachable services reported."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from events import DocumentRetracted, DocumentUploaded, EventCodec, Topics
from events.producer import (
    RetryPolicy,
    Uploader,
    UploadFailed,
    UploadRefused,
    blob_key,
    dedupe_key,
)
from events.readback import read_messages
from events.registry import EmbeddedRegistry
from piaoxi.settings import Settings
from tests.crafted import bomb_png, noise_png, small_png

pytestmark = pytest.mark.integration

PNG = small_png()


def uploaded_events(settings: Settings, count: int) -> list[DocumentUploaded | DocumentRetracted]:
    codec = EventCodec(EmbeddedRegistry(settings))
    topic = Topics.from_settings(settings).uploaded
    events = []
    for message in read_messages(settings, topic, count=count, timeout_s=20):
        event = codec.decode(message.value)
        assert isinstance(event, DocumentUploaded | DocumentRetracted)
        events.append(event)
    return events


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_upload_stores_the_blob_then_publishes(settings: Settings) -> None:
    async with Uploader(settings) as uploader:
        result = await uploader.upload_bytes(
            PNG, filename="page.png", owner="scholar", tags=["宋史"], visibility="public"
        )
        assert await uploader.fetch_blob(blob_key(result.sha256)) == PNG
    assert result.media_type == "image/png" and not result.duplicate
    (event,) = uploaded_events(settings, 1)
    assert isinstance(event, DocumentUploaded)
    assert (event.document_id, event.event_id) == (result.document_id, result.event_id)
    assert event.blob_key == f"blobs/{result.sha256}"
    assert (event.owner, event.visibility, event.tags) == ("scholar", "public", ["宋史"])
    assert event.title == "page" and event.causation_id is None


async def test_same_content_same_owner_is_recognised(settings: Settings) -> None:
    async with Uploader(settings) as uploader:
        first = await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
        again = await uploader.upload_bytes(PNG, filename="b.png", owner="scholar")
        other_owner = await uploader.upload_bytes(PNG, filename="a.png", owner="student")
        new_version = await uploader.upload_bytes(
            PNG, filename="a.png", owner="scholar", document_id=first.document_id
        )
    assert again.duplicate and again.document_id == first.document_id
    assert not other_owner.duplicate and other_owner.document_id != first.document_id
    assert other_owner.blob_existed  # identical content is stored once
    assert (new_version.document_id, new_version.document_version) == (first.document_id, 2)
    events = uploaded_events(settings, 3)
    assert sorted((e.document_id, e.document_version) for e in events) == sorted(
        [(first.document_id, 1), (other_owner.document_id, 1), (first.document_id, 2)]
    )


async def test_an_interrupted_upload_is_finished_with_the_same_event(
    settings: Settings,
) -> None:
    """A crash between the pending dedupe record and the broker's ack: the next upload of
    the same content publishes the very event that was meant (same ids)."""
    import hashlib

    sha = hashlib.sha256(PNG).hexdigest()
    pending = {
        "document_id": "doc-interrupted",
        "document_version": 1,
        "event_id": "11111111-2222-3333-4444-555555555555",
        "state": "pending",
    }
    async with Uploader(settings) as uploader:
        await uploader._s3_call(
            "seeding", lambda: uploader._put_json(dedupe_key(settings, "scholar", sha), pending)
        )
        result = await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
        again = await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
    assert (result.document_id, result.event_id) == ("doc-interrupted", pending["event_id"])
    assert not result.duplicate and again.duplicate
    (event,) = uploaded_events(settings, 1)
    assert event.event_id == pending["event_id"]


async def test_retract_publishes_and_forgets_the_content(settings: Settings) -> None:
    async with Uploader(settings) as uploader:
        first = await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
        with pytest.raises(UploadRefused, match="another owner"):
            await uploader.retract(first.document_id, owner="mallory", reason="mine")
        retracted = await uploader.retract(first.document_id, owner="scholar", reason="dup")
        later = await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
        with pytest.raises(UploadRefused, match="unknown document"):
            await uploader.retract("no-such-document", owner="scholar", reason="x")
    assert retracted.document_id == first.document_id and retracted.reason == "dup"
    assert not later.duplicate and later.document_id != first.document_id
    kinds = [type(e).__name__ for e in uploaded_events(settings, 3)]
    assert sorted(kinds) == ["DocumentRetracted", "DocumentUploaded", "DocumentUploaded"]


def test_bad_input_is_refused_per_file_and_the_rest_uploaded(settings: Settings) -> None:
    folder = Path(tempfile.mkdtemp(prefix="piaoxi-upload-"))
    os.chmod(folder, 0o755)
    (folder / "good.txt").write_text("臣聞求木之長者，必固其根本。\n", encoding="utf-8")
    (folder / "empty.png").write_bytes(b"")
    (folder / "huge.png").write_bytes(PNG + b"\x00" * 5000)
    (folder / "binary.png").write_bytes(bytes(range(256)) * 8)  # named .png, is not one
    (folder / "noise.png").write_bytes(noise_png(2000))  # a PNG signature, then noise
    (folder / "bomb.png").write_bytes(bomb_png())  # claims 60,000 x 60,000 pixels
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("content.xml", "<x/>")
    (folder / "not-docx.docx").write_bytes(zipped.getvalue())
    locked = folder / "locked.txt"
    if os.geteuid() == 0:  # root reads any file: a symlink loop is unreadable even for root
        locked.symlink_to(locked.name)
    else:
        locked.write_text("secret", encoding="utf-8")
        locked.chmod(0o000)
    paths = [
        "good.txt",
        "empty.png",
        "huge.png",
        "binary.png",
        "noise.png",
        "bomb.png",
        "not-docx.docx",
        "locked.txt",
        "missing.tif",
        "nothing-*.jpg",
    ]
    env = {**os.environ, **settings.as_env(), "PIAOXI_MAX_UPLOAD_BYTES": "4096"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from piaoxi.cli import main; main()",
            "upload",
            *paths,
            "--owner",
            "scholar",
            "--json",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    refusals = dict(
        line.removeprefix("refused: ").split(": ", 1)
        for line in done.stderr.splitlines()
        if line.startswith("refused: ")
    )
    assert refusals == {
        "empty.png": "empty file",
        "huge.png": f"{len(PNG) + 5000:,} bytes is over the upload limit of 4,096 bytes",
        "binary.png": refusals.get("binary.png", "-"),
        "noise.png": refusals.get("noise.png", "-"),
        "bomb.png": "the file has an image of 3,600,000,000 pixels; the limit is 120,000,000"
        " (PIAOXI_MAX_IMAGE_PIXELS; it guards against decompression bombs)",
        "not-docx.docx": refusals.get("not-docx.docx", "-"),
        "locked.txt": refusals.get("locked.txt", "-"),
        "missing.tif": "no such file",
        "nothing-*.jpg": "no file matches this pattern",
    }
    assert refusals["locked.txt"].startswith("cannot read: ")
    assert refusals["binary.png"].startswith("unsupported type (binary data)")
    assert refusals["noise.png"].startswith("not a readable image: ")
    assert " at 0x" not in refusals["noise.png"]
    assert refusals["not-docx.docx"].startswith("unsupported type (a zip archive")
    rows = {row["path"]: row for row in json.loads(done.stdout)}
    assert rows["good.txt"]["status"] == "uploaded"
    assert rows["good.txt"]["media_type"] == "text/plain"
    (event,) = uploaded_events(settings, 1)
    assert isinstance(event, DocumentUploaded) and event.filename == "good.txt"


async def test_object_store_down_is_a_clear_error_and_no_event(settings: Settings) -> None:
    down = settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{closed_port()}"})
    quick = RetryPolicy(attempts=3, first_delay_s=0.05)
    with pytest.raises(UploadFailed, match=r"object store .* unreachable .*after 3 attempts"):
        async with Uploader(down, retry=quick):
            pass
    # the store goes away after the uploader started: the upload fails, nothing is published
    async with Uploader(settings, retry=quick) as uploader:
        uploader._s3 = Uploader(down)._make_s3_client()
        with pytest.raises(UploadFailed, match=r"unreachable while (checking the blob|reading)"):
            await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")
    topic = Topics.from_settings(settings).uploaded
    assert read_messages(settings, topic, timeout_s=3) == []


async def test_broker_down_is_a_clear_error(settings: Settings) -> None:
    down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed_port()}"})
    quick = RetryPolicy(attempts=2, first_delay_s=0.05)
    with pytest.raises(UploadFailed, match=r"broker .* unreachable"):
        async with Uploader(down, retry=quick, delivery_timeout_s=2) as uploader:
            await uploader.upload_bytes(PNG, filename="a.png", owner="scholar")


def test_cli_recognises_versions_and_retracts(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "卷一.png"
    page.write_bytes(PNG)
    env = {**os.environ, **settings.as_env()}

    def piaoxi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from piaoxi.cli import main; main()", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = piaoxi("upload", str(page), "--owner", "scholar", "--tag", "明史", "--json")
    assert first.returncode == 0, first.stderr
    (row,) = json.loads(first.stdout)
    assert row["status"] == "uploaded" and row["document_version"] == 1

    again = piaoxi("upload", str(tmp_path / "*.png"), "--owner", "scholar")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["known", row["document_id"], "v1", str(page)]

    version = piaoxi(
        "upload", str(page), "--owner", "scholar", "--document", row["document_id"], "--json"
    )
    assert json.loads(version.stdout)[0]["document_version"] == 2

    retracted = piaoxi("retract", row["document_id"], "--owner", "scholar", "--reason", "dup")
    assert retracted.returncode == 0, retracted.stderr
    refused = piaoxi("retract", "no-such-document", "--owner", "scholar", "--reason", "x")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "refused: no-such-document: unknown document"

    events = uploaded_events(settings, 3)
    assert [(type(e).__name__, e.document_version) for e in events] == [
        ("DocumentUploaded", 1),
        ("DocumentUploaded", 2),
        ("DocumentRetracted", 2),
    ]
