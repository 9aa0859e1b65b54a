"""Reign eras and dynasties: parse era dates (貞觀三年, 開元二十三年春正月) to Western years.

The tables are data (streams/data/eras.tsv, dynasties.tsv, built by eras_build.py from
chinese-history-toolkits plus reviewed corrections). An era name used by several regimes
(太平, 建武, 建興, 天寶 ...) is resolved with the dynasties in context; when that does not
settle it the result carries the range over the candidates and a low confidence — never a
confident wrong year.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

# A context mention of the key may mean any of these regimes (names as in eras.tsv).
DYNASTY_FAMILIES: dict[str, tuple[str, ...]] = {
    "漢": ("漢", "東漢"),
    "大漢": ("漢", "東漢"),
    "前漢": ("漢",),
    "西漢": ("漢",),
    "後漢": ("東漢", "後漢"),
    "蜀漢": ("蜀",),
    "曹魏": ("魏",),
    "孫吳": ("吳",),
    "東吳": ("吳",),
    "三國": ("魏", "蜀", "吳"),
    "晉": ("晉", "東晉"),
    "西晉": ("晉",),
    "宋": ("北宋", "南宋", "南朝宋"),
    "大宋": ("北宋", "南宋"),
    "劉宋": ("南朝宋",),
    "齊": ("南齊", "北齊"),
    "魏": ("魏", "北魏", "東魏", "西魏"),
    "周": ("北周", "後周"),
    "武周": ("唐",),
    "唐": ("唐",),
    "大唐": ("唐",),
    "梁": ("梁", "後梁"),
    "吳": ("吳", "吳(楊吳)"),
    "蜀": ("蜀", "前蜀", "後蜀"),
    "燕": ("前燕", "後燕", "西燕", "南燕", "北燕"),
    "元": ("元",),
    "大元": ("元",),
    "清": ("清",),
    "大清": ("清",),
    "遼": ("遼", "契丹"),
    "契丹": ("契丹", "遼"),
    "南朝": ("南朝宋", "南齊", "梁", "陳"),
    "北朝": ("北魏", "東魏", "西魏", "北齊", "北周"),
    "五代": ("後梁", "後唐", "後晉", "後漢", "後周"),
}

DIGITS = {
    "〇": 0, "零": 0, "一": 1, "二": 2, "兩": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
TENS = {"廿": 20, "卄": 20, "卅": 30, "卌": 40}
STEMS = "甲乙丙丁戊己庚辛壬癸"
BRANCHES = "子丑寅卯辰巳午未申酉戌亥"
NUMERAL_CHARS = "〇零一二三四五六七八九十廿卄卅卌百有兩"

_NUM = f"[{NUMERAL_CHARS}]+"
# What may follow an era name: the year, then season, intercalary mark, month and day.
DATE_TAIL = re.compile(
    rf"(?:(?P<year>元|{_NUM})(?P<unit>年|載|祀)|(?P<gzyear>[{STEMS}][{BRANCHES}])年?)"
    rf"(?:(?P<season>[春夏秋冬])?(?:(?P<leap>閏)?(?P<month>正|臘|{_NUM})月)?)?"
    rf"(?:(?P<day>初?{_NUM})日|(?P<gz>[{STEMS}][{BRANCHES}])(?:日|朔)?|(?P<lunar>朔|望|晦)日?)?"
)
SEASON_ONLY = re.compile(r"(?P<season>[春夏秋冬])")
# An era named without a year: 貞觀中, 開元末, 天寶間, 大中初, 元和年間.
ERA_PERIOD = re.compile(r"(?:年間|年中|之際|初|中|末|間)")


@dataclass(frozen=True)
class Era:
    """One regime's use of a reign-era name."""

    dynasty: str
    name: str
    first_year: int  # the Western year of 元年 (negative = BCE, no year 0)
    last_year: int
    ruler: str
    tier: int  # 1 orthodox succession, 2 other standard-history dynasties, 3 the rest

    def western_year(self, year_in_era: int) -> int:
        year = self.first_year + year_in_era - 1
        if self.first_year < 0 <= year:
            year += 1  # there is no year 0
        return year

    @property
    def length(self) -> int:
        return (
            self.last_year
            - self.first_year
            + 1
            - (1 if self.first_year < 0 < self.last_year else 0)
        )


@dataclass(frozen=True)
class Dynasty:
    name: str
    canonical: str
    year_from: int
    year_to: int


