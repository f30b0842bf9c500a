"""Hand each fetched image to the indexer: analysis in a process pool, rows in batches.

With a shared frontier, each commit also acknowledges the requests whose rows it holds (and
hands on the sightings still waiting for their image), so a worker killed before a commit
leaves those requests to be taken back by the others.
"""

import asyncio
import logging
import uuid
from collections import defaultdict

from scrapy import signals
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

from crawler.config import IndexerConfig
from crawler.shared_policy import shared_policy
from crawler.compat import requests_in_progress
from crawler.frontier.scheduler import look_again, shared_frontier
from crawler.signals import TOMBSTONE, report_block
from crawler.items import SIGHTING_FIELDS, ImageItem
from indexer.analyze import AnalyzedImage, Rejected
from indexer.ingest import Batch, BatchWriteFailed, GalleryWriter, WriteResult
from indexer.hashes import sha256_hex
from indexer.records import Sighting
from indexer.store import Gallery, utcnow
from indexer.store_errors import STORE_ERRORS, describe_store_error
from indexer.workers import AnalyzerPool
from robots_policy.domains import registrable_domain

logger = logging.getLogger(__name__)

# With a frontier, a partial batch is committed (and its requests acknowledged) at least this
# often, and whenever the worker is idle: on a site with few images, a killed worker's
# requests would otherwise wait (and be fetched again) for as long as a batch takes to fill.
COMMIT_INTERVAL = 30.0
# With a frontier, a worker takes no more requests while this many images per analysis process
# wait for analysis: about a second of work, enough to cover a download's round trip.
ANALYSIS_BACKLOG = 32


