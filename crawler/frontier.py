"""One crawl, many workers: the shared frontier in Redis.

With GALLERY_FRONTIER set, scrapy-redis holds the request queue and the seen-set, and this
module adds what scrapy-redis leaves out:
- the spider's "requested once" claims (crawler/claims.py), so seeds are queued by whichever
  worker claims them first and an image is downloaded by one worker only;
- an end that waits for everyone: a worker whose queue runs dry keeps waiting while any other
  worker is busy (it may still find links), and stops once the queue is empty and no worker
  has taken a request for GALLERY_FRONTIER_BUSY_TTL seconds;
- sightings of an image another worker downloaded, settled at close against the gallery
  (and handed on through Redis while that worker has not written the image yet).

Without GALLERY_FRONTIER nothing here is switched on.
"""

import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy_redis.scheduler import Scheduler

from crawler.claims import RedisClaims
from crawler.config import FrontierConfig

logger = logging.getLogger(__name__)

KEY_PREFIX = "gallery"  # every key this crawl keeps, next to scrapy-redis's "<spider>:requests"


class FrontierUnavailable(Exception):
    """Redis could not be reached; the message is one line for the operator."""


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def connect(url: str) -> redis.Redis:
    """A client for the frontier, checked with a PING so a dead server fails now, in one line."""
    try:
        # Short timeouts: a worker must notice a lost server, not hang on it for minutes.
        server = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, decode_responses=False)
        server.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
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
            "REDIS_PARAMS": {"socket_connect_timeout": 5, "socket_timeout": 30},
            # The queue belongs to the crawl, not to one worker: a worker that ends (or is
            # killed) must not flush what the others are still working on.
            "SCHEDULER_PERSIST": True,
            # Pops never block the reactor; waiting for other workers is done at spider_idle.
            "SCHEDULER_IDLE_BEFORE_CLOSE": 0,
        }.items():
            settings.set(name, value, priority="addon")


class SharedFrontier:
    """This worker's handle on the frontier: one per crawl, built on first use."""

    def __init__(self, config: FrontierConfig, *, spider_name: str):
        self.config = config
        self.server = connect(config.url)
        self.prefix = f"{KEY_PREFIX}:{spider_name}"
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.claims = RedisClaims(self.server, prefix=self.prefix)
        self.queue_key = f"{spider_name}:requests"  # scrapy-redis's SCHEDULER_QUEUE_KEY default
        self._busy_script = self.server.register_script(_BUSY_SCRIPT)
        self._idle_script = self.server.register_script(_IDLE_SCRIPT)
        self._last_busy = 0.0

    @property
    def busy_key(self) -> str:
        return f"{self.prefix}:busy"

    def mark_busy(self, *, force: bool = False) -> None:
        # At most a few times per TTL: once per request would double the round trips per page.
        now = time.monotonic()
        if force or now - self._last_busy > self.config.busy_ttl / 3:
            self._busy_script(keys=[self.busy_key], args=[self.worker, self.config.busy_ttl])
            self._last_busy = now

    def others_at_work(self) -> tuple[int, int]:
        """(requests queued, other workers busy); this worker is marked idle by asking."""
        self._last_busy = 0.0
        queued, busy = self._idle_script(keys=[self.busy_key, self.queue_key], args=[self.worker])
        return int(queued), int(busy)

    def leave(self) -> None:
        self.server.zrem(self.busy_key, self.worker)

    def settle_parked(self, parked: list[dict], resolve: Callable[[list[str]], dict[str, str]]) -> tuple[list, int]:
        """Sightings whose image this worker never downloaded: resolve them (image URL ->
        image_id) against the gallery together with those other workers left behind, and
        leave the rest in Redis for whoever closes later. Returns ([(image_id, sighting)], left).

        Under a lock, and each worker calls this after writing its own rows: so a worker that
        closes after another either finds its image in the gallery or finds its sighting here.
        """
        key = f"{self.prefix}:parked"
        with self.server.lock(f"{key}:lock", timeout=120, blocking_timeout=120):
            waiting = [json.loads(raw) for raw in self.server.lrange(key, 0, -1)] + parked
            ids = resolve(sorted({p["image_url"] for p in waiting})) if waiting else {}
            settled = [(ids[p["image_url"]], p) for p in waiting if p["image_url"] in ids]
            left = [p for p in waiting if p["image_url"] not in ids]
            pipe = self.server.pipeline()
            pipe.delete(key)
            if left:
                pipe.rpush(key, *[json.dumps(p) for p in left])
            pipe.execute()
        return settled, len(left)


# Busy until TTL seconds from now, on Redis's clock (workers' clocks need not agree).
_BUSY_SCRIPT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_IDLE_SCRIPT = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]))
redis.call('ZREM', KEYS[1], ARGV[1])
return {redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[1])}
"""

_BY_CRAWLER: "weakref.WeakKeyDictionary[object, SharedFrontier | None]" = weakref.WeakKeyDictionary()


def shared_frontier(crawler) -> SharedFrontier | None:
    """This crawl's frontier handle, or None when the crawl runs alone."""
    if crawler not in _BY_CRAWLER:
        config = FrontierConfig.from_settings(crawler.settings)
        _BY_CRAWLER[crawler] = SharedFrontier(config, spider_name="images") if config.url else None
    return _BY_CRAWLER[crawler]


class FrontierScheduler(Scheduler):
    """scrapy-redis's scheduler, plus the busy mark and the wait for other workers at idle."""

    @classmethod
    def from_crawler(cls, crawler):
        frontier = shared_frontier(crawler)  # fails here, in one line, if Redis is down
        instance = super().from_crawler(crawler)
        instance.frontier = frontier
        instance.crawler = crawler
        crawler.signals.connect(instance._spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(instance._spider_closed, signal=signals.spider_closed)
        return instance

    def open(self, spider):
        result = super().open(spider)
        # Busy from the start: another worker must not end while this one queues the seeds.
        self.frontier.mark_busy(force=True)
        return result

    def next_request(self):
        request = super().next_request()
        if request is not None:
            self.frontier.mark_busy()
        return request

    def _spider_idle(self, spider):
        queued, busy = self.frontier.others_at_work()
        if queued or busy:
            self.crawler.stats.inc_value("frontier/idle_waits")
            raise DontCloseSpider(f"frontier: {queued} queued, {busy} other worker(s) busy")

    def _spider_closed(self, spider, reason):
        self.frontier.leave()