@dataclass(frozen=True)
class EraDate:
    """A parsed era date; year_from == year_to when the Western year is known."""

    text: str
    era: str
    year_in_era: int | None
    season: str | None
    leap: bool
    month: int | None
    day: int | None
    day_ganzhi: str | None
    dynasty: str | None  # the regime chosen, None when unresolved
    year_from: int | None
    year_to: int | None
    confidence: float
    candidates: tuple[Era, ...] = field(default=(), repr=False)
    resolved_by: str = ""  # unique | prefix | context | neighbour | prior | unresolved | unknown

    @property
    def year(self) -> int | None:
        return (
            self.year_from
            if self.year_from is not None and self.year_from == self.year_to
            else None
        )

    @property
    def normalized(self) -> str:
        """A compact canonical form, e.g. ``唐貞觀3年`` or ``建武?(25–505)``."""
        head = f"{self.dynasty or ''}{self.era}"
        if self.dynasty is None and len({c.dynasty for c in self.candidates}) > 1:
            head += "?"
        parts = [head]
        if self.year_in_era is not None:
            parts.append(f"{self.year_in_era}年")
        if self.month is not None:
            parts.append(f"{'閏' if self.leap else ''}{self.month}月")
        if self.day is not None:
            parts.append(f"{self.day}日")
        elif self.day_ganzhi:
            parts.append(self.day_ganzhi)
        text = "".join(parts)
        if self.year_from is not None:
            span = (
                str(self.year_from)
                if self.year_from == self.year_to
                else f"{self.year_from}–{self.year_to}"
            )
            text += f" ({span})"
        return text


def parse_chinese_number(text: str) -> int | None:
    """十 → 10, 二十三 → 23, 廿三 → 23, 十有二 → 12, 一九六〇 → 1960, 元 → 1, 正 → 1."""
    text = text.replace("有", "").replace("初", "")
    if not text:
        return None
    if text in ("元", "正"):
        return 1
    if text == "臘":
        return 12
    if any(ch not in DIGITS and ch not in TENS and ch not in "十百" for ch in text):
        return None
    if "十" not in text and "百" not in text and not any(ch in TENS for ch in text):
        if len(text) == 1:
            return DIGITS[text]
        return int("".join(str(DIGITS[ch]) for ch in text))  # positional: 一九六〇
    total, current = 0, 0
    for ch in text:
        if ch in DIGITS:
            current = DIGITS[ch]
        elif ch in TENS:
            total += TENS[ch]
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
    return total + current


@lru_cache(maxsize=1)
def _variant_map() -> dict[str, str]:
    """The cleaning stage's variant folding (啓 → 啟 ...): names must match cleaned text."""
    try:
        from streams.clean import load_rules

        return {ch: target for ch, (target, _) in load_rules().variants.items()}
    except Exception:  # the cleaning rules are optional for the tables themselves
        return {}


def fold_variants(text: str) -> str:
    """``text`` with the characters the cleaning stage folds replaced, as in cleaned text."""
    table = _variant_map()
    return "".join(table.get(ch, ch) for ch in text) if table else text


@lru_cache(maxsize=1)
def era_table() -> dict[str, tuple[Era, ...]]:
    """Era name → every regime's use of it, from streams/data/eras.tsv."""
    table: dict[str, list[Era]] = {}
    with (DATA_DIR / "eras.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            era = Era(
                dynasty=row["dynasty"],
                name=row["era"],
                first_year=int(row["first_year"]),
                last_year=int(row["last_year"]),
                ruler=row["ruler"],
                tier=int(row["tier"]),
            )
            table.setdefault(era.name, []).append(era)
    for name in list(table):
        folded = fold_variants(name)  # 光啓 is written 光啟 in cleaned text
        if folded != name:
            table.setdefault(folded, []).extend(table[name])
    return {name: tuple(eras) for name, eras in table.items()}


@lru_cache(maxsize=1)
def dynasty_table() -> dict[str, Dynasty]:
    """Dynasty name (as written in text) → its canonical regime and span."""
    table: dict[str, Dynasty] = {}
    with (DATA_DIR / "dynasties.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            dynasty = Dynasty(
                row["name"], row["canonical"], int(row["year_from"]), int(row["year_to"])
            )
            table[row["name"]] = dynasty
            table.setdefault(fold_variants(row["name"]), dynasty)
    return table


def dynasty_matches(mention: str, regime: str) -> bool:
    """Whether a dynasty named ``mention`` in text may be the regime ``regime`` of eras.tsv."""
    if mention == regime:
        return True
    if regime in DYNASTY_FAMILIES.get(mention, ()):
        return True
    canonical = dynasty_table().get(mention)
    return canonical is not None and canonical.canonical == regime


