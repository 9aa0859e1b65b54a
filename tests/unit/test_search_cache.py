"""The API's search cache rules (api/search_cache.py), with a fake clock."""

from __future__ import annotations

from api.search_cache import SearchCache, cache_key


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


def test_key_is_the_exact_body_and_differs_per_visibility_filter() -> None:
    anonymous = {"query": {"bool": {"filter": [{"term": {"visibility": "public"}}]}}}
    owner = {
        "query": {
            "bool": {
                "filter": [
                    {
                        "bool": {
                            "should": [
                                {"term": {"visibility": "public"}},
                                {"term": {"owner": "bob"}},
                            ],
                            "minimum_should_match": 1,
                        }
                    }
                ]
            }
        }
    }
    assert cache_key("a", anonymous, "q") != cache_key("a", owner, "q")
    assert cache_key("a", anonymous, "q") != cache_key("b", anonymous, "q")
    assert cache_key("a", anonymous, "學") != cache_key("a", anonymous, "学")
    # key order inside the body does not matter
    assert cache_key("a", {"x": 1, "y": 2}, "q") == cache_key("a", {"y": 2, "x": 1}, "q")


def test_hit_after_put_and_lru_bound() -> None:
    cache, clock = listening_cache(max_entries=2, settle_s=0)
    assert cache.get("k1") is None
    assert cache.put("k1", "v1", cache.generation)
    assert cache.get("k1") == "v1"
    cache.put("k2", "v2", cache.generation)
    cache.get("k1")  # k1 used last: k2 goes first
    cache.put("k3", "v3", cache.generation)
    assert cache.get("k2") is None and cache.get("k1") == "v1" and cache.get("k3") == "v3"
    assert cache.hits == 4 and cache.misses == 2


def test_nothing_served_or_stored_while_not_listening() -> None:
    cache, _ = listening_cache(settle_s=0)
    cache.put("k", "v", cache.generation)
    cache.listening = False
    assert cache.get("k") is None
    assert not cache.put("k2", "v", cache.generation)


def test_invalidation_drops_entries_and_refuses_answers_fetched_before_it() -> None:
    cache, clock = listening_cache(settle_s=1.0)
    clock.now += 5
    cache.put("k", "old", cache.generation)
    fetched_at = cache.generation  # a search starts ...
    cache.invalidate()  # ... the index changes meanwhile ...
    clock.now += 5
    assert not cache.put("k", "maybe stale", fetched_at)  # ... its answer is not kept
    assert cache.get("k") is None


def test_settle_window_and_ttl() -> None:
    cache, clock = listening_cache(settle_s=1.0, ttl_s=30.0)
    cache.invalidate()
    assert not cache.put("k", "v", cache.generation)  # just changed: not yet
    clock.now += 1.5
    assert cache.put("k", "v", cache.generation)
    clock.now += 29
    assert cache.get("k") == "v"
    clock.now += 2
    assert cache.get("k") is None  # older than the TTL
