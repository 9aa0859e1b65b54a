"""Silver training data: rule- and list-labelled classical text plus synthetic sentences.

Sources (all offline, every file read through ``streams.corpora.load_poetry_json``):
chinese-poetry's Song author biographies (the subject's name is known) and the 四書,
converted to traditional characters with OpenCC s2t; word lists from ``lexicon``.
``TRAINING_FILES`` names every file ``build_dataset`` reads. 古文觀止 is held out by the
project's owner and is never read here (``streams.corpora`` refuses it). The Tang author
biographies are the held-out silver set: read only by ``tang_biographies`` for
evaluation, never by ``build_dataset``. The gold set in ``tests/data`` is never read here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.corpora import load_poetry_json, poetry_root
from streams.entities import POSTHUMOUS, STATE_RANK, STATE_RULER
from streams.ner import lexicon
from streams.ner.labels import ENTITY_TYPES

SONG_BIOGRAPHIES = "quantangshi/authors.song.json"
TANG_BIOGRAPHIES = "quantangshi/authors.tang.json"  # held-out silver set: evaluation only
SISHU_LISTS = ("lunyu/lunyu.json", "sishuwujing/mengzi.json")
SISHU_WHOLE = ("sishuwujing/daxue.json", "sishuwujing/zhongyong.json")
# Every chinese-poetry file build_dataset reads (a test checks none is held out).
TRAINING_FILES = (SONG_BIOGRAPHIES, *SISHU_LISTS, *SISHU_WHOLE)
# OpenCC s2t errors in the 四書's names (丑 → 醜, 咸 → 鹹).
SISHU_FIXES = {"公孫醜": "公孫丑", "鹹丘": "咸丘"}
# Who speaks and asks in the 四書 (X曰, X問, X對曰, X見): distant supervision for PERSON;
# these words are what such a slot holds when it is not a name.
SPEAKER = re.compile(r"(?:^|[，。；：！？「」『』])([\u3400-\u9fff]{2,3}?)(?:問|曰|對曰|見|謂)")
SPEAKER_STOP = set(
    "之其我吾何以則而不此是皆必將可所也者未欲告彼且每或語生今古雖居立在疑善非君卒見說笑忍人王言問諺"
    "命然使謂請後日願亦目無弗答鄙左右歎囂悻睟頻顣故身載好尚慍來訓亟得召書"
)
SPEAKER_NOT = {
    "大夫",
    "門人",
    "童子",
    "太宰",
    "世子",
    "從者",
    "晨門",
    "士庶人",
    "夫子",
    "天子",
    "孺子",
}

MAX_SENTENCE = 120
CJK = "\u3400-\u9fff"
NUM = "元一二三四五六七八九十廿卅百"

# Characters that end a place or title body when scanning backwards from a suffix.
STOP = "知於于至居徙遷貶謫守判通移赴入出歷到為爲任之以和與及在自拜授除改充兼領權攝試起還除召調累官"
STOP_CLASS = f"(?:(?![{STOP}])[{CJK}])"
LEFT = "，。、；：（「『《　 由拜爲為授除遷改任充兼知判通守權攝移徙貶謫歷領出入至於赴還調起召累官"

WESTERN_YEARS = re.compile(r"（[一二三四五六七八九十○〇零～？?—\-]+年?）")
RULER_FIRST = (
    "太高世中睿玄肅代德順憲穆敬文武宣懿僖昭哀真仁英神哲徽"
    "欽孝光寧理度恭端莊景成康平桓靈獻明章和安沖質廢"
)
RULER_BAD_LEFT = "皇上正大祖同宗一本"
# Before a bare given name that refers to a person named earlier (封亮…, 以權為…, 光以…).
GIVEN_NAME_LEFT = "，。；：、「以與封詣命勸使令遣召拜謂及於從事徵"
VARIANT_FOLD = str.maketrans("爲眞衆敎靑淸卽旣槪㨗", "為真眾教青清即既概捷")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Example:
    text: str
    spans: tuple[Span, ...]
    source: str = ""


@dataclass(order=True)
class _Candidate:
    priority: int
    neg_length: int
    start: int
    end: int = field(compare=False)
    type: str = field(compare=False)


def song_biographies(root: Path) -> list[tuple[str, str]]:
    """(name, biography) pairs of Song poets, the main training source."""
    data = load_poetry_json(root, SONG_BIOGRAPHIES)
    assert isinstance(data, list)
    return [(d["name"].strip(), d["desc"].strip()) for d in data if d.get("desc")]


def tang_biographies(root: Path) -> list[tuple[str, str]]:
    """(name, biography) pairs of Tang poets: the HELD-OUT set, for evaluation only."""
    data = load_poetry_json(root, TANG_BIOGRAPHIES)
    assert isinstance(data, list)
    return [(d["name"].strip(), d["desc"].strip()) for d in data if d.get("desc")]


def sishu_paragraphs(root: Path) -> list[str]:
    out: list[str] = []
    for rel in SISHU_LISTS:
        data = load_poetry_json(root, rel)
        assert isinstance(data, list)
        for chapter in data:
            out.extend(chapter["paragraphs"])
    for rel in SISHU_WHOLE:
        data = load_poetry_json(root, rel)
        assert isinstance(data, dict)
        out.extend(data["paragraphs"])
    converted = [lexicon._s2t(p) for p in out if p.strip()]
    for wrong, right in SISHU_FIXES.items():
        converted = [p.replace(wrong, right) for p in converted]
    return converted


def sishu_speakers(paragraphs: Iterable[str]) -> list[str]:
    """Names heading a speech or a question in the 四書 (孟子, 子貢, 萬章, 季康子 ...);
    a Zhou ruler (齊宣王) is left to the state-ruler pattern, which splits it."""
    names: set[str] = set()
    for p in paragraphs:
        for m in SPEAKER.finditer(p):
            word = m[1]
            if word in SPEAKER_NOT or any(ch in SPEAKER_STOP for ch in word):
                continue
            if STATE_RULER.fullmatch(word):
                continue
            names.add(word)
    return sorted(names)


def split_sentences(text: str, limit: int = MAX_SENTENCE) -> Iterator[tuple[int, str]]:
    """(offset, piece) of text cut after 。；！？ and, for long pieces, after ，."""
    start = 0
    for m in re.finditer(r"[。；！？\n]+", text):
        yield from _cut(text, start, m.end(), limit)
        start = m.end()
    if start < len(text):
        yield from _cut(text, start, len(text), limit)


def _cut(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, str]]:
    while end - start > limit:
        window = text[start : start + limit]
        cut = max(window.rfind("，"), window.rfind("、"), window.rfind("）"))
        stop = start + (cut + 1 if cut > limit // 3 else limit)
        yield start, text[start:stop]
        start = stop
    if end > start and text[start:end].strip():
        yield start, text[start:end]


class Trie:
    """Longest-match dictionary over characters."""

    def __init__(self) -> None:
        self.words: dict[str, str] = {}
        self.max_len = 0

    def add(self, word: str, type_: str) -> None:
        if word and word not in self.words:
            self.words[word] = type_
            self.max_len = max(self.max_len, len(word))

    def matches(self, text: str) -> Iterator[tuple[int, int, str]]:
        for i in range(len(text)):
            for n in range(min(self.max_len, len(text) - i), 0, -1):
                t = self.words.get(text[i : i + n])
                if t is not None:
                    yield i, i + n, t
                    break


class SilverLabeler:
    """Labels text with patterns (brackets, era dates, suffixes) and word lists."""

    def __init__(self, extra_persons: Iterable[str] = (), extra_books: Iterable[str] = ()) -> None:
        names = lexicon.udkanbun_names()
        self.eras = sorted({e.name for e in lexicon.eras()}, key=lambda s: (-len(s), s))
        self.trie = Trie()
        for w in lexicon.official_titles():
            self.trie.add(w, "OFFICIAL_TITLE")
        for w in lexicon.dynasties_multi():
            self.trie.add(w, "DYNASTY")
        # Persons first: 孟子 or 莊子 in running text is the man more often than the book.
        for w in (*lexicon.FAMOUS_PERSONS, *extra_persons):
            if len(w) >= 2:
                self.trie.add(w, "PERSON")
        for w in (*lexicon.BOOKS, *extra_books):
            if len(w) >= 2:
                self.trie.add(w, "BOOK")
        for w in (*lexicon.PROVINCES, *lexicon.PLACES, *names.places):
            if len(w) >= 2:
                self.trie.add(w, "PLACE")
        era_alt = "|".join(map(re.escape, self.eras))
        year = rf"(?:元|[{NUM}]{{1,4}})[年載祀]"
        month = r"(?:[春夏秋冬]?(?:閏)?(?:正|[一二三四五六七八九十]{1,3}|冬|臘)月)"
        day = (
            rf"(?:(?:初|[{NUM}]){{1,3}}日|[{lexicon.STEMS}][{lexicon.BRANCHES}](?:日|朔)?"
            r"|[朔望晦]日?)"
        )
        sexagenary = rf"[{lexicon.STEMS}][{lexicon.BRANCHES}](?:年|歲)?"
        self.era_date = re.compile(
            rf"(?:{era_alt})(?:{year}|{sexagenary})(?:[春夏秋冬])?{month}?{day}?"
        )
        # An era named without a year (貞觀中, 開元末, 元和年間) is an ERA_DATE with its suffix.
        self.era_period = re.compile(rf"(?:{era_alt})(?:年間|年中|之際|初|中|末|間)")
        self.era_alone = re.compile(rf"(?:改元|年號|建元)({era_alt})|({era_alt})(?=[時進])")
        single = "".join(lexicon.DYNASTIES_SINGLE)
        self.dyn_single = re.compile(
            rf"(?<![{CJK}])([{single}])(?=[初末時朝代亡興室主人軍兵太高世神仁英哲徽欽孝光寧理度])"
            rf"|(?<=[入仕事歸降於自及])([{single}])(?=[，。、；後])"
            rf"|([{single}])(?=(?:{era_alt}))"
            rf"|([{single}])(?=[{RULER_FIRST}](?:宗|祖|帝))"
        )
        # Emperors by temple or posthumous name (太宗, 神宗, 武帝, 明皇) are PERSON.
        self.ruler = re.compile(
            rf"(?<![{RULER_BAD_LEFT}])[{RULER_FIRST}](?:宗|祖|帝)(?!國|室|廟)|明皇|始皇帝?"
        )
        self.book = re.compile(r"《([^《》\n]{1,30})》")
        self.place_suffix = re.compile(
            rf"(?<=[{LEFT}]){STOP_CLASS}{{1,3}}(?:州|縣|郡|府|軍|監)(?![{CJK}]?[使節])"
        )
        nobles = "|".join(lexicon.NOBLE_SUFFIXES)
        self.noble = re.compile(rf"(?<=封|爵){STOP_CLASS}{{1,3}}(?:{nobles})")
        states = lexicon.ZHOU_STATES
        self.state = re.compile(
            rf"(?<=[於適如伐入奔至侵圍救之聘使朝])([{states}])(?=[，。、；之人王侯公君師國伯大])"
            rf"|(?<![{CJK}])([{states}])(?=[人王侯公君師國伯](?![{CJK}]?[，。]))"
        )
        self.title_compound = re.compile(
            rf"(?<=[{LEFT}]){STOP_CLASS}{{1,4}}(?:軍|路)?(?:節度使|節度副使|觀察使|防禦使|團練使|"
            r"經略安撫使|安撫使|轉運使|轉運副使|轉運判官|提點刑獄|提舉常平|制置使|兵馬鈐轄|都總管|招討使)"
        )

    def label(
        self, text: str, subject: str | None = None, *, pre_qin: bool = False
    ) -> tuple[Span, ...]:
        cands: list[_Candidate] = []

        def add(priority: int, start: int, end: int, type_: str) -> None:
            if end > start:
                cands.append(_Candidate(priority, start - end, start, end, type_))

        for m in self.book.finditer(text):
            add(0, m.start(1), m.end(1), "BOOK")
        if subject and len(subject) >= 2:
            for m in re.finditer(re.escape(subject), text):
                add(1, m.start(), m.end(), "PERSON")
        for m in self.era_date.finditer(text):
            add(2, m.start(), m.end(), "ERA_DATE")
        for m in self.era_period.finditer(text):
            add(2, m.start(), m.end(), "ERA_DATE")
        for m in self.era_alone.finditer(text):
            g = 1 if m.group(1) else 2
            add(3, m.start(g), m.end(g), "ERA_DATE")
        for m in self.title_compound.finditer(text):
            add(3, m.start(), m.end(), "OFFICIAL_TITLE")
        for m in re.finditer(rf"(?<=[，。；]字)[{CJK}]{{1,3}}(?=[，。；）])", text):
            add(4, m.start(), m.end(), "PERSON")
        for m in re.finditer(rf"(?<=[，。；、]號)[{CJK}]{{2,5}}(?=[，。；）])", text):
            add(4, m.start(), m.end(), "PERSON")
        for m in re.finditer(rf"(?<=姓)[{CJK}]{{1,2}}(?=氏)", text):
            add(4, m.start(), m.end(), "PERSON")
        for m in self.noble.finditer(text):
            add(4, m.start(), m.end(), "OFFICIAL_TITLE")
        # 齊宣王 → 齊 + 宣王, 周厲王 → 周 + 厲王, 晉侯使… → 晉 (the stage's own patterns)
        for m in STATE_RULER.finditer(text):
            add(3, m.start(1), m.end(1), "DYNASTY" if m[1] == "周" else "PLACE")
            add(3, m.start(2), m.end(2), "PERSON")
        if pre_qin:
            for m in STATE_RANK.finditer(text):
                add(3, m.start(1), m.end(1), "PLACE")
            for m in self.state.finditer(text):
                g = 1 if m.group(1) else 2
                add(4, m.start(g), m.end(g), "PLACE")
        for start, end, type_ in self.trie.matches(text):
            add(5, start, end, type_)
        for m in self.dyn_single.finditer(text):
            g = next(i for i in (1, 2, 3, 4) if m.group(i))
            add(6, m.start(g), m.end(g), "DYNASTY")
        for m in self.ruler.finditer(text):
            add(6, m.start(), m.end(), "PERSON")
        if subject and len(subject) == 3 and subject[0] not in "釋":
            for m in re.finditer(re.escape(subject[1:]), text):
                add(6, m.start(), m.end(), "PERSON")
        if subject and len(subject) == 2:
            # 「軾以…」「封軾…」: the bare given name of the subject at the head of a clause.
            for m in re.finditer(re.escape(subject[1]), text):
                left = text[m.start() - 1] if m.start() else "，"
                right = text[m.end()] if m.end() < len(text) else ""
                if left in GIVEN_NAME_LEFT and right and re.match(rf"[{CJK}]", right):
                    add(6, m.start(), m.end(), "PERSON")
        for m in self.place_suffix.finditer(text):
            add(7, m.start(), m.end(), "PLACE")
        for m in re.finditer(rf"（今(?:屬)?([{CJK}]{{2,8}})）", text):
            add(7, m.start(1), m.end(1), "PLACE")

        taken = [False] * len(text)
        out: list[Span] = []
        for c in sorted(cands):
            if any(taken[c.start : c.end]):
                continue
            for i in range(c.start, c.end):
                taken[i] = True
            out.append(Span(c.start, c.end, c.type))
        return tuple(sorted(out, key=lambda s: s.start))


def _sentence_examples(
    labeler: SilverLabeler,
    text: str,
    source: str,
    subject: str | None = None,
    *,
    pre_qin: bool = False,
) -> Iterator[Example]:
    spans = labeler.label(text, subject, pre_qin=pre_qin)
    for offset, piece in split_sentences(text):
        end = offset + len(piece)
        inner = tuple(
            Span(s.start - offset, s.end - offset, s.type)
            for s in spans
            if s.start >= offset and s.end <= end
        )
        yield Example(piece, inner, source)


def _words_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class Synthesizer:
    """Template sentences that put entities in the structures of biographies and annals."""

    BIO_OPENINGS = (
        "{P}，{L}人。",
        "{P}，{P}之子。",
        "{P}，{P}從孫。累官{T}。",
        "{P}，登{A}進士第。詩{N}首。",
        "{P}，{Q}人。詩{N}首。",
        "{P}，{E}進士。",
        "{P}，{Q}為{T}。",
        "{P}，字{C}，{L}人。",
        "{P}，字{C}，{L}{L}人。{P}子。",
        "{P}，{P}兄也。官{T}。",
        "{P}，一名{P}，{L}人。",
    )
    TEMPLATES = (
        "{D}{T}{P}",
        "{P}，字{C}，{L}人。",
        "{P}，字{C}，號{C}，{L}（今屬{V}）人。",
        "{E}，以{P}為{T}。",
        "{E}，{P}拜{T}，出知{L}。",
        "{D}{E}，{P}自{L}徙{L}。",
        "{P}著《{B}》{N}卷。",
        "{P}撰{B}{N}卷，行於世。",
        "{E}進士，調{L}{T}。",
        "遷{T}，知{L}，移{L}。",
        "{P}為{L}{T}，有惠政。",
        "召{P}入朝，除{T}。",
        "{P}、{P}、{P}並稱於時。",
        "{D}末，{P}起兵{L}。",
        "{P}少從{P}學，與{P}友善。",
        "{E}，{D}師伐{L}，{T}{P}死之。",
        "事見《{B}》卷{N}。",
        "{P}卒於{L}，年{N}。",
        "{D}{T}{P}上書曰：臣聞{B}云。",
        "{E}，詔{T}{P}修《{B}》。",
        "{P}，{L}人也。{D}{E}，舉進士，累官{T}。",
        "{D}{P}，官至{T}。",
        "{E}，改元{A}。",
        "{P}以{T}知{L}，{E}卒。",
        "初，{P}為{T}，與{P}有隙。",
        "{P}謂{P}曰：吾將之{L}。",
        "{Q}，{P}為{L}{T}。",
        "{D}{Q}，{P}卒。",
        "{P}子{P}，官{T}。",
        "{D}{R}{E}，以{P}為{T}。",
        "{R}時，{P}為{T}。",
        "{R}即位，召{P}為{T}，出為{L}{T}。",
        "{D}{R}{Q}，{P}上書。",
    )
    # Single-character (or bare given-name) references, noble titles before names, Zhou
    # states as places and modified military titles: the gold errors of v0.3.0 were mostly
    # these shapes (names absent from the lists, 亮/權 alone, 武鄉侯, 楚/趙, 步兵校尉).
    REFERENCES = (
        "{E}，{g}上疏曰：臣聞之。",
        "{E}，{g}率眾至{L}，{L}震恐。",
        "{E}，封{g}{O}，開府治事。",
        "{g}以{T}輔政。",
        "{R}親問{g}疾，未幾卒。",
        "{E}，{g}入{L}，僭號{D}。",
        "{E}，{g}與{P}戰於{L}，大破之。",
        "{E}，{g}拜{T}，兼{T}。",
        "{E}，{g}遇害於{L}，年{N}。",
        "{D}{R}{E}，以{g}為{T}。",
        "{P}以舟師伐{P}，{g}將{P}敗之於{L}。",
        "{P}，字{C}，{L}人。{g}少好學，與{P}善。",
        "{g}既治{L}之明年，始{X}。",
        "{P}遂詣{g}，凡三往，乃見。",
        "{E}，{g}上表諫{X}，貶{L}{T}。",
        "{g}為{S}將{P}所殺。",
        "{O}{P}者，{L}人也。",
        "{O}{P}者，其先{S}人也。",
        "{E}，進封{O}。",
        "{E}，{O}{g}起兵{L}。",
        "{D}{O}{P}撰，{D}{P}注。",
        "{E}，{P}即{O}位。",
        "{P}，{D}{R}子{O}{g}之後也。",
        "{E}，{O}{g}收復{L}。",
        "{P}者，{S}人也，為{S}{T}。",
        "{P}者，{S}之良將也。",
        "其季父{P}，{g}父即{S}將{P}。",
        "{P}客{S}、{S}、{S}間。",
        "{L}，春秋屬{S}，戰國屬{S}。",
        "{P}，{S}之同姓也，為{S}{R}{T}。",
        "{E}，{K}{P}出擊{L}，以{g}為{K}。",
        "{E}，{P}為{K}，封{O}。",
        "{K}{P}校{B}。",
        "{P}，{K}{P}弟也。",
        "{P}、{P}、{P}率師平{L}。",
        "{E}，{P}、{P}等用事。",
        "{L}在府城西，{D}{T}{P}建。",
        "{Y}在府城西{N}里，{D}{E}建。",
        "{Y}在{Y}下，{D}{P}讀書處也。",
        "{P}，{L}{W}{W}人。",
        "葬於{L}{W}{W}之{W}。",
        "{E}，{P}至{W}，大破之。",
        "{Y}，舊名{Y}，{D}{E}改今名。",
        "{E}，{P}自{W}徙{W}。",
        # signatures and monks (the 0.5.0 stage's dev errors: 許慎記, 天竺僧慧理建)
        "{E}，{P}序。",
        "{E}，歲在{y}，{P}記。",
        "{E}，{L}僧{c}建。",
        "{Y}，{D}僧{c}所建。",
        "{P}謀反，伏誅。",
        "{P}雪夜入{L}，擒{P}。",
        "{g}既至{L}，{g}遣使迎之。",
    )
    # Pre-Qin narrative and dialogue (左傳, 國語, 論語, 孟子 shapes): states as places,
    # rulers split from their state, names of the period (子X, 公孫X, 叔X, X父) in the
    # slots a speaker, an envoy or a general takes; {k} is a rank (侯/伯), no entity.
    PRE_QIN = (
        "{S}{G}問於{n}曰：",
        "{n}問{Z}，子曰：",
        "{n}問{Z}於{n}。",
        "{n}見{S}{G}。",
        "{S}{G}使{n}伐{S}。",
        "{S}{G}卒，子{n}立。",
        "{S}王{n}起師伐{S}。",
        "{S}{k}使{n}如{S}。",
        "{S}{k}卒，{S}人立{n}。",
        "{n}曰：{S}，大國也。",
        "{n}者，{S}人也。",
        "{n}奔{S}，{S}人殺之。",
        "{S}師敗績，{n}死之。",
        "{n}謂{n}曰：",
        "{n}相{S}{G}，{S}以霸。",
        "{n}、{n}侍坐。",
        "{S}圍{W}，{n}救之。",
        "{S}公子{n}出奔{S}。",
        "{n}、{n}帥師伐{S}，戰于{W}。",
        "{S}{k}、{S}{k}會于{W}。",
        "{n}對曰：臣聞之。",
        "{S}人殺{n}，{n}奔{S}。",
        "{n}言於{S}{G}曰：",
        "{H}{G}即位，{n}為{U}。",
        "{n}事{S}{G}，為{U}。",
        "{S}{U}{n}曰：",
        "{n}攻{W}，三月不下。",
        "{n}諫曰：不可。",
        "{n}聞之，曰：",
        "{S}{G}之時，{n}為{S}{U}。",
        # lords by their fief (孟嘗君, 平原君), kings by state and name (吳王夫差), envoys
        # entering a state (入秦, 奔晉), ruled-out ranks (晉侯), sons of rulers (公子X)
        "{J}將入{S}，{n}諫曰：",
        "{J}聞之，使{n}如{S}。",
        "{n}客{J}，{J}善之。",
        "{S}王{n}敗{S}于{W}。",
        "{S}王{n}聞之，曰：",
        "{n}奔{S}，{S}{k}納之。",
        "{n}入{S}，說{S}{G}。",
        "{S}公子{n}與{S}公子{n}盟于{W}。",
        "{n}、{n}率{S}師伐{S}。",
    )
    PRE_QIN_TOPICS = ("孝", "仁", "政", "禮", "士", "友", "知", "恥", "明", "交", "事君")
    PRE_QIN_TITLES = _words_of("令尹 司馬 司寇 司徒 上卿 相 將軍 太宰 宰 大司馬 左師 右師 上大夫")
    PRE_QIN_FAMILIES = _words_of(
        """
        公孫 叔孫 季孫 孟孫 子 孔 陳 田 屈 伍 樂 范 荀 趙 韓 魏 郤 欒 先 狐 胥 陽 鮑 管
        晏 高 國 崔 慶 華 向 皇 石 甯 孫 游 罕 駟 豐 甘 蘇 張 蒯 淳于 成 巫 鬥 薳 養 沈
        """
    )
    # A letter's writer by his given name (愈白, 軾啟), a memorial's (臣密言).
    LETTERS = (
        "{g}白：{P}足下。",
        "{g}頓首再拜，{P}足下：",
        "臣{g}言：臣聞之。",
        "{g}啟：近奉書，具審起居。",
    )
    ADMIN_SUFFIXES = ("縣", "縣", "鄉", "里", "州", "城", "邑", "郡")
    SITE_SUFFIXES = (
        "寺",
        "寺",
        "山",
        "山",
        "閣",
        "樓",
        "宮",
        "亭",
        "院",
        "觀",
        "橋",
        "湖",
        "溪",
        "洞",
    )
    NOBLE_SUFFIXES = ("王", "王", "侯", "侯", "郡王", "國公", "郡公", "縣侯")
    MILITARY_PREFIXES = _words_of(
        """
        步兵 越騎 屯騎 射聲 長水 奉車 駙馬 驃騎 票騎 車騎 虎賁 羽林 護軍 中護軍 前軍 後軍
        左軍 右軍 中軍 輕車 伏波 樓船 度遼 破虜 討虜 蕩寇 橫海 材官 強弩 戊己 西域 副
        """
    )
    MILITARY_BASES = ("校尉", "都尉", "將軍", "中郎將", "都護", "司馬")

    def __init__(
        self, rng: random.Random, persons: list[str], speakers: Iterable[str] = ()
    ) -> None:
        names = lexicon.udkanbun_names()
        self.rng = rng
        self.persons = persons
        self.speakers = list(speakers)
        self.surnames = [s for s in names.surnames if len(s) <= 2] or ["李", "王", "張"]
        self.common = list(
            "李王張劉陳楊趙黃周吳徐孫胡朱高林何郭馬羅梁宋鄭謝韓唐馮于董蕭程曹袁鄧許傅沈曾彭呂蘇盧蔣蔡賈丁魏薛葉閻余潘杜戴夏鍾汪田任姜范方石姚譚廖鄒熊金陸郝孔白崔康毛邱秦江史顧侯邵孟龍萬段雷錢湯尹黎易常武喬賀賴龔文"
        )
        self.given = [g for g in names.given_names if len(g) <= 2] or ["安", "世"]
        name_chars = {ch for p in persons if len(p) == 3 for ch in p[1:]}
        self.given_chars = sorted({ch for g in self.given for ch in g} | name_chars)
        self.compound = [s for s in self.surnames if len(s) == 2] or ["司馬"]
        self.titles = list(lexicon.official_titles())
        self.places = sorted(
            {*lexicon.PLACES, *lexicon.PROVINCES, *(p for p in names.places if len(p) >= 2)}
        )
        self.provinces = list(lexicon.PROVINCES)
        self.two_char_places = [p for p in self.places if len(p) == 2] or ["臨淄"]
        self.dynasties = [*lexicon.dynasties_multi(), *("漢晉隋唐宋元明清" * 3)]
        eras = lexicon.eras()
        self.eras = sorted({e.name for e in eras}) or ["貞觀"]
        self.books = list(lexicon.BOOKS)

    def person(self) -> str:
        """A known name, or a new one: mostly surname + random given characters."""
        r = self.rng.random()
        if r < 0.2 and self.persons:
            return self.rng.choice(self.persons)
        if r < 0.3:
            surname = self.rng.choice(self.compound)
        elif r < 0.85:
            surname = self.rng.choice(self.common)
        else:
            surname = self.rng.choice(self.surnames)
        if self.rng.random() < 0.3:
            given = self.rng.choice(self.given)
        else:
            k = self.rng.choice((1, 2, 2, 2))
            given = "".join(self.rng.choice(self.given_chars) for _ in range(k))
        return surname + given

    def era_date(self) -> str:
        r = self.rng
        text = r.choice(self.eras) + r.choice(lexicon.ERA_YEAR_NUMERALS) + "年"
        if r.random() < 0.3:
            text += r.choice("春夏秋冬")
        if r.random() < 0.4:
            text += r.choice(lexicon.MONTHS) + "月"
            if r.random() < 0.4:
                if r.random() < 0.5:
                    text += r.choice(lexicon.STEMS) + r.choice(lexicon.BRANCHES)
                else:
                    text += r.choice(lexicon.DAYS_NUM) + "日"
        return text

    def noble(self) -> str:
        """A noble title: a place or a Zhou state + 王/侯/郡王 ... (武鄉侯, 秦王, 汾陽郡王)."""
        r = self.rng
        if r.random() < 0.35:
            head = r.choice(lexicon.ZHOU_STATES)
        else:
            head = r.choice([p for p in self.two_char_places])
        return head + r.choice(self.NOBLE_SUFFIXES)

    def given_name(self) -> str:
        """A bare given name (亮, 權, 居正): one character mostly."""
        r = self.rng
        if r.random() < 0.7:
            return r.choice(self.given_chars)
        return "".join(r.choice(self.given_chars) for _ in range(2))

    def pre_qin_name(self) -> str:
        """A name of the period: a 四書 speaker, 伯/仲/叔/季 + X, X父, or a family + 1-2."""
        r = self.rng
        roll = r.random()
        if roll < 0.25 and self.speakers:
            return r.choice(self.speakers)
        if roll < 0.4:
            return r.choice("伯仲叔季") + r.choice(self.given_chars)
        if roll < 0.5:
            return r.choice(self.given_chars) + r.choice(self.given_chars[:400]) + "父"
        family = r.choice(self.PRE_QIN_FAMILIES)
        return family + "".join(r.choice(self.given_chars) for _ in range(r.choice((1, 1, 2))))

    def example(self) -> Example:
        roll = self.rng.random()
        pool: tuple[str, ...]
        if roll < 0.2:
            pool = self.BIO_OPENINGS
        elif roll < 0.4:
            pool = self.REFERENCES
        elif roll < 0.6:
            pool = self.PRE_QIN
        elif roll < 0.63:
            pool = self.LETTERS
        else:
            pool = self.TEMPLATES
        template = self.rng.choice(pool)
        text = ""
        spans: list[Span] = []
        for m in re.finditer(r"\{(\w)\}|[^{]+", template):
            slot = m.group(1)
            if slot is None:
                text += m.group(0)
                continue
            value, type_ = self._fill(slot)
            if type_:
                spans.append(Span(len(text), len(text) + len(value), type_))
            text += value
        return Example(text, tuple(spans), "synthetic")

    def _fill(self, slot: str) -> tuple[str, str | None]:
        r = self.rng
        if slot == "P":
            return self.person(), "PERSON"
        if slot == "C":
            return "".join(r.choice(self.given_chars) for _ in range(2)), "PERSON"
        if slot == "D":
            return r.choice(self.dynasties), "DYNASTY"
        if slot == "T":
            return r.choice(self.titles), "OFFICIAL_TITLE"
        if slot == "L":
            return r.choice(self.places), "PLACE"
        if slot == "V":
            return r.choice(self.provinces), "PLACE"
        if slot == "E":
            return self.era_date(), "ERA_DATE"
        if slot == "A":
            return r.choice(self.eras), "ERA_DATE"
        if slot == "R":
            return r.choice(RULER_FIRST) + r.choice("宗宗祖帝"), "PERSON"
        if slot == "Q":
            return r.choice(self.eras) + r.choice(("中", "初", "末", "間", "年間")), "ERA_DATE"
        if slot == "B":
            return r.choice(self.books), "BOOK"
        if slot == "N":
            return r.choice(lexicon.ERA_YEAR_NUMERALS[1:]), None
        if slot == "g":
            return self.given_name(), "PERSON"
        if slot == "O":
            return self.noble(), "OFFICIAL_TITLE"
        if slot == "S":
            return r.choice(lexicon.ZHOU_STATES), "PLACE"
        if slot == "K":
            return r.choice(self.MILITARY_PREFIXES) + r.choice(self.MILITARY_BASES), (
                "OFFICIAL_TITLE"
            )
        if slot == "W":  # an unseen place with its administrative suffix: 木窣縣, 宜堅鄉
            body = "".join(r.choice(self.given_chars) for _ in range(r.choice((1, 2, 2))))
            return body + r.choice(self.ADMIN_SUFFIXES), "PLACE"
        if slot == "Y":  # an unseen named site: 2 characters + 寺/山/閣 ...
            body = "".join(r.choice(self.given_chars) for _ in range(2))
            return body + r.choice(self.SITE_SUFFIXES), "PLACE"
        if slot == "X":
            return r.choice(("飲水而甘", "迎佛骨", "築堤", "讀書", "講學")), None
        if slot == "n":
            return self.pre_qin_name(), "PERSON"
        if slot == "G":  # a Zhou ruler's posthumous name: 宣王, 獻公, 文侯, 惠文王
            k = r.choice((1, 1, 1, 2))
            return "".join(r.choice(POSTHUMOUS) for _ in range(k)) + r.choice("王公公侯伯"), (
                "PERSON"
            )
        if slot == "k":
            return r.choice("侯伯"), None
        if slot == "Z":
            return r.choice(self.PRE_QIN_TOPICS), None
        if slot == "U":
            return r.choice(self.PRE_QIN_TITLES), "OFFICIAL_TITLE"
        if slot == "H":
            return "周", "DYNASTY"
        if slot == "J":  # a lord by his fief (孟嘗君, 信陵君): one designation, PERSON
            return "".join(r.choice(self.given_chars) for _ in range(2)) + "君", "PERSON"
        if slot == "c":  # a monk's dharma name: two characters (慧理, 智顗)
            return "".join(r.choice(self.given_chars) for _ in range(2)), "PERSON"
        if slot == "y":  # a sexagenary year: no entity
            return r.choice(lexicon.STEMS) + r.choice(lexicon.BRANCHES), None
        raise ValueError(slot)


def _augment(example: Example, rng: random.Random, name_chars: list[str]) -> Example:
    """Fold variants, swap given names, sometimes drop 《》.

    A third of the multi-character PERSON spans get new given-name characters, so the
    model learns where a name ends from its context (X，字Y) rather than from the
    characters of names it has seen.
    """
    text = example.text
    if name_chars and any(s.type == "PERSON" and s.end - s.start >= 2 for s in example.spans):
        chars = list(text)
        for span in example.spans:
            ruler = text[span.end - 1] in "宗祖帝皇"
            if span.type == "PERSON" and span.end - span.start >= 2 and not ruler:
                if rng.random() >= 0.33:
                    continue
                for i in range(span.start + 1, span.end):
                    chars[i] = rng.choice(name_chars)
        text = "".join(chars)
    if rng.random() < 0.5:
        text = text.translate(VARIANT_FOLD)
    if "《" in text and rng.random() < 0.4:
        keep = [i for i, ch in enumerate(text) if ch not in "《》"]
        index = {old: new for new, old in enumerate(keep)}
        spans = tuple(
            Span(index[s.start], index[s.end - 1] + 1, s.type)
            for s in example.spans
            if s.start in index and s.end - 1 in index
        )
        return Example("".join(text[i] for i in keep), spans, example.source)
    return Example(text, example.spans, example.source)


def build_dataset(
    seed: int,
    root: Path | None = None,
    *,
    synthetic: int = 40_000,
    limit_bios: int | None = None,
) -> list[Example]:
    """All silver training examples, in a deterministic order for ``seed``."""
    rng = random.Random(seed)
    root = root or poetry_root()
    bios = song_biographies(root)
    if limit_bios is not None:
        bios = bios[:limit_bios]
    persons = sorted({n for n, _ in bios if 2 <= len(n) <= 4})
    sishu = sishu_paragraphs(root) if limit_bios is None else []
    speakers = sishu_speakers(sishu)
    labeler = SilverLabeler(extra_persons=[*persons, *speakers])
    examples: list[Example] = []
    for name, desc in bios:
        # The held-out Tang biographies have no Western-year notes: drop them half the time.
        if rng.random() < 0.5:
            desc = WESTERN_YEARS.sub("", desc)
        # Monks are named with or without 釋 (釋宗本 / 宗本): half the time without.
        if (
            name.startswith("釋")
            and len(name) >= 3
            and desc.startswith(name)
            and rng.random() < 0.5
        ):
            name, desc = name[1:], desc[1:]
        examples.extend(_sentence_examples(labeler, desc, "song-bio", subject=name))
    if limit_bios is None:
        for paragraph in sishu:
            examples.extend(_sentence_examples(labeler, paragraph, "sishu", pre_qin=True))
    synth = Synthesizer(rng, persons, speakers)
    examples.extend(synth.example() for _ in range(synthetic))
    examples = [_augment(e, rng, synth.given_chars) for e in examples if e.text.strip()]
    rng.shuffle(examples)
    return examples


def bio_tags(example: Example) -> list[str]:
    tags = ["O"] * len(example.text)
    for s in example.spans:
        assert s.type in ENTITY_TYPES, s.type
        tags[s.start] = f"B-{s.type}"
        for i in range(s.start + 1, s.end):
            tags[i] = f"I-{s.type}"
    return tags
