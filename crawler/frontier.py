"""One crawl, many workers: the shared frontier in Redis.

With GALLERY_FRONTIER set, scrapy-redis holds the request queue and the seen-set, and this
module adds what scrapy-redis leaves out:
- the spider's "requested once" claims (crawler/claims.py), so seeds are queued by whichever
  worker claims them first and an image is downloaded by one worker only;
- leases: a pop moves the request into this worker's in-flight hash, and it leaves that hash
  only once its outcome is durable (its links queued, its rows committed to the gallery: the
  pipeline acknowledges at each commit). A worker sends a heartbeat; the requests of one whose
  heartbeat stopped (killed, machine gone) are put back in the queue by the others;
- an end that waits for everyone: a worker whose queue runs dry keeps waiting while any other
  live worker holds requests or has taken one within GALLERY_FRONTIER_BUSY_TTL seconds (it may
  still find links), and stops once the queue is empty and nobody is at work;
- sightings of an image another worker downloaded, handed on through Redis and settled at
  close against the gallery;
- a lost Redis: the worker stops cleanly ("frontier_lost"), acknowledging nothing more, so
  what it had taken is taken back when the crawl is resumed.

Without GALLERY_FRONTIER nothing here is switched on.
"""

import functools
import itertools
import json
import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.utils.defer import deferred_from_coro
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

from crawler.claims import RedisClaims
from crawler.config import FrontierConfig

logger = logging.getLogger(__name__)

KEY_PREFIX = "gallery"  # every key this crawl keeps, next to scrapy-redis's "<spider>:requests"
LEASE = "frontier_lease"  # request.meta: this worker's lease on a request it popped
# request.meta: taken back from a worker that died; links and images it had claimed may never
# have been queued, so the spider offers them again and the seen-set decides.
RECOVERED = "frontier_recovered"
LOST_REASON = "frontier_lost"  # the spider's close reason when Redis goes away mid-crawl

# How soon a worker that waits (for other workers' links, or for its own commit to be
# acknowledged) looks at the queue again. Scrapy's own look comes every 5 s, which a short
# crawl spends idle at its start and end.
IDLE_POLL = 0.5

