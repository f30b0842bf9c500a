"""Tombstoned URLs are refused by the request checks before they are sent (before any DNS
lookup), counted, never logged; the set is reread when a removal adds to it mid-crawl."""

import asyncio
import time

from scrapy.utils.test import get_crawler

from crawler.checks import CheckContext, check_request
from crawler.extensions.exclusion_log import ExclusionLog
from crawler.extensions.tombstones import TombstoneRefresh
from crawler.shared_policy import shared_policy
from indexer.removal import build_request, process_requests
from indexer.store import Gallery
from robots_policy.cache import CachedFetch
from robots_policy.site import SitePolicy


def _context(crawler) -> CheckContext:
    fetched = CachedFetch(status=404, body=b"", fetched_at=time.time())
    site = SitePolicy.from_fetches(robots=fetched, ai_txt=fetched, tdmrep=fetched)

    async def site_policy(url):
        return site

    return CheckContext(policy=shared_policy(crawler), allow_loopback=True, site_policy=site_policy)


def _check(crawler, url, **kwargs):
    return asyncio.run(check_request(crawler, url, _context(crawler), page_url=None, **kwargs))


def test_blocks_tombstoned_urls_and_counts_them(tmp_path):
    gallery = Gallery(str(tmp_path / "g"))
    removal = [("domain", "gone.test"), ("domain", "localhost"), ("url_prefix", "http://127.0.0.1:9/private/")]
    process_requests(gallery, [build_request(removal)])
    crawler = get_crawler(settings_dict={"GALLERY_URI": gallery.uri})
    crawler.stats.open_spider()
    exclusions = ExclusionLog.from_crawler(crawler)
    # gone.test resolves nowhere: a block by tombstone, not by address, shows no lookup was made.
    for url in ("http://gone.test/a.jpg", "https://cdn.gone.test/b.png", "http://127.0.0.1:9/private/1.html"):
        assert _check(crawler, url).blocked.reason == "tombstone"
    assert _check(crawler, "http://127.0.0.1:9/public/1.html").allowed
    # Site files are rules, not content: fetched even under a tombstone.
    assert _check(crawler, "http://localhost:9/robots.txt", site_file=True).allowed
    assert _check(crawler, "http://localhost:9/robots.txt").blocked.reason == "tombstone"
    assert crawler.stats.get_value("policy/blocked/tombstone") == 4
    # Counted, never logged: the exclusion log would write the removed URLs back.
    assert exclusions.rows == []


def test_a_removal_made_during_the_crawl_stops_its_requests_too(tmp_path):
    gallery = Gallery(str(tmp_path / "g"))
    crawler = get_crawler(settings_dict={"GALLERY_URI": gallery.uri})
    crawler.stats.open_spider()
    refresh = TombstoneRefresh.from_crawler(crawler)
    refresh.reload()  # at spider open
    assert _check(crawler, "http://127.0.0.1:9/a.jpg").allowed
    process_requests(gallery, [build_request([("url_prefix", "http://127.0.0.1:9/")])])
    refresh.reload()  # every TOMBSTONE_REFRESH seconds
    assert _check(crawler, "http://127.0.0.1:9/b.jpg").blocked.reason == "tombstone"
    refresh.reload()  # nothing new: nothing read
    assert crawler.stats.get_value("policy/tombstones_reloaded") == 1
