"""Hand each fetched image to the indexer: analysis in a process pool, rows in batches."""

import asyncio
import logging
import uuid
from collections import defaultdict

from scrapy.utils.defer import deferred_from_coro

from crawler.config import IndexerConfig
from crawler.shared_policy import shared_policy
from crawler.frontier import shared_frontier
from crawler.signals import report_block
from crawler.items import ImageItem
from indexer.analyze import Rejected
from indexer.ingest import Batch, BatchWriteFailed, GalleryWriter, Sighting, WriteResult
from indexer.store import STORE_ERRORS, Gallery, describe_store_error, utcnow
from indexer.workers import AnalyzerPool
from robots_policy.domains import registrable_domain

logger = logging.getLogger(__name__)


class IndexerPipeline:
    def __init__(self, crawler, config: IndexerConfig):
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.run_id = uuid.uuid4().hex
        self._image_ids: dict[str, str] = {}  # image URL -> image_id, for repeat sightings
        self._parked: dict[str, list[ImageItem]] = defaultdict(list)  # waiting for their URL's image
        self._write_lock = asyncio.Lock()
        self.write_failed: str | None = None  # why the store refused a write; nothing more is tried
        self._closing = False

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, IndexerConfig.from_settings(crawler.settings))

    def open_spider(self, spider=None):
        self.stats.set_value("gallery/run_id", self.run_id)
        self.optouts = shared_policy(self.crawler).optouts  # read once per crawl, with the middleware
        self.gallery = Gallery(self.config.gallery_uri)
        self.writer = GalleryWriter(self.gallery, batch_size=self.config.batch_size)
        self.pool = AnalyzerPool(workers=self.config.workers, limits=self.config.limits)

    async def close_spider(self, spider=None):
        self._closing = True
        await self._flush()
        self.pool.close()
        if not self.write_failed:
            await self._settle_parked()
            await self._flush()
        for url, items in self._parked.items():
            # Their image was never stored (blocked, failed or skipped): nothing to point at.
            reason = "gallery_write_failed" if self.write_failed else "image_unavailable"
            self.stats.inc_value(f"indexer/skipped/{reason}", len(items))
        if self.write_failed:
            return  # the lookup index and the run record are writes too
        try:
            # Lookups by image_id (search results, removals) stay fast as the gallery grows.
            await asyncio.to_thread(self.gallery.index_lookup_columns)
            self.gallery.record_crawl(self.run_id, self.stats.get_stats())
        except STORE_ERRORS as exc:
            self._stop_writing(f"writing to the gallery at {self.gallery.uri} failed: {describe_store_error(exc)}")

    async def process_item(self, item, spider=None):
        if not isinstance(item, ImageItem):
            return item
        if self.write_failed:  # the crawl is stopping: nothing more can be stored
            item.status, item.error_message, item.body = "skipped", "gallery_write_failed", None
            self.stats.inc_value("indexer/skipped/gallery_write_failed")
            return item
        if item.body is None:
            self._add_repeat_sighting(item)
        else:
            await self._index(item)
        if self.writer.batch_ready():
            await self._flush()
        return item

    async def _index(self, item: ImageItem) -> None:
        body, item.body = item.body, None  # don't keep the bytes alive past analysis
        result = await asyncio.wrap_future(self.pool.submit(body))
        if isinstance(result, Rejected):
            item.status, item.error_message = "skipped", result.detail
            if result.by_policy:
                report_block(self.crawler, url=item.image_url, reason=result.reason, page_url=item.page_url)
            else:
                self.stats.inc_value(f"indexer/skipped/{result.reason}")
                logger.info("skipped %s (%s)", item.image_url, result.detail)
            return
        optout = self.optouts.check_image(sha256=result.image_id, pdq=result.hashes.pdq)
        if not optout.allowed:
            item.status, item.error_message = "skipped", optout.reason
            report_block(self.crawler, url=item.image_url, reason=optout.reason, page_url=item.page_url)
            return
        item.policy = " ".join(filter(None, (item.policy, result.policy, "optout-hash:none")))
        sighting = self._sighting(item)
        if self.writer.tombstoned(result, sighting):
            # Counted only: the exclusion log would write the removed URL back into the gallery.
            item.status, item.error_message = "skipped", "tombstone"
            self.stats.inc_value("policy/blocked/tombstone")
            return
        item.image_id = result.image_id
        is_new = self.writer.add(result, sighting)
        item.status = "stored" if is_new else "duplicate"
        self.stats.inc_value("indexer/stored" if is_new else "indexer/duplicate/exact")
        self._image_ids[item.image_url] = result.image_id
        for parked in self._parked.pop(item.image_url, []):
            self._add_repeat_sighting(parked)

    async def _settle_parked(self) -> None:
        """Sightings of images downloaded by an earlier run of this job (a resumed JOBDIR) or
        by another worker on the frontier: their image_id is in the gallery by now."""
        frontier = shared_frontier(self.crawler)
        if not self._parked and frontier is None:
            return
        parked = [_parked_dict(item) for items in self._parked.values() for item in items]
        self._parked.clear()
        if frontier is None:
            ids = await asyncio.to_thread(self._image_ids_of, sorted({p["image_url"] for p in parked}))
            settled, left = [(ids[p["image_url"]], p) for p in parked if p["image_url"] in ids], 0
            for p in parked:
                if p["image_url"] not in ids:
                    self._parked[p["image_url"]].append(ImageItem(**p))
        else:
            # Others may settle what this worker leaves, so it is not counted as unavailable here.
            settled, left = await asyncio.to_thread(frontier.settle_parked, parked, self._image_ids_of)
            self.stats.set_value("frontier/parked_left", left)
        for image_id, p in settled:
            self._image_ids[p["image_url"]] = image_id
            self._add_repeat_sighting(ImageItem(**p))
        self.stats.inc_value("indexer/sightings/settled_at_close", len(settled))

    def _image_ids_of(self, urls: list[str]) -> dict[str, str]:
        self.gallery.refresh()
        return self.gallery.image_ids_for_urls(urls)

    def _add_repeat_sighting(self, item: ImageItem) -> None:
        image_id = self._image_ids.get(item.image_url)
        if image_id is None:
            self._parked[item.image_url].append(item)
            item.status = "parked"
            return
        item.image_id, item.status = image_id, "sighting"
        self.writer.add_sighting(image_id, self._sighting(item))
        self.stats.inc_value("indexer/sightings/repeat")

    def _sighting(self, item: ImageItem) -> Sighting:
        return Sighting(
            image_url=item.image_url,
            page_url=item.page_url,
            domain=registrable_domain(item.page_url),
            alt_text=item.alt_text,
            license_url=item.license_url,
            fetched_at=utcnow(),
            http_status=item.http_status,
            rendered=item.rendered,
            policy=item.policy,
        )

    async def _flush(self) -> None:
        batch = self.writer.take_batch()
        if not len(batch):
            return
        async with self._write_lock:  # one append at a time, in order
            result = await self._write(batch)
        self.stats.inc_value("indexer/duplicate/near", result.near_duplicates)
        self.stats.inc_value("indexer/rows/images", result.images)
        self.stats.inc_value("indexer/rows/sightings", result.sightings)
        if result.blocked:
            self.stats.inc_value("policy/blocked/tombstone", result.blocked)
        if self.write_failed:
            self.stats.inc_value("indexer/skipped/gallery_write_failed", len(batch.sightings) - result.sightings)
            # An image counts as stored when queued; once a write failed, only what was committed does.
            self.stats.set_value("indexer/stored", self.stats.get_value("indexer/rows/images", 0))

    async def _write(self, batch: Batch) -> WriteResult:
        if self.write_failed:
            return WriteResult(0, 0, 0)
        try:
            return await asyncio.to_thread(self.writer.write, batch)
        except BatchWriteFailed as exc:
            self._stop_writing(str(exc))
            return exc.written

    def _stop_writing(self, reason: str) -> None:
        """The store failed a write: say why once, and stop the crawl rather than retry forever."""
        if self.write_failed:
            return
        self.write_failed = reason
        self.stats.set_value("gallery/write_failed", reason)
        logger.error("stopping the crawl: %s", reason)
        if not self._closing:
            self._stopping = deferred_from_coro(self.crawler.engine.close_spider_async(reason="gallery_write_failed"))


def _parked_dict(item: ImageItem) -> dict:
    """What a parked sighting needs, as plain JSON-able data (it may wait in Redis)."""
    fields = ("image_url", "page_url", "alt_text", "license_url", "rendered", "policy", "http_status")
    return {name: getattr(item, name) for name in fields}