# What a lost server raises (BusyLoadingError, a restarted one still loading, is one of them).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class FrontierUnavailable(Exception):
    """Redis could not be reached; the message is one line for the operator."""


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class CountingRedis(redis.Redis):
    """A client that counts its requests: each one a round trip to the server, a pipeline or a
    MULTI ... EXEC block one in all. Every client of a worker is one of these, so the crawl's
    stats say how chatty it is with the frontier."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.round_trips = _Count()

    def execute_command(self, *args, **options):
        self.round_trips.add()
        return super().execute_command(*args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        return _CountingPipeline(self.round_trips, self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _CountingPipeline(redis.client.Pipeline):
    def __init__(self, round_trips: "_Count", *args):
        super().__init__(*args)
        self.round_trips = round_trips

    def execute(self, raise_on_error: bool = True):
        if self.command_stack:
            self.round_trips.add()
        return super().execute(raise_on_error)


class _Count:
    def __init__(self):
        self._lock = threading.Lock()  # clients are used from the reactor and worker threads
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


def connect(url: str) -> CountingRedis:
    """A client for the frontier, checked with a PING so a dead server fails now, in one line."""
    try:
        # Short timeouts and few retries: a blip of a second is ridden out, but a worker must
        # notice a lost (or hung) server within a minute, not hang on it for many.
        server = CountingRedis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=10,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3),
            decode_responses=False,
        )
        server.ping()
    except REDIS_DOWN as exc:
        raise FrontierUnavailable(f"cannot reach the frontier at {redacted(url)}: {exc}") from None
    except ValueError as exc:  # a malformed URL
        raise FrontierUnavailable(f"bad frontier URL {redacted(url)}: {exc}") from None
    return server


class FrontierAddon:
    """Switch the scheduler and dupefilter to scrapy-redis when GALLERY_FRONTIER is set."""

    def update_settings(self, settings) -> None:
        config = FrontierConfig.from_settings(settings)
        if config.url is None:
            return
        for name, value in {
            "SCHEDULER": "crawler.frontier.FrontierScheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "REDIS_URL": config.url,
            "REDIS_PARAMS": {"socket_connect_timeout": 5, "socket_timeout": 30, "redis_cls": CountingRedis},
            # The queue belongs to the crawl, not to one worker: a worker that ends (or is
            # killed) must not flush what the others are still working on.
            "SCHEDULER_PERSIST": True,
            # Pops never block the reactor; waiting for other workers is done at spider_idle.
            "SCHEDULER_IDLE_BEFORE_CLOSE": 0,
        }.items():
            settings.set(name, value, priority="addon")


@dataclass(frozen=True)
class WorkLeft:
    """What keeps a worker whose own queue ran dry from ending."""

    queued: int  # requests waiting in the queue (recovered ones included)
    busy: int  # other workers that took a request within the busy TTL
    in_flight: int  # requests other live workers hold
    recovered: int  # requests just taken back from dead workers


class SharedFrontier:
    """This worker's handle on the frontier: one per crawl, built on first use."""

    def __init__(self, config: FrontierConfig, *, spider_name: str, on_lost: Callable[[str], None] = lambda line: None):
        self.config = config
        self.server = connect(config.url)
        self.prefix = f"{KEY_PREFIX}:{spider_name}"
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.claims = RedisClaims(self.server, prefix=self.prefix, call=self.call)
        self.queue_key = f"{spider_name}:requests"  # scrapy-redis's SCHEDULER_QUEUE_KEY default
        self.recovered_key = f"{self.prefix}:recovered"
        self.busy_key = f"{self.prefix}:busy"
        self.workers_key = f"{self.prefix}:workers"  # heartbeats: worker -> when it counts as dead
        self.in_flight_prefix = f"{self.prefix}:inflight:"
        self.in_flight_key = self.in_flight_prefix + self.worker
        self.parked_key = f"{self.prefix}:parked"
        self.host_turns_key = f"{self.prefix}:host_turns"  # host -> requests of it queued so far
        self._push = self.server.register_script(_PUSH_SCRIPT)
        self._pop = self.server.register_script(_POP_SCRIPT)
        self._until = self.server.register_script(_UNTIL_SCRIPT)
        self._sweep = self.server.register_script(_SWEEP_SCRIPT)
        self._leave = self.server.register_script(_LEAVE_SCRIPT)
        self._lease_ids = itertools.count(1)
        # Requests popped and not yet acknowledged, by lease; the pipeline acknowledges them.
        self.leases: dict[str, Request] = {}
        # Set by IndexerPipeline, which acknowledges at each commit. Without it (a crawl whose
        # items go elsewhere) the scheduler acknowledges what the engine is done with.
        self.acks_after_commit = False
        # Set by IndexerPipeline: True while this worker already has as many images waiting for
        # analysis as it will get through soon. It then takes nothing more; the rest stays in the
        # shared queue for whichever worker is free (one added later too), and the workers end
        # together instead of one working off a hoard while the others wait.
        self.saturated: Callable[[], bool] = lambda: False
        self.lost: str | None = None  # the operator's line, once Redis is gone
        self._on_lost = on_lost

    # -- a lost server --------------------------------------------------------------

    def call(self, fn: Callable, *args, fallback=None, **kwargs):
        """fn(*args, **kwargs) against Redis. Once the server is lost: `fallback`, and the crawl
        stops; nothing is acknowledged from then on, so nothing taken can be lost."""
        if self.lost:
            return fallback
        try:
            return fn(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._lose(exc)
            return fallback

    def _lose(self, exc: Exception) -> None:
        if self.lost:
            return
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        self.lost = (
            f"frontier lost: cannot reach {redacted(self.config.url)} ({detail}); "
            "stopping, the frontier is kept for a later resume"
        )
        logger.error(self.lost)
        self._on_lost(self.lost)

    # -- the queue, with leases -----------------------------------------------------

    def push(self, data: bytes, *, priority: int, host: str, fingerprint: str | None, seen_key: str) -> bool:
        """Queue a serialized request unless its fingerprint is in the seen-set; both in one
        step, so nothing is ever marked seen without being queued.

        Higher priority first; within a priority, hosts take turns (the n-th request of each
        host before the (n+1)-th of any). In plain queue order one host's requests would come
        out together, and while they wait out its politeness delay they would hold every
        download slot of the worker."""
        args = [-priority, data, fingerprint or "", host]
        return bool(self.call(self._push, keys=[self.queue_key, seen_key, self.host_turns_key], args=args, fallback=0))

    def pop(self) -> tuple[str, bytes, bool] | None:
        """(lease, serialized request, recovered), moved into this worker's in-flight hash; taken
        back ones first. Marks this worker busy in the same round trip."""
        lease = str(next(self._lease_ids))
        keys = [self.recovered_key, self.queue_key, self.in_flight_key, self.busy_key]
        popped = self.call(self._pop, keys=keys, args=[lease, self.worker, self.config.busy_ttl])
        if not popped:
            return None
        data, recovered = popped
        return lease, data, bool(int(recovered))

    def queued(self) -> int:
        pipe = self.server.pipeline()  # MULTI/EXEC: both counts at one instant, one round trip
        pipe.zcard(self.queue_key).zcard(self.recovered_key)
        return sum(self.call(pipe.execute, fallback=[0]))

    def settled_leases(self, engine) -> list[str]:
        """Leases on requests the engine is done with: their links are queued and their items
        have been through the pipeline. Forgotten here; the caller acknowledges them once
        those items are committed."""
        # The engine's own set of requests between scheduler and the end of their callback's output.
        working = engine._slot.inprogress if engine is not None and engine._slot is not None else set()
        done = [lease for lease, request in self.leases.items() if request not in working]
        for lease in done:
            del self.leases[lease]
        return done

    def ack(self, leases: list[str], parked: list[dict]) -> None:
        """Acknowledge leases whose outcome is now in the gallery, and hand on the sightings
        still waiting for their image, in one step (so neither is lost in between)."""
        if not leases and not parked:
            return
        pipe = self.server.pipeline()  # MULTI/EXEC: one round trip, all or nothing
        if parked:
            pipe.rpush(self.parked_key, *[json.dumps(p) for p in parked])
        if leases:
            pipe.hdel(self.in_flight_key, *leases)
        self.call(pipe.execute)

    # -- workers: heartbeat, busy mark, the end ---------------------------------------

    def beat(self) -> None:
        """This worker is alive for lease_ttl seconds more (sent every third of that)."""
        self.call(self._until, keys=[self.workers_key], args=[self.worker, self.config.lease_ttl])

    def mark_busy(self) -> None:
        self.call(self._until, keys=[self.busy_key], args=[self.worker, self.config.busy_ttl])

    def sweep(self, *, idle: bool) -> WorkLeft | None:
        """Put the requests of dead workers back in the queue (one atomic step: two survivors
        cannot both take them back) and count the work left; `idle` also clears this worker's
        busy mark. None once Redis is lost."""
        keys = [self.workers_key, self.busy_key, self.queue_key, self.recovered_key]
        counts = self.call(self._sweep, keys=keys, args=[self.worker, self.in_flight_prefix, int(idle)])
        return WorkLeft(*(int(n) for n in counts)) if counts else None

    def leave(self) -> None:
        """Not busy any more; off the heartbeat list too unless requests are still held (then
        they wait for the heartbeat to run out and are taken back)."""
        self.call(self._leave, keys=[self.busy_key, self.workers_key, self.in_flight_key], args=[self.worker])

    # -- sightings waiting for another worker's image -----------------------------------

    def settle_parked(self, resolve: Callable[[list[str]], dict[str, str]], write: Callable[[list], None]) -> tuple[int, int] | None:
        """Sightings whose image this worker never downloaded, from every worker: resolve
        them (image URL -> image_id) against the gallery, `write` (commit) those found, then
        drop them from Redis; the rest wait for whoever closes later. Returns (settled, left),
        None once Redis is lost.

        Under a lock, and each worker calls this after committing its own rows and handing on
        its own parked sightings: so a worker that closes after another either finds its
        image in the gallery or finds its sighting here.
        """

        def settle() -> tuple[int, int]:
            with self.server.lock(f"{self.parked_key}:lock", timeout=120, blocking_timeout=120):
                raw = self.server.lrange(self.parked_key, 0, -1)
                waiting = [json.loads(r) for r in raw]
                ids = resolve(sorted({p["image_url"] for p in waiting})) if waiting else {}
                settled = [(ids[p["image_url"]], p) for p in waiting if p["image_url"] in ids]
                if settled:
                    write(settled)  # committed before it leaves Redis: a crash here only repeats it
                left = [r for r, p in zip(raw, waiting) if p["image_url"] not in ids]
                pipe = self.server.pipeline()
                pipe.ltrim(self.parked_key, len(raw), -1)  # what was read; pushes since then stay
                if left:
                    pipe.rpush(self.parked_key, *left)
                pipe.execute()
            return len(settled), len(left)

        return self.call(settle)


# Scripts: each one round trip, atomic. Times are on Redis's clock (workers' clocks need not
# agree). In-flight hashes hold "<score> <serialized request>" so a taken-back request keeps
# its priority.
# The score: the priority's rank, then the request's turn among its host's (exact in a double
# up to 2^53: 9e6 requests per host at 1e9 priority steps).
_PUSH_SCRIPT = """
if ARGV[3] ~= '' and redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
local turn = redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) * 1e9 + turn, ARGV[2])
return 1
"""
_POP_SCRIPT = """
local from, recovered = KEYS[1], 1
local top = redis.call('ZRANGE', from, 0, 0, 'WITHSCORES')
if #top == 0 then
  from, recovered = KEYS[2], 0
  top = redis.call('ZRANGE', from, 0, 0, 'WITHSCORES')
  if #top == 0 then return false end
end
redis.call('ZREM', from, top[1])
redis.call('HSET', KEYS[3], ARGV[1], top[2] .. ' ' .. top[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], tonumber(t[1]) + tonumber(ARGV[3]), ARGV[2])
return {top[1], recovered}
"""
# Member ARGV[1] of sorted set KEYS[1] counts until ARGV[2] seconds from now.
_UNTIL_SCRIPT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""
# In-flight hash keys are built here from the worker names: the frontier is one Redis server,
# not a cluster.
_SWEEP_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1])
local recovered = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if worker ~= ARGV[1] then
    local held = ARGV[2] .. worker
    for _, entry in ipairs(redis.call('HVALS', held)) do
      local space = string.find(entry, ' ', 1, true)
      redis.call('ZADD', KEYS[4], string.sub(entry, 1, space - 1), string.sub(entry, space + 1))
      recovered = recovered + 1
    end
    redis.call('DEL', held)
    redis.call('ZREM', KEYS[1], worker)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if ARGV[3] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local in_flight = 0
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if worker ~= ARGV[1] then in_flight = in_flight + redis.call('HLEN', ARGV[2] .. worker) end
end
local busy = redis.call('ZCARD', KEYS[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then busy = busy - 1 end
return {redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]), busy, in_flight, recovered}
"""
_LEAVE_SCRIPT = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""

_BY_CRAWLER: "weakref.WeakKeyDictionary[object, SharedFrontier | None]" = weakref.WeakKeyDictionary()


def shared_frontier(crawler) -> SharedFrontier | None:
    """This crawl's frontier handle, or None when the crawl runs alone."""
    if crawler not in _BY_CRAWLER:
        config = FrontierConfig.from_settings(crawler.settings)
        stop = functools.partial(_stop_crawl, weakref.ref(crawler))  # weak: the handle is kept per crawler
        _BY_CRAWLER[crawler] = SharedFrontier(config, spider_name="images", on_lost=stop) if config.url else None
    return _BY_CRAWLER[crawler]