class IndexerPipeline:
    def __init__(self, crawler, config: IndexerConfig):
        self.crawler = crawler
        self.stats = crawler.stats
        self.config = config
        self.run_id = uuid.uuid4().hex
        self._image_ids: dict[str, str] = {}  # image URL -> image_id, for repeat sightings
        self._parked: dict[str, list[ImageItem]] = defaultdict(list)  # waiting for their URL's image
        self._write_lock = asyncio.Lock()
        self.frontier = shared_frontier(crawler)
        if self.frontier is not None:
            self.frontier.acks_after_commit = True
            crawler.signals.connect(self._commit_settled, signal=signals.spider_idle)
            self._committer = task.LoopingCall(self._commit_settled)
            self.frontier.saturated = self._analysis_backlog_full
        self._analysing = 0  # images handed to the analysis processes, not yet back
        self._in_analysis: dict[str, asyncio.Future] = {}  # sha256 -> its analysis, while it runs
        self._backlog_limit = ANALYSIS_BACKLOG * config.workers
        self.write_failed: str | None = None  # why the store refused a write; nothing more is tried
        self._closing = False
        self._stopping = None  # the engine's close, once a write failed
        crawler.signals.connect(self._record_run, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, IndexerConfig.from_settings(crawler.settings))

    def _commit_settled(self) -> None:
        # At idle this also lets the other workers (and this one) end: they wait while it holds requests.
        if self.frontier.leases and not self._write_lock.locked():
            deferred_from_coro(self._flush()).addErrback(
                lambda failure: logger.error("commit failed: %s", failure.getErrorMessage())
            )

    def open_spider(self, spider=None):
        self.stats.set_value("gallery/run_id", self.run_id)
        self.optouts = shared_policy(self.crawler).optouts  # read once per crawl, with the middleware
        self.gallery = Gallery(self.config.gallery_uri)
        self.writer = GalleryWriter(self.gallery, batch_size=self.config.batch_size)
        self.pool = AnalyzerPool(workers=self.config.workers, limits=self.config.limits)
        if self.frontier is not None:
            self._committer.start(COMMIT_INTERVAL, now=False)

    async def close_spider(self, spider=None):
        if self.frontier is not None and self._committer.running:
            self._committer.stop()
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
            # The same images counted the same whatever order they came in (GalleryWriter).
            near = await asyncio.to_thread(self.writer.settle_near_duplicates)
            self.stats.set_value("indexer/duplicate/near", near)
            # Lookups by image_id (search results, removals) stay fast as the gallery grows.
            await asyncio.to_thread(self.gallery.index_lookup_columns)
        except STORE_ERRORS as exc:
            self._stop_writing(f"writing to the gallery at {self.gallery.uri} failed: {describe_store_error(exc)}")

    def _record_run(self, spider=None, reason=None) -> None:
        """The run's stats, written once the engine has closed the spider: only then is its
        finish reason known (Scrapy sets it in the stats after this signal)."""
        if self.write_failed or not hasattr(self, "gallery"):
            return
        try:
            self.gallery.record_crawl(self.run_id, {**self.stats.get_stats(), "finish_reason": reason})
        except STORE_ERRORS as exc:
            self._stop_writing(f"writing to the gallery at {self.gallery.uri} failed: {describe_store_error(exc)}")

    async def process_item(self, item, spider=None):
        if not isinstance(item, ImageItem):
            return item
        if self.write_failed:  # the crawl is stopping: nothing more can be stored
            item.body = None
            self.stats.inc_value("indexer/skipped/gallery_write_failed")
            return item
        if item.http_status == 304:
            await self._not_modified(item)
        elif item.body is None:
            self._add_repeat_sighting(item)
        else:
            await self._index(item)
        if self.writer.batch_ready():
            await self._flush()
        return item

    def _analysis_backlog_full(self) -> bool:
        return self._analysing >= self._backlog_limit

    async def _index(self, item: ImageItem) -> None:
        body, item.body = item.body, None  # don't keep the bytes alive past analysis
        # Cheap before expensive: the bytes' sha256 says, before any decode or face detection,
        # whether this is an image already stored (one more sighting) or one named by hash.
        image_id = sha256_hex(body)
        if self.writer.is_stored(image_id):
            self.stats.inc_value("indexer/before_decode/exact_duplicate")
            if await self._resight(item, image_id, checked="exact_duplicate"):
                self.stats.inc_value("indexer/duplicate/exact")
            return
        blocked = self._blocked_by_hash(item, image_id)
        if blocked:
            self.stats.inc_value(f"indexer/before_decode/{'tombstone' if blocked == TOMBSTONE else 'optout'}")
            report_block(self.crawler, url=item.image_url, reason=blocked, page_url=item.page_url)
            return
        result = await self._analysis(image_id, body)
        if isinstance(result, Rejected):
            if result.by_policy:
                report_block(self.crawler, url=item.image_url, reason=result.reason, page_url=item.page_url)
            else:
                self.stats.inc_value(f"indexer/skipped/{result.reason}")
                logger.info("skipped %s (%s)", item.image_url, result.detail)
            return
        optout = self.optouts.check_image(sha256=result.image_id, pdq=result.hashes.pdq)
        if not optout.allowed:
            report_block(self.crawler, url=item.image_url, reason=optout.reason, page_url=item.page_url)
            return
        item.policy = " ".join(filter(None, (item.policy, result.policy, "optout-hash:none")))
        sighting = self._sighting(item)
        if self.writer.tombstoned(result, sighting):
            report_block(self.crawler, url=item.image_url, reason=TOMBSTONE, page_url=item.page_url)
            return
        for note in result.notes:
            self.stats.inc_value(f"indexer/notes/{note}")
            logger.info("%s: %s", item.image_url, note)
        item.image_id = result.image_id
        is_new = self.writer.add(result, sighting)
        self.stats.inc_value("indexer/stored" if is_new else "indexer/duplicate/exact")
        self._settle(item.image_url, result.image_id)

    def _blocked_by_hash(self, item: ImageItem, image_id: str) -> str | None:
        """The block reason an opt-out or a tombstone gives from the sha256 and the URLs alone."""
        optout = self.optouts.check_image(sha256=image_id, pdq=None)  # PDQ entries: after analysis
        if not optout.allowed:
            return optout.reason
        return TOMBSTONE if self.writer.tombstoned_resighting(image_id, self._sighting(item)) else None

    async def _analysis(self, image_id: str, body: bytes) -> AnalyzedImage | Rejected:
        """The workers' analysis of these bytes; the same bytes arriving from another URL while
        they are analysed wait for that one result instead of a second analysis."""
        waiting = self._in_analysis.get(image_id)
        if waiting is not None:
            self.stats.inc_value("indexer/before_decode/exact_duplicate")
            return await asyncio.shield(waiting)
        self._analysing += 1
        self._in_analysis[image_id] = waiting = asyncio.wrap_future(self.pool.submit(body))
        try:
            return await asyncio.shield(waiting)
        finally:
            del self._in_analysis[image_id]
            self._analysing -= 1
            if self.frontier is not None and self._analysing == self._backlog_limit - 1:
                look_again(self.crawler)  # room again: take more work now, not at the engine's next look

    async def _not_modified(self, item: ImageItem) -> None:
        """The server confirmed a stored image unchanged (304): one more sighting of it, with no
        download and no analysis, but the checks a download of its bytes would get now."""
        if not self.writer.is_stored(item.image_id):
            # Removed since the crawl began: there is nothing to point at.
            self.stats.inc_value("indexer/skipped/image_removed")
            return
        if await self._resight(item, item.image_id, checked="not_modified"):
            self.stats.inc_value("indexer/not_modified")

    async def _resight(self, item: ImageItem, image_id: str, *, checked: str) -> bool:
        """One more sighting of an image the gallery holds (or has queued), without analysis;
        False when an opt-out or a tombstone blocks it. `checked`: the provenance note that says
        the checks made on the bytes themselves (XMP) were made when it was first stored."""
        # Its PDQ hash is read back only when an opt-out entry needs it.
        pdq = await asyncio.to_thread(self.gallery.stored_pdq, image_id) if self.optouts.has_pdq else None
        optout = self.optouts.check_image(sha256=image_id, pdq=pdq)
        if not optout.allowed:
            report_block(self.crawler, url=item.image_url, reason=optout.reason, page_url=item.page_url)
            return False
        item.policy = " ".join(filter(None, (item.policy, checked, "optout-hash:none")))
        sighting = self._sighting(item)
        if self.writer.tombstoned_resighting(image_id, sighting):
            report_block(self.crawler, url=item.image_url, reason=TOMBSTONE, page_url=item.page_url)
            return False
        item.image_id = image_id
        self.writer.add_sighting(image_id, sighting)
        self._settle(item.image_url, image_id)
        return True

    def _settle(self, image_url: str, image_id: str) -> None:
        """This URL's image is known now: record the sightings that waited for it."""
        self._image_ids[image_url] = image_id
        for parked in self._parked.pop(image_url, []):
            self._add_repeat_sighting(parked)

    async def _settle_parked(self) -> None:
        """Sightings of images downloaded by an earlier run of this job (a resumed JOBDIR) or
        by another worker on the frontier: their image_id is in the gallery by now."""
        if self.frontier is not None:
            # Every worker's waiting sightings are in Redis by now (this one's went with its
            # commits); others may settle what is left, so it is not counted as unavailable here.
            counts = await asyncio.to_thread(self.frontier.settle_parked, self._image_ids_of, self._write_settled)
            if counts is not None:
                self.stats.inc_value("indexer/sightings/settled_at_close", counts[0])
                self.stats.set_value("frontier/parked_left", counts[1])
            return
        if not self._parked:
            return
        parked = [_parked_dict(item) for items in self._parked.values() for item in items]
        self._parked.clear()
        ids = await asyncio.to_thread(self._image_ids_of, sorted({p["image_url"] for p in parked}))
        settled = [(ids[p["image_url"]], p) for p in parked if p["image_url"] in ids]
        for p in parked:
            if p["image_url"] not in ids:
                self._parked[p["image_url"]].append(ImageItem(**p))
        self._add_settled(settled)
        self.stats.inc_value("indexer/sightings/settled_at_close", len(settled))

    def _add_settled(self, settled: list[tuple[str, dict]]) -> None:
        for image_id, p in settled:
            self._image_ids[p["image_url"]] = image_id
            self._add_repeat_sighting(ImageItem(**p))

    def _write_settled(self, settled: list[tuple[str, dict]]) -> None:
        """On a worker thread, at close (nothing else writes then): the settled sightings, committed."""
        self._add_settled(settled)
        self._write(self.writer.take_batch())

    def _image_ids_of(self, urls: list[str]) -> dict[str, str]:
        self.gallery.refresh()
        return self.gallery.image_ids_for_urls(urls)

    def _add_repeat_sighting(self, item: ImageItem) -> None:
        image_id = self._image_ids.get(item.image_url)
        if image_id is None:
            self._parked[item.image_url].append(item)
            return
        item.image_id = image_id
        self.writer.add_sighting(image_id, self._sighting(item))
        self.stats.inc_value("indexer/sightings/repeat")

    def _sighting(self, item: ImageItem) -> Sighting:
        found = {name: getattr(item, name) for name in SIGHTING_FIELDS}
        return Sighting(domain=registrable_domain(item.page_url), fetched_at=utcnow(), **found)

    async def _flush(self) -> None:
        batch = self.writer.take_batch()
        leases, parked = [], []
        if self.frontier is not None:
            # Taken together with the batch: every row of a settled request is in it.
            leases = self.frontier.settled_leases(requests_in_progress(self.crawler.engine))
            parked = [_parked_dict(item) for items in self._parked.values() for item in items]
            self._parked.clear()
        if not len(batch) and not leases and not parked:
            return
        async with self._write_lock:  # one append at a time, in order
            if len(batch):
                await asyncio.to_thread(self._write, batch)
            # Acknowledged only once their rows are committed: after a failed write they stay
            # leased, and another worker (or a later run) takes them back.
            if (leases or parked) and not self.write_failed:
                await asyncio.to_thread(self.frontier.ack, leases, parked)
        if self.write_failed and not self._closing and self._stopping is None:
            # Stop the crawl rather than retry forever (the engine is driven from this thread).
            self._stopping = deferred_from_coro(self.crawler.engine.close_spider_async(reason="gallery_write_failed"))

    def _write(self, batch: Batch) -> None:
        """Commit a batch, on a worker thread, and count what the store took."""
        if self.write_failed:
            result = WriteResult(0, 0, 0)
        else:
            try:
                result = self.writer.write(batch)
            except BatchWriteFailed as exc:
                self._stop_writing(str(exc))
                result = exc.written
        self.stats.inc_value("indexer/duplicate/near", result.near_duplicates)
        self.stats.inc_value("indexer/rows/images", result.images)
        self.stats.inc_value("indexer/rows/sightings", result.sightings)
        for image_url, page_url in result.dropped:
            report_block(self.crawler, url=image_url, reason=TOMBSTONE, page_url=page_url)
        if self.write_failed:
            self.stats.inc_value("indexer/skipped/gallery_write_failed", len(batch.sightings) - result.sightings)
            # An image counts as stored when queued; once a write failed, only what was committed does.
            self.stats.set_value("indexer/stored", self.stats.get_value("indexer/rows/images", 0))

    def _stop_writing(self, reason: str) -> None:
        """The store failed a write: say why, once; nothing more is tried."""
        if self.write_failed:
            return
        self.write_failed = reason
        self.stats.set_value("gallery/write_failed", reason)
        logger.error("stopping the crawl: %s", reason)


def _parked_dict(item: ImageItem) -> dict:
    """What a parked sighting needs, as plain JSON-able data (it may wait in Redis)."""
    return {name: getattr(item, name) for name in SIGHTING_FIELDS}
