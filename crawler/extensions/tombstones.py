"""Keep the crawl's removal tombstones current, so a removal made while a crawl runs also stops
its requests, not only its rows (the indexer rereads them before each write).

Tombstones are read from the gallery when the crawl starts (crawler/shared_policy.py) and read
again every TOMBSTONE_REFRESH seconds when a removal has added some since. The request checks
(crawler/checks.py) consult the set this replaces, for Scrapy's requests and the browser's.
"""

from scrapy import signals
from twisted.internet import task, threads

from crawler.config import IndexerConfig
from crawler.shared_policy import shared_policy
from indexer.removal import load_tombstones
from indexer.store import Gallery
from indexer.store_errors import STORE_ERRORS

TOMBSTONE_REFRESH = 30.0  # seconds


class TombstoneRefresh:
    def __init__(self, crawler, *, gallery_uri: str, refresh: float = TOMBSTONE_REFRESH):
        self.crawler = crawler
        self.policy = shared_policy(crawler)
        self.gallery_uri = gallery_uri
        self._gallery = None
        self._version = None
        self._refresher = task.LoopingCall(self._refresh)
        self._refresh_every = refresh
        crawler.signals.connect(self._spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, gallery_uri=IndexerConfig.from_settings(crawler.settings).gallery_uri)

    def _spider_opened(self, spider=None):
        self._refresher.start(self._refresh_every, now=True)

    def _spider_closed(self, spider=None, reason=None):
        if self._refresher.running:
            self._refresher.stop()

    def _refresh(self):
        # Off the reactor: on an object store a version check is a request.
        return threads.deferToThread(self.reload).addErrback(lambda failure: failure.trap(*STORE_ERRORS))

    def reload(self) -> None:
        """Read the tombstones again if a removal added some since the last read (the first
        call always reads: what a removal added since the crawl started is in)."""
        if self._gallery is None:
            self._gallery = Gallery(self.gallery_uri, create=False)
        else:
            self._gallery.tombstones.checkout_latest()
        version = self._gallery.tombstones.version
        if version == self._version:
            return
        if self._version is not None:
            self.crawler.stats.inc_value("policy/tombstones_reloaded")
        self.policy.tombstones = load_tombstones(self._gallery)  # one assignment: the guard sees old or new
        self._version = version
