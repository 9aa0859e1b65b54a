"""Entity stage: find persons, places, dynasties, era dates, official titles and books.

A pure function over cleaned (traditional) text. Gazetteer matches (dynasties, reign eras,
word lists in streams/data) and a few patterns are merged with the spans of the trained
character tagger (streams.ner.tagger, onnxruntime; loaded lazily once per process). Era
dates and dynasties come from the gazetteer, where the tables know the years; exact word
list and pattern matches come next, and the model fills in what they do not cover (its
spans trimmed around them) — on the gold set the model alone is far less precise than the
lists. Spans are flat and never overlap (docs/annotation-guideline.md).
"""

from __future__ import annotations

import bisect
import csv
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from streams import eras

STAGE_VERSION = "0.1.0"

DATA_DIR = Path(__file__).resolve().parent / "data"
GAZETTEER_FILES = ("gazetteer.tsv", "eras.tsv", "dynasties.tsv")

EntityType = Literal["PERSON", "PLACE", "DYNASTY", "ERA_DATE", "OFFICIAL_TITLE", "BOOK"]
Source = Literal["gazetteer", "model", "pattern"]

CJK = "\u3400-\u9fff\U00020000-\U0002ffff"
SINGLE_DYNASTIES = "夏商周秦漢晉隋唐宋元明清遼金魏蜀吳梁陳齊"
# A single-character dynasty name counts only in these surroundings (same rules as the
# model's silver labels): 唐初, 宋時, 漢室, 明太祖 ...; 入宋，仕唐。; 唐貞觀; 漢丞相.
_DYN_FOLLOW = set("初末時朝代亡興室主人軍兵")
# ... or the first character of a temple name (宋仁宗, 明太祖, 漢高帝): then the temple-name
# ending must follow, or 陳仁玉 / 吳仁傑 at the head of a biography become 陳 + 仁玉.
_DYN_RULER_FIRST = set("太高世神仁英哲徽欽孝光寧理度")
_RULER_END = set("宗祖帝皇后")
_DYN_AFTER_VERB = set("入仕事歸降於自及平滅")
# At the head of a clause, 秦置…, 漢為…, 隋改…, 吳曰… (the history of a place).
_DYN_CLAUSE_VERB = set("為屬置改曰都滅")
# Names in the dynasty table that are more often a place, an age (春秋) or a word.
NOT_DYNASTY_WORDS = {
    "大理",
    "渤海",
    "高昌",
    "南平",
    "吐蕃",
    "柔然",
    "于闐",
    "東丹",
    "春秋",
    "楚",
    "燕",
}
# 「唐杜佑撰」「宋司馬光奉敕撰」: a dynasty and an author at the head of a clause.
_AUTHOR = re.compile(
    rf"(?:^|(?<=[，。；、\n]))([{SINGLE_DYNASTIES}])([{CJK}]{{2,3}}?)(?:等)?(?:奉敕|奉詔)?[撰注編補輯著]"
)
_MODEL_NOT_DYNASTY = NOT_DYNASTY_WORDS - {"春秋"}  # the model's 春秋 is the period
_DYN_VERB_FOLLOW = set("，。、；後")
# Era names that are also common words or places: they need a year to count (長安 is a
# city, 太平 peace, 大同 a city, 中興 revival ...).
_ERA_NEEDS_YEAR = {
    "長安", "永安", "建安", "大同", "長樂", "太平", "中興", "文明", "如意", "光大", "至德",
    "大德", "天德", "鳳凰", "和平", "甘露", "青龍", "黃龍", "神龍", "大明", "天成", "順天",
    "應天", "正大", "天保", "河清", "天和",
}  # fmt: skip
CONTEXT_DYNASTIES = 6  # dynasty mentions on each side of a date that may settle it
CONFIDENT = ("unique", "plausible", "prefix")
BETTER = ("context", "neighbour", "prefix", "ruler")
_SENTENCE_END = re.compile(r"[。！？；\n]")
_BOOK = re.compile(r"《([^《》\n]{1,40})》")
_COURTESY = re.compile(
    rf"(?:(?<=[，。；、\s])|^)(?:字|一字|又字|本字|號|自號|別號|小字|小名|名|一名|初名|諱)"
    rf"([{CJK}]{{1,3}}?)(?=[，。；、）\s]|$)"
)
# A biography opens with the subject: 「X，字Y」, 「X者，」, 「(title)X者，Y人也」.
_SUBJECT = re.compile(rf"(?:^|(?<=[。\n]))([{CJK}]{{2,3}})(?=，字|者，|，俗姓)")
# A biography (or a line of a list of people) opens with the name: 「張齊賢，聖曆初…」.
_LINE_OPENING = re.compile(rf"(?:^|(?<=\n))([{CJK}]{{2,6}}?)(?=[，（(])")
# 「王棨字輔之，」「溫翁念字敬祖，」: the name runs straight into the courtesy name.
_NAMED_WITH_COURTESY = re.compile(rf"(?:^|(?<=[\n。]))([{CJK}]{{2,4}}?)(?=字[{CJK}]{{1,3}}[，。])")
_NOT_IN_NAMES = set("之其於于以為而也者是年月日時歲初既先後明上下曰臣乃又自今故及與在有無不")
_PLACE_ENDINGS = set("府州縣郡軍寺山江河湖城國鄉里宮殿樓閣門關")
# The given name of a line-opening name (「周麟之，」「劉時可，」「張康國，」): looser than
# _NOT_IN_NAMES, since the comma right after it already marks the name's end.
_NOT_IN_GIVEN = set("其於于以為而也者是曰乃又故與在無不既今")
_NOT_GIVEN_END = set("年月日時歲初後中末間人") | (_PLACE_ENDINGS - set("國里"))


def _opening_given_name(given: str) -> bool:
    if any(ch in _NOT_IN_GIVEN for ch in given) or given[-1] in _NOT_GIVEN_END:
        return False
    # 之 ends many names (周麟之, 趙挺之) but is a particle anywhere else.
    return "之" not in given[:-1] and given != "之"


