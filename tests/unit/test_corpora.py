"""The held-out work (古文觀止) can be named but never loaded as a source."""

from pathlib import Path

import pytest

from streams.corpora import (
    HeldOutError,
    is_held_out,
    load_poetry_json,
    poetry_root,
    refuse_held_out,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name",
    [
        "mengxue/guwenguanzhi.json",
        "/x/chinese-poetry/dist/mengxue/GuWenGuanZhi.json",
        "古文觀止·鄭伯克段于鄢",
        "古文观止",
        Path("dist") / "mengxue" / "guwenguanzhi.json",
    ],
)
def test_the_held_out_work_is_recognised_by_path_file_or_title(name: str | Path) -> None:
    assert is_held_out(name)
    with pytest.raises(HeldOutError, match="held out"):
        refuse_held_out(name)


@pytest.mark.parametrize(
    "name", ["sishuwujing/mengzi.json", "lunyu/lunyu.json", "quantangshi/authors.song.json"]
)
def test_other_sources_are_not_held_out(name: str) -> None:
    assert not is_held_out(name)


def test_loading_the_held_out_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    held = tmp_path / "dist" / "mengxue" / "guwenguanzhi.json"
    held.parent.mkdir(parents=True)
    held.write_text('{"title": "x"}', encoding="utf-8")
    with pytest.raises(HeldOutError):
        load_poetry_json(tmp_path, "mengxue/guwenguanzhi.json")
    other = tmp_path / "dist" / "lunyu" / "lunyu.json"
    other.parent.mkdir(parents=True)
    other.write_text("[1]", encoding="utf-8")
    assert load_poetry_json(tmp_path, "lunyu/lunyu.json") == [1]


def _runs(text: str, n: int = 12) -> set[str]:
    """Every run of `n` CJK characters (line breaks and punctuation squeezed out)."""
    squeezed = "".join(ch for ch in text if "\u3400" <= ch <= "\u9fff").replace("爲", "為")
    return {squeezed[i : i + n] for i in range(len(squeezed) - n + 1)}


def test_every_sample_page_is_rendered_from_its_declared_sources_never_the_held_out_work() -> None:
    """Each sample's text comes from the passages make_samples reads (through
    load_poetry_json, which refuses 古文觀止): a run found nowhere in them fails the test.
    (古文觀止 quotes the classics, e.g. 原道 quotes the 大學, so a direct comparison with it
    would flag quotations rather than sources.)"""
    try:
        root = poetry_root()
    except FileNotFoundError:
        pytest.skip("chinese-poetry is not installed (make corpora)")
    from bench.make_samples import lunyu_simplified, passages

    sources = set().union(*(_runs(p.text) for p in passages(root).values()))
    sources |= _runs(lunyu_simplified(root))
    for truth in sorted((ROOT / "samples" / "truth").glob("*.txt")):
        lines = truth.read_text(encoding="utf-8").splitlines()
        # Lines one by one: a heading (孟子·滕文公上) does not run into the text after it.
        foreign = set().union(*(_runs(line) for line in lines)) - sources
        assert not foreign, f"{truth.name}: text from no declared source: {sorted(foreign)[:3]}"
