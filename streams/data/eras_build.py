"""Build streams/data/eras.tsv and dynasties.tsv from chinese-history-toolkits (chhiskit).

The source table is simplified Chinese; names are converted with OpenCC s2t and then fixed
where s2t picks the wrong character for an era name (历 → 曆 in reign titles, 干 → 乾).
Reviewed corrections (eras_corrections.tsv) are applied on top. Run:

    .venv/bin/python streams/data/eras_build.py
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import opencc
from chhiskit.core.dynasties import _load_default_dynasty_table

HERE = Path(__file__).resolve().parent

# s2t renders 历 as 歷, but reign titles write 曆 (大曆, 聖曆, 慶曆, 萬曆, 永曆 ...).
ERA_CHAR_FIXES = {"歷": "曆", "幹": "乾"}

# Rows the source files under a main dynasty although they belong to a short-lived regime of
# another period (the same name reused): (source dynasty, year lower bound, upper bound, name).
REGIME_BY_YEAR = [
    ("漢", 300, 400, "漢(十六國)"),
    ("吳", 900, 940, "吳(楊吳)"),
    ("魏", 600, 700, "魏(李密)"),
    ("梁", 600, 700, "梁(隋末)"),
    ("後梁", 500, 600, "後梁(蕭詧)"),
    ("燕", 600, 700, "燕(高開道)"),
    ("燕", 700, 800, "燕(安史)"),
    ("燕", 900, 920, "燕(劉守光)"),
    ("楚", 600, 700, "楚(林士弘)"),
    ("楚", 900, 960, "楚(馬楚)"),
    ("隋", 700, 800, "隋(?)"),
]

# Rows whose era the source names by a short form that collides with a famous era of the
# same dynasty: (dynasty, era, first year) → the full name.
ERA_RENAMES = {("漢", "太初", -5): "太初元將"}

# Main-line dynasties: tier 1 is the usual orthodox succession a reader assumes when an era
# name stands alone; tier 2 the other dynasties of the standard histories; 3 everything else.
TIER1 = [
    "秦",
    "漢",
    "新",
    "東漢",
    "魏",
    "蜀",
    "吳",
    "晉",
    "東晉",
    "南朝宋",
    "南齊",
    "梁",
    "陳",
    "隋",
    "唐",
    "北宋",
    "南宋",
    "元",
    "明",
    "清",
]
TIER2 = [
    "北魏",
    "東魏",
    "西魏",
    "北齊",
    "北周",
    "後梁",
    "後唐",
    "後晉",
    "後漢",
    "後周",
    "契丹",
    "遼",
    "金",
    "西夏",
    "南明",
]

# Dynasty names that the source lacks or that texts use besides the source's names:
# (name, canonical, year_from, year_to).
EXTRA_DYNASTIES = [
    ("遼", "遼", 916, 1125),
    ("金", "金", 1115, 1234),
    ("西夏", "西夏", 1038, 1227),
    ("蜀漢", "蜀", 221, 263),
    ("曹魏", "魏", 220, 266),
    ("孫吳", "吳", 222, 280),
    ("東吳", "吳", 222, 280),
    ("劉宋", "南朝宋", 420, 479),
    ("前漢", "漢", -206, 8),
    ("武周", "唐", 690, 705),
    ("大唐", "唐", 618, 907),
    ("大宋", "北宋", 960, 1279),
    ("大漢", "漢", -206, 220),
    ("大元", "元", 1271, 1368),
    ("大清", "清", 1644, 1912),
    ("五代", "五代", 907, 960),
    ("十國", "十國", 907, 979),
    ("南朝", "南朝", 420, 589),
    ("北朝", "北朝", 386, 581),
    ("三國", "三國", 220, 280),
    ("宋", "北宋", 960, 1279),
    ("齊", "南齊", 479, 502),
    ("晉", "晉", 265, 420),
]


# Spans where the source's rows (reused names of later regimes) give a misleading range.
DYNASTY_SPANS = {
    "吳": (222, 280),
    "魏": (220, 266),
    "梁": (502, 557),
    "晉": (265, 420),
    "西晉": (265, 316),
    "後梁": (907, 923),
    "楚": (-1100, -223),
    "燕": (-1100, -222),
    "齊": (-1046, -221),
    "北魏": (386, 534),
    "南齊": (479, 502),
    "陳": (557, 589),
    "隋": (581, 618),
    "北周": (557, 581),
    "後唐": (923, 936),
    "後晉": (936, 947),
    "後漢": (947, 950),
    "後周": (951, 960),
}

# dynasty_id values of the source that are not dynasty names one would tag in text.
NOT_DYNASTY_NAMES = {"元封", "天啓", "當代", "代", "許", "鄭", "民國", "南北朝"}


def has_monarch(row: object) -> bool:
    monarch = getattr(row, "monarch", None)
    name = getattr(row, "monarchName", None)
    return any(isinstance(v, str) and v for v in (monarch, name))


def _t(conv: opencc.OpenCC, text: str) -> str:
    return conv.convert(text)


def _era_name(conv: opencc.OpenCC, text: str) -> str:
    name = _t(conv, text)
    return "".join(ERA_CHAR_FIXES.get(ch, ch) for ch in name)


def _regime(dynasty: str, year: int) -> str:
    for source, low, high, name in REGIME_BY_YEAR:
        if dynasty == source and low <= year < high:
            return name
    return dynasty


def _tier(dynasty: str) -> int:
    if dynasty in TIER1:
        return 1
    if dynasty in TIER2:
        return 2
    return 3


def _int(value: object) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)  # type: ignore[call-overload]


def build() -> tuple[list[list[str]], list[list[str]]]:
    conv = opencc.OpenCC("s2t")
    table = _load_default_dynasty_table()
    eras: dict[tuple[str, str], list[list[str]]] = {}
    dynasties: dict[str, list[str]] = {}
    summary: dict[str, tuple[int, int]] = {}
    spans: dict[str, tuple[int, int]] = {}
    for row in table.itertuples():
        dynasty_s = str(row.dynasty_id) if row.dynasty_id == row.dynasty_id else ""
        title_s = str(row.reignTitle) if row.reignTitle == row.reignTitle else ""
        begin, end = _int(row.beginYear), _int(row.endYear)
        if not dynasty_s or begin is None:
            continue
        dynasty = _t(conv, dynasty_s)
        last_year = end if end is not None else begin
        if not title_s and not has_monarch(row):
            summary.setdefault(dynasty, (begin, last_year))
        low, high = spans.get(dynasty, (begin, last_year))
        spans[dynasty] = (min(low, begin), max(high, last_year))
        if not title_s:
            continue
        era = _era_name(conv, title_s)
        if "？" in era or "?" in era:
            continue  # the source marks these as doubtful
        dynasty = _regime(dynasty, begin)
        era = ERA_RENAMES.get((dynasty, era, begin), era)
        ruler = _t(conv, str(row.monarch)) if row.monarch == row.monarch else ""
        key = (dynasty, era)
        last = end if end is not None else begin
        same = [r for r in eras.get(key, []) if begin <= int(r[3]) + 1 and int(r[2]) <= last + 1]
        if same:  # the source splits some eras in two rows: keep the whole span
            same[0][2] = str(min(int(same[0][2]), begin))
            same[0][3] = str(max(int(same[0][3]), last))
            continue
        # A name reused by the same dynasty later (元 至元 1264 and 1335) stays a separate row.
        eras.setdefault(key, []).append(
            [dynasty, era, str(begin), str(last), ruler, str(_tier(dynasty)), "chhiskit"]
        )
    for line in (HERE / "eras_corrections.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        dynasty, era, first = fields[0], fields[1], fields[2]
        last_fixed = fields[3] if len(fields) > 3 and fields[3] else ""
        key = (dynasty, era)
        if key in eras:
            fixed = eras[key][0]  # corrections name the first use when a name was reused
            fixed[2] = first
            if last_fixed:
                fixed[3] = last_fixed
            fixed[6] = "chhiskit+reviewed"
        else:
            eras[key] = [
                [dynasty, era, first, last_fixed or first, "", str(_tier(dynasty)), "reviewed"]
            ]
    for name, span in spans.items():
        if name in NOT_DYNASTY_NAMES or "(" in name:
            continue
        span_from, span_to = summary.get(name, span)
        dynasties[name] = [name, name, str(span_from), str(span_to)]
    for name, canonical, year_from, year_to in EXTRA_DYNASTIES:
        dynasties.setdefault(name, [name, canonical, str(year_from), str(year_to)])
    for name, (span_from, span_to) in DYNASTY_SPANS.items():
        dynasties[name][2] = str(span_from)
        dynasties[name][3] = str(span_to)
    era_rows = sorted(
        (row for rows in eras.values() for row in rows), key=lambda r: (int(r[2]), r[0], r[1])
    )
    dynasty_rows = sorted(dynasties.values(), key=lambda r: (int(r[2]), r[0]))
    return era_rows, dynasty_rows


def main() -> None:
    era_rows, dynasty_rows = build()
    with (HERE / "eras.tsv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(["dynasty", "era", "first_year", "last_year", "ruler", "tier", "source"])
        out.writerows(era_rows)
    with (HERE / "dynasties.tsv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(["name", "canonical", "year_from", "year_to"])
        out.writerows(dynasty_rows)
    print(f"{len(era_rows)} eras, {len(dynasty_rows)} dynasties")


if __name__ == "__main__":
    main()