_SURNAME = re.compile(rf"(?<=姓)([{CJK}])(?=氏|[，。；])")
# 「，沛國譙人也」: the pieces of a place chain before 人 the word lists do not cover.
_NATIVE_OF = re.compile(rf"(?<=[，。])([{CJK}]{{2,6}}?)(?=人(?:也)?[，。；])")
_NATIVE_STOP = set(
    "天下古時其夫小聖世後眾吾他何一二三四五門家主大故美婦庶野舍友工商農士宮僧道仙詩文行路外本異前"
)
_GENERAL = re.compile(r"([東西南北中前後左右征鎮安平撫奮建振揚威武寧龍虎驍驃車衛輔冠游]{2})將軍")
# Han-style colonels and commandants with their fixed prefixes (步兵校尉, 奉車都尉, 假司馬).
_COLONEL = re.compile(
    r"(?:步兵|越騎|屯騎|射聲|長水|胡騎|虎賁|中壘|奉車|駙馬|騎都|票騎|驃騎|車騎|護軍|度遼"
    r"|伏波|樓船|橫海|戊己|副|假)(?:校尉|都尉|將軍|中郎將|司馬)"
)
# Noble titles: a known place + 王/侯/郡王 ... (淮陰侯, 臨淄王, 汾陽郡王), a Zhou state or a
# princely fief + 王/侯 (秦王, 燕王, 寧王), X王 in 即X王位.
NOBLE_SUFFIXES = ("郡王", "郡公", "國公", "縣公", "縣侯", "王", "侯")
ZHOU_STATES = "楚趙韓魯越鄭衛蔡曹許莒邾杞虞虢滕薛"  # not also an imperial dynasty
_FIEFS = "秦齊燕魏吳晉宋陳梁代寧" + ZHOU_STATES
_STATE_NOBLE = re.compile(
    rf"(?:(?<![{CJK}])|(?<=[子事封為{SINGLE_DYNASTIES}]))([{_FIEFS}](?:王|侯))(?=[{CJK}])"
)
# Zhou-period rulers (guideline: 楚懷王 → 楚 + 懷王): a state, a posthumous name and 王/公/
# 侯/伯 (齊宣王, 晉獻公, 魏文侯, 趙惠文王); 周 is the dynasty (周厲王 → 周 + 厲王). A state's
# ruler named by rank alone (晉侯使…, 秦伯卒): the state is the place, the rank no entity.
POSTHUMOUS = "桓文武成康昭穆共懿孝夷厲宣幽平惠襄莊靈景悼簡定哀頃獻僖釐閔隱元威烈安懷湣敬貞聲戴顯"
STATE_RULER = re.compile(
    rf"(?<![南北東西前後劉蕭曹孫大有皇])([周{_FIEFS}])([{POSTHUMOUS}]{{1,2}}[王公侯伯])"
)
STATE_RANK = re.compile(
    rf"(?<![南北東西前後劉蕭曹孫大有皇{CJK}])([{_FIEFS}])[侯伯]"
    r"(?=[使伐卒薨會及以與之曰入侵圍救在出奔聞謂命召盟朝歸立享飲納問見執殺敗遷請許辭賜圖"
    r"將亦乃遂既有欲，。、；])"
)
# Offices written as phrases: 督中外諸軍事, 都督荊州諸軍事, 錄尚書事, 同中書門下三品.
_OFFICE_PHRASE = re.compile(
    rf"(?:都)?督[{CJK}]{{1,6}}?諸軍事|錄尚書事|開府儀同三司|同(?:中書門下|鳳閣鸞臺)(?:平章事|三品)"
)
_ENTHRONED = re.compile(rf"(?<=即)([{CJK}]{{1,2}}王)(?=位)")
# A commissioner title with its circuit or army (范陽節度使, 義成軍節度使).
_COMMISSIONER = "節度使"
# A Zhou state as a place: 楚將, 趙人, 為趙宦者令, 客吳、越、齊、趙間, 春秋屬吳.
_ZHOU_STATE_CHAR = re.compile(f"[{ZHOU_STATES}]")
_FIEF_CHAR = re.compile(f"[{_FIEFS}]")
_STATE_LEFT = set("於之即屬客伐入奔至事仕在歸適如朝使聘救侵圍滅為生先")
_STATE_RIGHT = set("人之將王侯公君師國相，、。；地都使伐圍侵救")
# A ruler's full designation: temple name + posthumous title + 皇帝, before 諱 or a comma
# (世祖光武皇帝諱秀, 太宗文武大聖大廣孝皇帝諱世民); a posthumous 孝元皇后 / 興聖皇帝.
_RULER_FULL = re.compile(
    rf"(?:^|(?<=[^{CJK}])|(?<=[晉宋齊梁陳隋唐]))((?:太祖|高祖|世祖|太宗|世宗|高宗|中宗|顯宗|肅宗"
    rf"|顯祖|烈祖|聖祖)[{CJK}]{{0,18}}?皇帝)(?=諱|，|。)"
)
_POSTHUMOUS = re.compile(rf"(?<![{CJK}]{{2}})([{CJK}]{{2}}皇[帝后])(?=[之九一二三四五六七八，。])")
_TABOO_NAME = re.compile(rf"(?<=諱)([{CJK}]{{1,2}}?)(?=[，。；])")
# Kin after a title: 司徒導之從子, 尚書裒之子, 票騎將軍去病弟也, 秘書監師古五世從孫.
_KIN = re.compile(
    rf"([{CJK}]{{1,2}}?)(?=之(?:[從曾玄]?[子孫女弟兄]|少子|長子|季子)|弟也|[一二三四五六七八九十]世)"
)
_TODAY = re.compile(rf"（今(?:屬)?([{CJK}]{{2,8}})）")


@dataclass(frozen=True)
class Entity:
    """One entity: ``text[start:end] == surface`` (fields as events.EntitySpan)."""

    type: str
    surface: str
    start: int
    end: int
    normalized: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    confidence: float = 1.0
    source: str = "gazetteer"

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end


@functools.cache
def gazetteer_version() -> str:
    digest = hashlib.sha256()
    for name in GAZETTEER_FILES:
        digest.update((DATA_DIR / name).read_bytes())
    return digest.hexdigest()[:8]


def _model_version() -> str:
    try:
        from streams.ner.tagger import DEFAULT_MODEL
        from streams.ner.tagger import MODEL_VERSION as NER_VERSION
    except ImportError:  # pragma: no cover - the tagger package is part of the repo
        return "none"
    return NER_VERSION if DEFAULT_MODEL.exists() else "none"


MODEL_VERSION = f"gazetteer-{gazetteer_version()}+ner-{_model_version()}"


@dataclass(frozen=True)
class Gazetteer:
    surnames: frozenset[str]
    words: dict[str, str]  # surface → type
    given: frozenset[str]  # two-character given names (no entity type)
    lengths: dict[str, tuple[int, ...]]  # first character → word lengths, longest first
    era_lengths: dict[str, tuple[int, ...]]


