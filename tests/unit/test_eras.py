"""Era dates: numerals, Western years, ambiguous era names resolved by context."""

import pytest

from streams.eras import (
    document_dynasty,
    dynasty_matches,
    dynasty_table,
    era_table,
    parse_chinese_number,
    parse_era_date,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("十", 10),
        ("十二", 12),
        ("二十三", 23),
        ("廿三", 23),
        ("卅", 30),
        ("十有二", 12),
        ("二十有三", 23),
        ("元", 1),
        ("正", 1),
        ("百二十", 120),
        ("一九六〇", 1960),
        ("九", 9),
    ],
)
def test_chinese_numerals(text: str, value: int) -> None:
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("貞觀三年", 629),
        ("開元二十三年春正月", 735),
        ("開元元年", 713),  # the source table says 714: corrected
        ("天寶十載", 751),
        ("天寶十五載", 756),
        ("洪武元年", 1368),
        ("康熙三十三年", 1694),
        ("乾隆五十有八年", 1793),
        ("建安十三年", 208),
        ("元和十年", 815),
        ("神龍元年", 705),
        ("元祐元年", 1086),
        ("紹興三十二年", 1162),
        ("元狩二年", -121),
        ("征和二年", -91),
    ],
)
def test_known_eras_give_the_western_year(text: str, year: int) -> None:
    date = parse_era_date(text)
    assert date is not None
    assert date.year == year
    assert date.confidence >= 0.9


def test_month_day_and_season_are_kept() -> None:
    date = parse_era_date("開元二十三年春正月")
    assert date is not None
    assert (date.year_in_era, date.season, date.month) == (23, "春", 1)
    day = parse_era_date("元和十年閏六月初三日")
    assert day is not None
    assert (day.leap, day.month, day.day) == (True, 6, 3)
    gz = parse_era_date("洪武元年冬十月甲子")
    assert gz is not None
    assert (gz.month, gz.day_ganzhi) == (10, "甲子")


def test_era_without_year_gives_the_era_span() -> None:
    date = parse_era_date("貞觀中")
    assert date is not None
    assert (date.year_from, date.year_to) == (627, 649)


def test_bare_year_continues_the_default_era() -> None:
    date = parse_era_date("三年", default_era="貞觀")
    assert date is not None
    assert date.year == 629
    assert parse_era_date("三年") is None


@pytest.mark.parametrize("name", ["太平", "建武", "建興"])
def test_ambiguous_era_without_context_is_uncertain(name: str) -> None:
    date = parse_era_date(f"{name}二年")
    assert date is not None
    assert date.year is None or date.confidence <= 0.6
    if date.year is None:
        assert date.year_from is not None and date.year_to is not None
        assert date.year_from < date.year_to
        assert date.confidence < 0.5


@pytest.mark.parametrize(
    ("text", "context", "year"),
    [
        ("建武三年", ["漢"], 27),
        ("建武三年", ["東晉"], 319),
        ("建武三年", ["齊"], 496),
        ("太平二年", ["吳"], 257),
        ("太平二年", ["梁"], 557),
        ("太平二年", ["遼"], 1022),
        ("建興五年", ["蜀"], 227),
        ("建興五年", ["蜀漢"], 227),
        ("建興二年", ["吳"], 253),
        ("天寶三年", ["吳越"], 910),
        ("天寶三年", ["唐"], 744),
    ],
)
def test_context_dynasty_resolves_ambiguous_eras(text: str, context: list[str], year: int) -> None:
    date = parse_era_date(text, context_dynasties=context)
    assert date is not None
    assert date.year == year


def test_dynasty_prefix_resolves() -> None:
    date = parse_era_date("吳越天寶三年")
    assert date is not None
    assert (date.dynasty, date.year) == ("吳越", 910)
    han = parse_era_date("東漢建武三年")
    assert han is not None
    assert han.year == 27


def test_plausibility_excludes_short_homonyms() -> None:
    # 吳越 used 天寶 for five years only, so 天寶十載 is the Tang one.
    date = parse_era_date("天寶十載")
    assert date is not None
    assert date.dynasty == "唐"


def test_reused_name_in_one_dynasty_stays_uncertain() -> None:
    # 元 used 至元 twice (1264–1294, 1335–1340): 至元三年 could be either.
    date = parse_era_date("至元三年")
    assert date is not None
    assert date.year is None
    assert (date.year_from, date.year_to) == (1266, 1337)
    late = parse_era_date("至元二十年")  # only the first 至元 lasted that long
    assert late is not None
    assert late.year == 1283


def test_unknown_text_is_not_an_era() -> None:
    assert parse_era_date("天下大亂") is None


def test_tables_are_traditional_and_checked() -> None:
    eras = era_table()
    assert "貞觀" in eras and "贞观" not in eras
    assert "大曆" in eras and "萬曆" in eras  # 曆, not s2t's 歷
    assert len(eras) > 500
    assert "東漢" in dynasty_table()
    assert dynasty_matches("漢", "東漢")
    assert not dynasty_matches("唐", "吳越")


def test_era_names_match_cleaned_text_variants() -> None:
    # The cleaning stage folds 啓 to 啟; the era 光啓 must still be found.
    for text in ("光啓元年", "光啟元年"):
        date = parse_era_date(text)
        assert date is not None
        assert date.year == 885


def test_taichu_is_the_famous_one() -> None:
    # 哀帝's 太初元將 (5 BCE) must not make 武帝's 太初 ambiguous.
    date = parse_era_date("太初元年")
    assert date is not None
    assert date.year == -104


@pytest.mark.parametrize(
    ("title", "tags", "dynasty"),
    [
        ("舊唐書·李白傳", (), "唐"),
        ("宋史·岳飛傳", (), "宋"),
        ("後漢書·光武帝紀", (), "後漢"),
        ("唐·韓愈文集", (), "唐"),
        ("新五代史", (), "五代"),
        ("大唐西域記", (), "大唐"),
        # one-character words that are not dynasties here
        ("金剛經", (), None),
        ("周易", (), None),
        ("元和郡縣志", (), None),
        # no dynasty, or two of them: nothing to settle with
        ("史記", (), None),
        ("宋元學案", (), None),
        # the uploader's tag wins over the title
        ("雜抄", ("明",), "明"),
    ],
)
def test_document_dynasty_comes_from_a_tag_or_the_title(
    title: str, tags: tuple[str, ...], dynasty: str | None
) -> None:
    assert document_dynasty(title, tags) == dynasty
