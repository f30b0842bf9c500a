import pytest

from robots_policy import CachedFetch, MemoryPolicyFileCache, PolicyFileCache
from robots_policy.cache import DEFAULT_MAX_AGE

ORIGIN = "https://a.test"
DAY = 24 * 60 * 60


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def fetch(clock: Clock, status: int | None = 200, body: bytes = b"User-agent: *\nDisallow: /") -> CachedFetch:
    return CachedFetch(status=status, body=body, fetched_at=clock())


def test_default_max_age_is_24_hours():
    assert DEFAULT_MAX_AGE == DAY  # RFC 9309 §2.4
    assert MemoryPolicyFileCache().max_age == DAY


def test_miss_then_hit():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    assert cache.get(ORIGIN, "robots.txt") is None
    entry = fetch(clock)
    cache.put(ORIGIN, "robots.txt", entry)
    assert cache.get(ORIGIN, "robots.txt") == entry


@pytest.mark.parametrize(
    ("age", "fresh"), [(0, True), (DAY - 1, True), (DAY, True), (DAY + 0.001, False), (7 * DAY, False)]
)
def test_entries_older_than_max_age_are_missing(age, fresh):
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    cache.put(ORIGIN, "robots.txt", fetch(clock))
    clock.now += age
    assert (cache.get(ORIGIN, "robots.txt") is not None) is fresh


def test_an_expired_entry_is_forgotten():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock, max_age=60)
    cache.put(ORIGIN, "robots.txt", fetch(clock))
    clock.now += 61
    assert cache.get(ORIGIN, "robots.txt") is None
    assert len(cache) == 0
    # Even if the clock went back, a dropped entry stays gone.
    clock.now -= 61
    assert cache.get(ORIGIN, "robots.txt") is None


def test_an_entry_from_the_future_is_missing():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    cache.put(ORIGIN, "robots.txt", CachedFetch(status=200, body=b"", fetched_at=clock() + 3600))
    assert cache.get(ORIGIN, "robots.txt") is None


def test_kinds_and_origins_are_separate():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    robots = fetch(clock, body=b"robots")
    ai_txt = fetch(clock, body=b"ai")
    tdmrep = fetch(clock, status=404, body=b"")
    cache.put(ORIGIN, "robots.txt", robots)
    cache.put(ORIGIN, "ai.txt", ai_txt)
    cache.put(ORIGIN, "tdmrep.json", tdmrep)
    assert cache.get(ORIGIN, "robots.txt") == robots
    assert cache.get(ORIGIN, "ai.txt") == ai_txt
    assert cache.get(ORIGIN, "tdmrep.json") == tdmrep
    assert cache.get("https://b.test", "robots.txt") is None
    assert cache.get("http://a.test", "robots.txt") is None  # another scheme is another origin


def test_unreachable_outcome_is_cached_too():
    # An unreachable robots.txt means "disallow all" (RFC 9309 §2.3.1.4); remembering it
    # keeps the crawler from hammering a failing host.
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    cache.put(ORIGIN, "robots.txt", fetch(clock, status=None, body=b""))
    assert cache.get(ORIGIN, "robots.txt").status is None


def test_put_replaces_and_restarts_the_age():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock)
    cache.put(ORIGIN, "robots.txt", fetch(clock, body=b"old"))
    clock.now += DAY - 10
    cache.put(ORIGIN, "robots.txt", fetch(clock, body=b"new"))
    clock.now += 20
    assert cache.get(ORIGIN, "robots.txt").body == b"new"


def test_max_entries_drops_the_entry_written_longest_ago():
    clock = Clock()
    cache = MemoryPolicyFileCache(clock=clock, max_entries=2)
    cache.put("https://a.test", "robots.txt", fetch(clock))
    cache.put("https://b.test", "robots.txt", fetch(clock))
    cache.put("https://a.test", "robots.txt", fetch(clock))  # rewritten: now the newest
    cache.put("https://c.test", "robots.txt", fetch(clock))
    assert len(cache) == 2
    assert cache.get("https://b.test", "robots.txt") is None
    assert cache.get("https://a.test", "robots.txt") is not None
    assert cache.get("https://c.test", "robots.txt") is not None


@pytest.mark.parametrize("kwargs", [{"max_age": -1}, {"max_entries": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MemoryPolicyFileCache(**kwargs)


def test_another_store_gets_the_age_rule_for_free():
    """A store only loads and stores (as a Redis one would); the base class applies the age."""

    class DictStore(PolicyFileCache):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.data = {}

        def _load(self, origin, kind):
            return self.data.get((origin, kind))

        def _store(self, origin, kind, fetch):
            self.data[(origin, kind)] = fetch

    clock = Clock()
    store = DictStore(clock=clock, max_age=10)
    store.put(ORIGIN, "ai.txt", fetch(clock))
    assert store.get(ORIGIN, "ai.txt") is not None
    clock.now += 11
    assert store.get(ORIGIN, "ai.txt") is None


def test_the_base_class_is_abstract():
    with pytest.raises(TypeError):
        PolicyFileCache()