@functools.cache
def gazetteer() -> Gazetteer:
    words: dict[str, str] = {}
    surnames: set[str] = set()
    given: set[str] = set()
    with (DATA_DIR / "gazetteer.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["type"] == "SURNAME":
                surnames.add(eras.fold_variants(row["surface"]))
                continue
            if row["type"] == "GIVEN":
                given.add(eras.fold_variants(row["surface"]))
                continue
            words[row["surface"]] = row["type"]
            words.setdefault(eras.fold_variants(row["surface"]), row["type"])
    for name in eras.dynasty_table():
        if len(name) >= 2 and name not in words and name not in NOT_DYNASTY_WORDS:
            words[name] = "DYNASTY"
    lengths: dict[str, set[int]] = {}
    for w in words:
        lengths.setdefault(w[0], set()).add(len(w))
    era_lengths: dict[str, set[int]] = {}
    for name in eras.era_table():
        era_lengths.setdefault(name[0], set()).add(len(name))
    return Gazetteer(
        frozenset(surnames),
        words,
        frozenset(given),
        {k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()},
        {k: tuple(sorted(v, reverse=True)) for k, v in era_lengths.items()},
    )


@functools.cache
def _tagger() -> Any:
    """The model, loaded once per process; None when the model file is not there."""
    try:
        from streams.ner.tagger import DEFAULT_MODEL, Tagger
    except ImportError:  # pragma: no cover
        return None
    if not DEFAULT_MODEL.exists():
        return None
    return Tagger.load()


def model_available() -> bool:
    return _tagger() is not None


def _word_at(text: str, i: int, g: Gazetteer) -> str | None:
    for n in g.lengths.get(text[i], ()):
        w = text[i : i + n]
        if len(w) == n and w in g.words:
            return w
    return None


def _era_date_at(text: str, i: int, g: Gazetteer) -> tuple[str, int] | None:
    """(era name, span length) of an era date starting at i: 貞觀三年, 開元中, ..."""
    table = eras.era_table()
    for n in g.era_lengths.get(text[i], ()):
        name = text[i : i + n]
        if len(name) != n or name not in table:
            continue
        tail = eras.date_tail_length(text, i + n)
        if tail:
            return name, n + tail
        if name not in _ERA_NEEDS_YEAR:
            m = eras.ERA_PERIOD.match(text, i + n)
            if m:
                return name, n + (m.end() - m.start())
    return None


# Administrative and geographic suffixes that belong to the place (揚州府, 會稽郡, 彭城縣).
PLACE_SUFFIXES = set("府州郡縣國路軍監衛邑鄉里山寺城湖江河水關宮峽磯省")


def _with_place_suffix(text: str, i: int, word: str, g: Gazetteer) -> str:
    """Extend a known place by one suffix character unless that starts another word
    (會稽山陰 is 會稽 + 山陰, not 會稽山)."""
    end = i + len(word)
    if end < len(text) and text[end] in PLACE_SUFFIXES:
        following = _word_at(text, end, g)
        if following is None or len(following) < 2:
            return word + text[end]
    return word


def _is_cjk(ch: str) -> bool:
    return bool(ch) and ("\u3400" <= ch <= "\u9fff" or ch >= "\U00020000")


def _single_dynasty(text: str, i: int, g: Gazetteer) -> bool:
    prev = text[i - 1] if i > 0 else ""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if not nxt:
        return prev in _DYN_AFTER_VERB
    if (
        prev in ("", "\n")
        and _is_cjk(text[i + 2 : i + 3])
        and text[i + 3 : i + 4] in ("，", "（", "(")
        and text[i + 2] not in _RULER_END
    ):
        return False  # 陳朝老，… opens a biography: a name, not the dynasty 陳
    if _era_date_at(text, i + 1, g):
        return True
    if nxt in "室師" and (not _is_cjk(prev) or prev in _DYN_AFTER_VERB or prev in "先敗破與遇"):
        return True  # 周室, 陳師
    if text.startswith(("元年", "二世"), i + 1) and not _is_cjk(prev):
        return True  # 漢元年, 秦二世 (regnal years: no era date, but the dynasty is named)
    if nxt == "之" and (not _is_cjk(prev) or prev in "接因承"):
        return True  # 漢之舊都, 接秦之弊, 因周之舊
    if not _is_cjk(prev) and nxt in _FIEFS and text[i + 2 : i + 3] in ("王", "侯"):
        return True  # 唐滕王元嬰
    if not _is_cjk(prev) and _name_follows(text, i + 1, g):
        return True  # 唐李善注, 漢董永，
    following = _word_at(text, i + 1, g)
    if following is not None and g.words[following] in ("OFFICIAL_TITLE",) and not _is_cjk(prev):
        return True
    if following is not None and g.words[following] == "PERSON" and not _is_cjk(prev):
        return True  # 唐杜甫, 漢景帝
    if (nxt in _DYN_FOLLOW or nxt in _DYN_CLAUSE_VERB) and not _is_cjk(prev):
        return True
    after = text[i + 2] if i + 2 < len(text) else ""
    if nxt in _DYN_RULER_FIRST and after in _RULER_END and not _is_cjk(prev):
        return True
    return prev in _DYN_AFTER_VERB and nxt in _DYN_VERB_FOLLOW


def _name_follows(text: str, j: int, g: Gazetteer) -> bool:
    """Whether a surname + 1-2 given characters start at j and end before 撰/注/，…"""
    if text[j : j + 1] not in g.surnames:
        return False
    for n in (2, 1):
        given = text[j + 1 : j + 1 + n]
        end = text[j + 1 + n : j + 2 + n]
        if (
            len(given) == n
            and all(_is_cjk(ch) and ch not in _NOT_IN_NAMES for ch in given)
            and end in _NAME_END
            and end != ""
        ):
            return True
    return False


_NAME_END = set("，。、撰注編著等")
# Dynasty names in a row (漢魏晉, 宋元之際, 梁、晉、漢、周): each is a dynasty.
_DYNASTY_RUN = re.compile(rf"[{SINGLE_DYNASTIES}](?:、?[{SINGLE_DYNASTIES}])+")
# 國號大金, 僭號大齊, 改國號曰新: the name of a new regime.
_REGIME_NAME = re.compile(rf"(?<=國號|僭號)曰?(大[{CJK}]|[{CJK}])(?=[，。；])")


def _dynasty_entity(surface: str, start: int, source: str, confidence: float) -> Entity:
    d = eras.dynasty_table().get(surface)
    return Entity(
        "DYNASTY",
        surface,
        start,
        start + len(surface),
        normalized=d.canonical if d else surface,
        year_from=d.year_from if d else None,
        year_to=d.year_to if d else None,
        confidence=confidence,
        source=source,
    )


def gazetteer_spans(text: str) -> list[Entity]:
    """Longest-match gazetteer and pattern spans (era dates still unresolved: years None)."""
    g = gazetteer()
    out: list[Entity] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "《":
            m = _BOOK.match(text, i)
            if m:
                out.append(
                    Entity("BOOK", m[1], m.start(1), m.end(1), confidence=0.95, source="pattern")
                )
                i = m.end()
                continue
        if not _is_cjk(ch):
            i += 1
            continue
        ruler = STATE_RULER.match(text, i)
        if ruler is not None:
            out.extend(_state_ruler(ruler))
            i = ruler.end()
            continue
        rank = STATE_RANK.match(text, i)
        if rank is not None:
            out.append(Entity("PLACE", ch, i, i + 1, confidence=0.7, source="pattern"))
            i += 2
            continue
        era = _era_date_at(text, i, g)
        word = _word_at(text, i, g)
        if era is not None and (word is None or era[1] >= len(word)):
            length = era[1]
            out.append(Entity("ERA_DATE", text[i : i + length], i, i + length, source="gazetteer"))
            i += length
            continue
        if word is not None and g.words[word] == "PLACE":
            word = _with_place_suffix(text, i, word, g)
        if word is not None:
            kind = g.words.get(word, "PLACE")
            if kind == "DYNASTY":
                out.append(_dynasty_entity(word, i, "gazetteer", 0.9))
            else:
                out.append(Entity(kind, word, i, i + len(word), confidence=0.8, source="gazetteer"))
            i += len(word)
            continue
        if ch in SINGLE_DYNASTIES and _single_dynasty(text, i, g):
            out.append(_dynasty_entity(ch, i, "gazetteer", 0.8))
        i += 1
    return out


def _state_ruler(m: re.Match[str]) -> list[Entity]:
    """周 + 厲王 (dynasty, person) or 齊 + 宣王 (place, person) of a STATE_RULER match."""
    state = (
        _dynasty_entity(m[1], m.start(1), "pattern", 0.8)
        if m[1] == "周"
        else Entity("PLACE", m[1], m.start(1), m.end(1), confidence=0.8, source="pattern")
    )
    return [state, Entity("PERSON", m[2], m.start(2), m.end(2), confidence=0.8, source="pattern")]


def pattern_spans(text: str, known: Sequence[Entity] = ()) -> list[Entity]:
    """Biography patterns: 「X，字Y」「X者，」 names, 「姓X氏」, 「（今屬X）」 places, the
    uncovered pieces of a 「…人也」 place chain (given the gazetteer spans ``known``),
    X將軍 titles."""
    out: list[Entity] = []
    for m in _SUBJECT.finditer(text):
        out.append(Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.85, source="pattern"))
    for m in _COURTESY.finditer(text):
        if m[1] in ("不詳", "未詳", "不傳", "某"):
            continue
        out.append(Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.7, source="pattern"))
    for m in _SURNAME.finditer(text):
        out.append(Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.6, source="pattern"))
    for m in _AUTHOR.finditer(text):
        out.append(_dynasty_entity(m[1], m.start(1), "pattern", 0.8))
        out.append(Entity("PERSON", m[2], m.start(2), m.end(2), confidence=0.7, source="pattern"))
    for m in _TODAY.finditer(text):
        out.append(Entity("PLACE", m[1], m.start(1), m.end(1), confidence=0.8, source="pattern"))
    for m in _GENERAL.finditer(text):
        out.append(
            Entity("OFFICIAL_TITLE", m[0], m.start(), m.end(), confidence=0.7, source="pattern")
        )
    for m in _OFFICE_PHRASE.finditer(text):
        out.append(
            Entity("OFFICIAL_TITLE", m[0], m.start(), m.end(), confidence=0.8, source="pattern")
        )
    for m in _COLONEL.finditer(text):
        out.append(
            Entity("OFFICIAL_TITLE", m[0], m.start(), m.end(), confidence=0.7, source="pattern")
        )
    out.extend(_noble_and_state_spans(text, known))
    openings = _biography_openings(text, known)
    named = {(e.start, e.end) for e in openings}
    out.extend(e for e in site_spans(text) if (e.start, e.end) not in named)
    for m in _RULER_FULL.finditer(text):
        out.append(Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.8, source="pattern"))
    for m in _POSTHUMOUS.finditer(text):
        if not any(ch in _NOT_IN_NAMES for ch in m[1][:2]):
            out.append(
                Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.6, source="pattern")
            )
    for m in _TABOO_NAME.finditer(text):
        out.append(Entity("PERSON", m[1], m.start(1), m.end(1), confidence=0.8, source="pattern"))
    out.extend(_full_names(text, known))
    titles = [k for k in known if k.type == "OFFICIAL_TITLE"]
    titles += [e for e in out if e.type == "OFFICIAL_TITLE"]
    out.extend(_names_after_titles(text, titles))
    for m in _DYNASTY_RUN.finditer(text):
        if _is_cjk(text[m.start() - 1 : m.start()]) and text[m.start() - 1] not in "代朝如與及":
            continue
        after = text[m.end() : m.end() + 1]
        if after == "，" and text[m.start() - 1 : m.start()] in ("", "\n"):
            continue  # 周元明，… opens a biography
        if "、" not in m[0] and len(m[0]) < 3 and after not in ("之", "與", "，", "。", "及", ""):
            continue  # 晉陳壽撰, 漢元年: a dynasty and a name or a year, not two dynasties
        out.extend(
            _dynasty_entity(text[i], i, "pattern", 0.7)
            for i in range(m.start(), m.end())
            if text[i] != "、"
        )
    for m in _REGIME_NAME.finditer(text):
        out.append(_dynasty_entity(m[1], m.start(1), "pattern", 0.7))
    out.extend(openings)
    places = sorted((k for k in known if k.type == "PLACE"), key=lambda k: k.start)
    place_starts = [k.start for k in places]
    for m in _NATIVE_OF.finditer(text):
        a, b = m.start(1), m.end(1)
        lo = bisect.bisect_left(place_starts, a)
        hi = bisect.bisect_left(place_starts, b)
        inside = [k for k in places[lo:hi] if k.end <= b]
        if text[b - 1] in _NATIVE_STOP:
            continue
        if not inside:
            out.extend(_unknown_native_place(text, a, b))
            continue
        # Only the pieces after a known place continue the chain (沛國譙, 扶風平陵); what
        # comes before the first known place is usually not a place (其先, 遂為).
        for k, nxt in zip(inside, [*inside[1:], None], strict=True):
            stop = nxt.start if nxt is not None else b
            if 1 <= stop - k.end <= 3:
                piece = text[k.end : stop]
                out.append(Entity("PLACE", piece, k.end, stop, confidence=0.6, source="pattern"))
    return out


