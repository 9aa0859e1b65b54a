"""The compatibility gate: every kept schema version is BACKWARD_TRANSITIVE compatible."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from events.compat import backward_transitive_problems, resolution_problems
from events.schemas import SchemaCatalog, default_catalog, default_schema_dir


def test_kept_schemas_are_backward_transitive_compatible() -> None:
    """The CI gate: a schema change that breaks old data fails here."""
    catalog = default_catalog()
    assert catalog.names(), "no schemas found"
    assert backward_transitive_problems(catalog) == {}


def _catalog_with_v2(tmp_path: Path, change: dict[str, object]) -> SchemaCatalog:
    shutil.copytree(default_schema_dir(), tmp_path, dirs_exist_ok=True)
    v1 = json.loads((tmp_path / "DocumentRetracted.v1.avsc").read_text())
    fields = [f for f in v1["fields"] if f["name"] != change.get("drop")]
    if "add" in change:
        fields.append(change["add"])
    if "retype" in change:
        fields = [{**f, "type": change["retype"]} if f["name"] == "reason" else f for f in fields]
    (tmp_path / "DocumentRetracted.v2.avsc").write_text(json.dumps({**v1, "fields": fields}))
    return SchemaCatalog(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        {"add": {"name": "note", "type": ["null", "string"], "default": None}},
        {"drop": "reason"},
        {"retype": ["null", "string"]},
    ],
)
def test_compatible_changes_pass(tmp_path: Path, change: dict[str, object]) -> None:
    assert backward_transitive_problems(_catalog_with_v2(tmp_path, change)) == {}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"add": {"name": "note", "type": "string"}}, "without a default"),
        ({"retype": "int"}, "string cannot be read as int"),
    ],
)
def test_breaking_changes_fail(tmp_path: Path, change: dict[str, object], problem: str) -> None:
    report = backward_transitive_problems(_catalog_with_v2(tmp_path, change))
    assert list(report) == ["piaoxi.events.DocumentRetracted"]
    assert any(problem in p for p in report["piaoxi.events.DocumentRetracted"])
    # the decode check agrees with the structural one
    assert any("sample" in p for p in report["piaoxi.events.DocumentRetracted"])


def test_type_promotion_and_unions_follow_avro_rules() -> None:
    def record(t: object) -> dict[str, object]:
        return {"type": "record", "name": "R", "fields": [{"name": "a", "type": t}]}

    assert resolution_problems(record("int"), record("long")) == []
    assert resolution_problems(record("int"), record(["null", "long"])) == []
    assert resolution_problems(record("long"), record("int")) != []
    assert resolution_problems(record(["null", "string"]), record("string")) != []


def test_kept_versions_are_frozen() -> None:
    """A kept .avsc is never edited or removed (old events name it by id): a change is a
    new `<Name>.v<N+1>.avsc`, recorded in schemas/avro/ids.json with its id
    (`piaoxi schemas list --local` shows it)."""
    catalog = default_catalog()
    recorded = json.loads((default_schema_dir() / "ids.json").read_text())
    kept = {
        name: {str(v.version): v.id for v in catalog.versions(name)} for name in catalog.names()
    }
    assert kept == recorded