def _plausible(era: Era, year_in_era: int | None) -> bool:
    # One year of slack: an era proclaimed late in a year may be counted into the next.
    return year_in_era is None or year_in_era <= era.length + 1


def resolve_era(
    name: str,
    year_in_era: int | None,
    *,
    prefix_dynasty: str | None = None,
    context_dynasties: Sequence[str] = (),
    neighbour_regimes: Sequence[str] = (),
    context_text: str = "",
) -> tuple[tuple[Era, ...], str, float]:
    """Pick the regime(s) an era name refers to.

    Returns (remaining candidates, how it was resolved, confidence). One candidate — or
    several that give the same Western year — means resolved.
    """
    candidates = era_table().get(name, ())
    if not candidates:
        return (), "unknown", 0.0
    plausible = tuple(c for c in candidates if _plausible(c, year_in_era)) or candidates

    def settled(eras: Sequence[Era]) -> bool:
        if not eras:
            return False
        if year_in_era is None:
            return len({(e.first_year, e.last_year) for e in eras}) == 1 or len(eras) == 1
        return len({e.western_year(year_in_era) for e in eras}) == 1

    if settled(plausible):
        return plausible, ("unique" if len(candidates) == 1 else "plausible"), 0.95
    if prefix_dynasty:
        chosen = tuple(c for c in plausible if dynasty_matches(prefix_dynasty, c.dynasty))
        if settled(chosen):
            return chosen, "prefix", 0.95
        if chosen:
            plausible = chosen
    if context_text:  # a ruler named near the date: 光武 → 東漢建武, 玄宗 → 唐
        chosen = tuple(c for c in plausible if _ruler_named(c.ruler, context_text))
        if settled(chosen):
            return chosen, "ruler", 0.85
    for regime in neighbour_regimes:
        chosen = tuple(c for c in plausible if c.dynasty == regime)
        if settled(chosen):
            return chosen, "neighbour", 0.85
    narrowed: tuple[Era, ...] = ()
    for mention in context_dynasties:
        chosen = tuple(c for c in plausible if dynasty_matches(mention, c.dynasty))
        if settled(chosen):
            return chosen, "context", 0.85
        if chosen and not narrowed:
            narrowed = chosen  # the nearest dynasty in context bounds the range
    if narrowed:
        return narrowed, "unresolved", 0.3
    for tier in (1, 2):
        chosen = tuple(c for c in plausible if c.tier <= tier)
        if settled(chosen) and len({c.dynasty for c in chosen}) == 1:
            return chosen, "prior", 0.6
        if chosen:
            break
    return plausible, "unresolved", 0.3


def ganzhi_of_year(year: int) -> str:
    """The sexagenary name of a Western year (1984 → 甲子; no year 0)."""
    offset = (year - 4 if year > 0 else year - 3) % 60
    return STEMS[offset % 10] + BRANCHES[offset % 12]


def _year_of_ganzhi(era_name: str, ganzhi: str) -> int | None:
    """紹興丁卯 → 17: the year of the era named by a sexagenary year, if all uses agree."""
    found = set()
    for era in era_table().get(era_name, ()):
        for n in range(1, era.length + 2):
            if ganzhi_of_year(era.western_year(n)) == ganzhi:
                found.add(n)
    return found.pop() if len(found) == 1 else None


def _ruler_named(ruler: str, context_text: str) -> bool:
    name = ruler[:-1] if ruler.endswith("帝") and len(ruler) > 2 else ruler
    return len(name) >= 2 and name in context_text