# What the first sentence of a biographical-dictionary entry says about its subject
# (「X，大曆、貞元間人」「X，秭歸令。詩一首」「X，唐末嶺南僧」): with one of these, a
# line-opening name needs no known surname.
_ENTRY_SENTENCE = re.compile(
    r"僧|沙門|禪師|和尚|道士|法師|上人|出家|嗣|進士|[^，。]人[。，；（也]|人也|[令尉丞守]。"
    r"|刺史|官|字|詩[一二三四五六七八九十]+[首句]|生平|不詳|未詳|時人|間人|[之其]子|妻|妾"
)
# 「豐干禪師，」 opens a monk's entry: the name is 豐干 (but 「普化和尚，」 is one designation).
_CLERIC_TITLES = ("禪師", "法師", "大師", "上人")
# 「《全唐詩》卷七八一收嚴巨川詩二首」「《全唐詩》無盧元輔詩」: an editor's note naming the
# author whose poems a collection has (or lacks).
_COLLECTED_AUTHOR = re.compile(
    rf"》(?:卷[〇○零一二三四五六七八九十百]+)?(?:無|收|錄|存|載|補)([{CJK}]{{2,4}}?)(?=[詩文賦詞])"
)


def _biography_openings(text: str, known: Sequence[Entity]) -> list[Entity]:
    """The subject's name where a line opens a biography or a list of people
    (「張齊賢，聖曆初…」「釋宗本，…」「寒山，不知何許人」「王棨字輔之」), and authors named in
    an editor's note on a collection (「《全唐詩》無盧元輔詩」)."""
    surnames = gazetteer().surnames
    ordered = sorted(known, key=lambda k: k.start)
    starts = [k.start for k in ordered]

    def blocked(a: int, b: int) -> bool:
        return any(
            k.start < b and a < k.end and k.type != "PERSON" and not _inside(k, a, b)
            for k in ordered[: bisect.bisect_left(starts, b)]
        )

    def surname_of(name: str) -> str:
        """The surname of a surname + one or two characters, else ""."""
        if name[0] == "釋" and len(name) <= 4:
            surname = "釋"  # a monk: 釋宗本，…
        else:
            surname = name[:2] if name[:2] in surnames else name[0] if name[0] in surnames else ""
        return surname if surname and 1 <= len(name) - len(surname) <= 2 else ""

    out: list[Entity] = []
    for m in _LINE_OPENING.finditer(text):
        a, b = m.start(1), m.end(1)
        name = m[1]
        for title in _CLERIC_TITLES:
            if name.endswith(title) and len(name) - len(title) >= 2:
                name, b = name[: -len(title)], b - len(title)
        surname = surname_of(name)
        if name.endswith("和尚"):
            ok = 2 <= len(name) - 2 <= 3  # a monk's designation, kept whole (紅螺山和尚)
        elif surname:
            ok = _opening_given_name(name[len(surname) :])
        else:
            # No known surname: a monk's name, a rare surname (繁知一, 浩虛舟), with what
            # the entry says about a person right after it.
            end = text.find("。", b)
            ok = (
                len(name) <= 3
                and not any(ch in _NOT_IN_NAMES or ch in _PLACE_ENDINGS for ch in name)
                and _ENTRY_SENTENCE.search(text, b, end + 1 if end != -1 else len(text)) is not None
            )
        if ok and not blocked(a, b):
            out.append(Entity("PERSON", name, a, b, confidence=0.7, source="pattern"))
    for rx, confidence in ((_NAMED_WITH_COURTESY, 0.7), (_COLLECTED_AUTHOR, 0.6)):
        for m in rx.finditer(text):
            name, a, b = m[1], m.start(1), m.end(1)
            surname = surname_of(name)
            if surname and _opening_given_name(name[len(surname) :]) and not blocked(a, b):
                out.append(Entity("PERSON", name, a, b, confidence=confidence, source="pattern"))
    return out


