"""Word lists for silver labelling and synthetic sentences: titles, places, dynasties, eras.

Everything here is offline: hand-written lists of common classical terms plus the
chhiskit reign-era table and the udkanbun name dictionary when those packages are installed.
The Tang author biographies of chinese-poetry are never read here (held-out set).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MINISTRIES = ("吏部", "戶部", "禮部", "兵部", "刑部", "工部")
SUB_BUREAUS = _words(
    """
    司封 司勳 考功 度支 金部 倉部 祠部 主客 膳部 職方 駕部 庫部 都官 比部 司門
    屯田 虞部 水部
    """
)

BASE_TITLES = _words(
    """
    宰相 丞相 左丞相 右丞相 太尉 司徒 司空 太師 太傅 太保 少師 少傅 少保 御史大夫
    御史中丞 侍御史 殿中侍御史 監察御史 中書令 中書侍郎 中書舍人 門下侍郎 侍中 給事中
    左僕射 右僕射 尚書左僕射 尚書右僕射 尚書左丞 尚書右丞 參知政事 同平章事
    同中書門下平章事 平章事 樞密使 樞密副使 知樞密院事 同知樞密院事 簽書樞密院事 翰林學士
    翰林學士承旨 承旨學士 翰林待詔 知制誥 龍圖閣學士 龍圖閣直學士 龍圖閣待制 天章閣待制
    寶文閣學士 資政殿學士 資政殿大學士 觀文殿大學士 端明殿學士 集賢殿修撰 集賢校理
    秘閣校理 祕閣校理 直史館 直集賢院 史館修撰 著作郎 著作佐郎 秘書監 祕書監 秘書少監
    秘書丞 秘書郎 祕書郎 校書郎 秘書省校書郎 秘書省正字 國子祭酒 國子博士 國子監助教
    國子司業 太學博士 太常博士 太常少卿 太常卿 太常丞 光祿卿 光祿大夫 金紫光祿大夫
    銀青光祿大夫 大理寺丞 大理評事 大理卿 大理少卿 鴻臚卿 宗正卿 衛尉卿 太僕卿 司農卿
    太府卿 少府監 將作監 左拾遺 右拾遺 拾遺 左補闕 右補闕 補闕 左司諫 右司諫 左正言
    右正言 諫議大夫 左諫議大夫 右諫議大夫 左散騎常侍 右散騎常侍 散騎常侍 起居郎 起居舍人
    太子太師 太子太傅 太子少師 太子少保 太子少傅 太子賓客 太子詹事 太子中允 太子中舍
    太子洗馬 左庶子 右庶子 刺史 太守 長史 別駕 參軍 司戶參軍 司法參軍 司理參軍
    錄事參軍 司錄參軍 士曹參軍 功曹參軍 主簿 縣令 縣丞 縣尉 知縣 知州 知府 通判 判官
    推官 掌書記 節度使 節度副使 觀察使 觀察判官 團練使 團練副使 防禦使 經略使
    經略安撫使 安撫使 招討使 制置使 宣撫使 轉運使 轉運副使 轉運判官 發運使 提點刑獄
    提舉常平 都統制 統制 都指揮使 都點檢 殿前都點檢 殿前都指揮使 都虞候 大將軍 上將軍
    驃騎將軍 車騎將軍 衛將軍 前將軍 後將軍 左將軍 右將軍 征西將軍 鎮西將軍 征南將軍
    鎮東將軍 都督 大都督 都護 大都護 大司馬 大司農 大鴻臚 廷尉 執金吾 光祿勳 郎中令
    尚書令 尚書 侍郎 郎中 員外郎 博士 學士 大學士 直學士 待制 修撰 編修 檢討 侍讀
    侍講 侍讀學士 侍講學士 祭酒 司業 教授 助教 巡檢 提刑 宣慰使 總管 萬戶 同知 巡撫
    總督 布政使 按察使 提督 黃門侍郎 散騎侍郎 行軍司馬 三司使 鹽鐵使 度支使 樞密直學士
    殿中丞 殿中監 中常侍 上大夫 中大夫 大夫 令尹 司寇 冢宰 相國 上卿 太史令 太史
    太祝 三班奉職 承務郎 承事郎 宣教郎 通直郎 朝請郎 朝散大夫 朝奉郎 朝奉大夫 迪功郎
    文林郎 儒林郎 從事郎 從政郎 修職郎 登仕郎 將仕郎 尚書郎 中書門下平章事 御史 將軍
    司馬 舍人 諫官 學正 學錄 山長 縣主簿 軍事推官 節度推官 節度判官 觀察推官 掌書記
    監軍 中尉 校尉 都尉 司隸校尉 車騎都尉 內史 丞 少卿 太宰
    """
)

TITLE_PREFIXES = ("檢校", "權")

DYNASTIES_MULTI = _words(
    """
    東周 西周 春秋 戰國 西漢 東漢 前漢 後漢 蜀漢 曹魏 孫吳 西晉 東晉 劉宋 南齊
    蕭齊 南梁 蕭梁 南陳 北魏 東魏 西魏 北齊 北周 後梁 後唐 後晉 後周 前蜀 後蜀
    南唐 南漢 北漢 吳越 北宋 南宋 大宋 大唐 大漢 大明 大清 皇明 有明 有唐 有宋
    五代 十國 三國 六朝 南朝 北朝 前秦 後秦 西秦 前燕 後燕 前涼 後涼 北涼 西涼
    南燕 北燕 後趙 成漢 胡夏 西夏 大理 南詔 渤海 蒙元 南明 初唐 盛唐 中唐 晚唐
    """
)

# Single-character dynasty names: tagged only in context (see silver.py).
DYNASTIES_SINGLE = tuple("夏商周秦漢晉隋唐宋元明清遼金魏蜀吳梁陳齊")

BOOKS = _words(
    """
    史記 漢書 後漢書 三國志 晉書 宋書 南齊書 梁書 陳書 魏書 北齊書 周書 隋書 南史
    北史 舊唐書 新唐書 舊五代史 新五代史 宋史 遼史 金史 元史 明史 資治通鑑 通鑑 通典
    文獻通考 論語 孟子 大學 中庸 周易 易經 尚書 詩經 毛詩 禮記 周禮 儀禮 左傳
    春秋左氏傳 公羊傳 穀梁傳 爾雅 孝經 說文解字 說文 莊子 老子 道德經 荀子 韓非子
    墨子 列子 管子 淮南子 呂氏春秋 楚辭 文選 昭明文選 世說新語 水經注 山海經 國語
    戰國策 貞觀政要 太平御覽 太平廣記 冊府元龜 文苑英華 全唐詩 全唐文 宋詩紀事 唐詩紀事
    郡齋讀書志 直齋書錄解題 四庫全書總目 宋會要輯稿 續資治通鑑長編 建炎以來繫年要錄
    輿地紀勝 元和郡縣志 太平寰宇記 永樂大典 東都事略 宋元學案 五燈會元 景德傳燈錄 高僧傳
    列女傳 列仙傳 搜神記 古文觀止 昭明文選 玉臺新詠 花間集 樂府詩集
    """
)

PROVINCES = _words(
    """
    河北 河南 山東 山西 陝西 甘肅 四川 江蘇 浙江 安徽 江西 福建 湖南 湖北 廣東
    廣西 雲南 貴州 遼寧 吉林 黑龍江 內蒙古 寧夏 青海 新疆 西藏 臺灣 海南 北京 天津
    上海 重慶
    """
)

PLACES = _words(
    """
    京師 匈奴 突厥 高麗 回紇 回鶻 吐蕃 鮮卑 黨項 女真 蒙古 新羅 百濟 日本 天竺 大食
    長安 洛陽 開封 汴京 汴梁 東京 西京 南京 北京 臨安 金陵 建康 揚州 蘇州 杭州
    越州 明州 溫州 台州 婺州 衢州 處州 湖州 秀州 常州 潤州 江寧 鄂州 潭州 岳州
    衡州 永州 道州 郴州 桂州 廣州 韶州 潮州 惠州 循州 梅州 儋州 瓊州 交州 益州
    成都 梓州 綿州 眉州 嘉州 夔州 渝州 黔州 瀘州 涪州 利州 興元 漢中 鳳翔 岐州
    秦州 涼州 甘州 肅州 沙州 瓜州 靈州 夏州 延州 鄜州 同州 華州 陝州 虢州 汝州
    鄧州 襄州 襄陽 荊州 江陵 峽州 歸州 復州 郢州 隨州 安州 黃州 蘄州 舒州 廬州
    壽州 濠州 泗州 楚州 海州 徐州 宿州 亳州 宋州 曹州 濮州 鄆州 兗州 齊州 青州
    密州 萊州 登州 淄州 濰州 滄州 德州 棣州 博州 貝州 冀州 深州 趙州 定州 易州
    幽州 涿州 瀛洲 莫州 雄州 霸州 并州 太原 代州 忻州 汾州 潞州 澤州 絳州 晉州
    蒲州 河中 河東 河西 河北 河南 關中 關西 山東 江南 江東 江西 淮南 淮西 湖南
    湖北 嶺南 嶺表 巴蜀 吳越 荊楚 燕雲 幽燕 中原 西域 塞北 漠北 會稽 錢塘 吳興
    吳郡 丹陽 宣城 豫章 廬陵 九江 潯陽 武昌 江夏 零陵 長沙 南海 番禺 蒼梧 桂林
    交趾 合浦 日南 九真 蜀郡 巴郡 漢中 隴西 天水 安定 北地 上郡 朔方 五原 雲中
    雁門 代郡 上谷 漁陽 右北平 遼西 遼東 樂浪 玄菟 涿郡 渤海 平原 濟南 北海 東萊
    琅邪 琅琊 東海 彭城 下邳 沛郡 汝南 潁川 陳留 梁國 南陽 南郡 河內 弘農 京兆
    馮翊 扶風 三輔 洛陽 鄴 許昌 睢陽 廣陵 京口 姑蘇 吳縣 崑山 常熟 無錫 宜興 嘉興
    海鹽 餘杭 富陽 桐廬 蘭溪 金華 義烏 東陽 永嘉 天台 臨海 寧波 鄞縣 紹興 山陰
    諸暨 上虞 剡縣 嵊縣 新昌 餘姚 慈溪 建安 建陽 浦城 崇安 邵武 泉州 漳州 福州
    莆田 仙遊 晉江 南安 長樂 閩縣 侯官 南劍 延平 汀州 吉州 吉安 撫州 臨川 饒州
    鄱陽 信州 上饒 洪州 南昌 筠州 袁州 贛州 虔州 南康 江州 德安 分寧 寧都 婺源
    歙縣 休寧 績溪 祁門 黟縣 徽州 宣州 池州 太平州 當塗 蕪湖 和州 無為 廬江 合肥
    六安 光州 蔡州 陳州 潁州 許州 鄭州 滑州 衛州 相州 磁州 洺州 邢州 懷州 孟州
    西安 大同 泰山 華山 嵩山 衡山 廬山 終南山 峨眉山 天台山 黃河 長江 淮河 漢水
    渭水 洛水 汴水 湘江 錢塘江 太湖 洞庭 鄱陽湖 西湖 赤壁 陳橋 玉門關 潼關 函谷關
    劍門 雁門關 居庸關 山海關 蘭亭 岳陽樓 滕王閣 黃鶴樓 姑蘇臺 鳳凰臺
    """
)

FAMOUS_PERSONS = _words(
    """
    孔子 孟子 曾子 顏淵 顏回 子路 子貢 子夏 子游 子張 冉有 宰我 仲尼 孔丘 孟軻
    荀卿 荀況 老聃 莊周 墨翟 韓非 管仲 晏嬰 晏子 伯夷 叔齊 周公 召公 太公望 姜尚
    文王 武王 成王 周文王 周武王 秦始皇 始皇帝 漢高祖 劉邦 項羽 項籍 韓信 張良 蕭何
    曹參 陳平 周勃 賈誼 晁錯 司馬遷 司馬相如 董仲舒 班固 班超 張騫 衛青 霍去病 李廣
    蘇武 王莽 劉秀 光武帝 諸葛亮 劉備 關羽 張飛 曹操 曹丕 曹植 孫權 周瑜 魯肅 陸遜
    司馬懿 嵇康 阮籍 王羲之 王獻之 陶潛 陶淵明 謝安 謝靈運 謝朓 鮑照 庾信 顏之推
    魏徵 房玄齡 杜如晦 長孫無忌 狄仁傑 姚崇 宋璟 張說 張九齡 李林甫 楊國忠 安祿山
    史思明 郭子儀 李光弼 顏真卿 柳公權 歐陽詢 褚遂良 虞世南 陸贄 李德裕 牛僧孺 裴度
    歐陽修 司馬光 王安石 蘇軾 蘇轍 蘇洵 曾鞏 范仲淹 韓琦 富弼 文彥博 包拯 岳飛 秦檜
    韓世忠 辛棄疾 陸游 朱熹 程顥 程頤 周敦頤 張載 邵雍 陸九淵 黃庭坚 黃庭堅 米芾
    蔡襄 蔡京 童貫 文天祥 陸秀夫 張世傑 趙匡胤 趙光義 趙普 寇準 晏殊 柳永 李清照
    楊萬里 范成大 尤袤 姜夔 劉基 宋濂 方孝孺 王守仁 王陽明 海瑞
    張居正 戚繼光 鄭和 于謙 歸有光 顧炎武 黃宗羲 王夫之 紀昀 曾國藩 李鴻章 左宗棠
    林則徐 屈原 宋玉 左丘明 李華 駱賓王 王勃 李格非 李覯 王禹偁 錢公輔
    梁惠王 齊宣王 滕文公 告子
    萬章 公孫丑 離婁 陽貨 季氏 微子 堯 舜 禹 湯 桀 紂
    """
)
# 古文觀止 is held out (streams.corpora): the names first taken from it (its editors, its
# authors, the people of its first chapter) were removed on 2026-12-08, except those another
# installed source names: 屈原 宋玉 (authors in chuci), 左丘明 (論語), 李華 駱賓王 王勃
# (authors in 全唐詩), 李格非 李覯 王禹偁 錢公輔 (Song authors). tests/unit/test_held_out.py
# keeps the removed ones out.

# Zhou-period states: PLACE by the guideline (not DYNASTY); tagged in context only.
ZHOU_STATES = "魯齊晉楚秦宋衛鄭陳蔡吳越燕趙韓魏曹許莒邾杞虞虢滕薛"
NOBLE_SUFFIXES = ("郡王", "國公", "郡公", "縣公", "縣侯", "縣伯", "侯", "王", "公", "伯")

ERA_YEAR_NUMERALS = _words(
    """
    元 二 三 四 五 六 七 八 九 十 十一 十二 十三 十四 十五 十六 十七 十八 十九
    二十 二十一 二十二 二十三 二十四 二十五 二十六 二十七 二十八 二十九 三十 三十一
    三十二 三十五 四十 四十五 六十
    """
)
MONTHS = _words(
    """
    正 二 三 四 五 六 七 八 九 十 十一 十二 閏三 閏八 冬 臘
    """
)
DAYS_NUM = _words(
    """
    一 二 三 五 七 十 十二 十五 十八 二十 廿一 廿三 二十八 三十
    """
)
STEMS = "甲乙丙丁戊己庚辛壬癸"
BRANCHES = "子丑寅卯辰巳午未申酉戌亥"


@dataclass(frozen=True)
class Era:
    name: str
    dynasty: str
    begin: int
    end: int


def _s2t(text: str) -> str:
    return _converter().convert(text)


@functools.cache
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("s2t")


@functools.cache
def eras() -> tuple[Era, ...]:
    """Reign eras from chhiskit's table, converted to traditional characters."""
    try:
        base = resources.files("chhiskit") / "data" / "dynasties" / "dynasty_clean.csv"
        text = base.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return ()
    out: list[Era] = []
    seen: set[tuple[str, str]] = set()
    for row in csv.DictReader(text.splitlines()):
        name = _s2t(row["reignTitle"].strip())
        if len(name) < 2:
            continue
        dynasty = _s2t(row["dynasty"].strip())
        key = (name, dynasty)
        if key in seen:
            continue
        seen.add(key)
        try:
            begin, end = int(row["beginYear"]), int(row["endYear"] or row["beginYear"])
        except ValueError:
            continue
        out.append(Era(name, dynasty, begin, end))
    return tuple(out)


