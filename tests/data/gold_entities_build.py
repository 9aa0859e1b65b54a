"""Build tests/data/gold_entities.jsonl from the hand-annotated gold_entities.src.txt.

The source file holds one sentence a line as ``source<TAB>marked text``, entities marked
``[P:諸葛亮]`` (P person, L place, D dynasty, E era date, T official title, B book); an
era date carries its Western year or range: ``[E:貞觀三年=629]``, ``[E:貞觀中=627~649]``.
Offsets in the JSONL are those of the unmarked text. A line ``#split fresh`` starts the
sentences added after the rules were tuned (their errors are reported only in total).
GOLD DATA: never train on it.

    .venv/bin/python tests/data/gold_entities_build.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TYPES = {
    "P": "PERSON",
    "L": "PLACE",
    "D": "DYNASTY",
    "E": "ERA_DATE",
    "T": "OFFICIAL_TITLE",
    "B": "BOOK",
}
MARK = re.compile(r"\[([PLDETB]):([^\]=]+)(?:=(-?\d+)(?:~(-?\d+))?)?\]")
HEADER: dict[str, object] = {
    "_comment": (
        "GOLD EVALUATION SET for piaoxi entities: hand-checked against "
        "docs/annotation-guideline.md. NEVER use for training or for tuning word lists. "
        "Built from gold_entities.src.txt by gold_entities_build.py."
    ),
    "text": "",
    "entities": [],
}


def parse_line(marked: str) -> tuple[str, list[dict[str, object]]]:
    text = ""
    entities: list[dict[str, object]] = []
    cursor = 0
    for m in MARK.finditer(marked):
        text += marked[cursor : m.start()]
        start = len(text)
        surface = m[2]
        text += surface
        entity: dict[str, object] = {
            "type": TYPES[m[1]],
            "start": start,
            "end": len(text),
            "surface": surface,
        }
        if m[1] == "E":
            if m[3] is None:
                raise ValueError(f"era date without year: {surface} in {marked}")
            entity["year_from"] = int(m[3])
            entity["year_to"] = int(m[4]) if m[4] else int(m[3])
        entities.append(entity)
        cursor = m.end()
    text += marked[cursor:]
    if "[" in text or "]" in text:
        raise ValueError(f"unparsed mark in: {marked}")
    return text, entities


def main() -> None:
    rows: list[dict[str, object]] = [HEADER]
    seen: set[str] = set()
    split = "dev"
    for number, line in enumerate(
        (HERE / "gold_entities.src.txt").read_text(encoding="utf-8").splitlines(), 1
    ):
        if line.startswith("#split "):
            split = line.split()[1]
            continue
        if not line.strip() or line.startswith("#"):
            continue
        source, marked = line.split("\t", 1)
        source, _, context = source.partition("|")
        text, entities = parse_line(marked.strip())
        if text in seen:
            raise ValueError(f"duplicate sentence on line {number}")
        seen.add(text)
        row: dict[str, object] = {"id": len(rows), "source": source, "split": split}
        row["text"] = text
        if context:
            row["context_dynasty"] = context
        row["entities"] = entities
        rows.append(row)
    with (HERE / "gold_entities.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows) - 1} sentences")


if __name__ == "__main__":
    main()