_ADMIN_SUFFIX = "國郡州縣府"
_BIOGRAPHY_CLAUSE = re.compile(r"(?:^|[。\n])[^。\n]*(?:者，|，字|字[^，。]{1,3}，)[^。\n]*$")


def _unknown_native_place(text: str, a: int, b: int) -> list[Entity]:
    """「…人也」 after a biography opening (「X者，」「X，字Y，」) with no known place in it:
    下相人也 → 下相; 沛國譙人也 → 沛國, 譙 (split after an administrative suffix)."""
    if b - a > 4 or not _BIOGRAPHY_CLAUSE.search(text, 0, a):
        return []
    chain = text[a:b]
    cut = next((i + 1 for i, ch in enumerate(chain[:-1]) if ch in _ADMIN_SUFFIX and i >= 1), 0)
    pieces = [(a, a + cut), (a + cut, b)] if cut else [(a, b)]
    return [
        Entity("PLACE", text[x:y], x, y, confidence=0.5, source="pattern")
        for x, y in pieces
        if y > x and not any(ch in _NOT_IN_NAMES for ch in text[x:y])
    ]


# Named sites: 靈隱寺在…, 武侯祠在…, 項脊軒，…; …至承天寺, …於蔣山, …逕西陵峽.
_SITE_SUFFIX = "寺閣宮樓窟祠廟軒溪峽磯觀院亭臺塔洞山湖城門關峰嶺原堤橋池丘"
_BUILDING_SUFFIX = "寺閣宮樓窟祠廟軒溪峽磯觀院亭臺塔洞"
_SITE_AT_HEAD = re.compile(
    rf"(?:^|(?<=[^{CJK}]))([{CJK}]{{1,3}}?[{_SITE_SUFFIX}])(?=在|亦)"
    rf"|(?:^|(?<=[^{CJK}]))([{CJK}]{{1,3}}?[{_BUILDING_SUFFIX}])(?=者)"
    rf"|(?:^|(?<=[。\n]))([{CJK}]{{1,2}}[{_BUILDING_SUFFIX}])(?=，)"
)
_SITE_AFTER_VERB = re.compile(
    rf"(?<=[於在至逕居遊登據駐屯入攻])([{CJK}]{{1,3}}?[{_SITE_SUFFIX}])(?=[，。、；之下上中巔])"
)
_SITE_BAD_HEAD = set("府州縣郡城其此諸兩山江一二三四五六七八九十東西南北是於道")
# 領臺灣、鳳山、諸羅三縣; 取瀛、莫二州: the places before their count.
_COUNTED_PLACES = re.compile(
    rf"(?:(?<=[領取割轄統])|(?<=[^{CJK}]))((?:[{CJK}]{{1,3}}、)+[{CJK}]{{1,3}}?)"
    rf"等?[二三四五六七八九十]+[州郡縣]"
)


def site_spans(text: str) -> list[Entity]:
    out: list[Entity] = []
    for rx in (_SITE_AT_HEAD, _SITE_AFTER_VERB):
        for m in rx.finditer(text):
            g = next(k for k in (1, 2, 3) if m[k])
            site = m[g]
            if g == 3 and site[1:] in gazetteer().given and site[0] in gazetteer().surnames:
                continue  # 吳仲軒，… opens a biography
            if (
                site[0] in _SITE_BAD_HEAD
                or site[0] in _NOT_IN_NAMES
                or any(ch in _NOT_IN_NAMES or ch in _SITE_BAD_HEAD for ch in site[1:-1])
            ):
                continue
            out.append(
                Entity("PLACE", site, m.start(g), m.end(g), confidence=0.6, source="pattern")
            )
    for m in _COUNTED_PLACES.finditer(text):
        pos = m.start(1)
        items = m[1]
        if items[0] in "領取割轄統":
            items, pos = items[1:], pos + 1
        for piece in items.split("、"):
            out.append(
                Entity("PLACE", piece, pos, pos + len(piece), confidence=0.6, source="pattern")
            )
            pos += len(piece) + 1
    return out


