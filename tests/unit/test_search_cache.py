"""The API's search cache rules (api/search_cache.py), with a fake clock."""

from __future__ import annotations

from api.auth import Principal
from api.search_cache import SearchCache, cache_key
from api.search_query import SearchFilters, SearchRequest, build_search_body, parse_query


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listening_cache(**kwargs: float) -> tuple[SearchCache, Clock]:
    clock = Clock()
    cache = SearchCache(clock=clock, **kwargs)  # type: ignore[arg-type]
    cache.listening = True
    return cache, clock


def test_key_holds_the_visibility_filter_and_every_request_input() -> None:
    anonymous, bob, alice = Principal(), Principal(owner="bob"), Principal(owner="alice")
    admin = Principal(admin=True)
    filters = SearchFilters(dynasties=("唐",))
    keys = {
        cache_key("a", who.search_filter(), "q", filters, 1, 10, "sampled")
        for who in (anonymous, bob, alice, admin)
    }
    assert len(keys) == 4
    base = cache_key("a", bob.search_filter(), "q", filters, 1, 10, "sampled")
    assert base == cache_key(
        "a", bob.search_filter(), "q", SearchFilters(dynasties=("唐",)), 1, 10, "sampled"
    )
    for other in (
        cache_key("b", bob.search_filter(), "q", filters, 1, 10, "sampled"),
        cache_key("a", bob.search_filter(), "學", filters, 1, 10, "sampled"),
        cache_key("a", bob.search_filter(), "q", SearchFilters(), 1, 10, "sampled"),
        cache_key("a", bob.search_filter(), "q", filters, 2, 10, "sampled"),
        cache_key("a", bob.search_filter(), "q", filters, 1, 10, "exact"),
    ):
        assert other != base
    # the body sent to the search server is a function of the key's parts alone
    request = SearchRequest(query=parse_query("q"), filters=filters)
    assert build_search_body(request, bob.search_filter()) == build_search_body(
        SearchRequest(query=parse_query("q"), filters=SearchFilters(dynasties=("唐",))),
        Principal(owner="bob").search_filter(),
    )


def test_hit_after_put_and_lru_bound() -> None:
    cache, _ = listening_cache(max_entries=2, settle_s=0)
    assert cache.get(("k1",)) is None
    assert cache.put(("k1",), "v1", cache.generation)
    assert cache.get(("k1",)) == "v1"
    cache.put(("k2",), "v2", cache.generation)
    cache.get(("k1",))  # k1 used last: k2 goes first
    cache.put(("k3",), "v3", cache.generation)
    assert cache.get(("k2",)) is None and cache.get(("k1",)) == "v1" and cache.get(("k3",)) == "v3"
    assert cache.hits == 4 and cache.misses == 2


def test_nothing_served_or_stored_while_not_listening() -> None:
    cache, _ = listening_cache(settle_s=0)
    cache.put(("k",), "v", cache.generation)
    cache.listening = False
    assert cache.get(("k",)) is None
    assert not cache.put(("k2",), "v", cache.generation)


def test_invalidation_drops_entries_and_refuses_answers_fetched_before_it() -> None:
    cache, clock = listening_cache(settle_s=1.0)
    clock.now += 5
    cache.put(("k",), "old", cache.generation)
    fetched_at = cache.generation  # a search starts ...
    cache.invalidate()  # ... the index changes meanwhile ...
    clock.now += 5
    assert not cache.put(("k",), "maybe stale", fetched_at)  # ... its answer is not kept
    assert cache.get(("k",)) is None


def test_settle_window_and_ttl() -> None:
    cache, clock = listening_cache(settle_s=1.0, ttl_s=30.0)
    cache.invalidate()
    assert not cache.put(("k",), "v", cache.generation)  # just changed: not yet
    clock.now += 1.5
    assert cache.put(("k",), "v", cache.generation)
    clock.now += 29
    assert cache.get(("k",)) == "v"
    clock.now += 2
    assert cache.get(("k",)) is None  # older than the TTL


def test_cached_answer_keeps_only_json_and_reads_the_model_back() -> None:
    from api.models import SearchFacets, SearchResponse
    from api.search_cache import CachedAnswer

    model = SearchResponse(
        query="明月",
        phrase=False,
        total=0,
        page=1,
        size=10,
        hits=[],
        facets=SearchFacets(dynasty=[], entity_type=[], entity=[], tag=[]),
    )
    answer = CachedAnswer(model)
    stored = answer.compacted()
    assert stored.json() == answer.json() == model.model_dump_json().encode()
    assert stored.model == model and stored.model is not model
