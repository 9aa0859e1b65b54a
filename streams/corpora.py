"""The offline text corpora piaoxi trains, tunes and renders from, and the one it must not.

古文觀止 is held out by the project's owner for evaluation: no training data, tuning run,
word list, rendered page, sample or benchmark corpus may be built from it. The npm package
``chinese-poetry`` ships it beside the texts we do use, so every read of that package goes
through ``load_poetry_json``, which refuses the held-out work; tests check that no training
or rendering source names it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

POETRY_ENV = "PIAOXI_CHINESE_POETRY_DIR"
# `make corpora` installs the npm package here (repo-local, not committed: 350 MB).
POETRY_CANDIDATES = (
    Path(__file__).resolve().parents[1] / ".corpora" / "node_modules" / "chinese-poetry",
    Path("node_modules/chinese-poetry"),
)

# The held-out work: its titles (traditional and simplified) and the files that ship it.
HELD_OUT_TITLES = ("古文觀止", "古文观止")
HELD_OUT_FILES = ("mengxue/guwenguanzhi.json",)


class HeldOutError(PermissionError):
    """A held-out work was asked for as a source of training, tuning or rendering."""


def is_held_out(name: str | Path) -> bool:
    """Whether a path, file name or title names the held-out work (古文觀止)."""
    text = str(name)
    file_name = Path(text.replace("\\", "/")).name.lower()
    return any(title in text for title in HELD_OUT_TITLES) or any(
        file_name == Path(rel).name for rel in HELD_OUT_FILES
    )


def refuse_held_out(name: str | Path) -> None:
    """Raise ``HeldOutError`` when ``name`` is the held-out work."""
    if is_held_out(name):
        raise HeldOutError(
            f"{name}: 古文觀止 is held out by the project's owner for evaluation;"
            " it is never trained on, tuned on, rendered or made into word lists"
        )


def poetry_root(explicit: str | Path | None = None) -> Path:
    """Directory of the npm ``chinese-poetry`` package (the one holding ``dist/``)."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get(POETRY_ENV):
        candidates.append(Path(os.environ[POETRY_ENV]))
    candidates.extend(POETRY_CANDIDATES)
    for c in candidates:
        if (c / "dist").is_dir():
            return c
    raise FileNotFoundError(
        f"chinese-poetry not found: run `make corpora` (npm install into .corpora/) or set"
        f" {POETRY_ENV}"
    )


def load_poetry_json(root: Path, rel: str) -> object:
    """One JSON file of chinese-poetry's ``dist/`` (``rel`` relative to it); never 古文觀止."""
    refuse_held_out(rel)
    return json.loads((root / "dist" / rel).read_text(encoding="utf-8"))


def held_out_text(root: Path) -> str:
    """The held-out work's text, for one use only: checking that evaluation data (the gold
    sentences) does not copy it. Never a source of training, tuning, word lists or pages."""
    data = json.loads((root / "dist" / HELD_OUT_FILES[0]).read_text(encoding="utf-8"))
    return "\n".join(
        paragraph
        for volume in data["content"]
        for chapter in volume["content"]
        for paragraph in [chapter.get("chapter", ""), *chapter["paragraphs"]]
    )