def _noble_and_state_spans(text: str, known: Sequence[Entity]) -> list[Entity]:
    """Noble titles (淮陰侯, 汾陽郡王, 秦王, 即吳王位), circuit commissioners (范陽節度使) and
    Zhou states as places (楚將, 趙人, 屬吳)."""
    out: list[Entity] = []

    def title(a: int, b: int, confidence: float = 0.7) -> None:
        out.append(
            Entity("OFFICIAL_TITLE", text[a:b], a, b, confidence=confidence, source="pattern")
        )

    for k in known:
        if k.type != "PLACE":
            continue
        a, b = k.start, k.end
        if STATE_RANK.match(text, a):
            continue  # 晉侯使…: the state's ruler by rank, no title
        if k.surface[-1] in "郡縣" and text[b : b + 1] in ("王", "公", "侯"):
            title(a, b + 1)
            continue
        suffix = next((x for x in NOBLE_SUFFIXES if text.startswith(x, b)), "")
        if suffix and text.startswith("某", b + len(suffix)):
            suffix = ""  # 臨川王某: the place and a person (王安石's signature)
        if suffix and _word_at(text, b, gazetteer()) is not None:
            suffix = ""  # 福建侯官: 侯官 is the next place
        if suffix and not text.startswith(("王府", "侯府", "王國", "侯國"), b):
            title(a, b + len(suffix))
        elif text.startswith(_COMMISSIONER, b) or (
            text[b : b + 1] == "軍" and text.startswith(_COMMISSIONER, b + 1)
        ):
            title(a, text.index(_COMMISSIONER, b) + len(_COMMISSIONER))
    for m in _STATE_NOBLE.finditer(text):
        if not STATE_RANK.match(text, m.start(1)):  # 晉侯使…: the state, no title
            title(m.start(1), m.end(1), 0.6)
    for m in _ENTHRONED.finditer(text):
        if m[1] != "皇帝":
            title(m.start(1), m.end(1), 0.6)
    states: set[int] = set()
    for m in _ZHOU_STATE_CHAR.finditer(text):
        i = m.start()
        left = text[i - 1] if i > 0 else ""
        right = text[i + 1] if i + 1 < len(text) else ""
        if (not _is_cjk(left) or left in _STATE_LEFT) and (not right or right in _STATE_RIGHT):
            states.add(i)
    for m in _FIEF_CHAR.finditer(text):
        # States that were also imperial dynasties: 屬吳，; 為秦將; beside a state (吳、越).
        i = m.start()
        if i in states:
            continue
        left = text[i - 1] if i > 0 else ""
        right = text[i + 1] if i + 1 < len(text) else ""
        if (
            (left == "屬" and not _is_cjk(right))
            or (left in "為即" and right == "將")
            or (right == "、" and i + 2 in states)
            or (left == "、" and i - 2 in states)
        ):
            states.add(i)
    out.extend(Entity("PLACE", text[i], i, i + 1, confidence=0.6, source="pattern") for i in states)
    return out


# Surnames that are far more often words (能, 方, 時 ...); verbs and particles a name follows.
_COMMON_WORD_SURNAMES = set("於于能方時甘通家古童朱連周之其有自")
_BEFORE_A_NAME = set("與及使遣命令詔以擒殺斬獲將從謂召拜賜封薦見問執誅降")


def _full_names(text: str, known: Sequence[Entity]) -> list[Entity]:
    """Surname + a known two-character given name (劉禹錫, 吳元濟) over characters no
    gazetteer word covers."""
    g = gazetteer()
    covered = bytearray(len(text) + 1)
    for k in known:
        covered[k.start : k.end] = b"\x01" * (k.end - k.start)
    out: list[Entity] = []
    taken_to = 0
    given = g.given
    for j in range(1, len(text) - 1):
        if text[j : j + 2] not in given:  # the cheap test first: a given name starts at j
            continue
        if any(ch in _NOT_IN_NAMES for ch in text[j : j + 2]):
            continue  # 時習, 之中, 自知: words, not given names
        for head in (2, 1):
            i = j - head
            if i < taken_to or text[i:j] not in g.surnames or text[i] in _COMMON_WORD_SURNAMES:
                continue
            left = text[i - 1] if i > 0 else ""
            if _is_cjk(left) and left not in _BEFORE_A_NAME:
                break  # 齊地方千里, 使趙高傅胡亥: inside running words
            if not any(covered[i : j + 2]):
                out.append(
                    Entity("PERSON", text[i : j + 2], i, j + 2, confidence=0.55, source="pattern")
                )
                taken_to = j + 2
            break
    return out


_PRINCE_NAME_END = set("之反，。、誅撰注編收即為以與起立卒薨入出率討")


def _names_after_titles(text: str, titles: Sequence[Entity]) -> list[Entity]:
    """The person a title introduces: 奉車都尉竇固, 大將軍徐達, 司徒導之從子."""
    g = gazetteer()
    out: list[Entity] = []
    for t in titles:
        j = t.end
        if j >= len(text) or not _is_cjk(text[j]):
            continue
        kin = _KIN.match(text, j)
        prince = t.surface.endswith(("王", "太子", "侯")) and text[j] not in _NOT_IN_NAMES
        if kin and not any(ch in _NOT_IN_NAMES for ch in kin[1]):
            a, b = kin.start(1), kin.end(1)
        elif prince and text[j] not in g.surnames and text[j] not in "位府國":
            # A prince by his given name: 廣平王俶收復, 秦王德芳之後, 章懷太子賢注.
            if text[j + 1 : j + 2] in _PRINCE_NAME_END:
                a, b = j, j + 1
            elif text[j + 2 : j + 3] in _PRINCE_NAME_END and _is_cjk(text[j + 1 : j + 2]):
                a, b = j, j + 2
            else:
                continue
        else:
            head = 2 if text[j : j + 2] in g.surnames else 1 if text[j] in g.surnames else 0
            if not head:
                continue
            rest = 2 if text[j + head : j + head + 2] in g.given else 1
            a, b = j, j + head + rest
            if b >= len(text) or not _is_cjk(text[b - 1]):
                continue
            if any(ch in _NOT_IN_NAMES for ch in text[a + head : b]):
                continue
            if _word_at(text, a, g) is not None or _word_at(text, a + head, g) is not None:
                continue  # a place or another title follows (侍郎郭攸之 is fine; 刺史揚州 not)
        out.append(Entity("PERSON", text[a:b], a, b, confidence=0.6, source="pattern"))
    return out


def _inside(k: Entity, a: int, b: int) -> bool:
    """A shorter place or dynasty strictly inside [a, b) (王庭 in 王庭揚，…)."""
    return (
        k.type in ("PLACE", "DYNASTY") and a <= k.start and k.end <= b and k.end - k.start < b - a
    )


