"""Build streams/data/gazetteer.tsv: the word lists the entity stage matches at run time.

Sources: the model owner's hand-written lists (streams/ner/lexicon.py: titles, places,
books, famous persons, multi-character dynasty names), udkanbun's place names when the
train extra is installed, and the lists below. Shipped as data so the runtime needs no
udkanbun. Ambiguous words are left out (see the stop sets): the model decides those.

    .venv/bin/python streams/data/gazetteer_build.py
"""

from __future__ import annotations

import csv
from pathlib import Path

from streams.ner import lexicon

HERE = Path(__file__).resolve().parent


def _words(text: str) -> list[str]:
    return text.split()


# Temple and posthumous names by which rulers are referred to: PERSON.
RULER_NAMES = _words(
    """
太祖 高祖 太宗 世祖 世宗 高宗 中宗 睿宗 玄宗 肅宗 代宗 德宗 順宗 憲宗 穆宗 敬宗 文宗 武宗
宣宗 懿宗 僖宗 昭宗 哀帝 真宗 仁宗 英宗 神宗 哲宗 徽宗 欽宗 孝宗 光宗 寧宗 理宗 度宗 成祖
惠帝 文帝 景帝 武帝 昭帝 宣帝 元帝 成帝 平帝 光武帝 明帝 章帝 和帝 安帝 順帝 桓帝 靈帝 獻帝
煬帝 始皇 始皇帝 武后 則天 武則天 後主 先主 光武 曹公
"""
)

EXTRA_PLACES = _words(
    """
長安 洛陽 開封 臨安 金陵 建康 江寧 應天 順天 北平 大都 上都 燕京 汴州 東都 西都 京師 京城
關中 關東 隴右 劍南 嶺南 山南 江淮 兩浙 浙東 浙西 淮東 淮西 京東 京西 河朔 朔方 幽州
成都 江都 廣陵 吳郡 會稽 錢塘 姑蘇 丹陽 晉陽 太原 大名 真定 中山 范陽 漁陽 上谷 雲中
雁門 代郡 隴西 天水 武威 張掖 酒泉 敦煌 西域 安西 北庭 高麗 新羅 百濟 日本 天竺 交趾 安南
占城 琉球 契丹 女真 蒙古 匈奴 鮮卑 突厥 回紇 吐谷渾 黃河 長江 淮水 漢水 渭水 涇水 洛水 湘水
沅水 汴河 運河 泰山 華山 嵩山 衡山 恆山 廬山 終南山 峨眉山 天台山 太行山 崑崙 岷山 洞庭湖
太湖 鄱陽湖 西湖 赤壁 官渡 垓下 彭城 滎陽 成皋 巨鹿 鉅鹿 長平 函谷關 潼關 武關 劍閣
蜀中 巴中 黔中 閩中 粵東 粵西 嶺外 塞外 漢中 南陽 襄陽 江陵 荊州 揚州 徐州 青州 兗州 豫州
冀州 幽州 并州 雍州 涼州 益州 交州 廣州 梁州 司州 秦州 荊湖 湖廣 江浙 直隸 順天府 應天府
開封府 河南府 京兆府 大名府 臨安府 江寧府 蘇州府 杭州府 松江 松江府 常州府 鎮江 鎮江府
"""
)

# Words of the source lists that are more often something else in running text.
STOP_TITLES = {"司馬", "丞", "太史", "少卿", "大夫", "御史", "教授", "同知", "總管", "萬戶"}
STOP_BOOKS = {
    "尚書", "春秋", "大學", "中庸", "老子", "莊子", "荀子", "韓非子", "墨子", "列子", "管子",
    "淮南子", "孟子", "國語", "說文", "通鑑", "通典",
}  # fmt: skip
STOP_PLACES = {
    "九泉", "六合", "九成", "上原", "南山", "北闕", "右地", "北荒", "五嶽", "九原", "中嶽", "兩京",
    "京畿", "北地", "南夷", "右州", "古謂", "信陽州", "大理", "渤海", "南平", "吳越", "五松",
    "交河", "三河", "三川", "中州", "五州", "五源", "上林", "南巣",
}  # fmt: skip
# A dynasty or a Zhou state before a ruler's name is its own span (唐 | 太宗, 齊 | 宣王).
STOP_PERSONS = {
    "秦始皇",
    "漢高祖",
    "周文王",
    "周武王",
    "堯",
    "舜",
    "禹",
    "湯",
    "桀",
    "紂",
    "梁惠王",
    "齊宣王",
    "滕文公",
    "告子",
    "萬章",
    "離婁",
    "陽貨",
}
# Compound and other surnames 百家姓 lacks or that s2t spells differently there.
EXTRA_SURNAMES = _words(
    """
    范 卜 干 鍾 凌 咸 于 員 賀蘭 獨孤 尉遲 宇文 長孫 慕容 令狐 哥舒 拓跋 耶律 完顏 鮮于 皇甫
    上官 歐陽 司馬 諸葛 夏侯 東方 公孫 万俟 聞人 尉遲 澹臺 公冶 宗政 濮陽 淳于 單于 太叔
    申屠 軒轅 令狐 鍾離 宇文 長孫 慕容 司徒 司空 端木 南宮 呼延 百里 東郭 西門 第五 賀若
    豆盧 厙狄 庫狄 息夫 斛律 賀拔 爾朱 乞伏 禿髮 達奚 叱干 屈突 紇干 沮渠 段干 賀婁 伊婁 拓拔
    執失 契苾 渾
    """
)
S2T_SURNAME_FIXES = {
    "範": "范", "蔔": "卜", "幹": "干", "鐘": "鍾", "淩": "凌", "鹹": "咸", "於": "于",
}  # fmt: skip
STOP_DYNASTIES = {"大明", "大理", "渤海", "有明", "有唐", "有宋", "春秋", "皇明"}


