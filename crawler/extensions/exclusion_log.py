"""Counts every policy block (policy/blocked/<reason>) and keeps an exclusion log a steward
can read: one row per blocked URL, written to the gallery's `exclusions` table at the end."""

import logging

from scrapy import signals

from crawler.config import IndexerConfig
from crawler.signals import TOMBSTONE, policy_blocked
from indexer.store import STORE_ERRORS, Gallery, StoreError, describe_store_error, utcnow

logger = logging.getLogger(__name__)


class ExclusionLog:
    def __init__(self, crawler):
        self.crawler = crawler
        self.gallery_uri = IndexerConfig.from_settings(crawler.settings).gallery_uri
        self.rows: list[dict] = []
        crawler.signals.connect(self.blocked, signal=policy_blocked)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def blocked(self, url: str, reason: str, page_url: str | None = None) -> None:
        self.crawler.stats.inc_value(f"policy/blocked/{reason}")
        if reason == TOMBSTONE:
            return  # counted only: logging it would write the removed URL back into the gallery
        logger.info("blocked (%s): %s", reason, url)
        self.rows.append({"url": url, "page_url": page_url, "reason": reason, "at": utcnow()})

    def spider_closed(self, spider, reason) -> None:
        if self.crawler.stats.get_value("gallery/write_failed"):
            logger.warning("exclusion log not written: the gallery failed a write (%d rows)", len(self.rows))
            return
        run_id = self.crawler.stats.get_value("gallery/run_id")
        for row in self.rows:
            row["run_id"] = run_id
        try:
            Gallery(self.gallery_uri).add_exclusions(self.rows)
        except (ValueError, StoreError, *STORE_ERRORS) as exc:
            logger.error("could not write the exclusion log to %s: %s", self.gallery_uri, describe_store_error(exc))
