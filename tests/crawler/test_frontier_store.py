"""The Redis-backed pieces of a shared frontier, against a real redis-server on 127.0.0.1: claims, the
site-file cache, and the leases that keep a killed worker's requests from being lost."""

import json
import time
from dataclasses import replace

import pytest
import redis

from crawler.claims import Claim, LocalClaims
from crawler.config import FrontierConfig
from crawler.frontier.claims import RedisClaims
from crawler.frontier.client import connect
from crawler.frontier.store import SharedFrontier, WorkLeft
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


def test_one_worker_fetches_a_site_file_the_others_wait(clean):
    first, second = RedisPolicyFileCache(clean, prefix="t"), RedisPolicyFileCache(clean, prefix="t")
    assert first.reserve("http://a.example", "robots.txt", seconds=30)
    assert not second.reserve("http://a.example", "robots.txt", seconds=30)  # first is fetching it
    assert second.reserve("http://a.example", "ai.txt", seconds=30)  # another file: its own reservation
    fetch = CachedFetch(status=404, body=b"", fetched_at=first.clock())
    first.put("http://a.example", "robots.txt", fetch)
    assert second.get("http://a.example", "robots.txt") == fetch
    assert not clean.exists("t:sitefile:robots.txt:http://a.example:fetching")  # released with the answer


def test_a_site_file_reservation_lapses(clean):
    cache = RedisPolicyFileCache(clean, prefix="t")
    assert cache.reserve("http://a.example", "robots.txt", seconds=0.05)
    time.sleep(0.2)  # the fetching worker died without an answer
    assert cache.reserve("http://a.example", "robots.txt", seconds=30)


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_claims_once_and_limit(clean, kind):
    state: dict = {}
    claims = RedisClaims(clean, prefix="t") if kind == "redis" else LocalClaims(lambda: state)
    new, seen, over = Claim.NEW, Claim.SEEN, Claim.OVER_LIMIT
    assert claims.claim_all("pages", ["http://a/1", "http://a/1"], limit=2) == [new, seen]
    assert claims.claim_all("pages", ["http://a/2", "http://a/3", "http://a/2"], limit=2) == [new, over, seen]
    assert claims.claim_all("pages", [], limit=2) == []
    assert claims.claim_all("images", ["http://a/1"]) == [new]


def test_two_clients_claim_each_url_once(clean, server):
    first, second = RedisClaims(server, prefix="t"), RedisClaims(redis.Redis(connection_pool=server.connection_pool), prefix="t")
    won = [c.claim_all("images", [f"http://a/{n}"]) == [Claim.NEW] for n in range(50) for c in (first, second)]
    assert sum(won) == 50


# -- leases: pop into an in-flight hash, acknowledge, take back from dead workers ------------


def _frontier(url: str, **changes) -> SharedFrontier:
    config = FrontierConfig(url=url, busy_ttl=30.0, lease_ttl=30.0, site_file_ttl=60.0, host_delay=0.0)
    return SharedFrontier(replace(config, **changes), spider_name="t", queue_key="t:requests")


@pytest.fixture
def url(clean):
    kwargs = clean.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


def _die(server, frontier: SharedFrontier) -> None:
    """What a SIGKILL leaves: its heartbeat no longer renewed, here already run out."""
    server.zadd(frontier.workers_key, {frontier.worker: 0})


def test_pop_leases_and_ack_releases(clean, url):
    worker = _frontier(url)
    worker.beat()
    assert worker.push(b"page", priority=0, host="a", fingerprint="fp-page", seen_key="t:seen")
    assert not worker.push(b"page again", priority=0, host="a", fingerprint="fp-page", seen_key="t:seen")  # seen: not queued
    assert worker.push(b"image", priority=10, host="a", fingerprint=None, seen_key="t:seen")
    first, second = worker.pop(), worker.pop()
    assert (first[1:], second[1:]) == ((b"image", False), (b"page", False))  # higher priority first
    assert worker.pop() is None
    assert clean.hgetall(worker.in_flight_key) == {first[0].encode(): b"-9999999998 image", second[0].encode(): b"1 page"}  # priority, then turn
    assert clean.zscore(worker.busy_key, worker.worker)  # the pop marked it busy, same round trip
    worker.ack([first[0]], [{"image_url": "http://a/x.jpg"}])
    assert list(clean.hkeys(worker.in_flight_key)) == [second[0].encode()]
    assert clean.lrange(worker.parked_key, 0, -1) == [b'{"image_url": "http://a/x.jpg"}']


def test_hosts_take_turns_within_a_priority(clean, url):
    worker = _frontier(url)
    for n in range(3):
        worker.push(f"a{n}".encode(), priority=0, host="a.test", fingerprint=None, seen_key="t:seen")
    worker.push(b"b0", priority=0, host="b.test", fingerprint=None, seen_key="t:seen")
    worker.push(b"a-image", priority=10, host="a.test", fingerprint=None, seen_key="t:seen")
    worker.push(b"b1", priority=0, host="b.test", fingerprint=None, seen_key="t:seen")
    popped = [worker.pop()[1] for _ in range(6)]
    assert popped == [b"a-image", b"a0", b"b0", b"a1", b"b1", b"a2"]


