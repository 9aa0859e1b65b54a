"""Build tests/data/gold_entities.jsonl from the hand-annotated gold_entities.src.txt.

The source file holds one sentence a line as ``source<TAB>marked text``, entities marked
``[P:諸葛亮]`` (P person, L place, D dynasty, E era date, T official title, B book); an
era date carries its Western year or range: ``[E:貞觀三年=629]``, ``[E:貞觀中=627~649]``.
Offsets in the JSONL are those of the unmarked text. A line ``#split fresh`` starts the
sentences added after the rules were tuned (their errors are reported only in total); a
line ``#genre preqin`` sets the genre of the sentences after it (one of ``GENRES``).
Sentences before the first ``#genre`` line (the splits written before genres existed) get
the genre of their source (``genre_of_source``). GOLD DATA: never train on it.

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
GENRES = {
    "preqin": "pre-Qin and Han narrative and dialogue (論語, 孟子, 左傳, 國語, 戰國策, 史記, 漢書)",
    "history": "histories of later dynasties (三國志 to 清史稿, 資治通鑑)",
    "fangzhi": "local gazetteers (方志)",
    "tiyao": "提要 and bibliographic notes",
    "biography": "biographies, epitaphs, biographical dictionaries (墓誌, 行狀, 唐才子傳)",
    "letters": "prefaces, colophons, letters and memorials (序, 跋, 書, 表)",
    "notes": "records and notebooks (記, 筆記, 世說新語)",
}
# Source prefixes of the sentences written before genres were recorded, first match wins.
_SOURCE_GENRES = (
    (("史記", "漢書", "資治通鑑·周紀"), "preqin"),
    (("方志",), "fangzhi"),
    (("四庫提要",), "tiyao"),
    (("墓誌", "碑記·柳子厚墓誌銘", "唐才子傳", "高僧傳", "宋詩紀事"), "biography"),
    (("序跋", "奏議", "詩話"), "letters"),
    (("碑記", "筆記", "世說新語", "夢溪筆談", "東坡志林", "水經注", "搜神記", "酉陽雜俎",
      "容齋隨筆", "老學庵筆記", "陶庵夢憶", "閱微草堂筆記"), "notes"),
)  # fmt: skip


def genre_of_source(source: str) -> str:
    """The genre of a sentence written before genres were recorded, from its source."""
    for prefixes, genre in _SOURCE_GENRES:
        if source.startswith(prefixes):
            return genre
    return "history"


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
    genre: str | None = None
    for number, line in enumerate(
        (HERE / "gold_entities.src.txt").read_text(encoding="utf-8").splitlines(), 1
    ):
        if line.startswith("#split "):
            split = line.split()[1]
            genre = None
            continue
        if line.startswith("#genre "):
            genre = line.split()[1]
            if genre not in GENRES:
                raise ValueError(f"unknown genre on line {number}: {genre}")
            continue
        if not line.strip() or line.startswith("#"):
            continue
        source, marked = line.split("\t", 1)
        source, _, context = source.partition("|")
        text, entities = parse_line(marked.strip())
        if text in seen:
            raise ValueError(f"duplicate sentence on line {number}")
        seen.add(text)
        row: dict[str, object] = {
            "id": len(rows),
            "source": source,
            "split": split,
            "genre": genre or genre_of_source(source),
        }
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
