"""The entity stage on sample sentences, the gold file's shape, and `piaoxi eval entities`."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.entities import MODEL_VERSION, STAGE_VERSION, Entity, find_entities, merge
from streams.evaluation import GOLD_PATH, evaluate_gold, load_gold, pages, prf

REPO = Path(__file__).resolve().parents[2]
PIAOXI = str(Path(sys.executable).parent / "piaoxi")


def spans(text: str, **kw: object) -> set[tuple[str, str]]:
    return {(e.type, e.surface) for e in find_entities(text, use_model=False, **kw)}  # type: ignore[arg-type]


def test_nested_title_is_split_flat() -> None:
    found = find_entities("漢丞相諸葛亮上表曰：臣本布衣。", use_model=False)
    assert [(e.type, e.surface) for e in found] == [
        ("DYNASTY", "漢"),
        ("OFFICIAL_TITLE", "丞相"),
        ("PERSON", "諸葛亮"),
    ]


def test_spans_are_flat_sorted_and_match_the_text() -> None:
    text = "李白，字太白，隴西成紀人。天寶初，召入翰林。事見《新唐書》卷二〇二。"
    found = find_entities(text)
    for e in found:
        assert text[e.start : e.end] == e.surface
        assert e.source in ("gazetteer", "model", "pattern")
        assert 0.0 <= e.confidence <= 1.0
    for a, b in itertools.pairwise(found):
        assert a.end <= b.start


def test_era_dates_get_western_years() -> None:
    found = find_entities("唐貞觀三年，太宗命李靖擊突厥。開元二十三年春正月，親耕藉田。")
    dates = [(e.surface, e.year_from, e.year_to) for e in found if e.type == "ERA_DATE"]
    assert dates == [("貞觀三年", 629, 629), ("開元二十三年春正月", 735, 735)]
    assert ("DYNASTY", "唐") in {(e.type, e.surface) for e in found}


def test_ambiguous_era_uses_the_dynasty_in_the_sentence() -> None:
    found = find_entities("吳太平二年，諸葛誕以壽春來附。", use_model=False)
    date = next(e for e in found if e.type == "ERA_DATE")
    assert (date.year_from, date.year_to) == (257, 257)


def test_ambiguous_era_uses_the_document_dynasty() -> None:
    text = "太平二年，大赦。"
    alone = next(e for e in find_entities(text, use_model=False) if e.type == "ERA_DATE")
    assert alone.year_from != alone.year_to  # a range over the candidates
    assert alone.confidence < 0.5
    with_context = next(
        e
        for e in find_entities(text, context_dynasty="梁", use_model=False)
        if e.type == "ERA_DATE"
    )
    assert (with_context.year_from, with_context.year_to) == (557, 557)


def test_ruler_in_the_sentence_settles_the_era() -> None:
    found = find_entities("建武三年，光武至洛陽。", use_model=False)
    date = next(e for e in found if e.type == "ERA_DATE")
    assert date.year_from == date.year_to == 27


def test_a_resolved_neighbour_settles_an_ambiguous_era() -> None:
    text = "貞觀三年，遷中書令。天寶三載，卒。"
    found = [e for e in find_entities(text, use_model=False) if e.type == "ERA_DATE"]
    assert [(e.year_from, e.year_to) for e in found] == [(629, 629), (744, 744)]


def test_era_names_that_are_words_need_a_year() -> None:
    assert ("PLACE", "長安") in spans("長安中，為監察御史。")
    assert not any(t == "ERA_DATE" for t, _ in spans("天下太平，百姓安樂。"))


def test_books_titles_places_and_biography_patterns() -> None:
    found = spans("蘇軾，字子瞻，眉州眉山人。《東坡集》四十卷。元豐二年，責授黃州團練副使。")
    assert {
        ("PERSON", "蘇軾"),
        ("PERSON", "子瞻"),
        ("PLACE", "眉州"),
        ("BOOK", "東坡集"),
        ("PLACE", "黃州"),
        ("OFFICIAL_TITLE", "團練副使"),
    } <= found


def test_single_character_dynasty_only_in_context() -> None:
    assert ("DYNASTY", "宋") in spans("入宋，授右庶子。")
    assert ("DYNASTY", "唐") in spans("《通典》二百卷，唐杜佑撰。")
    assert not any(t == "DYNASTY" for t, _ in spans("明月照高樓。"))


def test_merge_prefers_gazetteer_dates_and_trims_model_spans() -> None:
    text = "唐太宗即位"
    gazetteer = [Entity("DYNASTY", "唐", 0, 1), Entity("PERSON", "太宗", 1, 3)]
    model = [
        Entity("PERSON", "唐太宗", 0, 3, source="model"),
        Entity("PLACE", "即位", 3, 5, source="model"),
    ]
    merged = merge(text, gazetteer, model)
    assert [(e.type, e.surface) for e in merged] == [
        ("DYNASTY", "唐"),
        ("PERSON", "太宗"),
        ("PLACE", "即位"),
    ]


def test_empty_and_plain_text() -> None:
    assert find_entities("") == []
    assert find_entities("   \n") == []
    assert find_entities("hello world 123") == []


def test_versions() -> None:
    assert STAGE_VERSION.count(".") == 2
    assert MODEL_VERSION.startswith("gazetteer-") and "+ner-" in MODEL_VERSION


def test_gold_file_is_well_formed() -> None:
    lines = GOLD_PATH.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert "never" in header["_comment"].lower()
    gold = load_gold()
    assert len(gold) >= 300
    assert len({s.text for s in gold}) == len(gold)
    types = {"PERSON", "PLACE", "DYNASTY", "ERA_DATE", "OFFICIAL_TITLE", "BOOK"}
    sources = set()
    for sentence in gold:
        sources.add(sentence.source.split("·")[0])
        last_end = 0
        for e in sentence.entities:
            assert e.type in types
            assert sentence.text[e.start : e.end] == e.surface, (sentence.id, e)
            assert e.start >= last_end, f"overlap in {sentence.id}"
            last_end = e.end
            if e.type == "ERA_DATE":
                assert e.year_from is not None and e.year_to is not None
                assert e.year_from <= e.year_to
    assert len(sources) >= 10  # histories, gazetteers, prefaces, notes ...


def test_gold_file_matches_its_source() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gold_build", REPO / "tests" / "data" / "gold_entities_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text, entities = module.parse_line("[D:漢][T:丞相][P:諸葛亮]，[E:建興五年=227]")
    assert text == "漢丞相諸葛亮，建興五年"
    assert entities[-1]["year_from"] == 227
    src_lines = [
        ln
        for ln in (REPO / "tests/data/gold_entities.src.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(src_lines) == len(load_gold())


def test_evaluate_gold_scores_a_perfect_finder() -> None:
    gold = load_gold()[:20]

    def oracle(text: str, **_: object) -> list[Entity]:
        sentence = next(s for s in gold if s.text == text)
        return [
            Entity(e.type, e.surface, e.start, e.end, year_from=e.year_from, year_to=e.year_to)
            for e in sentence.entities
        ]

    report = evaluate_gold(gold, find=oracle)
    assert report["micro"]["f1"] == 1.0
    assert report["era_year"]["accuracy"] in (0.0, 1.0)
    assert report["errors"] == []


def test_prf_and_pages() -> None:
    assert prf(8, 2, 2)["f1"] == pytest.approx(0.8)
    assert prf(0, 0, 0)["f1"] == 0.0
    chunks = pages(["甲" * 700, "乙" * 900, "丙" * 100], size=1500, limit=10_000)
    assert chunks[0] == "甲" * 700 + "\n" + "乙" * 900
    assert chunks[1] == "丙" * 100


def test_eval_command_prints_a_table() -> None:
    result = subprocess.run(
        [
            PIAOXI,
            "eval",
            "entities",
            "--no-model",
            "--tang-limit",
            "200",
            "--speed-chars",
            "5000",
            "--processes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "micro" in out and "PERSON" in out and "era-year accuracy" in out
    assert "chars/s" in out


def test_eval_command_json() -> None:
    result = subprocess.run(
        [
            PIAOXI,
            "eval",
            "entities",
            "--json",
            "--no-model",
            "--tang-limit",
            "50",
            "--speed-chars",
            "2000",
            "--processes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["gold"]["per_type"]) == {
        "PERSON",
        "PLACE",
        "DYNASTY",
        "ERA_DATE",
        "OFFICIAL_TITLE",
        "BOOK",
    }
    assert 0.0 <= report["gold"]["micro"]["f1"] <= 1.0


def test_subject_recall_is_reported_per_half_with_misses_from_the_open_half_only() -> None:
    from streams.evaluation import evaluate_subjects, tang_half

    bios = [
        ("張齊賢", "張齊賢，聖曆初為太常奉禮郎。"),
        ("韋應物", "韋應物，京兆長安人。"),
        ("某甲乙", "其後某甲乙來。"),  # not found: no pattern names it
        ("乙", "乙，人也。"),  # one character: not usable
    ]
    report = evaluate_subjects(bios, use_model=False)
    assert report["usable"] == 3 and report["subject_found"] == 2
    halves = report["halves"]
    assert halves["open"]["usable"] + halves["sealed"]["usable"] == 3
    expected_misses = {"某甲乙"} if tang_half("某甲乙") == "open" else set()
    assert set(report["missed_examples"]) == expected_misses


def test_throughput_with_fewer_texts_than_processes() -> None:
    from streams.evaluation import throughput

    report = throughput(["貞觀三年，玄奘西行。"], processes=2, use_model=False)
    assert report["processes"] == 1 and report["chars"] == 10


def test_invariants_on_random_text() -> None:
    import random

    rng = random.Random(7)
    alphabet = "貞觀開元天寶三年十月初唐宋漢晉吳蜀丞相刺史諸葛亮揚州《》，。、；字號人者之為\n a1"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        found = find_entities(text, use_model=False)
        last = 0
        for e in found:
            assert text[e.start : e.end] == e.surface
            assert e.start >= last and e.end > e.start
            last = e.end
            if e.type == "ERA_DATE" and e.year_from is not None:
                assert e.year_to is not None and e.year_from <= e.year_to


def test_a_line_opening_with_a_surname_and_a_comma_is_a_person() -> None:
    assert ("PERSON", "張齊賢") in spans("張齊賢，聖曆初為太常奉禮郎。")
    assert ("PERSON", "皇甫松") in spans("皇甫松，湜之子。")
    # not a name: a place, a clause opener, a known word
    assert not any(t == "PERSON" for t, _ in spans("成都府，古蜀國。"))
    assert not any(t == "PERSON" for t, _ in spans("是歲，大旱。"))


def test_entries_of_a_biographical_dictionary_open_with_their_subject() -> None:
    # no known surname: what the entry says next marks a person (a monk, an official)
    assert ("PERSON", "智積") in spans("智積，天台山僧。詩一首。")
    assert ("PERSON", "繁欽") in spans("繁欽，潁川人。")
    assert ("PERSON", "寶積") in spans("寶積禪師，住幽州盤山。")
    assert ("PERSON", "洞山和尚") in spans("洞山和尚，嗣雲巖。")
    # northern compound surnames, and a courtesy name with no comma before it
    assert ("PERSON", "豆盧欽望") in spans("豆盧欽望，京兆人。")
    assert ("PERSON", "王珪") in spans("王珪字叔玠，太原人。")
    # a name, not a Daoist temple (觀) or a cave (洞), when a line opens an entry
    assert ("PERSON", "王觀") in spans("王觀，大曆間人。")
    assert ("PLACE", "王觀") not in spans("王觀，大曆間人。")
    # an editor's note on what a collection holds names the author
    assert ("PERSON", "李嶠") in spans("詩一首。（《全唐詩》無李嶠詩）")
    assert ("PERSON", "張詠") in spans("（《全宋詩》卷三收張詠詩一首）")
    # no surname and nothing said of a person: not a name
    assert not any(t == "PERSON" for t, _ in spans("天下，大器也。"))
    assert not any(t == "PERSON" for t, _ in spans("王屋山，在河南。"))


def test_chapters_of_the_documents_quoted_without_brackets_are_books() -> None:
    assert ("BOOK", "湯誓") in spans("湯誓曰：時日害喪，予及女偕亡。")
    assert ("BOOK", "康誥") in spans("康誥曰：克明德。")
    assert not any(t == "BOOK" for t, _ in spans("受顧命輔政。"))


def test_a_bare_given_name_refers_back_to_a_named_person() -> None:
    text = "諸葛亮，字孔明。先主遂詣亮，凡三往。建興元年，封亮武鄉侯。"
    found = [e for e in find_entities(text, use_model=False) if e.surface == "亮"]
    assert [e.start for e in found] == [text.index("詣亮") + 1, text.index("封亮") + 1]
    assert all(e.type == "PERSON" and e.confidence <= 0.5 for e in found)
    assert not any(e.surface == "亮" for e in find_entities("月亮。", use_model=False))


def test_place_suffixes_belong_to_the_place() -> None:
    assert ("PLACE", "揚州府") in spans("揚州府，禹貢揚州之域。")
    found = spans("宴集於會稽山陰之蘭亭。")
    assert ("PLACE", "會稽") in found and ("PLACE", "山陰") in found


def test_noble_titles_and_princes() -> None:
    found = spans("舞陰侯岑彭者，南陽人也。")
    assert ("OFFICIAL_TITLE", "舞陰侯") in found or ("PLACE", "南陽") in found
    found = spans("初事秦王於藩邸，秦王世民親征。")
    assert ("OFFICIAL_TITLE", "秦王") in found
    found = spans("宋太宗子楚王元佐之後也。")
    assert ("OFFICIAL_TITLE", "楚王") in found and ("PERSON", "元佐") in found
    # a known place followed by 侯 that starts another place is not a noble title
    assert not any(t == "OFFICIAL_TITLE" for t, _ in spans("福建侯官人。"))


def test_zhou_states_are_places_in_context() -> None:
    found = spans("其先趙人也，為魏將所殺。")
    assert ("PLACE", "趙") in found
    assert ("PLACE", "楚") in spans("春秋屬楚，戰國屬秦。")


def test_dynasties_in_runs_and_new_regime_names() -> None:
    found = spans("論文章，漢魏晉之際最盛。")
    assert {("DYNASTY", "漢"), ("DYNASTY", "魏"), ("DYNASTY", "晉")} <= found
    assert ("DYNASTY", "大秦") in spans("國號大秦。") or ("DYNASTY", "秦") in spans("國號秦。")
    # a biography opening with a dynasty-like surname stays a name
    assert ("PERSON", "陳仁玉") in spans("陳仁玉，字德公，台州人。")


def test_office_phrases_colonels_and_names_after_titles() -> None:
    found = spans("以為都督荊州諸軍事，長水校尉馬忠從之。")
    assert ("OFFICIAL_TITLE", "都督荊州諸軍事") in found
    assert ("OFFICIAL_TITLE", "長水校尉") in found and ("PERSON", "馬忠") in found


def test_named_sites_and_counted_places() -> None:
    assert ("PLACE", "開元寺") in spans("開元寺在城東。")
    found = spans("領南安、同安二縣。")
    assert ("PLACE", "南安") in found and ("PLACE", "同安") in found


def test_model_spans_are_tidied() -> None:
    from streams.entities import tidy_model_spans

    text = "柳宗元、劉禹錫皆坐貶，南郊。"
    raw = [
        Entity("PERSON", "劉禹", 4, 6, confidence=0.8, source="model"),
        Entity("PLACE", "南", 11, 12, confidence=0.9, source="model"),
        Entity("BOOK", "坐貶", 8, 10, confidence=0.5, source="model"),
    ]
    tidy = tidy_model_spans(text, raw)
    assert [(e.type, e.surface) for e in tidy] == [("PERSON", "劉禹錫")]
    # a generic unit before a title is neither a place nor part of the title
    text = "起為州祭酒。"
    raw = [Entity("OFFICIAL_TITLE", "州祭酒", 2, 5, confidence=0.9, source="model")]
    assert [(e.surface, e.start) for e in tidy_model_spans(text, raw)] == [("祭酒", 3)]
    # generic words are no named places
    text = "文王以民力為臺為沼，而民歡樂之，樂其有臺池鳥獸。"
    raw = [Entity("PLACE", "臺池", 19, 21, confidence=0.8, source="model")]
    assert tidy_model_spans(text, raw) == []


def test_a_model_title_inside_a_longer_known_title_does_not_win() -> None:
    text = "則天時為同鳳閣鸞臺平章事。"
    known = [
        Entity("OFFICIAL_TITLE", "平章事", 9, 12),
        Entity("OFFICIAL_TITLE", "同鳳閣鸞臺平章事", 4, 12, source="pattern"),
    ]
    model = [Entity("OFFICIAL_TITLE", "臺平章事", 8, 12, source="model")]
    merged = merge(text, known, model)
    assert [(e.type, e.surface) for e in merged] == [("OFFICIAL_TITLE", "同鳳閣鸞臺平章事")]
