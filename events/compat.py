"""Schema compatibility: can data written with one schema be read with another?

Two checks, both used by the CI gate and `piaoxi schemas check`:
- `resolution_problems(writer, reader)`: the Avro schema-resolution rules, structurally;
- `decode_problems(writer, reader)`: actually write generated records with the writer
  schema and read them back with the reader schema (fastavro).
BACKWARD_TRANSITIVE means every kept version can read data of every older version.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.utils import generate_many

from events.schemas import SchemaCatalog, SchemaVersion

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Resolver:
    """Walks writer and reader schemas side by side, collecting resolution problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.writer_names: dict[str, Any] = {}
        self.reader_names: dict[str, Any] = {}
        self._seen: set[tuple[str, str]] = set()

    def _deref(self, schema: Any, names: dict[str, Any], namespace: str | None) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            return names.get(_full(schema, namespace), names.get(schema, schema))
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            names[_full(schema["name"], schema.get("namespace", namespace))] = schema
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            kind = schema["type"]
            return kind if isinstance(kind, str) else _Resolver._kind(kind)
        return str(schema)

    def matches(
        self, writer: Any, reader: Any, path: str, ns_w: str | None, ns_r: str | None
    ) -> bool:
        """Whether writer data resolves into reader; records problems under `path`."""
        before = len(self.problems)
        self.check(writer, reader, path, ns_w, ns_r)
        ok = len(self.problems) == before
        del self.problems[before:]
        return ok

    def check(
        self, writer: Any, reader: Any, path: str, ns_w: str | None = None, ns_r: str | None = None
    ) -> None:
        writer = self._deref(writer, self.writer_names, ns_w)
        reader = self._deref(reader, self.reader_names, ns_r)
        if isinstance(writer, dict) and isinstance(writer["type"], (list, dict)):
            writer = writer["type"]
        if isinstance(reader, dict) and isinstance(reader["type"], (list, dict)):
            reader = reader["type"]
        wk, rk = self._kind(writer), self._kind(reader)
        if wk == "union":
            for branch in writer:
                self.check(branch, reader, path, ns_w, ns_r)
            return
        if rk == "union":
            if not any(self.matches(writer, b, path, ns_w, ns_r) for b in reader):
                self.problems.append(f"{path}: writer type {wk} matches no branch of reader union")
            return
        if wk in _PRIMITIVES and rk in _PRIMITIVES:
            if rk not in _PROMOTIONS.get(wk, {wk}):
                self.problems.append(f"{path}: {wk} cannot be read as {rk}")
            return
        if wk != rk:
            self.problems.append(f"{path}: {wk} cannot be read as {rk}")
            return
        if wk == "array":
            self.check(writer["items"], reader["items"], f"{path}[]", ns_w, ns_r)
        elif wk == "map":
            self.check(writer["values"], reader["values"], f"{path}{{}}", ns_w, ns_r)
        elif wk == "enum":
            wn = _full(writer["name"], writer.get("namespace", ns_w))
            rn = _full(reader["name"], reader.get("namespace", ns_r))
            if wn != rn and wn not in reader.get("aliases", []):
                self.problems.append(f"{path}: enum {wn} cannot be read as {rn}")
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and "default" not in reader:
                self.problems.append(f"{path}: reader enum lacks symbols {sorted(missing)}")
        elif wk == "fixed":
            if writer["size"] != reader["size"]:
                self.problems.append(f"{path}: fixed size {writer['size']} != {reader['size']}")
        elif wk == "record":
            self._check_record(writer, reader, path, ns_w, ns_r)

    def _check_record(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: str,
        ns_w: str | None,
        ns_r: str | None,
    ) -> None:
        ns_w = writer.get("namespace", ns_w)
        ns_r = reader.get("namespace", ns_r)
        wn, rn = _full(writer["name"], ns_w), _full(reader["name"], ns_r)
        if wn != rn and wn not in [_full(a, ns_r) for a in reader.get("aliases", [])]:
            self.problems.append(f"{path}: record {wn} cannot be read as {rn}")
            return
        if (wn, rn) in self._seen:  # recursive type already being checked
            return
        self._seen.add((wn, rn))
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((writer_fields[n] for n in names if n in writer_fields), None)
            where = f"{path}.{field['name']}" if path else field["name"]
            if source is None:
                if "default" not in field:
                    self.problems.append(f"{where}: new field without a default")
                continue
            self.check(source["type"], field["type"], where, ns_w, ns_r)


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def resolution_problems(writer: dict[str, Any], reader: dict[str, Any]) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can)."""
    resolver = _Resolver()
    resolver.check(writer, reader, "")
    return resolver.problems


def decode_problems(writer: SchemaVersion, reader: SchemaVersion, samples: int = 25) -> list[str]:
    """Write generated records with `writer`, read them with `reader`; report failures."""
    problems: list[str] = []
    for i, record in enumerate(generate_many(writer.parsed, samples)):
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, writer.parsed, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:
            problems.append(f"sample {i}: {type(exc).__name__}: {exc}")
            break
    return problems


def backward_transitive_problems(catalog: SchemaCatalog) -> dict[str, list[str]]:
    """For each record, every (older -> newer) pair of kept versions that does not resolve."""
    report: dict[str, list[str]] = {}
    for name in catalog.names():
        versions = catalog.versions(name)
        problems: list[str] = []
        for j, reader in enumerate(versions):
            for writer in versions[:j]:
                pair = f"v{writer.version} data read with v{reader.version}"
                problems += [
                    f"{pair}: {p}" for p in resolution_problems(writer.schema, reader.schema)
                ]
                problems += [f"{pair}: {p}" for p in decode_problems(writer, reader)]
        if problems:
            report[name] = problems
    return report