def test_a_dead_workers_requests_are_taken_back_once_with_their_priority(clean, url):
    dead, survivor, other = _frontier(url), _frontier(url), _frontier(url)
    for worker in (dead, survivor, other):
        worker.beat()
    dead.push(b"page", priority=0, host="a", fingerprint=None, seen_key="t:seen")
    dead.push(b"image", priority=10, host="a", fingerprint=None, seen_key="t:seen")
    dead.pop(), dead.pop()
    survivor.push(b"fresh", priority=20, host="a", fingerprint=None, seen_key="t:seen")

    # Alive: its requests keep the others waiting, and stay where they are.
    assert survivor.sweep(idle=True) == WorkLeft(queued=1, busy=1, in_flight=2, recovered=0)
    _die(clean, dead)
    assert survivor.sweep(idle=True) == WorkLeft(queued=3, busy=1, in_flight=0, recovered=2)
    assert other.sweep(idle=True).recovered == 0  # taken back once only
    assert not clean.exists(dead.in_flight_key)
    assert clean.zscore(dead.workers_key, dead.worker) is None
    # Taken-back requests come first, flagged, in their own priority order.
    assert [survivor.pop()[1:] for _ in range(3)] == [(b"image", True), (b"page", True), (b"fresh", False)]


def test_leaving_with_requests_held_leaves_them_to_be_taken_back(clean, url):
    holder, done, survivor = _frontier(url), _frontier(url), _frontier(url)
    for worker in (holder, done):
        worker.beat()
        worker.push(b"r-" + worker.worker.encode(), priority=0, host="a", fingerprint=None, seen_key="t:seen")
        lease = worker.pop()[0]
    done.ack([lease], [])
    holder.leave(), done.leave()
    assert clean.zrange(holder.workers_key, 0, -1) == [holder.worker.encode()]
    assert survivor.sweep(idle=True).in_flight == 1  # its heartbeat has not run out yet
    _die(clean, holder)
    assert survivor.sweep(idle=True).recovered == 1


def test_a_hosts_requests_start_apart_across_workers(clean, url):
    first, second = _frontier(url), _frontier(url)
    assert first.reserve_host("a.test", delay=5.0) == 0  # nobody before it
    assert 4.5 < second.reserve_host("a.test", delay=5.0) <= 5.0  # another worker: waits its turn
    assert 9.5 < first.reserve_host("a.test", delay=5.0) <= 10.0
    assert second.reserve_host("b.test", delay=5.0) == 0  # another host: its own spacing
    assert 0 < clean.pttl("gallery:t:host:a.test") <= 16_000  # the reservation expires once it is past


def test_settling_parked_sightings_keeps_what_others_push_meanwhile(clean, url):
    worker, other = _frontier(url), _frontier(url)
    worker.ack([], [{"image_url": "http://a/known.jpg", "page_url": "p1"}, {"image_url": "http://a/later.jpg", "page_url": "p2"}])
    written = []

    def write(settled):
        written.extend(settled)
        other.ack([], [{"image_url": "http://a/known.jpg", "page_url": "p3"}])  # another worker's commit, mid-settle

    assert worker.settle_parked(lambda urls: {"http://a/known.jpg": "id-1"} if urls else {}, write) == (1, 1)
    assert written == [("id-1", {"image_url": "http://a/known.jpg", "page_url": "p1"})]
    left = [json.loads(raw)["page_url"] for raw in clean.lrange(worker.parked_key, 0, -1)]
    assert sorted(left) == ["p2", "p3"]


def test_a_lost_server_stops_once_and_answers_fallbacks(tmp_path):
    with redis_server(tmp_path) as url:
        lines = []
        config = FrontierConfig(url=url, busy_ttl=30.0, lease_ttl=30.0, site_file_ttl=60.0, host_delay=0.0)
        worker = SharedFrontier(config, spider_name="t", queue_key="t:requests", on_lost=lines.append)
        worker.push(b"page", priority=0, host="a", fingerprint=None, seen_key="t:seen")
    # The server is gone now.
    assert worker.pop() is None
    assert worker.claims.claim_all("pages", ["http://a/", "http://b/"]) == [Claim.SEEN] * 2  # nothing new is requested
    assert not worker.push(b"page", priority=0, host="a", fingerprint=None, seen_key="t:seen")
    assert worker.reserve_host("a", delay=5.0) == 0  # no wait: the crawl is stopping
    assert worker.sweep(idle=True) is None
    worker.ack(["1"], [])
    assert len(lines) == 1
    assert lines[0].startswith(f"frontier lost: cannot reach {url} (")
    assert lines[0].endswith("; stopping, the frontier is kept for a later resume")
    assert "\n" not in lines[0]


def test_the_client_counts_round_trips(url):
    client = connect(url)
    before = client.round_trips.value
    client.set("t:x", b"1")
    client.pipeline().get("t:x").get("t:y").execute()  # MULTI ... EXEC: one round trip
    client.pipeline().execute()  # nothing queued: nothing sent
    assert client.round_trips.value - before == 2
