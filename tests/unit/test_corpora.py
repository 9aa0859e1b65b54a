"""The held-out work (古文觀止) can be named but never loaded as a source."""

from pathlib import Path

import pytest

from streams.corpora import HeldOutError, is_held_out, load_poetry_json, refuse_held_out


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