def surnames() -> list[str]:
    """Surnames from 百家姓 (npm chinese-poetry, MIT) plus EXTRA_SURNAMES."""
    import re

    from streams.corpora import load_poetry_json, poetry_root

    data = load_poetry_json(poetry_root(), "mengxue/baijiaxing.json")
    assert isinstance(data, dict)
    out: set[str] = set(EXTRA_SURNAMES)
    compound = False  # from 萬俟司馬 on, a four-character phrase holds two compound surnames
    for line in data["paragraphs"]:
        for word in re.split(r"[，。、\s]+", line):
            if word.startswith(("万俟", "萬俟")):
                compound = True
            if len(word) == 4 and not compound:  # 趙錢孫李: four single surnames
                out.update(word)
            elif len(word) % 2 == 0 and word:
                out.update(word[i : i + 2] for i in range(0, len(word), 2))
    out.update(S2T_SURNAME_FIXES[ch] for ch in list(out) if ch in S2T_SURNAME_FIXES)
    return sorted(w for w in out if w and w != "百家姓")


# Chapters of the 尚書, quoted without 《》 in the classics (湯誓曰, 康誥曰): the ones whose
# names are no person (太甲, 盤庚, 微子, 君奭) and no common phrase (無逸, 多士, 多方, 立政,
# 周官, 顧命).
SHANGSHU_CHAPTERS = _words(
    """
堯典 舜典 大禹謨 皋陶謨 禹貢 甘誓 湯誓 仲虺之誥 湯誥 伊訓 說命 泰誓 太誓 牧誓 洪範 旅獒 金縢
大誥 康誥 酒誥 梓材 召誥 洛誥 康王之誥 畢命 冏命 呂刑 費誓 秦誓
"""
)

# Given names that are more often words: never used to lengthen a name.
STOP_GIVEN = {"天下", "北山", "順德", "昭宗", "景宗", "則天", "相時", "威降"}


def given_names(family: set[str]) -> dict[str, str]:
    """Two-character given names: udkanbun's name list and the given names of the Song
    biography subjects (training data; the held-out Tang biographies are never read)."""
    from streams.corpora import poetry_root
    from streams.ner import silver

    out: dict[str, str] = {}
    for g in lexicon.udkanbun_names().given_names:
        if len(g) == 2 and all(0x3400 <= ord(ch) <= 0x9FFF for ch in g):
            out.setdefault(g, "udkanbun")
    for name, _ in silver.song_biographies(poetry_root()):
        if len(name) == 3 and name[0] in family and name[0] != "釋":
            given = name[1:]
        elif len(name) == 4 and name[:2] in family:
            given = name[2:]
        else:
            continue
        if all(0x3400 <= ord(ch) <= 0x9FFF for ch in given):
            out.setdefault(given, "song-bios")
    return {g: s for g, s in sorted(out.items()) if g not in STOP_GIVEN}


def build() -> list[tuple[str, str, str]]:
    rows: dict[str, tuple[str, str]] = {}

    def add(word: str, type_: str, source: str) -> None:
        if len(word) >= 2 and word not in rows:
            rows[word] = (type_, source)

    # Order = precedence when one word is in several lists.
    for w in lexicon.DYNASTIES_MULTI:
        if w not in STOP_DYNASTIES:
            add(w, "DYNASTY", "lexicon")
    for w in lexicon.BOOKS:
        if w not in STOP_BOOKS:
            add(w, "BOOK", "lexicon")
    for w in SHANGSHU_CHAPTERS:
        add(w, "BOOK", "shangshu")
    for w in lexicon.official_titles():
        if w not in STOP_TITLES:
            add(w, "OFFICIAL_TITLE", "lexicon")
    for w in RULER_NAMES:
        add(w, "PERSON", "rulers")
    for w in lexicon.FAMOUS_PERSONS:
        if w not in STOP_PERSONS:
            add(w, "PERSON", "lexicon")
    for w in (*lexicon.PROVINCES, *lexicon.PLACES, *EXTRA_PLACES):
        if w not in STOP_PLACES:
            add(w, "PLACE", "lexicon")
    for w in lexicon.udkanbun_names().places:
        if w not in STOP_PLACES and all(0x3400 <= ord(ch) <= 0x9FFF for ch in w):
            add(w, "PLACE", "udkanbun")
    entries = [(w, t, s) for w, (t, s) in rows.items()]
    # SURNAME rows are no entity type: the biography-opening pattern uses them.
    family = surnames()
    entries.extend((w, "SURNAME", "baijiaxing") for w in family)
    # GIVEN rows (no entity type either): two-character given names, with which the stage
    # completes a model name cut after its second character (劉禹 + 錫).
    entries.extend((w, "GIVEN", s) for w, s in given_names(set(family)).items())
    return sorted(entries, key=lambda r: (r[1], r[0]))


def main() -> None:
    rows = build()
    with (HERE / "gazetteer.tsv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(["surface", "type", "source"])
        out.writerows(rows)
    counts: dict[str, int] = {}
    for _, t, _ in rows:
        counts[t] = counts.get(t, 0) + 1
    print(f"{len(rows)} entries: {counts}")


if __name__ == "__main__":
    main()
