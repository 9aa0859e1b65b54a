"""`piaoxi entities FILE|-`: one JSON line per input line, the spans the pipeline's events carry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from piaoxi.cli import app
from streams.agents import find_page_entities

LINES = [
    "貞觀三年，以李靖為兵部尚書，出為并州都督。",
    "",
    "蘇軾，字子瞻，眉州眉山人。著《東坡集》。",
]
KEYS = {"start", "end", "type", "surface", "normalized", "year_from", "year_to"}


def _rows(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_each_line_gives_one_json_line_with_the_offsets_of_the_events() -> None:
    result = CliRunner().invoke(app, ["entities", "-"], input="\n".join(LINES) + "\n")
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert [r["text"] for r in rows] == LINES
    assert rows[1]["entities"] == []
    for row in rows:
        text = row["text"]
        assert isinstance(text, str) and isinstance(row["entities"], list)
        for e in row["entities"]:
            assert set(e) == KEYS
            assert text[e["start"] : e["end"]] == e["surface"]
        # the worker's own function on the same text: the same spans, field for field
        spans, _ = find_page_entities(text)
        assert row["entities"] == [{k: getattr(s, k) for k in KEYS} for s in spans]
    first = {(e["surface"], e["type"]): e for e in rows[0]["entities"]}
    assert first[("貞觀三年", "ERA_DATE")]["year_from"] == 629
    assert ("李靖", "PERSON") in first
    assert ("東坡集", "BOOK") in {(e["surface"], e["type"]) for e in rows[2]["entities"]}


def test_a_file_gives_what_stdin_gives(tmp_path: Path) -> None:
    source = tmp_path / "page.txt"
    source.write_text("\r\n".join(LINES), encoding="utf-8")
    from_file = CliRunner().invoke(app, ["entities", str(source), "--no-model"])
    from_stdin = CliRunner().invoke(app, ["entities", "-", "--no-model"], input="\n".join(LINES))
    assert from_file.exit_code == 0, from_file.output
    assert from_file.output == from_stdin.output
    assert [r["text"] for r in _rows(from_file.output)] == LINES


def test_the_document_dynasty_settles_an_era_name_several_regimes_used() -> None:
    # 建興: 蜀漢 (223-237) and others; the document's dynasty picks the year
    runner = CliRunner()
    shu = _rows(
        runner.invoke(app, ["entities", "-", "--dynasty", "蜀漢"], input="建興五年，北伐。").output
    )
    era = [e for e in shu[0]["entities"] if e["type"] == "ERA_DATE"]
    assert era and era[0]["surface"] == "建興五年" and era[0]["year_from"] == 227


def test_a_missing_or_non_utf8_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["entities", str(tmp_path / "none.txt")])
    assert missing.exit_code == 2
    big5 = tmp_path / "big5.txt"
    big5.write_bytes("貞觀三年".encode("big5"))
    wrong = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["entities", str(big5)])
    assert wrong.exit_code == 2
    assert "not UTF-8" in wrong.output
