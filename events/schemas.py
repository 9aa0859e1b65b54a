"""The Avro contracts on disk: `schemas/avro/<Name>.v<N>.avsc`, all kept versions.

The newest version of each record is the reader schema every consumer uses; older ones
stay so data written with them remains readable (and the compatibility gate can check
them). A schema's id in the embedded registry is `schema_id(text)`: a stable 31-bit hash
of its normalised JSON, so every producer computes the same id without coordination.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR_ENV = "PIAOXI_SCHEMA_DIR"
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>\d+)\.avsc$")


def default_schema_dir() -> Path:
    """`schemas/avro/` at the repository root (overridable with PIAOXI_SCHEMA_DIR)."""
    override = os.environ.get(SCHEMA_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "schemas" / "avro"


def normalize_schema(schema: dict[str, Any] | str) -> str:
    """The schema as compact JSON with sorted keys: the text we register and hash."""
    data = json.loads(schema) if isinstance(schema, str) else schema
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_id(schema: dict[str, Any] | str) -> int:
    """A stable positive 31-bit id for a schema (first 4 bytes of SHA-256 of its text)."""
    digest = hashlib.sha256(normalize_schema(schema).encode("utf-8")).digest()
    value = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    return value or 1


def parse(schema_text: str) -> Any:
    """A fastavro-parsed schema with its own name table (versions may reuse names)."""
    return fastavro.parse_schema(json.loads(schema_text), named_schemas={})


def record_full_name(schema: dict[str, Any]) -> str:
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@dataclass(frozen=True)
class SchemaVersion:
    """One kept version of one record schema."""

    full_name: str  # e.g. piaoxi.events.DocumentUploaded (also the registry subject)
    version: int
    path: Path
    text: str  # normalised JSON
    id: int
    parsed: Any = field(repr=False, compare=False)

    @property
    def subject(self) -> str:
        """RecordNameStrategy: the subject is the record's full name."""
        return self.full_name

    @property
    def schema(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.text)
        return result


class SchemaCatalog:
    """All kept schema versions in a directory, by record name and by id."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_schema_dir()
        self._by_name: dict[str, list[SchemaVersion]] = {}
        self._by_id: dict[int, SchemaVersion] = {}
        for path in sorted(self.directory.glob("*.avsc")):
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise ValueError(f"{path}: schema files are named <Name>.v<N>.avsc")
            data = json.loads(path.read_text(encoding="utf-8"))
            if match["name"] != str(data["name"]).rsplit(".", 1)[-1]:
                raise ValueError(f"{path}: file name does not match record name {data['name']}")
            text = normalize_schema(data)
            version = SchemaVersion(
                full_name=record_full_name(data),
                version=int(match["version"]),
                path=path,
                text=text,
                id=schema_id(text),
                parsed=parse(text),
            )
            other = self._by_id.get(version.id)
            if other is not None and other.text != text:
                raise ValueError(f"schema id collision: {path} and {other.path}")
            self._by_id[version.id] = version
            self._by_name.setdefault(version.full_name, []).append(version)
        for versions in self._by_name.values():
            versions.sort(key=lambda v: v.version)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, full_name: str) -> list[SchemaVersion]:
        """All kept versions of a record, oldest first."""
        return list(self._by_name.get(full_name, []))

    def current(self, full_name: str) -> SchemaVersion:
        """The newest version: the reader schema."""
        versions = self._by_name.get(full_name)
        if not versions:
            raise KeyError(f"no schema for {full_name} in {self.directory}")
        return versions[-1]

    def by_id(self, id_: int) -> SchemaVersion | None:
        return self._by_id.get(id_)

    def all(self) -> list[SchemaVersion]:
        return [v for name in self.names() for v in self._by_name[name]]


@cache
def default_catalog() -> SchemaCatalog:
    """The catalog of `default_schema_dir()`, loaded once per process."""
    return SchemaCatalog()
