"""Never request what a removal tombstoned: URL, URL prefix or domain, checked before sending.

Tombstones are read from the gallery once per crawl (crawler/shared_policy.py), and the browser's
request guard checks them too; a removal made while a crawl runs is still enforced by the
indexer, which rereads them before each write.
"""

from scrapy.exceptions import IgnoreRequest

from crawler.shared_policy import shared_policy
from crawler.signals import TOMBSTONE, report_block


class TombstoneMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler
        self.tombstones = shared_policy(crawler).tombstones

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request, spider=None):
        # Site files (robots.txt, ai.txt, TDMRep) are fetched to learn the rules, never stored.
        if request.meta.get("site_file") or not self.tombstones.blocks_url(request.url):
            return None
        report_block(self.crawler, url=request.url, reason=TOMBSTONE)
        raise IgnoreRequest("blocked (tombstone)")
