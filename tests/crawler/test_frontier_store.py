"""The Redis-backed pieces of a shared frontier, against a real redis-server on 127.0.0.1."""

import pytest
import redis

from crawler.claims import Claim, LocalClaims, RedisClaims
from crawler.policy_cache import RedisPolicyFileCache
from robots_policy.cache import CachedFetch
from tests.servers import redis_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture
def clean(server):
    server.flushdb()
    return server


def test_site_file_cache_is_shared_and_expires(clean):
    now = [1000.0]
    writer = RedisPolicyFileCache(clean, prefix="t", max_age=60, clock=lambda: now[0])
    reader = RedisPolicyFileCache(clean, prefix="t", max_age=60, clock=lambda: now[0])
    fetch = CachedFetch(status=200, body=b"User-agent: *\nDisallow: /x\n\xff", fetched_at=now[0])
    writer.put("http://a.example", "robots.txt", fetch)
    assert reader.get("http://a.example", "robots.txt") == fetch
    assert reader.get("http://a.example", "ai.txt") is None
    assert 0 < clean.pttl("t:sitefile:robots.txt:http://a.example") <= 60_000  # Redis expires it too
    now[0] += 61
    assert reader.get("http://a.example", "robots.txt") is None


def test_unreachable_outcome_round_trips(clean):
    cache = RedisPolicyFileCache(clean, prefix="t")
    fetch = CachedFetch(status=None, body=b"", fetched_at=cache.clock())
    cache.put("https://b.example:8443", "tdmrep.json", fetch)
    assert cache.get("https://b.example:8443", "tdmrep.json") == fetch


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_claims_once_and_limit(clean, kind):
    state: dict = {}
    claims = RedisClaims(clean, prefix="t") if kind == "redis" else LocalClaims(lambda: state)
    assert claims.claim("pages", "http://a/1", limit=2) is Claim.NEW
    assert claims.claim("pages", "http://a/1", limit=2) is Claim.SEEN
    assert claims.claim("pages", "http://a/2", limit=2) is Claim.NEW
    assert claims.claim("pages", "http://a/3", limit=2) is Claim.OVER_LIMIT
    assert claims.claim("pages", "http://a/2", limit=2) is Claim.SEEN
    assert claims.claim("images", "http://a/1") is Claim.NEW


def test_two_clients_claim_each_url_once(clean, server):
    first, second = RedisClaims(server, prefix="t"), RedisClaims(redis.Redis(connection_pool=server.connection_pool), prefix="t")
    won = [c.claim("images", f"http://a/{n}") is Claim.NEW for n in range(50) for c in (first, second)]
    assert sum(won) == 50