def _resolve_era_dates(text: str, spans: list[Entity], context_dynasty: str | None) -> list[Entity]:
    """Give ERA_DATE spans their Western years using the dynasties around them."""
    dynasties = [s for s in spans if s.type == "DYNASTY"]
    positions = [d.start for d in dynasties]
    sentence_starts = [0, *(m.end() for m in _SENTENCE_END.finditer(text))]

    def sentence_bounds(pos: int) -> tuple[int, int]:
        k = bisect.bisect_right(sentence_starts, pos) - 1
        hi = sentence_starts[k + 1] if k + 1 < len(sentence_starts) else len(text)
        return sentence_starts[k], hi

    parsed: dict[int, eras.EraDate] = {}
    pending: list[tuple[Entity, list[str], str]] = []
    for s in spans:
        if s.type != "ERA_DATE":
            continue
        lo, hi = sentence_bounds(s.start)
        k = bisect.bisect_left(positions, s.start)
        near = dynasties[max(0, k - CONTEXT_DYNASTIES) : k + CONTEXT_DYNASTIES]
        context: list[str] = []
        # A dynasty right before the date (唐貞觀, 唐玄宗開元) acts as its prefix.
        if k > 0 and s.start - dynasties[k - 1].end <= 3 and dynasties[k - 1].start >= lo:
            context.append(dynasties[k - 1].surface)
        in_sentence = [d for d in near if lo <= d.start < hi]
        in_sentence.sort(key=lambda d: (d.end > s.start, abs(d.start - s.start)))
        context.extend(d.surface for d in in_sentence)
        context.extend(d.surface for d in sorted(near, key=lambda d: abs(d.start - s.start)))
        if context_dynasty:
            context.append(context_dynasty)
        context = list(dict.fromkeys(context))
        around = text[lo:hi]
        date = eras.parse_era_date(s.surface, context_dynasties=context, context_text=around)
        if date is not None:
            parsed[s.start] = date
            pending.append((s, context, around))
    # Second pass: a date left unresolved borrows the regime of confidently dated neighbours.
    settled = sorted(
        (start, d.dynasty)
        for start, d in parsed.items()
        if d.dynasty and d.year_from is not None and d.resolved_by in CONFIDENT
    )
    settled_pos = [p for p, _ in settled]
    out: list[Entity] = []
    for s, context, around in pending:
        date = parsed[s.start]
        if date.resolved_by in ("unresolved", "prior") and settled:
            k = bisect.bisect_left(settled_pos, s.start)
            near_settled = settled[max(0, k - CONTEXT_DYNASTIES) : k + CONTEXT_DYNASTIES]
            neighbours = [r for _, r in sorted(near_settled, key=lambda t: abs(t[0] - s.start))]
            again = eras.parse_era_date(
                s.surface,
                context_dynasties=context,
                neighbour_regimes=[r for r in neighbours if r],
                context_text=around,
            )
            if again is not None and again.resolved_by in BETTER:
                date = again
        out.append(
            Entity(
                "ERA_DATE",
                s.surface,
                s.start,
                s.end,
                normalized=date.normalized,
                year_from=date.year_from,
                year_to=date.year_to,
                confidence=date.confidence,
                source=s.source,
            )
        )
    return out


def _trim(span: Entity, used: bytearray, text: str) -> Entity | None:
    """The longest part of ``span`` over free characters (None if too short)."""
    if not any(used[span.start : span.end]):
        return span
    best: tuple[int, int] = (span.start, span.start)
    run = span.start
    for i in range(span.start, span.end + 1):
        if i == span.end or used[i]:
            if i - run > best[1] - best[0]:
                best = (run, i)
            run = i + 1
    a, b = best
    if b - a < 2:
        return None
    return Entity(span.type, text[a:b], a, b, None, None, None, span.confidence, span.source)


def _model_spans(text: str) -> list[Entity]:
    tagger = _tagger()
    if tagger is None or not text.strip():
        return []
    return tidy_model_spans(
        text,
        [
            Entity(
                s.type, s.surface, s.start, s.end, confidence=float(s.confidence), source="model"
            )
            for s in tagger.tag(text)
        ],
    )


# Model spans of one character are mostly wrong (a surname cut from its name, 南 of 南郊);
# a bare given name (亮, 權) is kept only in the places a reference to a person takes.
_MODEL_SINGLE_LEFT = set("，。；：、「封詣命勸使令遣召拜謂從徵以")
_MODEL_SINGLE_RIGHT = set("以與率上入拜既遂出奏為大悉亦乃嘗遇躬即將")
# Characters that are pronouns, directions or generic words far more often than a name.
_NOT_A_SINGLE_NAME = set("帝上公南北東西天先名諱立親建且代余予吾皇后其之車臣君")
_NAME_TAIL_STOP = set("等之其於以為與曰也者而及皆")
# Words made only of these are generic (臺池, 河山, 宮室, 山川, 田野), not named places.
_GENERIC_SITE = set("臺池沼園囿宮室苑林山川河江湖海城郭門關田野郊原澤")
# Generic references (guideline: not entities) the model sometimes tags.
_MODEL_STOP = {"皇帝", "天子", "皇后", "太子", "太后", "皇太子", "帝", "上", "公"}


def tidy_model_spans(text: str, spans: list[Entity]) -> list[Entity]:
    """Clean the model's spans: no bracketless BOOK (the 《》 pattern finds books), no
    single characters except a given name in a reference position, no 等 at the end of a
    name, and a name cut after its second character completed from the given-name list
    (劉禹 + 錫 when 禹錫 is a known given name)."""
    g = gazetteer()
    out: list[Entity] = []
    for e in spans:
        a, b = e.start, e.end
        if e.type == "BOOK" or e.surface in _MODEL_STOP:
            continue
        if e.type in ("PLACE", "PERSON") and e.surface[0] in "一二三四五六七八九十":
            continue  # 十六州, 二州, 五世: a count, not a name
        if any(ch in "於也者曰而" for ch in e.surface):
            continue  # 於藩, 也: particles are not in names
        if e.type == "PLACE" and all(ch in _GENERIC_SITE for ch in e.surface):
            continue  # 臺池, 河山, 宮室: generic words, not a named place
        if e.type == "OFFICIAL_TITLE" and b - a >= 3 and text[a] in "州郡縣府":
            a += 1  # 州祭酒: the generic unit is no place and no part of the title
        if b - a == 1:
            left = text[a - 1] if a > 0 else "，"
            right = text[b] if b < len(text) else ""
            reference = (
                e.type == "PERSON"
                and e.surface not in g.surnames
                and e.surface not in _NOT_A_SINGLE_NAME
                and left in _MODEL_SINGLE_LEFT
                and (right in _MODEL_SINGLE_RIGHT or (e.confidence >= 0.95 and right != "之"))
                and text[a : a + 2] not in g.given  # 則 of 則徐, 羲 of 羲之
            )
            # A Zhou state (楚將, 屬吳) or a dynasty (唐張說) the model is sure of.
            state = e.type == "PLACE" and e.surface in _FIEFS and e.confidence >= 0.7
            dynasty = (
                e.type == "DYNASTY"
                and e.surface in SINGLE_DYNASTIES
                and e.confidence >= 0.8
                and _word_at(text, a, g) is None
            )
            if not (reference or state or dynasty):
                continue
        if e.type == "PERSON" and b - a >= 3 and text[b - 1] in _NAME_TAIL_STOP:
            b -= 1
        if e.type == "PERSON" and b - a in (2, 3):
            head = 2 if b - a == 3 and text[a : a + 2] in g.surnames else 1
            given = text[a + head : b + 1]
            if (
                b - a - head == 1
                and text[a : a + head] in g.surnames
                and given in g.given
                and b < len(text)
            ):
                b += 1
        if (a, b) != (e.start, e.end):
            e = Entity(e.type, text[a:b], a, b, confidence=e.confidence, source=e.source)
        out.append(e)
    return out


