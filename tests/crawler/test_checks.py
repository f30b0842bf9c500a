"""The request checks are declared once: Scrapy's middleware and the browser's guard walk the
same list, and every block takes the one counting and logging path, written as it happens."""

import asyncio

import pytest
import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.test import get_crawler

from crawler import checks
from crawler.checks import REQUEST_CHECKS, RequestCheck
from crawler.downloadermiddlewares.site_policy import SitePolicyMiddleware
from crawler.extensions.exclusion_log import ExclusionLog
from crawler.render.guard import BrowserRequestGuard
from crawler.signals import TOMBSTONE, report_block
from indexer.store import Gallery
from robots_policy import Decision


async def _no_staging(url, ctx):
    return [Decision.block("staging")] if "/staging/" in url else [Decision.allow("staging:none")]


@pytest.fixture
def crawler(tmp_path):
    crawler = get_crawler(settings_dict={"GALLERY_URI": str(tmp_path / "g"), "POLICY_ALLOW_LOOPBACK": True})
    crawler.stats.open_spider()
    return crawler


def test_a_check_added_to_the_list_holds_for_both_adapters(crawler, monkeypatch):
    monkeypatch.setattr(checks, "REQUEST_CHECKS", (RequestCheck("staging", _no_staging), *REQUEST_CHECKS))
    exclusions = ExclusionLog.from_crawler(crawler)
    url = "http://127.0.0.1:9/staging/app.js"
    decision = asyncio.run(BrowserRequestGuard.from_crawler(crawler).check(url, page_url="http://127.0.0.1:9/"))
    assert (decision.allowed, decision.reason) == (False, "staging")
    middleware = SitePolicyMiddleware.from_crawler(crawler)
    with pytest.raises(IgnoreRequest, match="staging"):
        asyncio.run(middleware.process_request(scrapy.Request(url)))
    assert crawler.stats.get_value("policy/blocked/staging") == 2
    assert [row["reason"] for row in exclusions.rows] == ["staging", "staging"]


def test_cheap_checks_come_first():
    names = [check.name for check in REQUEST_CHECKS]
    # A URL a removal or a steward named is never resolved, and its site files never asked for.
    assert names.index("tombstones") < names.index("addresses") < names.index("site_files")
    assert names.index("optouts") < names.index("addresses")
    assert [c.name for c in REQUEST_CHECKS if c.site_files_too] == ["scheme", "addresses"]


def test_exclusion_rows_are_written_in_batches_while_the_crawl_runs(crawler, tmp_path):
    log = ExclusionLog(crawler, batch_size=2)
    crawler.stats.set_value("gallery/run_id", "run-1")
    for n in range(5):
        report_block(crawler, url=f"http://a.test/{n}.jpg", reason="robots", page_url="http://a.test/")
    report_block(crawler, url="http://gone.test/x.jpg", reason=TOMBSTONE)
    assert len(log.rows) == 1  # two full batches went to the writer thread
    log._writer.submit(lambda: None).result()  # the writer is one thread, in order: wait for it
    written = Gallery(str(tmp_path / "g")).exclusions.to_arrow().to_pylist()
    assert sorted(r["url"] for r in written) == [f"http://a.test/{n}.jpg" for n in range(4)]
    assert {r["run_id"] for r in written} == {"run-1"}
    log.flush().result()  # what is left, at close or every EXCLUSION_FLUSH_EVERY seconds
    assert Gallery(str(tmp_path / "g")).exclusions.count_rows() == 5
    assert crawler.stats.get_value("policy/blocked/robots") == 5
    assert crawler.stats.get_value("policy/blocked/tombstone") == 1  # counted, never written
    assert crawler.stats.get_value("policy/exclusions_written") == 5
