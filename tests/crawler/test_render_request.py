"""The spider's render request carries plain data only, so any request queue can store it."""

import pickle

from scrapy.http import HtmlResponse, Request
from scrapy.utils.request import request_from_dict
from scrapy.utils.test import get_crawler

from crawler.spiders.images import ImagesSpider

PAGE = b'<html><body><div id="gallery" data-src="/api/p.json"></div><img src="/logo.png"><script src="/app.js"></script></body></html>'


def _spider(mode: str) -> ImagesSpider:
    crawler = get_crawler(ImagesSpider, {"GALLERY_RENDER": mode, "GALLERY_RENDER_PROBE_PAGES": 3})
    crawler.stats.open_spider()
    return ImagesSpider.from_crawler(crawler, seeds="http://example.org/")


def _parse(spider: ImagesSpider) -> list:
    url = "http://example.org/page.html"
    response = HtmlResponse(url, body=PAGE, request=Request(url, meta={"policy_trail": ["robots:allow"]}))
    return list(spider.parse_page(response))


def test_auto_defers_the_images_to_a_picklable_render_request():
    spider = _spider("auto")
    out = _parse(spider)
    renders = [r for r in out if isinstance(r, Request) and r.meta.get("playwright")]
    assert len(renders) == 1
    render = renders[0]
    assert not [r for r in out if isinstance(r, Request) and r.url.endswith("logo.png")]  # deferred
    assert render.dont_filter and render.meta["static_images"] == [["http://example.org/logo.png", None, "img"]]
    # As a disk or Redis queue would store it: no Page, PageMethod or callable in meta.
    stored = pickle.loads(pickle.dumps(render.to_dict(spider=spider)))
    restored = request_from_dict(stored, spider=spider)
    assert restored.callback == spider.parse_rendered and restored.errback == spider.render_failed
    assert spider.crawler.stats.get_value("render/hint/lazy_markers") == 1


def test_never_requests_the_static_images_at_once():
    out = _parse(_spider("never"))
    assert not [r for r in out if isinstance(r, Request) and r.meta.get("playwright")]
    images = [r for r in out if isinstance(r, Request) and r.url.endswith("logo.png")]
    assert images and images[0].meta["image_context"]["rendered"] is False
