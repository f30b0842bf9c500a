"""The frontier's Scrapy side: the addon that switches the scheduler and dupefilter to
scrapy-redis, this crawl's SharedFrontier handle, and the scheduler that pops with leases,
pushes through the atomic seen-and-push, sends the heartbeat and waits for the other workers at
idle."""

import functools
import logging
import weakref
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import CloseSpider, DontCloseSpider
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.request import request_from_dict
from scrapy_redis import defaults as scrapy_redis_defaults
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

from crawler.compat import requests_in_progress, schedule_next_look
from crawler.config import FrontierConfig
from crawler.frontier.client import CountingRedis
from crawler.frontier.store import SharedFrontier, WorkLeft

logger = logging.getLogger(__name__)

SPIDER_NAME = "images"  # the one spider a frontier serves; its keys are named after it
LEASE = "frontier_lease"  # request.meta: this worker's lease on a request it popped
# request.meta: taken back from a worker that died; links and images it had claimed may never
# have been queued, so the spider offers them again and the seen-set decides.
RECOVERED = "frontier_recovered"
LOST_REASON = "frontier_lost"  # the spider's close reason when Redis goes away mid-crawl

# How soon a worker that waits (for other workers' links, or for its own commit to be
# acknowledged) looks at the queue again. Scrapy's own look comes every 5 s, which a short
# crawl spends idle at its start and end.
IDLE_POLL = 0.5


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


_BY_CRAWLER: "weakref.WeakKeyDictionary[object, SharedFrontier | None]" = weakref.WeakKeyDictionary()


def shared_frontier(crawler) -> SharedFrontier | None:
    """This crawl's frontier handle, or None when the crawl runs alone."""
    if crawler not in _BY_CRAWLER:
        config = FrontierConfig.from_settings(crawler.settings)
        stop = functools.partial(_stop_crawl, weakref.ref(crawler))  # weak: the handle is kept per crawler
        _BY_CRAWLER[crawler] = (
            SharedFrontier(config, spider_name=SPIDER_NAME, queue_key=_queue_key(crawler.settings), on_lost=stop)
            if config.url
            else None
        )
    return _BY_CRAWLER[crawler]


def _queue_key(settings) -> str:
    """The key scrapy-redis's scheduler will open its queue under (checked when it opens)."""
    return settings.get("SCHEDULER_QUEUE_KEY", scrapy_redis_defaults.SCHEDULER_QUEUE_KEY) % {"spider": SPIDER_NAME}


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
    schedule_next_look(crawler.engine, delay)


class FrontierScheduler(Scheduler):
    """scrapy-redis's scheduler with leased pops, an atomic seen-and-push, the heartbeat, and
    the wait for other workers at idle. Requests are stored as scrapy-redis stores them (its
    SCHEDULER_SERIALIZER over Request.to_dict), in its queue's key."""

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
        if self.queue.key != self.frontier.queue_key:
            raise ValueError(f"the frontier's queue key {self.frontier.queue_key!r} is not scrapy-redis's {self.queue.key!r}")
        self.heartbeat.start(self.frontier.config.lease_ttl / 3, now=True)
        # Busy from the start: another worker must not end while this one queues the seeds.
        self.frontier.mark_busy()
        self._count_recovered(self.frontier.sweep(idle=False))
        return result

    def enqueue_request(self, request):
        # A retry or redirect of a popped request: the original's lease covers it until it is queued.
        request.meta.pop(LEASE, None)
        fingerprint = None if request.dont_filter else self.df.request_fingerprint(request)
        data = self.queue.serializer.dumps(request.to_dict(spider=self.spider))
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
        request = request_from_dict(self.queue.serializer.loads(data), spider=self.spider)
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
            self.frontier.ack(self.frontier.settled_leases(requests_in_progress(self.crawler.engine)), [])

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
