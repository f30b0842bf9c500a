"""Per-host politeness across the workers of one frontier.

Scrapy's DOWNLOAD_DELAY (and a robots.txt Crawl-delay, which SitePolicyMiddleware puts on the
host's download slot) spaces the requests of one process. With N workers a host would see N
times that rate, so each request first reserves its start time in Redis: one host's requests,
from all workers together, start at least `delay` seconds apart. Switched on with a frontier.
"""

import asyncio

from scrapy.exceptions import NotConfigured

from crawler.frontier import shared_frontier

# The next free start time per host, on Redis's clock; returns how long this request waits.
# A string: Redis turns Lua numbers into integers.
_RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local delay = tonumber(ARGV[1])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], string.format('%.6f', start + delay), 'PX', math.ceil((start - now + delay) * 1000) + 1000)
return string.format('%.6f', start - now)
"""


class SharedHostRateMiddleware:
    def __init__(self, crawler, frontier):
        self.crawler = crawler
        self.frontier = frontier
        self._reserve = frontier.server.register_script(_RESERVE_SCRIPT)

    @classmethod
    def from_crawler(cls, crawler):
        frontier = shared_frontier(crawler)
        if frontier is None:
            raise NotConfigured
        return cls(crawler, frontier)

    async def process_request(self, request, spider=None):
        downloader = self.crawler.engine.downloader
        slot = downloader.get_slot_key(request)
        # A robots.txt Crawl-delay lands in per_slot_settings; it raises the shared spacing too.
        delay = max(self.frontier.config.host_delay, downloader.per_slot_settings.get(slot, {}).get("delay", 0.0))
        if delay <= 0:
            return None  # no politeness delay asked for: no round trip either
        key = f"{self.frontier.prefix}:host:{slot}"
        # A lost Redis: no wait (the crawl is stopping; what is in flight finishes).
        wait = float(await asyncio.to_thread(self.frontier.call, self._reserve, keys=[key], args=[delay], fallback=0))
        if wait > 0:
            self.crawler.stats.inc_value("frontier/host_waits")
            await asyncio.sleep(wait)
        return None
