"""The one cache class behind the caller views, the verified-token cache, the synthesis
memo and `ruleauth serve`: bounded, least recently used out, each entry dead from its
deadline on (ttl after its put, or its own expires_at if sooner), on an injected clock."""

import threading

from ruleauth.cache import Cache


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_cache_keeps_at_most_maxsize_entries_and_drops_the_least_recently_used():
    cache: Cache[str, int] = Cache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # a is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == [0, 2, 3]


def test_a_put_of_a_present_key_replaces_it_without_growing_the_cache():
    cache: Cache[str, int] = Cache(2)
    cache.put("a", 1)
    cache.put("a", 2)
    assert len(cache) == 1 and cache.get("a") == 2


def test_a_cache_of_size_zero_keeps_nothing():
    cache: Cache[str, int] = Cache(0, ttl=60)
    cache.put("a", 1)
    assert len(cache) == 0 and cache.get("a") is None


def test_an_entry_lives_ttl_seconds_on_the_injected_clock_and_is_dead_at_its_deadline():
    clock = Clock()
    cache: Cache[str, str] = Cache(8, ttl=60, clock=clock)
    cache.put("a", "x")
    clock.now += 59.999
    assert cache.get("a") == "x"
    clock.now = 1060.0  # exactly at the deadline: expired
    assert cache.get("a") is None
    assert len(cache) == 0  # an expired entry found by get is removed


def test_an_entry_with_its_own_deadline_ends_at_the_earlier_of_it_and_the_ttl():
    clock = Clock()
    cache: Cache[str, str] = Cache(8, ttl=60, clock=clock)
    cache.put("soon", "s", expires_at=1010)
    cache.put("late", "l", expires_at=5000)
    clock.now = 1009.5
    assert cache.get("soon") == "s" and cache.get("late") == "l"
    clock.now = 1010
    assert cache.get("soon") is None and cache.get("late") == "l"
    clock.now = 1060
    assert cache.get("late") is None  # the ttl caps a deadline further away


def test_a_deadline_in_the_past_is_never_answered():
    clock = Clock()
    cache: Cache[str, str] = Cache(8, ttl=60, clock=clock)
    cache.put("a", "x", expires_at=999)
    assert cache.get("a") is None


def test_a_huge_integer_deadline_neither_overflows_nor_outlives_the_ttl():
    clock = Clock()
    cache: Cache[str, str] = Cache(8, ttl=60, clock=clock)
    cache.put("a", "x", expires_at=10**400)
    assert cache.get("a") == "x"
    clock.now = 1060
    assert cache.get("a") is None
    untimed: Cache[str, str] = Cache(8, clock=clock)
    untimed.put("a", "x", expires_at=10**400)
    assert untimed.get("a") == "x"


def test_without_a_ttl_an_entry_lives_until_evicted_or_its_own_deadline():
    clock = Clock()
    cache: Cache[str, str] = Cache(8, clock=clock)
    cache.put("forever", "f")
    cache.put("until", "u", expires_at=2000)
    clock.now = 10**9
    assert cache.get("forever") == "f" and cache.get("until") is None


def test_the_callers_now_is_used_instead_of_the_clock_when_given():
    def no_clock() -> float:
        raise AssertionError("the clock is not read when the caller gives the time")

    cache: Cache[str, str] = Cache(8, ttl=60, clock=no_clock)
    cache.put("a", "x", now=500.0)
    assert cache.get("a", now=559.0) == "x"
    assert cache.get("a", now=560.0) is None


def test_pop_and_clear_remove_entries():
    cache: Cache[str, int] = Cache(8)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.pop("a") == 1 and cache.pop("a") is None
    assert cache.get("a") is None and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.get("b") is None


def test_concurrent_puts_and_gets_never_exceed_the_bound():
    cache: Cache[int, int] = Cache(50, ttl=60)
    errors = []

    def work(base: int) -> None:
        try:
            for i in range(2000):
                cache.put(base + i % 200, i)
                cache.get(base + (i * 7) % 200)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 50
