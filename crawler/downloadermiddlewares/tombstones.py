"""Never request what a removal tombstoned: URL, URL prefix or domain, checked before sending.

Tombstones are read from the gallery once, when the spider opens; a removal made while a crawl
runs is still enforced by the indexer, which rereads them before each write.
"""

from scrapy import signals
from scrapy.exceptions import IgnoreRequest

from crawler.config import IndexerConfig
from indexer.removal import TombstoneIndex, load_tombstones
from indexer.store import Gallery


class TombstoneMiddleware:
    def __init__(self, crawler, config: IndexerConfig):
        self.crawler = crawler
        self.config = config
        self.tombstones = TombstoneIndex()
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, IndexerConfig.from_settings(crawler.settings))

    def spider_opened(self, spider=None):
        self.tombstones = load_tombstones(Gallery(self.config.gallery_uri))

    def process_request(self, request, spider=None):
        # Site files (robots.txt, ai.txt, TDMRep) are fetched to learn the rules, never stored.
        if request.meta.get("site_file") or not self.tombstones.blocks_url(request.url):
            return None
        # Counted, never logged with its URL: the exclusion log would write the removed URL
        # back into the gallery it was purged from.
        self.crawler.stats.inc_value("policy/blocked/tombstone")
        raise IgnoreRequest("blocked (tombstone)")
