"""The one path every policy block takes (crawler/signals.py's `report_block`): counted as
policy/blocked/<reason>, and, except tombstones, logged and kept in the gallery's `exclusions`
table for stewards.

Rows are written as the crawl goes, in batches of at most EXCLUSION_BATCH rows (or whatever
gathered in EXCLUSION_FLUSH_EVERY seconds), by one writer thread, in order: the reactor only
appends to a list, and a crawl that dies midway keeps what it logged so far.
"""

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from scrapy import signals
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import task, threads

from crawler.config import IndexerConfig
from crawler.signals import TOMBSTONE, policy_blocked
from indexer.purge_lock import PurgeLock
from indexer.store import Gallery, utcnow
from indexer.store_errors import STORE_ERRORS, StoreError, describe_store_error

logger = logging.getLogger(__name__)

EXCLUSION_BATCH = 500  # rows per append: a few appends for a big crawl, a bounded list in memory
EXCLUSION_FLUSH_EVERY = 30.0  # seconds: a trickle of blocks still lands while the crawl runs


class ExclusionLog:
    def __init__(self, crawler, *, batch_size: int = EXCLUSION_BATCH, flush_every: float = EXCLUSION_FLUSH_EVERY):
        self.crawler = crawler
        self.gallery_uri = IndexerConfig.from_settings(crawler.settings).gallery_uri
        self.batch_size = batch_size
        self.rows: list[dict] = []  # blocks not yet handed to the writer
        self.written = 0  # rows committed to the gallery
        self._lock = threading.Lock()  # blocks found at write time are reported from worker threads
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exclusion-log")
        self._last: Future | None = None
        self._gallery: Gallery | None = None
        self._failed = False
        self._flusher = task.LoopingCall(self.flush)
        self._flush_every = flush_every
        crawler.signals.connect(self.blocked, signal=policy_blocked)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def blocked(self, url: str, reason: str, page_url: str | None = None) -> None:
        self.crawler.stats.inc_value(f"policy/blocked/{reason}")
        if reason == TOMBSTONE:
            return  # counted only: logging it would write the removed URL back into the gallery
        logger.info("blocked (%s): %s", reason, url)
        with self._lock:
            self.rows.append({"url": url, "page_url": page_url, "reason": reason, "at": utcnow()})
            full = len(self.rows) >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> Future | None:
        """Hand the rows gathered so far to the writer thread; returns its future."""
        with self._lock:
            rows, self.rows = self.rows, []
            if rows:
                self._last = self._writer.submit(self._write, rows)
            return self._last

    def spider_opened(self, spider=None) -> None:
        self._flusher.start(self._flush_every, now=False)

    async def spider_closed(self, spider=None, reason=None) -> None:
        if self._flusher.running:
            self._flusher.stop()
        last = self.flush()
        self._writer.shutdown(wait=False)  # the queued writes still run
        if last is None or last.done():
            return
        # Scrapy waits for a spider_closed handler's coroutine: the crawl ends once the last
        # rows are in, and the reactor thread does not wait on the writer meanwhile.
        await maybe_deferred_to_future(threads.deferToThread(last.result))

    def _write(self, rows: list[dict]) -> None:
        """On the writer thread: one append, under the purge lock like every crawl append."""
        if self._failed:
            return
        if self.crawler.stats.get_value("gallery/write_failed"):
            logger.warning("exclusion log rows not written: the gallery failed a write (%d rows)", len(rows))
            return
        run_id = self.crawler.stats.get_value("gallery/run_id")
        for row in rows:
            row["run_id"] = run_id
        try:
            if self._gallery is None:
                self._gallery = Gallery(self.gallery_uri)
            with PurgeLock(self.gallery_uri).shared():  # a purge must not delete the files this writes
                self._gallery.add_exclusions(rows)
        except (ValueError, StoreError, *STORE_ERRORS) as exc:
            self._failed = True  # said once; the counts in the stats stay complete
            logger.error("could not write the exclusion log to %s: %s", self.gallery_uri, describe_store_error(exc))
            return
        self.written += len(rows)
        self.crawler.stats.set_value("policy/exclusions_written", self.written)