def parse_era_date(
    text: str,
    *,
    context_dynasties: Iterable[str] = (),
    neighbour_regimes: Iterable[str] = (),
    default_era: str | None = None,
    context_text: str = "",
) -> EraDate | None:
    """Parse an era date such as ``貞觀三年``, ``唐開元二十三年春正月``, ``天寶十載``, ``貞觀中``.

    ``context_dynasties`` are dynasty names mentioned near the date (nearest first);
    ``neighbour_regimes`` regimes already resolved for other era dates of the document.
    ``context_text`` (the sentence around the date) may name the ruler (光武, 玄宗).
    ``default_era`` lets a bare ``三年`` / ``元年`` continue the era named before it.
    Returns None when the text does not start with a known era (after an optional dynasty).
    """
    text = text.strip()
    prefix_dynasty: str | None = None
    rest = text
    if _era_at(text, 0) is None:
        for length in (3, 2, 1):
            head = text[:length]
            if head in dynasty_table() and _era_at(text, length):
                prefix_dynasty, rest = head, text[length:]
                break
    era_name = _era_at(rest, 0)
    if era_name is None:
        if default_era is None or not DATE_TAIL.match(rest):
            return None
        era_name, tail = default_era, rest
    else:
        tail = rest[len(era_name) :]
    match = DATE_TAIL.match(tail)
    year_in_era = month = day = None
    season = gz = None
    leap = False
    if match:
        if match["gzyear"]:
            year_in_era = _year_of_ganzhi(era_name, match["gzyear"])
        else:
            year_in_era = parse_chinese_number(match["year"])
        season = match["season"]
        leap = bool(match["leap"])
        month = parse_chinese_number(match["month"]) if match["month"] else None
        day = parse_chinese_number(match["day"]) if match["day"] else None
        gz = match["gz"] or match["lunar"]
        if month is not None and not 1 <= month <= 12:
            month = None
        if day is not None and not 1 <= day <= 30:
            day = None
    eras, how, confidence = resolve_era(
        era_name,
        year_in_era,
        prefix_dynasty=prefix_dynasty,
        context_dynasties=tuple(context_dynasties),
        neighbour_regimes=tuple(neighbour_regimes),
        context_text=context_text,
    )
    year_from = year_to = None
    dynasty = None
    if eras:
        if year_in_era is not None:
            years = [e.western_year(year_in_era) for e in eras]
        else:
            years = [e.first_year for e in eras] + [e.last_year for e in eras]
        year_from, year_to = min(years), max(years)
        if len({e.dynasty for e in eras}) == 1 or how != "unresolved":
            dynasty = eras[0].dynasty
    return EraDate(
        text=text,
        era=era_name,
        year_in_era=year_in_era,
        season=season,
        leap=leap,
        month=month,
        day=day,
        day_ganzhi=gz,
        dynasty=dynasty,
        year_from=year_from,
        year_to=year_to,
        confidence=confidence,
        candidates=eras,
        resolved_by=how,
    )


@lru_cache(maxsize=1)
def _era_lengths() -> tuple[int, ...]:
    return tuple(sorted({len(name) for name in era_table()}, reverse=True))


def _era_at(text: str, pos: int) -> str | None:
    table = era_table()
    for length in _era_lengths():
        candidate = text[pos : pos + length]
        if len(candidate) == length and candidate in table:
            return candidate
    return None


def date_tail_length(text: str, pos: int) -> int:
    """Length of the year/month/day expression starting at ``pos`` (0 when there is none)."""
    match = DATE_TAIL.match(text, pos)
    return match.end() - pos if match else 0


# After a one-character dynasty in a title, these mark it as the dynasty (漢書, 唐詩, 宋人)
# rather than an ordinary character (金剛經, 周易, 元和郡縣志).
_TITLE_DYNASTY_FOLLOW = set("書史朝代人詩詞文會紀志賦曲臣")
_TITLE_DYNASTY_BEFORE = set("舊新前後南北東西大")
_TITLE_SEPARATORS = set("·・•( （〔[【")


def document_dynasty(title: str, tags: Iterable[str] = ()) -> str | None:
    """The one dynasty a document names for itself, to settle its ambiguous era names.

    A tag that is a dynasty name wins (the uploader said so); otherwise the title must name
    exactly one regime: 舊唐書 → 唐, 宋史·岳飛傳 → 宋, 唐·韓愈文 → 唐. One-character names count
    only where a title uses them as dynasties, so 金剛經, 周易 and 元和郡縣志 name none.
    """
    table = dynasty_table()
    for tag in tags:
        if tag.strip() in table:
            return tag.strip()
    found: set[str] = set()
    names = sorted(table, key=len, reverse=True)
    i = 0
    while i < len(title):
        name = next((n for n in names if title.startswith(n, i)), None)
        if name is None:
            i += 1
            continue
        after = title[i + len(name) : i + len(name) + 1]
        before = title[i - 1] if i else ""
        if (
            len(name) > 1
            or after in _TITLE_DYNASTY_FOLLOW
            or before in _TITLE_DYNASTY_BEFORE
            or (i == 0 and after in _TITLE_SEPARATORS)
        ):
            found.add(name)
        i += len(name)
    regimes = {table[name].canonical for name in found}
    if len(regimes) != 1:
        return None
    return min(found, key=len)
