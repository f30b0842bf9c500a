"""The page cache's decisions: what is kept, when a kept page is asked about again, where it lives."""

from email.utils import formatdate

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.settings import Settings
from scrapy.spiders import Spider
from scrapy.utils.test import get_crawler

from crawler.config import PageCacheConfig
from crawler.downloadermiddlewares.page_cache import PageCachePolicy, PageCacheStorage

PAGE = "http://a.test/page.html"
VALIDATORS = {"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT", "ETag": '"abc"'}


@pytest.fixture
def policy():
    return PageCachePolicy(Settings())


def html(headers=None, status=200, url=PAGE):
    return HtmlResponse(url, status=status, headers={**VALIDATORS, **(headers or {})}, body=b"<html></html>")


@pytest.mark.parametrize(
    "meta, cached",
    [
        ({"policy_trail": []}, True),  # a page request as the spider makes it
        ({"image_context": {"page_url": PAGE}}, False),
        ({"playwright": True}, False),  # rendered by the browser: the cache would skip it
        ({"site_file": "robots.txt"}, False),
    ],
)
def test_only_plain_page_requests_use_the_cache(policy, meta, cached):
    assert policy.should_cache_request(Request(PAGE, meta=meta)) is cached


def test_a_request_asking_for_no_store_is_not_cached(policy):
    assert not policy.should_cache_request(Request(PAGE, headers={"Cache-Control": "no-store"}))


@pytest.mark.parametrize(
    "response, cached",
    [
        (html(), True),
        (Response("http://a.test/x.jpg", headers={**VALIDATORS, "Content-Type": "image/jpeg"}, body=b"\xff\xd8"), False),
        (TextResponse("http://a.test/robots.txt", headers=VALIDATORS, body=b"User-agent: *"), False),
        (html({"Cache-Control": "no-store"}), False),
        (HtmlResponse(PAGE, body=b"<html></html>"), False),  # nothing to revalidate with
        (html(status=304), False),
    ],
)
def test_only_revalidatable_html_is_kept(policy, response, cached):
    assert policy.should_cache_response(response, Request(PAGE)) is cached


def test_a_kept_page_is_asked_about_again_with_its_validators(policy):
    request = Request(PAGE)
    # A browser would call this page fresh for weeks (a tenth of its age since Last-Modified).
    assert not policy.is_cached_response_fresh(html({"Date": formatdate(usegmt=True)}), request)
    assert request.headers[b"If-None-Match"] == b'"abc"'
    assert request.headers[b"If-Modified-Since"] == VALIDATORS["Last-Modified"].encode()


def test_a_lifetime_the_server_gave_is_honoured(policy):
    request = Request(PAGE)
    cached = html({"Date": formatdate(usegmt=True), "Cache-Control": "max-age=3600"})
    assert policy.is_cached_response_fresh(cached, request)
    assert b"If-None-Match" not in request.headers


def test_only_a_304_revalidates(policy):
    request, cached = Request(PAGE), html()
    assert policy.is_cached_response_valid(cached, html(status=304), request)
    assert not policy.is_cached_response_valid(cached, html(status=503), request)
    assert not policy.is_cached_response_valid(cached, html(status=200), request)


@pytest.mark.parametrize(
    "value, gallery, expected",
    [
        ("auto", "g", "{tmp}/g/page-cache"),
        (None, "g", "{tmp}/g/page-cache"),
        ("auto", "s3://bucket/g", None),  # an object store: no local directory to put it in
        ("off", "g", None),
        ("pages", "s3://bucket/g", "{tmp}/pages"),
    ],
)
def test_where_the_cache_lives(tmp_path, monkeypatch, value, gallery, expected):
    monkeypatch.chdir(tmp_path)
    settings = Settings({"GALLERY_PAGE_CACHE": value, "GALLERY_URI": gallery})
    directory = PageCacheConfig.from_settings(settings).directory
    assert directory == (expected.format(tmp=tmp_path.resolve()) if expected else None)


def test_an_object_store_cache_is_refused():
    with pytest.raises(ValueError, match="must be a local directory"):
        PageCacheConfig.from_settings(Settings({"GALLERY_PAGE_CACHE": "s3://b/pages", "GALLERY_URI": "g"}))


@pytest.fixture
def storage(tmp_path):
    crawler = get_crawler(Spider, {"HTTPCACHE_DIR": str(tmp_path), "HTTPCACHE_EXPIRATION_SECS": 0})
    spider = Spider.from_crawler(crawler, name="images")
    storage = PageCacheStorage(crawler.settings)
    storage.open_spider(spider)
    return storage, spider


def test_a_kept_page_comes_back_whole_from_one_file(storage, tmp_path):
    storage, spider = storage
    storage.store_response(spider, Request(PAGE), html())
    request = Request(PAGE)
    kept = storage.retrieve_response(spider, request)
    assert isinstance(kept, HtmlResponse) and kept.url == PAGE and kept.body == b"<html></html>"
    assert kept.headers[b"ETag"] == b'"abc"' and request.meta["cache_timestamp"] > 0
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()] == [".pickle"]
    assert storage.retrieve_response(spider, Request(PAGE + "?other")) is None


def test_a_damaged_copy_is_a_miss(storage, tmp_path):
    storage, spider = storage
    storage.store_response(spider, Request(PAGE), html())
    (entry,) = tmp_path.rglob("*.pickle")
    entry.write_bytes(entry.read_bytes()[:20])
    assert storage.retrieve_response(spider, Request(PAGE)) is None


def test_a_page_is_kept_where_scrapys_layout_puts_it(storage, tmp_path):
    """The same place across versions: a cache kept by the last crawl is found by the next."""
    storage, spider = storage
    request = Request(PAGE)
    storage.store_response(spider, request, html())
    key = spider.crawler.request_fingerprinter.fingerprint(request).hex()
    assert (tmp_path / "images" / key[:2] / f"{key}.pickle").is_file()
