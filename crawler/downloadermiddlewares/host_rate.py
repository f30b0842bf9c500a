"""Per-host politeness across the workers of one frontier.

Scrapy's DOWNLOAD_DELAY (and a robots.txt Crawl-delay, which SitePolicyMiddleware puts on the
host's download slot) spaces the requests of one process. With N workers a host would see N
times that rate, so each request first reserves its start time in Redis
(SharedFrontier.reserve_host): one host's requests, from all workers together, start at least
`delay` seconds apart. Switched on with a frontier.
"""

import asyncio

from scrapy.exceptions import NotConfigured

from crawler.compat import download_slot, slot_delay
from crawler.frontier.scheduler import shared_frontier


class SharedHostRateMiddleware:
    def __init__(self, crawler, frontier):
        self.crawler = crawler
        self.frontier = frontier

    @classmethod
    def from_crawler(cls, crawler):
        frontier = shared_frontier(crawler)
        if frontier is None:
            raise NotConfigured
        return cls(crawler, frontier)

    async def process_request(self, request, spider=None):
        slot = download_slot(self.crawler, request)
        # A robots.txt Crawl-delay is set on the host's slot; it raises the shared spacing too.
        delay = max(self.frontier.config.host_delay, slot_delay(self.crawler, slot))
        if delay <= 0:
            return None  # no politeness delay asked for: no round trip either
        wait = await asyncio.to_thread(self.frontier.reserve_host, slot, delay=delay)
        if wait > 0:
            self.crawler.stats.inc_value("frontier/host_waits")
            await asyncio.sleep(wait)
        return None
