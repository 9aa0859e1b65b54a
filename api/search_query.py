"""User input → a structured search request. Never a query_string: users' text only ever
reaches the search server as the value of match / match_phrase clauses.

Folding: the query is converted with OpenCC t2s and matched against the simplified
`search_key` of each page, so 舉頭望明月 and 举头望明月 find the same pages. A part in
quotes ("…", “…”, 「…」) is an exact phrase (match_phrase on the CJK-bigram field); a
single character, which bigrams cannot find, is matched on the n-gram subfield.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_QUERY_CHARS = 200
MAX_TERMS = 10
MAX_PAGE_SIZE = 50
MAX_RESULT_WINDOW = 1000
FACET_SIZE = 20
# Facet counts over the best-scoring pages only (unless asked for exact counts): terms
# aggregations over every hit of a broad query cost the in-memory search server ~20 µs a
# page and facet, i.e. hundreds of ms for a one-character query over 10,000 pages.
FACET_SAMPLE = 200

_QUOTED = re.compile(r'"([^"]*)"|“([^”]*)”|「([^」]*)」|『([^』]*)』')


@dataclass(frozen=True)
class IndexFields:
    """Field names of the page documents in the search index (the projector's mapping)."""

    kind: str = "kind"
    page_kind: str = "page"
    search_key: str = "search_key"
    search_key_ngram: str = "search_key.ngram"
    title: str = "title"
    owner: str = "owner"
    visibility: str = "visibility"
    tags: str = "tags"
    dynasties: str = "dynasties"
    entity_types: str = "entities.type"
    entity_keys: str = "entity_keys"
    year_from: str = "year_from"
    year_to: str = "year_to"
    entity_key_separator: str = ":"


FIELDS = IndexFields()


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


# The cleaning stage's variant tables (data files, read as data: the API does not import
# the stage code). Reviewed entries win over the Unihan-derived ones, as in cleaning.
_VARIANT_FILES = ("variants_unihan.tsv", "variants_reviewed.tsv")


@lru_cache(maxsize=1)
def _variants() -> dict[str, str]:
    data = Path(__file__).resolve().parents[1] / "streams" / "data"
    table: dict[str, str] = {}
    for name in _VARIANT_FILES:
        try:
            lines = (data / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("#") or "\t" not in line:
                continue
            source, target = line.split("\t")[:2]
            if len(source) == 1 and len(target) == 1:
                table[source] = target
    # Follow chains (a → b → c) a few steps, as the cleaner closes its table.
    for _ in range(3):
        table = {k: table.get(v, v) for k, v in table.items()}
    return table


def _width(ch: str) -> str:
    # Full-width letters/digits and CJK compatibility ideographs to their plain forms, as
    # the cleaner does; punctuation stays (the analyzers drop it anyway).
    code = ord(ch)
    if 0xFF10 <= code <= 0xFF5A or 0xF900 <= code <= 0xFAFF:
        return unicodedata.normalize("NFKC", ch)
    return ch


def fold(text: str) -> str:
    """The query in the search key's form: variants folded, width, simplified (t2s)."""
    variants = _variants()
    return str(_t2s().convert("".join(_width(variants.get(ch, ch)) for ch in text)))


@dataclass(frozen=True)
class ParsedQuery:
    """The user's query split into loose terms and exact phrases, already folded."""

    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms and not self.phrases

    @property
    def needles(self) -> list[str]:
        """The strings to mark in highlights: terms, phrases and the bigrams of loose terms
        (a loose term matches when its bigrams occur, not necessarily together)."""
        found = {*self.terms, *self.phrases}
        for term in self.terms:
            found.update(term[i : i + 2] for i in range(len(term) - 1))
        return sorted((n for n in found if n.strip()), key=len, reverse=True)


def _clean(text: str) -> str:
    # Control characters never belong in a query; collapse whitespace.
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


def parse_query(q: str) -> ParsedQuery:
    """Split `q` into phrases (quoted) and terms (whitespace-separated), folded to simplified."""
    q = _clean(q)
    phrases: list[str] = []

    def take(match: re.Match[str]) -> str:
        inner = next((g for g in match.groups() if g is not None), "")
        inner = _clean(inner)
        if inner:
            phrases.append(fold(inner))
        return " "

    rest = _QUOTED.sub(take, q)
    rest = rest.replace('"', " ").replace("“", " ").replace("”", " ")
    terms = [fold(t) for t in rest.split() if t]
    return ParsedQuery(
        terms=tuple(dict.fromkeys(terms))[:MAX_TERMS],
        phrases=tuple(dict.fromkeys(phrases))[:MAX_TERMS],
    )


@dataclass(frozen=True)
class SearchFilters:
    """Narrowing filters; each list is OR within itself, AND across lists."""

    dynasties: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    entities: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    document_id: str | None = None


@dataclass
class SearchRequest:
    query: ParsedQuery
    filters: SearchFilters = field(default_factory=SearchFilters)
    page: int = 1
    size: int = 10
    facets: str = "sampled"  # sampled | exact | none


def _text_clause(text: str, *, phrase: bool, f: IndexFields) -> dict[str, Any]:
    if len(text) == 1 or (len(text.replace(" ", "")) == 1):
        return {"match": {f.search_key_ngram: {"query": text.strip()}}}
    if phrase:
        return {"match_phrase": {f.search_key: {"query": text}}}
    # Loose term: all its bigrams must occur; the same bigrams in order rank higher.
    return {
        "bool": {
            "must": [{"match": {f.search_key: {"query": text, "operator": "and"}}}],
            "should": [{"match_phrase": {f.search_key: {"query": text, "boost": 2.0}}}],
        }
    }


def _any_of(clause: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The alternatives of a `{"bool": {"should": [...], "minimum_should_match": 1}}`
    filter (nothing else in it), else None."""
    if not clause or set(clause) != {"bool"}:
        return None
    inner = clause["bool"]
    if set(inner) != {"should", "minimum_should_match"} or inner["minimum_should_match"] != 1:
        return None
    should = inner["should"]
    return list(should) if isinstance(should, list) and should else None


def build_search_body(
    request: SearchRequest,
    visibility_filter: dict[str, Any] | None,
    f: IndexFields = FIELDS,
) -> dict[str, Any]:
    """The JSON body of the `_search` request for `request` as seen by one caller.

    `visibility_filter` comes from `Principal.search_filter()`; it is applied as a filter
    of the query itself, so hits *and* facet counts only ever cover visible pages.
    """
    must: list[dict[str, Any]] = [
        _text_clause(term, phrase=False, f=f) for term in request.query.terms
    ]
    must += [_text_clause(phrase, phrase=True, f=f) for phrase in request.query.phrases]
    # Only page docs carry a search key, so text clauses select pages by themselves; the
    # kind filter is sent only without them (a filter over every page doc costs the
    # in-memory search server ~3-9 ms a query: it walks the whole posting list).
    filters: list[dict[str, Any]] = [] if must else [{"term": {f.kind: f.page_kind}}]
    anyof = _any_of(visibility_filter)
    if visibility_filter is not None and anyof is None:
        filters.append(visibility_filter)
    flt = request.filters
    if flt.dynasties:
        filters.append({"terms": {f.dynasties: list(flt.dynasties)}})
    if flt.entity_types:
        filters.append({"terms": {f.entity_types: list(flt.entity_types)}})
    for etype, value in flt.entities:
        filters.append({"term": {f.entity_keys: f"{etype}{f.entity_key_separator}{value}"}})
    if flt.tags:
        filters.append({"terms": {f.tags: list(flt.tags)}})
    if flt.document_id:
        filters.append({"term": {"document_id": flt.document_id}})
    # Era years: the page's year range must overlap the requested one.
    if flt.year_to is not None:
        filters.append({"range": {f.year_from: {"lte": flt.year_to}}})
    if flt.year_from is not None:
        filters.append({"range": {f.year_to: {"gte": flt.year_from}}})

    query: dict[str, Any] = {"bool": {"filter": filters}}
    if must:
        query["bool"]["must"] = must
    if anyof:
        # "one of these" (an owner: public OR own) as the query's own should clauses, each
        # scoring 0: the same hits, scores and facets as the nested bool in the filter
        # list, which the in-memory search server evaluates ~3x slower (~10 ms a query)
        query["bool"]["should"] = [{"constant_score": {"filter": c, "boost": 0}} for c in anyof]
        query["bool"]["minimum_should_match"] = 1
    size = max(1, min(request.size, MAX_PAGE_SIZE))
    start = (max(1, request.page) - 1) * size
    body: dict[str, Any] = {
        "query": query,
        "from": start,
        "size": size,
        "track_total_hits": True,
        "_source": {"excludes": ["entities", "entity_keys", "title.*"]},
    }
    if not must:
        # No words: list pages in document order. With words the default order (score,
        # then index order) is kept: explicit tie-breaker sorts cost the in-memory search
        # server ~7x on broad queries.
        body["sort"] = [{"document_id": "asc"}, {"page_number": "asc"}]
    if request.facets != "none":
        aggs = {
            "dynasty": {"terms": {"field": f.dynasties, "size": FACET_SIZE}},
            "entity_type": {"terms": {"field": f.entity_types, "size": FACET_SIZE}},
            "entity": {"terms": {"field": f.entity_keys, "size": FACET_SIZE}},
            "tag": {"terms": {"field": f.tags, "size": FACET_SIZE}},
        }
        if request.facets == "sampled":
            body["aggs"] = {"sample": {"sampler": {"shard_size": FACET_SAMPLE}, "aggs": aggs}}
        else:
            body["aggs"] = aggs
    return body
