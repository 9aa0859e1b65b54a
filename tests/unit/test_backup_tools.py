"""Pure parts of projections/backup.py: the pg tool version check, the password kept off
command lines, and the manifest verification of a backup directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from piaoxi.settings import Settings
from projections.backup import (
    FORMAT,
    BackupError,
    _libpq,
    _redacted,
    pg_tool,
    verify_backup,
)


def test_a_pg_dump_older_than_the_server_is_a_clear_error() -> None:
    current = pg_tool("pg_dump", 10)  # any installed client dumps a PostgreSQL 10 server
    assert current.major >= 10
    with pytest.raises(BackupError, match=r"older than the PostgreSQL 99 server: install"):
        pg_tool("pg_dump", 99)
    with pytest.raises(BackupError, match=r"pg_nothing not found: install the Debian package"):
        pg_tool("pg_nothing", 15)


def test_the_database_password_goes_to_the_environment_not_the_command_line() -> None:
    settings = Settings(database_url="postgresql://piaoxi:s%40cret@db.example:5433/piaoxi")
    url, env = _libpq(settings)
    assert url == "postgresql://piaoxi@db.example:5433/piaoxi"
    assert env["PGPASSWORD"] == "s@cret"
    assert _redacted(settings.database_url) == "postgresql://piaoxi:***@db.example:5433/piaoxi"
    assert _libpq(Settings(database_url="postgresql://postgres@127.0.0.1/x"))[0].endswith("/x")


def _backup(tmp_path: Path) -> Path:
    folder = tmp_path / "backup"
    folder.mkdir()
    files = {"readmodel.dump": b"dump", "object-records.jsonl": b""}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {
        "format": FORMAT,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_verify_accepts_a_whole_backup_and_names_what_is_wrong(tmp_path: Path) -> None:
    folder = _backup(tmp_path)
    assert verify_backup(folder)["format"] == FORMAT

    (folder / "readmodel.dump").write_bytes(b"dumq")
    with pytest.raises(BackupError, match=r"corrupt backup: sha256 of readmodel\.dump"):
        verify_backup(folder)
    (folder / "readmodel.dump").write_bytes(b"dump!")
    with pytest.raises(BackupError, match=r"readmodel\.dump has 5 bytes, the manifest says 4"):
        verify_backup(folder)
    (folder / "readmodel.dump").unlink()
    with pytest.raises(BackupError, match=r"incomplete backup: readmodel\.dump is missing"):
        verify_backup(folder)

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["../outside"] = {"bytes": 0, "sha256": ""}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="outside the backup"):
        verify_backup(folder)
    (folder / "manifest.json").write_text("{")
    with pytest.raises(BackupError, match="unreadable"):
        verify_backup(folder)
    with pytest.raises(BackupError, match="no such backup directory"):
        verify_backup(tmp_path / "nowhere")