@functools.cache
def chhiskit_dynasties() -> tuple[str, ...]:
    try:
        base = resources.files("chhiskit") / "data" / "dynasties" / "dynasty_clean.csv"
        text = base.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return ()
    names = {
        _s2t(row["dynasty"].strip()).split("(")[0] for row in csv.DictReader(text.splitlines())
    }
    return tuple(sorted(n for n in names if len(n) >= 2 and n not in {"當代", "民國", "元封"}))


@dataclass(frozen=True)
class NameLists:
    surnames: tuple[str, ...]
    given_names: tuple[str, ...]
    places: tuple[str, ...]


@functools.cache
def udkanbun_names() -> NameLists:
    """Surnames, given names and places from udkanbun's MeCab name dictionary."""
    try:
        root = Path(str(resources.files("udkanbun"))) / "mecab-kanbun" / "dict.name.csv"
        lines = root.read_text(encoding="utf-8").splitlines()
    except (ModuleNotFoundError, FileNotFoundError):
        return NameLists((), (), ())
    surnames: set[str] = set()
    given: set[str] = set()
    places: set[str] = set()
    for line in lines:
        cols = line.split(",")
        if len(cols) < 8:
            continue
        word, kind = cols[0], (cols[6], cols[7])
        if not word or any(ord(ch) < 0x3400 for ch in word):
            continue
        if kind == ("人", "姓氏"):
            surnames.add(word)
        elif kind == ("人", "名"):
            given.add(word)
        elif kind == ("固定物", "地名"):
            places.add(word)
    return NameLists(tuple(sorted(surnames)), tuple(sorted(given)), tuple(sorted(places)))


@functools.cache
def official_titles() -> tuple[str, ...]:
    """Full titles: base titles plus ministry and bureau compounds and 檢校-style prefixes."""
    titles: set[str] = set(BASE_TITLES)
    for m in MINISTRIES:
        for t in ("尚書", "侍郎", "郎中", "員外郎"):
            titles.add(m + t)
    for b in SUB_BUREAUS:
        for t in ("郎中", "員外郎"):
            titles.add(b + t)
    for hall in (
        "龍圖",
        "天章",
        "寶文",
        "顯謨",
        "徽猷",
        "敷文",
        "煥章",
        "華文",
        "寶謨",
        "寶章",
        "顯文",
    ):
        for t in ("閣學士", "閣直學士", "閣待制", "直閣"):
            titles.add(hall + t)
    for b in ("度支", "鹽鐵", "戶部", "三司"):
        titles.add(b + "判官")
    core = sorted(titles)
    for p in TITLE_PREFIXES:
        for t in core:
            if len(t) >= 2 and not t.startswith(p):
                titles.add(p + t)
    return tuple(sorted(titles))


def dynasties_multi() -> tuple[str, ...]:
    return tuple(sorted(set(DYNASTIES_MULTI) | set(chhiskit_dynasties())))
