"""Cleaning ("washing"): raw page text in, cleaned traditional text and a simplified search
key out, with every edit recorded so any cleaned offset maps back to the raw text.

`clean_page(raw, layout=...) -> CleanResult(cleaned_text, search_key, edits)`:

- the raw text is never changed; `cleaned_text` is raw with these passes, in this order:
  1. newlines normalised (CR LF, CR, form feed → LF);
  2. one character at a time: full-width letters and digits to half width, OCR noise
     dropped (stray symbols), symbols OCR reads for ideographs (○ → 〇), compatibility
     ideographs and Kangxi radicals (encoding duplicates) to their unified ideographs;
     variant characters (異體字: our reviewed table `data/variants_reviewed.tsv`, then the
     Unihan-derived `data/variants_unihan.tsv`) only with ``fold_variants=True``
     (setting PIAOXI_CLEAN_FOLD_VARIANTS) — by default the cleaned text keeps the
     source's forms (爲, 衆, 僞), and the variants are folded in the search key only;
  3. punctuation: half-width marks next to CJK become full width, curly quotes become
     corner brackets, vertical presentation forms become plain marks; on vertical pages
     first the marks OCR misreads in columns (rotated ，read as ’ or ), 。 as °);
  4. known OCR confusions in an unambiguous context (日 before ：or 「 is 曰);
  5. marks repeated by the scanner collapsed (。。 → 。);
  6. spaces inside CJK text removed, other runs collapsed to one space;
  7. lines broken by the page rejoined (see Lines below);
- `search_key` is `cleaned_text` with the variants folded and converted to simplified
  characters by OpenCC (t2s), always exactly as long as `cleaned_text`, so offsets in
  one are offsets in the other (the API folds a query the same way);
- `edits` are `TextEdit(raw_start, raw_end, clean_start, clean_end, kind, before, after)`,
  in order and non-overlapping; `map_to_raw(edits, clean_offset)` and `map_span_to_raw`
  translate cleaned offsets to raw ones, `apply_edits(raw, edits)` rebuilds the cleaned text.

Lines: a newline is kept after a line that ends with terminal punctuation (。！？」 ...),
around blank lines, and after a short unpunctuated heading that starts a paragraph; any
other newline was made by the page and is removed (a space between two Latin words).
Cleaning is idempotent: cleaning `clean_page(x).cleaned_text` again (same layout) changes
nothing more.

The rules are data (`data/clean_rules.tsv`); run `python -m streams.clean build-variants`
to regenerate `data/variants_unihan.tsv` from Debian's Unihan_Variants.txt.
"""

from __future__ import annotations

import bisect
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

STAGE_VERSION = "1.2.0"  # 1.1: variants kept by default; 1.2: note spans, OCR correction

DATA = Path(__file__).parent / "data"

# Marks that end a sentence (a newline after them is a real line end), and closers that may
# follow such a mark.
TERMINAL = frozenset("。！？；：…」』）》〉.!?")
PUNCTUATION = frozenset("，。、；：！？「」『』（）《》〈〉…—·,.;:!?()\"'")
HEADING_MAX_CHARS = 16


@dataclass(frozen=True, slots=True)
class TextEdit:
    """raw[raw_start:raw_end] (= before) became cleaned[clean_start:clean_end] (= after)."""

    raw_start: int
    raw_end: int
    clean_start: int
    clean_end: int
    kind: str
    before: str
    after: str
    reason: str | None = None  # why an automatic correction was made (its evidence)


@dataclass(frozen=True, slots=True)
class CleanResult:
    """What the cleaning stage makes of one page (the content of a `PageCleaned` event)."""

    cleaned_text: str
    search_key: str
    edits: list[TextEdit]
    notes: list[tuple[int, int]] = field(default_factory=list)  # 雙行小注 spans (cleaned)


# --- rules as data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    punct: dict[str, tuple[str, str]]  # char -> (replacement, context)
    width: dict[str, str]
    noise: frozenset[str]
    repeat: frozenset[str]
    variants: dict[str, tuple[str, str]]  # char -> (replacement, kind)
    symbols: dict[str, str]  # symbols OCR returns for an ideograph (○ for 〇)
    confusion: dict[str, tuple[str, frozenset[str]]]  # char -> (replacement, next chars)
    vertical_punct: dict[str, tuple[str, str]]  # char -> (replacement, context)


def _decode_cell(cell: str) -> str:
    return "".join(chr(int(tok[2:], 16)) for tok in cell.split() if tok.startswith("U+"))