def merge(text: str, gazetteer_found: list[Entity], model_found: list[Entity]) -> list[Entity]:
    """Merge gazetteer, pattern and model spans into flat, non-overlapping spans.

    Order of precedence: gazetteer era dates, dynasties and 《》 books; then the model's
    titles that strictly contain a shorter gazetteer or pattern title
    (奉車都尉 over 都尉); then the other gazetteer and pattern spans (dictionary matches are
    exact); then the model's spans, trimmed to what is still free (扶風平陵 → 平陵 when 扶風 is
    known); then model era dates and dynasties the gazetteer missed.
    """
    used = bytearray(len(text) + 1)
    taken: list[Entity] = []

    def free(start: int, end: int) -> bool:
        return not any(used[start:end])

    def take(span: Entity) -> None:
        used[span.start : span.end] = b"\x01" * (span.end - span.start)
        taken.append(span)

    rest: list[Entity] = []
    for s in gazetteer_found:
        first = s.type in ("ERA_DATE", "DYNASTY") or (s.type == "BOOK" and s.source == "pattern")
        if first and free(s.start, s.end):
            take(s)
        elif not first:
            rest.append(s)
    for s in model_found:
        if s.type != "OFFICIAL_TITLE" or not free(s.start, s.end):
            continue
        inner = [
            r
            for r in rest
            if s.start <= r.start and r.end <= s.end and (r.start, r.end) != (s.start, s.end)
        ]
        # 奉車都尉 over 都尉 (a modifier before the title), not 秘書監師 over 秘書監; never
        # when a longer pattern or gazetteer span holds it (臺平章事 in 同鳳閣鸞臺平章事).
        outer = any(
            r.start <= s.start and s.end <= r.end and r.end - r.start > s.end - s.start
            for r in rest
        )
        if inner and not outer and all(r.type == s.type and r.end == s.end for r in inner):
            take(s)
    for s in sorted(rest, key=lambda e: (e.start, -(e.end - e.start))):
        if free(s.start, s.end):
            take(s)
    for s in model_found:
        if s.type in ("ERA_DATE", "DYNASTY"):
            continue
        trimmed = _trim(s, used, text)
        if trimmed is not None:
            take(trimmed)
    for s in model_found:
        if s.type not in ("ERA_DATE", "DYNASTY") or not free(s.start, s.end):
            continue
        if s.type == "DYNASTY":
            if s.surface in eras.dynasty_table() and s.surface not in _MODEL_NOT_DYNASTY:
                take(_dynasty_entity(s.surface, s.start, "model", s.confidence))
        elif eras.parse_era_date(s.surface) is not None:
            take(s)
    return sorted(taken, key=lambda e: (e.start, e.end))


def find_entities(
    cleaned_text: str, *, context_dynasty: str | None = None, use_model: bool = True
) -> list[Entity]:
    """All entities of a cleaned page, flat and non-overlapping, sorted by offset.

    ``context_dynasty`` is a dynasty known for the whole document (from its title or an
    earlier page); it settles era names several regimes used when the page itself does not.
    """
    # The cleaned text keeps the source's variant forms (爲, 衆); the tables and the model
    # know the folded ones. Folding is one character for one, so offsets carry over; the
    # surfaces are then taken from the cleaned text itself.
    text = eras.fold_variants(cleaned_text)
    found = gazetteer_spans(text)
    patterns = pattern_spans(text, found)
    model_found = _model_spans(text) if use_model else []
    merged = merge(text, [*found, *patterns], model_found)
    merged = _given_name_mentions(text, merged)
    merged = _pre_qin_states(text, merged, context_dynasty)
    dated = {(e.start, e.end): e for e in _resolve_era_dates(text, merged, context_dynasty)}
    result = [dated.get((e.start, e.end), e) if e.type == "ERA_DATE" else e for e in merged]
    if text == cleaned_text:
        return result
    return [replace(e, surface=cleaned_text[e.start : e.end]) for e in result]


# Periods in which 秦, 齊, 晉 ... are states (PLACE), not dynasties.
_PRE_QIN_DYNASTIES = {"周", "東周", "西周", "春秋", "戰國"}
# After a state's name, words that make it the dynasty still (秦始皇, 秦二世, 秦末, 周室).
_STILL_DYNASTY_AFTER = ("始皇", "二世", "皇帝", "元年", "末", "亡", "時", "朝", "代", "室", "滅")


def _pre_qin_states(text: str, spans: list[Entity], context_dynasty: str | None) -> list[Entity]:
    """On a page about the Zhou period, a single 秦/齊/晉/魏 ... the dynasty rules typed
    DYNASTY is the state, a PLACE (guideline). A page is about that period when its
    document's dynasty says so, or when it names a Zhou ruler with his state (齊宣王, 晉侯使)
    or a state that was never an imperial dynasty (楚, 魯, 鄭 ...). ``X者，魏人也`` (the
    opening of a 史記 biography) makes the state a place on any page."""
    pre_qin = (
        context_dynasty in _PRE_QIN_DYNASTIES
        or STATE_RULER.search(text) is not None
        or STATE_RANK.search(text) is not None
        or any(e.type == "PLACE" and e.surface in ZHOU_STATES for e in spans)
    )
    out: list[Entity] = []
    for e in spans:
        if e.type == "DYNASTY" and len(e.surface) == 1 and e.surface in _FIEFS:
            opening = (
                text[max(0, e.start - 2) : e.start] == "者，" and text[e.end : e.end + 1] == "人"
            )
            still = text.startswith(_STILL_DYNASTY_AFTER, e.end)
            if opening or (pre_qin and not still and e.surface != "周"):
                e = Entity(
                    "PLACE", e.surface, e.start, e.end, confidence=e.confidence, source=e.source
                )
        out.append(e)
    return out


# Before a bare given name that refers back to a person (封亮…, 以權為…, 光以…).
_GIVEN_NAME_LEFT = set("，。；：、「以與封詣命勸使令遣召拜謂及於從事徵")


def _given_name_mentions(text: str, spans: list[Entity]) -> list[Entity]:
    """Later bare given names of persons named in full earlier on the page: after 諸葛亮,
    「亮」 at the head of a clause or after 以/與/封/詣… is the same person."""
    surnames = gazetteer().surnames
    given: dict[str, int] = {}  # given name → where the full name ends
    for e in spans:
        if e.type != "PERSON" or not 2 <= len(e.surface) <= 4:
            continue
        name = e.surface
        surname = name[:2] if len(name) >= 3 and name[:2] in surnames else name[0]
        if surname in surnames and 1 <= len(name) - len(surname) <= 2:
            given.setdefault(name[len(surname) :], e.end)
    if not given:
        return spans
    used = bytearray(len(text) + 1)
    for e in spans:
        used[e.start : e.end] = b"\x01" * (e.end - e.start)
    added: list[Entity] = []
    for name, after in given.items():
        start = text.find(name, after)
        while start != -1:
            end = start + len(name)
            left = text[start - 1] if start > 0 else "，"
            right = text[end] if end < len(text) else ""
            clause_head = left in "，。；：、「"
            if (
                not any(used[start:end])
                and left in _GIVEN_NAME_LEFT
                and (_is_cjk(right) or (not clause_head and right in "，。；、"))
            ):
                added.append(Entity("PERSON", name, start, end, confidence=0.5, source="pattern"))
                used[start:end] = b"\x01" * (end - start)
            start = text.find(name, end)
    return sorted([*spans, *added], key=lambda e: (e.start, e.end)) if added else spans