def _stop_crawl(crawler_ref, line: str) -> None:
    """Close the spider as "frontier_lost"; crawler/run.py turns the stat into the exit line."""
    crawler = crawler_ref()
    if crawler is None:
        return
    from twisted.internet import reactor  # the one Scrapy installed (importing earlier would install another)

    crawler.stats.set_value("frontier/lost", line)
    reactor.callFromThread(_close_spider, crawler)  # the loss may be noticed on a worker thread


def _close_spider(crawler) -> None:
    if crawler.engine is not None and crawler.engine.spider is not None:
        deferred_from_coro(crawler.engine.close_spider_async(reason=LOST_REASON))


def look_again(crawler, delay: float = 0.0) -> None:
    """Have the engine ask the scheduler for requests again after `delay` seconds. Otherwise it
    asks only when a download ends, or every 5 s."""
    # The engine's slot is private; its next look is a CallLaterOnce (an earlier one wins).
    slot = crawler.engine._slot if crawler.engine is not None else None
    if slot is not None:
        slot.nextcall.schedule(delay)


class FrontierScheduler(Scheduler):
    """scrapy-redis's scheduler with leased pops, an atomic seen-and-push, the heartbeat, and
    the wait for other workers at idle."""

    @classmethod
    def from_crawler(cls, crawler):
        frontier = shared_frontier(crawler)  # fails here, in one line, if Redis is down
        instance = super().from_crawler(crawler)
        instance.frontier = frontier
        instance.crawler = crawler
        instance.heartbeat = task.LoopingCall(instance._beat)
        crawler.signals.connect(instance._spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(instance._spider_closed, signal=signals.spider_closed)
        return instance

    def open(self, spider):
        result = super().open(spider)
        self.heartbeat.start(self.frontier.config.lease_ttl / 3, now=True)
        # Busy from the start: another worker must not end while this one queues the seeds.
        self.frontier.mark_busy()
        self._count_recovered(self.frontier.sweep(idle=False))
        return result

    def enqueue_request(self, request):
        # A retry or redirect of a popped request: the original's lease covers it until it is queued.
        request.meta.pop(LEASE, None)
        fingerprint = None if request.dont_filter else self.df.request_fingerprint(request)
        data = self.queue._encode_request(request)
        host = urlsplit(request.url).hostname or ""
        if not self.frontier.push(data, priority=request.priority, host=host, fingerprint=fingerprint, seen_key=self.df.key):
            if not self.frontier.lost:
                self.df.log(request, self.spider)
            return False
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self):
        if self.frontier.saturated():
            self.stats.inc_value("frontier/held_back")  # the pipeline calls look_again once there is room
            return None
        popped = self.frontier.pop()
        if popped is None:
            return None
        lease, data, recovered = popped
        request = self.queue._decode_request(data)
        request.meta[LEASE] = lease
        if recovered:
            request.meta[RECOVERED] = True
            self.stats.inc_value("frontier/recovered/taken")
        self.frontier.leases[lease] = request
        self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self):
        return self.frontier.queued() > 0

    def _count_recovered(self, left: WorkLeft | None) -> None:
        if left is not None and left.recovered:
            self.stats.inc_value("frontier/recovered/requeued", left.recovered)
            logger.warning("frontier: %d request(s) of stopped workers put back in the queue", left.recovered)

    def _beat(self) -> None:
        self.frontier.beat()
        self._ack_done()

    def _ack_done(self) -> None:
        if not self.frontier.acks_after_commit and self.frontier.leases:
            self.frontier.ack(self.frontier.settled_leases(self.crawler.engine), [])

    def _spider_idle(self, spider):
        if self.frontier.lost:
            raise CloseSpider(LOST_REASON)
        self._ack_done()
        if self.frontier.leases:
            # Done, waiting for the pipeline's commit (it commits at idle) to acknowledge them.
            self._look_again_soon()
            raise DontCloseSpider(f"frontier: {len(self.frontier.leases)} request(s) to acknowledge")
        left = self.frontier.sweep(idle=True)
        if left is None:
            raise CloseSpider(LOST_REASON)
        self._count_recovered(left)
        if left.queued or left.busy or left.in_flight:
            self.crawler.stats.inc_value("frontier/idle_waits")
            self._look_again_soon()
            raise DontCloseSpider(f"frontier: {left}")

    def _look_again_soon(self) -> None:
        look_again(self.crawler, IDLE_POLL)

    def _spider_closed(self, spider, reason):
        if self.heartbeat.running:
            self.heartbeat.stop()
        self.frontier.leave()
        # This worker's requests to Redis, through its own client and scrapy-redis's.
        round_trips = self.frontier.server.round_trips.value + self.server.round_trips.value
        self.stats.set_value("frontier/redis_round_trips", round_trips)
