"""The tombstone middleware refuses tombstoned URLs before they are sent, and counts them."""

import pytest
import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.test import get_crawler

from crawler.downloadermiddlewares.tombstones import TombstoneMiddleware
from crawler.extensions.exclusion_log import ExclusionLog
from indexer.removal import build_request, process_requests
from indexer.store import Gallery


def test_blocks_tombstoned_urls_and_counts_them(tmp_path):
    gallery = Gallery(str(tmp_path / "g"))
    process_requests(gallery, [build_request([("domain", "gone.test"), ("url_prefix", "http://shop.test/private/")])])
    crawler = get_crawler(settings_dict={"GALLERY_URI": gallery.uri})
    crawler.stats.open_spider()
    exclusions = ExclusionLog.from_crawler(crawler)
    middleware = TombstoneMiddleware.from_crawler(crawler)
    for url in ("http://gone.test/a.jpg", "https://cdn.gone.test/b.png", "http://shop.test/private/1.html"):
        with pytest.raises(IgnoreRequest):
            middleware.process_request(scrapy.Request(url))
    assert middleware.process_request(scrapy.Request("http://shop.test/public/1.html")) is None
    # Site files are rules, not content: fetched even under a tombstone.
    assert middleware.process_request(scrapy.Request("http://gone.test/robots.txt", meta={"site_file": "robots.txt"})) is None
    assert crawler.stats.get_value("policy/blocked/tombstone") == 3
    # Counted, never logged: the exclusion log would write the removed URLs back.
    assert exclusions.rows == []


def test_a_removal_made_during_the_crawl_stops_its_requests_too(tmp_path):
    gallery = Gallery(str(tmp_path / "g"))
    crawler = get_crawler(settings_dict={"GALLERY_URI": gallery.uri})
    crawler.stats.open_spider()
    middleware = TombstoneMiddleware.from_crawler(crawler)
    middleware.reload()  # at spider open
    assert middleware.process_request(scrapy.Request("http://gone.test/a.jpg")) is None
    process_requests(gallery, [build_request([("domain", "gone.test")])])
    middleware.reload()  # every TOMBSTONE_REFRESH seconds
    with pytest.raises(IgnoreRequest):
        middleware.process_request(scrapy.Request("http://gone.test/b.jpg"))
    middleware.reload()  # nothing new: nothing read
    assert crawler.stats.get_value("policy/tombstones_reloaded") == 1