def _tsv_rows(path: Path) -> Iterable[list[str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            yield line.rstrip("\n").split("\t")


@lru_cache(maxsize=1)
def load_rules() -> Rules:
    """The cleaning rules and variant tables from `streams/data` (read once per process)."""
    punct: dict[str, tuple[str, str]] = {}
    width: dict[str, str] = {}
    noise: set[str] = set()
    repeat: set[str] = set()
    confusion: dict[str, tuple[str, frozenset[str]]] = {}
    vertical_punct: dict[str, tuple[str, str]] = {}
    symbols: dict[str, str] = {}
    for row in _tsv_rows(DATA / "clean_rules.tsv"):
        rule, source, target, context = row[0], _decode_cell(row[1]), _decode_cell(row[2]), row[3]
        if rule == "punct":
            punct[source] = (target, context)
        elif rule == "width":
            width[source] = target
        elif rule == "symbol":
            symbols[source] = target
        elif rule == "noise":
            noise.add(source)
        elif rule == "repeat":
            repeat.add(source)
        elif rule == "vpunct":
            vertical_punct[source] = (target, context)
        elif rule == "confusion":
            confusion[source] = (target, frozenset(context.removeprefix("next:")))
        else:
            raise ValueError(f"unknown cleaning rule {rule!r} in clean_rules.tsv")
    variants: dict[str, tuple[str, str]] = {}
    unihan = DATA / "variants_unihan.tsv"
    if unihan.exists():
        for row in _tsv_rows(unihan):
            variants[row[0]] = (row[1], "variant")
    for row in _tsv_rows(DATA / "variants_reviewed.tsv"):  # reviewed entries win
        variants[row[0]] = (row[1], "variant")
    return Rules(
        punct,
        width,
        frozenset(noise),
        frozenset(repeat),
        _close(variants),
        symbols,
        confusion,
        vertical_punct,
    )


def _close(table: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Follow chains (a→b→c gives a→c) so folding is idempotent; drop cycles."""
    closed: dict[str, tuple[str, str]] = {}
    for source, (target, kind) in table.items():
        seen = {source}
        while target in table and target not in seen:
            seen.add(target)
            target = table[target][0]
        if target != source and target not in table:
            closed[source] = (target, kind)
    return closed


# --- character classes ---------------------------------------------------------------------


def is_cjk(ch: str) -> bool:
    """An ideograph (any CJK block, compatibility forms, 〇) or CJK punctuation."""
    if not ch:
        return False
    cp = ord(ch)
    return (
        0x3400 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
        or 0x2E80 <= cp <= 0x2FDF
        or 0x3000 <= cp <= 0x303F
        or 0xFF00 <= cp <= 0xFF0F
        or 0xFF1A <= cp <= 0xFF20
        or 0xFE10 <= cp <= 0xFE4F
        or ch in "…—·「」『』"
    )


def _is_space(ch: str) -> bool:
    return ch != "\n" and ch.isspace()


# --- the cleaning passes -------------------------------------------------------------------
#
# Every raw character i owns one output string out[i] ("" when deleted); a pass changes
# out[i] and records why in kind[i]. Passes look at the current output (not the raw text),
# so they compose, and the raw-to-clean alignment is kept by construction.


class _Work:
    __slots__ = ("kind", "out", "raw")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.out: list[str] = list(raw)
        self.kind: list[str] = [""] * len(raw)

    def set(self, i: int, text: str, kind: str) -> None:
        self.out[i] = text
        self.kind[i] = kind

    def visible(self) -> list[int]:
        return [i for i, s in enumerate(self.out) if s]


def _neighbours(work: _Work, vis: list[int], k: int) -> tuple[str, str]:
    """The nearest non-space visible characters before and after visible position k."""
    out = work.out
    before = after = ""
    j = k - 1
    while j >= 0:
        s = out[vis[j]]
        if s and not s.isspace():
            before = s[-1]
            break
        j -= 1
    j = k + 1
    while j < len(vis):
        s = out[vis[j]]
        if s and not s.isspace():
            after = s[0]
            break
        j += 1
    return before, after


def _pass_newlines(work: _Work) -> None:
    raw = work.raw
    for i, ch in enumerate(raw):
        if ch == "\r":
            if i + 1 < len(raw) and raw[i + 1] == "\n":
                work.set(i, "", "newline")
            else:
                work.set(i, "\n", "newline")
        elif ch in "\u2028\u2029\x0b\x0c\x85":
            work.set(i, "\n", "newline")


def _is_compat(ch: str) -> bool:
    return (
        "\uf900" <= ch <= "\ufaff"
        or "\u2f00" <= ch <= "\u2fdf"
        or ("\U0002f800" <= ch <= "\U0002fa1f")
    )


def _pass_chars(work: _Work, rules: Rules, drop_noise: bool, fold_variants: bool) -> None:
    """Width, noise, symbols, encoding duplicates and (when asked) variants: context-free,
    one character at a time."""
    out = work.out
    width, noise, symbols = rules.width, rules.noise, rules.symbols
    variants = rules.variants if fold_variants else {}
    for i, ch in enumerate(out):
        if ch in width:
            work.set(i, width[ch], "width")
        elif ch in noise:
            if drop_noise:
                work.set(i, "", "noise")
        elif ch in symbols:
            work.set(i, symbols[ch], "symbol")
        elif _is_compat(ch):
            # compatibility ideographs and Kangxi radicals (PDF text layers are full of them)
            # are the same character encoded twice, not another form of it
            folded = unicodedata.normalize("NFKC", ch)
            if folded != ch and len(folded) == 1:
                work.set(i, variants.get(folded, (folded, ""))[0], "compat")
        elif ch in variants:
            target, kind = variants[ch]
            work.set(i, target, kind)


def _pass_punct(work: _Work, rules: Rules, *, vertical: bool) -> None:
    """Normalise punctuation until nothing changes (a converted mark is CJK context for its
    neighbour), so that a second cleaning finds nothing to do.

    On vertical pages the `vpunct` rules come first: marks OCR misreads in columns (a
    rotated comma read as ’ or an unpaired parenthesis, a rotated full stop as °).
    """
    watched = set(rules.punct) | set("(（)）")
    if vertical:
        watched |= set(rules.vertical_punct)
    changed = True
    while changed:
        changed = False
        vis = work.visible()
        out = work.out
        opened = False  # an opening parenthesis earlier on the page, not yet closed
        for k in [k for k, i in enumerate(vis) if out[i] in watched]:
            i = vis[k]
            ch = out[i]
            if ch in "(（":
                opened = True
            if vertical and ch in rules.vertical_punct:
                target, context = rules.vertical_punct[ch]
                before, after = _neighbours(work, vis, k)
                if context == "unpaired":
                    applies = not opened and is_cjk(before)
                else:
                    applies = is_cjk(before) or is_cjk(after)
                if applies:
                    work.set(i, target, "punct")
                    changed = True
                    continue
            if ch in ")）":
                opened = False
            rule = rules.punct.get(ch)
            if rule is None:
                continue
            target, context = rule
            if context == "cjk":
                before, after = _neighbours(work, vis, k)
                if not (is_cjk(before) or is_cjk(after)):
                    continue
                if ch in ".," and before.isdigit() and after.isdigit():
                    continue  # 3.5, 1,000
            work.set(i, target, "punct")
            changed = True


def _pass_confusion(work: _Work, rules: Rules) -> None:
    if not any(ch in rules.confusion for ch in work.out):
        return
    vis = work.visible()
    for k, i in enumerate(vis):
        rule = rules.confusion.get(work.out[i])
        if rule is not None and _neighbours(work, vis, k)[1] in rule[1]:
            work.set(i, rule[0], "confusion")


def _pass_repeat(work: _Work, rules: Rules) -> None:
    previous = ""
    for i in work.visible():
        ch = work.out[i]
        if ch.isspace():  # newlines too: the line may be rejoined below
            continue
        if ch in rules.repeat and ch == previous:
            work.set(i, "", "repeat")
            continue
        previous = ch


def _pass_spaces(work: _Work) -> None:
    """Drop spaces at line ends and next to CJK; collapse other runs to one space."""
    vis = work.visible()
    out = work.out
    k = 0
    while k < len(vis):
        if not _is_space(out[vis[k]]):
            k += 1
            continue
        start = k
        while k < len(vis) and _is_space(out[vis[k]]):
            k += 1
        before = out[vis[start - 1]][-1] if start > 0 else "\n"
        after = out[vis[k]][0] if k < len(vis) else "\n"
        keep_one = not (
            before == "\n" or after == "\n" or is_cjk(before) or is_cjk(after)
        ) and not (before in PUNCTUATION and after in PUNCTUATION)
        for j in range(start, k):
            i = vis[j]
            if keep_one and j == start:
                if out[i] != " ":
                    work.set(i, " ", "space")
            else:
                work.set(i, "", "space")


def _pass_lines(work: _Work) -> None:
    """Rejoin lines broken by the page (see the module docstring for the rule)."""
    vis = work.visible()
    out = work.out
    # Lines as runs of visible positions between newlines.
    lines: list[list[int]] = [[]]
    breaks: list[int] = []  # visible index of each newline
    for k, i in enumerate(vis):
        if out[i] == "\n":
            breaks.append(k)
            lines.append([])
        else:
            lines[-1].append(i)
    texts = ["".join(out[i] for i in line) for line in lines]
    starts_paragraph = True
    blank_run = 0
    for n, k in enumerate(breaks):
        here, after = texts[n], texts[n + 1]
        i = vis[k]
        if not here:
            # a blank line: keep at most one blank line (two newlines in a row)
            blank_run += 1
            if blank_run >= 2 or n == 0:
                work.set(i, "", "newline")
            starts_paragraph = True
            continue
        blank_run = 0
        heading = (
            starts_paragraph
            and len(here) <= HEADING_MAX_CHARS
            and not any(ch in PUNCTUATION for ch in here)
        )
        keep = here[-1] in TERMINAL or not after or heading
        if keep:
            starts_paragraph = True
            continue
        starts_paragraph = False
        latin = here[-1].isascii() and here[-1].isalnum() and after[:1].isascii()
        work.set(i, " " if latin and after[:1].isalnum() else "", "linebreak")
    # trailing newlines at the end of the page
    for k in reversed(breaks):
        if any(out[j] for j in vis[k + 1 :]):
            break
        if out[vis[k]]:
            work.set(vis[k], "", "newline")


def _edits(work: _Work, reasons: dict[int, str] | None = None) -> tuple[str, list[TextEdit]]:
    raw, out, kinds = work.raw, work.out, work.kind
    edits: list[TextEdit] = []
    pieces: list[str] = []
    clean_pos = 0
    i = 0
    n = len(raw)
    while i < n:
        if out[i] == raw[i]:
            pieces.append(out[i])
            clean_pos += len(out[i])
            i += 1
            continue
        kind = kinds[i] or "edit"
        start, clean_start = i, clean_pos
        after: list[str] = []
        if out[i]:
            # a replacement: one edit per character, so offsets inside a run map exactly
            after.append(out[i])
            clean_pos += len(out[i])
            i += 1
        else:
            # deletions of one kind merge into one edit
            while i < n and not out[i] and out[i] != raw[i] and (kinds[i] or "edit") == kind:
                i += 1
        text = "".join(after)
        pieces.append(text)
        reason = (reasons or {}).get(start)
        edits.append(TextEdit(start, i, clean_start, clean_pos, kind, raw[start:i], text, reason))
    return "".join(pieces), edits


def clean_page(
    raw: str,
    *,
    layout: str = "horizontal",
    drop_noise: bool = True,
    fold_variants: bool = False,
    notes: Sequence[tuple[int, int]] = (),
    correct: bool = False,
) -> CleanResult:
    """Clean one page of raw text (see the module docstring); `raw` itself is not changed.

    `layout` is the page's layout ("horizontal" or "vertical"); vertical pages also get
    the `vpunct` rules (marks OCR misreads in columns: a rotated comma read as ’ or ), a
    rotated full stop as °). OCR returns one line per column, so the line rules are the
    same for both. `drop_noise=False` keeps
    symbols that are OCR noise on scans but may be meant in born-digital text;
    `fold_variants=True` normalises variant characters in the cleaned text too (爲 → 為).
    `notes` are raw spans of 雙行小注 (see `raw_note_spans`); the result gives them as
    cleaned spans. `correct=True` (OCR pages) runs the language-model correction
    (`streams.correction`): every change an edit of kind ``correction`` with its reason.
    """
    rules = load_rules()
    work = _Work(raw)
    _pass_newlines(work)
    _pass_chars(work, rules, drop_noise, fold_variants)
    _pass_punct(work, rules, vertical=layout == "vertical")
    _pass_confusion(work, rules)
    _pass_repeat(work, rules)
    _pass_spaces(work)
    _pass_lines(work)
    reasons: dict[int, str] = {}
    if correct:
        from streams.correction import correct_characters

        reasons = correct_characters(work)
    cleaned, edits = _edits(work, reasons)
    return CleanResult(
        cleaned_text=cleaned,
        search_key=search_key(cleaned),
        edits=edits,
        notes=cleaned_spans(edits, notes, len(cleaned)),
    )


def raw_note_spans(text: str, lines: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    """Raw spans of the note lines of a page whose text is its lines joined by newlines
    (`lines`: (text, kind) in reading order); neighbouring note lines make one span."""
    spans: list[tuple[int, int]] = []
    position = 0
    for line_text, kind in lines:
        start = text.find(line_text, position) if line_text else position
        if start < 0:
            return []  # the text is not the lines joined: no spans rather than wrong ones
        end = start + len(line_text)
        if kind == "note" and end > start:
            if spans and text[spans[-1][1] : start].strip() == "":
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        position = end
    return spans


def map_from_raw(edits: Sequence[Any], raw_offset: int) -> int:
    """The cleaned offset of raw offset `raw_offset` (the inverse of `map_to_raw`)."""
    shift = 0
    for edit in edits:
        if raw_offset < edit.raw_start:
            break
        if raw_offset < edit.raw_end:
            inner = raw_offset - edit.raw_start
            if edit.raw_end - edit.raw_start == edit.clean_end - edit.clean_start:
                return edit.clean_start + inner
            return edit.clean_start
        shift = edit.clean_end - edit.raw_end
    return raw_offset + shift


def cleaned_spans(
    edits: Sequence[Any], spans: Sequence[tuple[int, int]], length: int
) -> list[tuple[int, int]]:
    """Raw spans as spans of the cleaned text (`length` long) the `edits` made."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        a, b = map_from_raw(edits, start), min(length, map_from_raw(edits, end))
        if b > a:
            out.append((a, b))
    return out


# --- search key ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def fold_variants(text: str) -> str:
    """`text` with every variant character (異體字) replaced by its standard form, one
    character for one (the search key's first step; the cleaned text keeps the source's)."""
    variants = load_rules().variants
    return "".join(variants[ch][0] if ch in variants else ch for ch in text)


def search_key(text: str) -> str:
    """`text` with variants folded, in simplified characters, exactly as long as `text`
    (offsets are shared).

    OpenCC converts phrases; when a phrase conversion changes the length of a line, that
    line is converted character by character instead.
    """
    if not text:
        return text
    text = fold_variants(text)
    converter = _t2s()
    converted = converter.convert(text)
    if len(converted) == len(text):
        return str(converted)
    parts: list[str] = []
    for line in text.split("\n"):
        whole = converter.convert(line)
        if len(whole) == len(line):
            parts.append(whole)
            continue
        chars = []
        for ch in line:
            one = converter.convert(ch)
            chars.append(one if len(one) == 1 else ch)
        parts.append("".join(chars))
    return "\n".join(parts)


# --- offsets -------------------------------------------------------------------------------


def map_to_raw(edits: Sequence[TextEdit], clean_offset: int) -> int:
    """The raw offset of cleaned offset `clean_offset` (0 ≤ offset ≤ len(cleaned)).

    Outside edits the text is shifted by the edits before it; inside a replacement of equal
    length the offset maps character by character, inside any other edit to its start.
    Non-decreasing in `clean_offset`.
    """
    if not edits:
        return clean_offset
    starts = [e.clean_start for e in edits]
    # the last edit starting at or before the offset; among several starting at the offset
    # (deletions have no width), the last one
    k = bisect.bisect_right(starts, clean_offset) - 1
    while k >= 0:
        edit = edits[k]
        if clean_offset >= edit.clean_end:
            return edit.raw_end + (clean_offset - edit.clean_end)
        # inside a replacement
        inner = clean_offset - edit.clean_start
        if edit.raw_end - edit.raw_start == edit.clean_end - edit.clean_start:
            return edit.raw_start + inner
        return edit.raw_start
    return clean_offset


def map_span_to_raw(edits: Sequence[TextEdit], start: int, end: int) -> tuple[int, int]:
    """The raw span covering cleaned span [start, end) (end exclusive, start < end)."""
    raw_start = map_to_raw(edits, start)
    if end <= start:
        return raw_start, raw_start
    return raw_start, max(raw_start + 1, _raw_end_of(edits, end - 1))


def _raw_end_of(edits: Sequence[TextEdit], clean_index: int) -> int:
    """The raw end offset of the raw text that produced cleaned character `clean_index`."""
    starts = [e.clean_start for e in edits]
    k = bisect.bisect_right(starts, clean_index) - 1
    if k >= 0:
        edit = edits[k]
        if edit.clean_start <= clean_index < edit.clean_end:
            if edit.raw_end - edit.raw_start == edit.clean_end - edit.clean_start:
                return edit.raw_start + (clean_index - edit.clean_start) + 1
            return edit.raw_end
    return map_to_raw(edits, clean_index) + 1


def apply_edits(raw: str, edits: Sequence[TextEdit]) -> str:
    """Rebuild the cleaned text from the raw text and the edits (a consistency check)."""
    pieces: list[str] = []
    position = 0
    for edit in edits:
        pieces.append(raw[position : edit.raw_start])
        pieces.append(edit.after)
        position = edit.raw_end
    pieces.append(raw[position:])
    return "".join(pieces)


# --- building the Unihan variant table -----------------------------------------------------


def build_unihan_table(source: Path) -> list[tuple[str, str, str]]:
    """Variant pairs (from, to, field) taken from Unihan_Variants.txt(.bz2).

    Only kZVariant and kSemanticVariant (never simplified/traditional or "specialized"
    semantic variants, which change meaning), and only towards the standard repertoire: a
    character outside Big5 (cp950) folds to its unique variant inside Big5 that is not
    itself a simplified form. Characters that are simplified forms, or common in mainland
    text (GB2312), are never folded here (the search key handles simplification); nor are
    radicals (亻 冂 厶: on a scan they are fragments, not words). Ambiguous cases are left
    alone. `source` is Unihan_Variants.txt; Unihan_IRGSources.txt beside it gives radicals.
    """
    import bz2

    opener: Any = bz2.open if source.suffix == ".bz2" else open
    fields: dict[str, dict[str, list[str]]] = {}
    with opener(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            code, field, value = line.rstrip("\n").split("\t")
            targets = [chr(int(tok.split("<")[0][2:], 16)) for tok in value.split()]
            fields.setdefault(chr(int(code[2:], 16)), {}).setdefault(field, []).extend(targets)

    radicals: set[str] = set()
    irg = source.with_name(source.name.replace("Variants", "IRGSources"))
    if irg.exists():
        with opener(irg, "rt", encoding="utf-8") as handle:
            for line in handle:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and parts[1] == "kRSUnicode":
                    residues = [tok.split(".")[-1] for tok in parts[2].split()]
                    if any(r in ("0", "-1") for r in residues):
                        radicals.add(chr(int(parts[0][2:], 16)))

    def in_gb2312(ch: str) -> bool:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            return False
        return True

    def in_big5(ch: str) -> bool:
        try:
            ch.encode("cp950")
        except UnicodeEncodeError:
            return False
        return True

    def is_simplified(ch: str) -> bool:
        traditional = fields.get(ch, {}).get("kTraditionalVariant", [])
        return bool(traditional) and ch not in traditional

    pairs: list[tuple[str, str, str]] = []
    for ch, entry in sorted(fields.items()):
        if in_big5(ch) or in_gb2312(ch) or ch in radicals or is_simplified(ch):
            continue
        if "kTraditionalVariant" in entry:
            continue
        for field in ("kZVariant", "kSemanticVariant"):
            candidates = sorted(
                {t for t in entry.get(field, []) if t != ch and in_big5(t) and not is_simplified(t)}
            )
            if len(candidates) == 1:
                pairs.append((ch, candidates[0], field))
                break
    return pairs


def _main(argv: list[str]) -> int:
    if not argv or argv[0] != "build-variants":
        print("usage: python -m streams.clean build-variants [Unihan_Variants.txt(.bz2)]")
        return 2
    default = "/usr/share/unicode/Unihan_Variants.txt.bz2"
    source = Path(argv[1] if len(argv) > 1 else default)
    pairs = build_unihan_table(source)
    target = DATA / "variants_unihan.tsv"
    with target.open("w", encoding="utf-8") as handle:
        handle.write(
            "# Generated by `python -m streams.clean build-variants` from Unihan_Variants.txt\n"
            "# (Debian unicode-data). kZVariant/kSemanticVariant pairs from outside Big5 to a\n"
            "# unique non-simplified variant inside Big5. Do not edit: fix the rule instead.\n"
            "# from\tto\tunihan_field\n"
        )
        for source_char, target_char, field in pairs:
            handle.write(f"{source_char}\t{target_char}\t{field}\n")
    print(f"wrote {len(pairs)} pairs to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
