"""Pure helpers for the web page: text cut into segments marked by entities or edits."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

ENTITY_LABELS = {
    "PERSON": "人名",
    "PLACE": "地名",
    "DYNASTY": "朝代",
    "ERA_DATE": "纪年",
    "OFFICIAL_TITLE": "官职",
    "BOOK": "书名",
}

STAGE_LABELS = {
    "uploader": "上传",
    "extract": "提取/OCR",
    "clean": "清洗",
    "entities": "实体识别",
    "projector": "投影",
    "replay": "重放",
}

STATUS_LABELS = {
    "uploaded": "已上传",
    "pending": "等待中",
    "extracting": "提取中",
    "running": "处理中",
    "processing": "处理中",
    "extracted": "已提取",
    "cleaned": "已清洗",
    "done": "完成",
    "complete": "完成",
    "completed": "完成",
    "failed": "失败",
    "partial": "部分完成",
    "retracted": "已撤回",
}


@dataclass(frozen=True)
class Segment:
    """A run of text; `kind` names a CSS class suffix (entity type, `edit`) or is empty."""

    text: str
    kind: str = ""
    title: str = ""
    hit: bool = False  # inside a match of the search query


def mark_spans(text: str, spans: Iterable[tuple[int, int, str, str]]) -> list[Segment]:
    """Cut `text` at the given (start, end, kind, title) spans.

    Spans out of range are clipped; a span overlapping an earlier one is skipped, so the
    output always re-joins to exactly `text`.
    """
    segments: list[Segment] = []
    pos = 0
    for start, end, kind, title in sorted(spans, key=lambda s: (s[0], -s[1])):
        start = max(0, min(start, len(text)))
        end = max(start, min(end, len(text)))
        if start < pos or end == start:
            continue
        if start > pos:
            segments.append(Segment(text[pos:start]))
        segments.append(Segment(text[start:end], kind, title))
        pos = end
    if pos < len(text):
        segments.append(Segment(text[pos:]))
    return segments


def find_matches(key: str, needles: list[str], limit: int = 500) -> list[tuple[int, int]]:
    """Merged [start, end) ranges of the needles' occurrences in `key`."""
    hits: list[tuple[int, int]] = []
    for needle in needles:
        if not needle:
            continue
        start = key.find(needle)
        while start != -1 and len(hits) < limit:
            hits.append((start, start + len(needle)))
            start = key.find(needle, start + len(needle))
    hits.sort()
    merged: list[tuple[int, int]] = []
    for start, end in hits:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def with_hits(segments: list[Segment], hits: list[tuple[int, int]]) -> list[Segment]:
    """`segments` cut again at the search matches, the pieces inside one flagged `hit`
    (entities and matches may overlap: both are shown)."""
    if not hits:
        return segments
    out: list[Segment] = []
    pos = 0
    for seg in segments:
        start, end = pos, pos + len(seg.text)
        cuts = sorted({start, end} | {x for h in hits for x in h if start < x < end})
        for a, b in itertools.pairwise(cuts):
            hit = any(h0 <= a and b <= h1 for h0, h1 in hits)
            out.append(Segment(seg.text[a - start : b - start], seg.kind, seg.title, hit))
        pos = end
    return out


def highlight_fragments(
    text: str,
    key: str,
    needles: list[str],
    *,
    fragment_chars: int = 60,
    max_fragments: int = 3,
) -> list[str]:
    """Fragments of `text` with the needles (found in its simplified `key`) in <mark>.

    `key` is the simplified search key of `text`; when both have the same length (OpenCC
    t2s works character by character almost always) offsets found in the key are used on
    the text, so the user sees the traditional original. Otherwise the key is shown.
    The result is HTML-escaped except for the <mark> tags.
    """
    from html import escape

    shown = text if len(text) == len(key) else key
    merged = find_matches(key, needles, limit=200)
    if not merged:
        return []
    fragments: list[str] = []
    used_until = -1
    for start, _end in merged:
        if len(fragments) >= max_fragments:
            break
        if start < used_until:
            continue
        frag_start = max(0, start - fragment_chars // 3)
        frag_end = min(len(shown), frag_start + fragment_chars)
        parts: list[str] = []
        pos = frag_start
        for m_start, m_end in merged:
            if m_end <= frag_start or m_start >= frag_end:
                continue
            m_start, m_end = max(m_start, frag_start), min(m_end, frag_end)
            parts.append(escape(shown[pos:m_start]))
            parts.append(f"<mark>{escape(shown[m_start:m_end])}</mark>")
            pos = m_end
        parts.append(escape(shown[pos:frag_end]))
        prefix = "…" if frag_start > 0 else ""
        suffix = "…" if frag_end < len(shown) else ""
        fragments.append(prefix + "".join(parts).replace("\n", " ") + suffix)
        used_until = frag_end
    return fragments
