"""Correction of OCR misreads with a classical-Chinese character language model.

The recogniser confuses characters that differ by a stroke (日/曰, 己/已/巳, 末/未, 戍/戌/戊)
and now and then returns a simplified form (国, 则, 门) on a traditional page. For every
character of such a confusion set the candidates are scored by a character bigram model
of classical text — log P(candidate | previous) + log P(next | candidate) — and the
character is replaced when another candidate wins by a clear margin; a simplified form on
a traditional page becomes its traditional form (OpenCC s2t, one character for one).
A character the engine writes almost only in place of another (`data/ocr_confusions.tsv`,
learned on the tune split of the synthetic pages: 産 for 產) is replaced unless the model
clearly prefers it. Every change is an edit of kind ``correction`` whose reason gives the
evidence, so the raw OCR text stays untouched and each correction can be judged.

The model (`data/charlm.tsv`: unigram counts of every character, bigram counts of the
pairs that touch a confusable character) is built offline by
``python -m streams.correction build`` from chinese-poetry's prose: 論語, 大學, 中庸, the
Song poets' biographies, 幼學瓊林 and 三字經 — never 古文觀止 (held out) and never the 孟子
(the OCR evaluation prints it). Punctuation is left out of the counts, as in 白文, and the
correction looks past marks for its neighbours. (Adding 20,000 Song poems made it worse
on the tune split: 317 of 523 simulated 曰→日/已→己 misreads fixed instead of 395 — verse
has 日 everywhere and 曰 hardly ever.)
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "charlm.tsv"
CONFUSIONS_DATA = Path(__file__).parent / "data" / "ocr_confusions.tsv"

CONFUSIONS: tuple[frozenset[str], ...] = (
    frozenset("日曰"),
    frozenset("己已巳"),
    frozenset("末未"),
    frozenset("戍戌戊"),
    frozenset("士土"),
    frozenset("大太犬"),
)
# characters read for others but not the other way round: 八 for a bled 人
READ_FOR: dict[str, str] = {"八": "人"}
_MARGIN = 2.0  # nats a candidate must win by
_ALPHA = 0.1  # additive smoothing of the bigram counts


@dataclass(frozen=True)
class CharLM:
    unigrams: dict[str, int]
    bigrams: dict[tuple[str, str], int]
    total: int

    def logp_next(self, prev: str, ch: str) -> float:
        """log P(ch | prev), smoothed towards P(ch)."""
        prior = (self.unigrams.get(ch, 0) + 1) / (self.total + len(self.unigrams))
        count = self.bigrams.get((prev, ch), 0)
        context = self.unigrams.get(prev, 0)
        return math.log((count + _ALPHA * prior * 1000) / (context + _ALPHA * 1000))


@lru_cache(maxsize=1)
def load_model(path: Path = DATA) -> CharLM:
    unigrams: dict[str, int] = {}
    bigrams: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            kind, key, count = line.rstrip("\n").split("\t")
            if kind == "1":
                unigrams[key] = int(count)
            elif len(key) == 2:
                bigrams[(key[0], key[1])] = int(count)
    return CharLM(unigrams, bigrams, sum(unigrams.values()))


def _confusable(ch: str) -> frozenset[str] | None:
    for group in CONFUSIONS:
        if ch in group:
            return group
    return None


@lru_cache(maxsize=4096)
def _traditional(ch: str) -> str | None:
    """The traditional form of a simplified-only character, or None."""
    if not _is_simplified_only(ch):
        return None

    converted = str(_s2t().convert(ch))
    if len(converted) == 1 and converted != ch and _in_big5(converted):
        return converted
    return None


@lru_cache(maxsize=1)
def _s2t() -> Any:
    import opencc

    return opencc.OpenCC("s2t")


def _in_big5(ch: str) -> bool:
    try:
        ch.encode("cp950")
    except UnicodeEncodeError:
        return False
    return True


def _is_simplified_only(ch: str) -> bool:
    if not ("\u4e00" <= ch <= "\u9fff") or _in_big5(ch):
        return False
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff"


def _joined(out: list[str], a: int, b: int) -> bool:
    """Only marks (no newline, no Latin) between raw positions a and b."""
    return all(not s or (not s.isspace() and not s.isalnum()) for s in out[a + 1 : b])


def correct_characters(work: Any) -> dict[int, str]:
    """Correct the visible characters of a cleaning `_Work` in place (kind ``correction``);
    returns the reason of each corrected raw position."""
    model = load_model()
    out = work.out
    positions = [i for i, s in enumerate(out) if len(s) == 1 and _is_han(s)]
    reasons: dict[int, str] = {}
    traditional_page = sum(1 for i in positions if _in_big5(out[i])) >= 0.8 * len(positions)
    for k, i in enumerate(positions):
        ch = out[i]
        if traditional_page:
            trad = _traditional(ch)
            if trad is not None:
                work.set(i, trad, "correction")
                reasons[i] = f"simplified {ch} on a traditional page → {trad} (OpenCC s2t)"
                continue
        learned = learned_confusions().get(ch)
        group = _confusable(ch)
        if learned is not None:
            group = (group or frozenset(ch)) | {learned}
        if ch in READ_FOR:
            group = (group or frozenset(ch)) | set(READ_FOR[ch])
        if group is None:
            continue
        # the neighbouring characters, looking past marks (not past line or page ends)
        prev = out[positions[k - 1]] if k > 0 and _joined(out, positions[k - 1], i) else ""
        nxt = (
            out[positions[k + 1]]
            if k + 1 < len(positions) and _joined(out, i, positions[k + 1])
            else ""
        )

        def score(candidate: str, prev: str = prev, nxt: str = nxt) -> float:
            total = 0.0
            if prev:
                total += model.logp_next(prev, candidate)
            if nxt:
                total += model.logp_next(candidate, nxt)
            return total

        here = score(ch)
        if learned is not None and score(learned) - here > -_MARGIN:
            # the engine writes `ch` almost only for `learned`: taken unless the model
            # clearly prefers `ch` here
            work.set(i, learned, "correction")
            reasons[i] = (
                f"learned confusion {ch}→{learned}; charlm: {prev}{learned}{nxt}"
                f" {score(learned):.1f} vs {prev}{ch}{nxt} {here:.1f}"
            )
            continue
        if not prev and not nxt:
            continue
        best = max(group, key=score)
        if best != ch and score(best) - here >= _MARGIN:
            work.set(i, best, "correction")
            reasons[i] = (
                f"charlm: {prev}{best}{nxt} {score(best):.1f} vs {prev}{ch}{nxt} {here:.1f}"
            )
    return reasons


# --- building the model ------------------------------------------------------------------------


def training_texts(poetry: Path | None = None) -> Iterable[str]:
    """Classical texts from chinese-poetry, through `streams.corpora` (never 古文觀止, and
    not the 孟子, which the OCR evaluation prints)."""
    from streams.corpora import load_poetry_json, poetry_root

    root = poetry or poetry_root()
    s2t = _s2t()
    lunyu = load_poetry_json(root, "lunyu/lunyu.json")
    assert isinstance(lunyu, list)
    for chapter in lunyu:
        yield str(s2t.convert("".join(chapter["paragraphs"])))
    for rel in ("sishuwujing/daxue.json", "sishuwujing/zhongyong.json"):
        book = load_poetry_json(root, rel)
        assert isinstance(book, dict)
        yield "".join(book["paragraphs"])
    song = load_poetry_json(root, "quantangshi/authors.song.json")
    assert isinstance(song, list)
    for author in song:
        yield str(author.get("desc", ""))
    for rel in ("mengxue/youxueqionglin.json", "mengxue/sanzijing-traditional.json"):
        yield from _strings(load_poetry_json(root, rel))


def _strings(data: object) -> Iterable[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)


def build(out: Path = DATA, poetry: Path | None = None) -> tuple[int, int]:
    confusable = set().union(*CONFUSIONS)
    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    for text in training_texts(poetry):
        # punctuation out, as in 白文 (and as the correction looks past marks)
        chars = [c for c in text if _is_han(c)]
        unigrams.update(chars)
        for a, b in itertools.pairwise(chars):
            if a in confusable or b in confusable:
                bigrams[a + b] += 1
    with out.open("w", encoding="utf-8") as handle:
        handle.write(
            "# Character LM for OCR correction (streams/correction.py), built by\n"
            "# `python -m streams.correction build` from chinese-poetry (論語 s2t, 大學, 中庸,\n"
            "# Song biographies, 幼學瓊林, 三字經); never 古文觀止, never 孟子.\n"
            "# kind (1 unigram, 2 bigram touching a confusable character)\tchars\tcount\n"
        )
        for ch, count in sorted(unigrams.items()):
            if count >= 2:
                handle.write(f"1\t{ch}\t{count}\n")
        for pair, count in sorted(bigrams.items()):
            if count >= 2:
                handle.write(f"2\t{pair}\t{count}\n")
    return len(unigrams), len(bigrams)


def learn_confusions(out: Path = CONFUSIONS_DATA, per_class: int = 3) -> int:
    """Which characters rapidocr writes for which, learned on the tune split of the
    古籍-like pages (never the eval split): every substitution in the alignment of the
    engine's raw text with the reference, and how often each output character was right.
    Kept: pairs seen at least 3 times whose output character was wrong at least 90 % of
    the times it was written."""
    import difflib

    from streams import ocr_evaluation, ocr_pages

    wrong: Counter[tuple[str, str]] = Counter()
    written: Counter[str] = Counter()
    for page in ocr_pages.pages("tune", per_class=per_class):
        ref = ocr_evaluation.comparable(page.text, _is_han)
        hyp = ocr_evaluation.comparable(ocr_evaluation.raw_text(page), _is_han)
        written.update(hyp)
        matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "replace" and a1 - a0 == b1 - b0:
                for truth, seen in zip(ref[a0:a1], hyp[b0:b1], strict=True):
                    wrong[(seen, truth)] += 1
    rows = [
        (seen, truth, count, written[seen])
        for (seen, truth), count in sorted(wrong.items())
        if count >= 3 and count >= 0.9 * written[seen]
    ]
    with out.open("w", encoding="utf-8") as handle:
        handle.write(
            "# What rapidocr writes for what (streams/correction.py), learned by\n"
            "# `python -m streams.correction learn-confusions` on the tune split of\n"
            "# streams.ocr_pages (孟子 chapters 0-6; never the eval split).\n"
            "# written\ttruth\ttimes wrong\ttimes written\n"
        )
        for seen, truth, count, total in rows:
            handle.write(f"{seen}\t{truth}\t{count}\t{total}\n")
    return len(rows)


@lru_cache(maxsize=1)
def learned_confusions(path: Path | None = None) -> dict[str, str]:
    """Output character → the character it almost always stood for (see above)."""
    table: dict[str, str] = {}
    source = path or CONFUSIONS_DATA
    if not source.exists():
        return table
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        seen, truth = line.split("\t")[:2]
        table[seen] = truth
    return table


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "build":
        chars, pairs = build()
        print(f"wrote {DATA}: {chars} characters, {pairs} pairs")
        return 0
    if argv and argv[0] == "learn-confusions":
        rows = learn_confusions()
        print(f"wrote {CONFUSIONS_DATA}: {rows} confusions")
        return 0
    print("usage: python -m streams.correction build | learn-confusions")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
