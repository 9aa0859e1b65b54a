"""古文觀止 is held out by the project's owner: no training source, word list or module reads it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from streams.corpora import HeldOutError, held_out_text, is_held_out, load_poetry_json, poetry_root
from streams.data import gazetteer_build
from streams.ner import lexicon, silver

ROOT = Path(__file__).resolve().parents[2]
# Code that runs, trains, renders or benchmarks (tests may name the file to check the rule).
CODE_DIRS = ("streams", "bench", "piaoxi", "api", "projections", "events", "tests/data")
# Names the word lists had first taken from 古文觀止 (its editors, authors no other
# installed source names, the people of 鄭伯克段于鄢); removed on 2026-12-08.
REMOVED_NAMES = lexicon._words(
    """
    吳楚材 吳調侯 吳興祚 公羊高 穀梁赤 劉向 李斯 劉徹 劉啓 劉恆 李陵 楊惲 路溫舒 鄒陽
    馬援 孔稚珪 唐順之 宗臣 張溥 王世貞 茅坤 袁宏道 王鏊 鄭伯 莊公 共叔段 武姜 祭仲
    """
)
MARKER = "鄭伯克段於鄢"


def test_no_training_file_is_held_out() -> None:
    assert silver.TRAINING_FILES
    assert not any(is_held_out(rel) for rel in silver.TRAINING_FILES)
    assert silver.TANG_BIOGRAPHIES not in silver.TRAINING_FILES


def _fake_corpus(root: Path) -> None:
    """A chinese-poetry tree with every training file and a held-out file holding MARKER."""
    files: dict[str, object] = {
        silver.SONG_BIOGRAPHIES: [{"name": "張詠", "desc": "張詠，字復之，濮州鄄城人。"}],
        "lunyu/lunyu.json": [{"paragraphs": ["子曰：學而時習之。"]}],
        "sishuwujing/mengzi.json": [{"paragraphs": ["孟子見梁惠王。"]}],
        "sishuwujing/daxue.json": {"paragraphs": ["大學之道，在明明德。"]},
        "sishuwujing/zhongyong.json": {"paragraphs": ["天命之謂性。"]},
        "mengxue/guwenguanzhi.json": {
            "title": "古文觀止",
            "content": [{"content": [{"chapter": MARKER, "paragraphs": [MARKER + "。"]}]}],
        },
    }
    for rel, data in files.items():
        path = root / "dist" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_build_dataset_reads_every_training_file_and_never_the_held_out_one(
    tmp_path: Path,
) -> None:
    _fake_corpus(tmp_path)
    examples = silver.build_dataset(3, tmp_path, synthetic=50)
    texts = "\n".join(e.text for e in examples)
    assert {e.source for e in examples} == {"song-bio", "sishu", "synthetic"}
    assert "鄄城" in texts and "明明德" in texts  # both kinds of training file were read
    assert MARKER not in texts


def test_the_held_out_file_cannot_be_a_training_file(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    with pytest.raises(HeldOutError):
        load_poetry_json(tmp_path, "mengxue/guwenguanzhi.json")


def _python_files() -> list[Path]:
    out: list[Path] = []
    for folder in CODE_DIRS:
        out.extend(sorted((ROOT / folder).rglob("*.py")))
    return [p for p in out if p.resolve() != (ROOT / "streams" / "corpora.py").resolve()]


def test_no_module_but_streams_corpora_names_the_held_out_file() -> None:
    """The held-out file's name, or a path to it, appears only in streams/corpora.py."""
    offenders: list[str] = []
    for path in _python_files():
        source = path.read_text(encoding="utf-8")
        if re.search("guwenguanzhi", source, re.IGNORECASE):
            offenders.append(f"{path.relative_to(ROOT)}: names guwenguanzhi")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                path_like = re.fullmatch(r"[\w./\\-]+", value) and ("/" in value or "." in value)
                if path_like and is_held_out(value):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {value[:40]}")
    assert len(_python_files()) > 50
    assert not offenders, offenders


def test_names_taken_from_the_held_out_work_are_in_no_word_list() -> None:
    gazetteer = (ROOT / "streams" / "data" / "gazetteer.tsv").read_text(encoding="utf-8")
    # GIVEN rows are given names of Song subjects (宗臣 is one): not names of persons.
    rows = [line.split("\t") for line in gazetteer.splitlines()]
    listed = {row[0] for row in rows if row[1] not in ("GIVEN", "SURNAME")}
    persons = set(lexicon.FAMOUS_PERSONS) | set(gazetteer_build.RULER_NAMES)
    assert not [n for n in REMOVED_NAMES if n in persons or n in listed]


# Splits written for issue 15 (after the held-out rule): none may copy the held-out work.
NEW_SPLITS = ("fresh4", "dev4")
RUN = 8  # CJK characters


def _runs(text: str, n: int = RUN) -> set[str]:
    squeezed = "".join(ch for ch in text if "\u3400" <= ch <= "\u9fff").replace("爲", "為")
    return {squeezed[i : i + n] for i in range(len(squeezed) - n + 1)}


def test_no_new_gold_sentence_is_taken_from_the_held_out_work() -> None:
    """No run of 8 characters of a new gold sentence is in 古文觀止, unless the 四書 have it
    too (古文觀止 quotes the classics; a quotation of them is not a copy of it)."""
    try:
        root = poetry_root()
    except FileNotFoundError:
        pytest.skip("chinese-poetry is not installed (make corpora)")
    from streams.evaluation import load_gold

    held = _runs(held_out_text(root))
    classics = _runs("\n".join(silver.sishu_paragraphs(root)))
    new = [s for s in load_gold() if s.split in NEW_SPLITS]
    assert len(new) >= 300
    copied = {s.id: sorted(_runs(s.text) & held - classics) for s in new}
    assert not {k: v for k, v in copied.items() if v}
