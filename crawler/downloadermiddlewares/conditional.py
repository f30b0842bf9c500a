"""Ask for a stored image again only if it changed, and count every "not modified" answer.

Image URLs the gallery has fetched before are requested with the validators they last answered
with (If-None-Match, If-Modified-Since), kept on their sightings; a 304 reaches the spider as a
sighting of the stored image. Pages get the same from the page cache (page_cache.py). Placed
after the policy middlewares: a conditional request is still a request they must allow first.
"""

from scrapy import signals

from crawler.config import IndexerConfig
from indexer.store import Gallery, KnownImage
from robots_policy.domains import registrable_domain


class ConditionalImageMiddleware:
    def __init__(self, crawler, config: IndexerConfig):
        self.crawler = crawler
        self.config = config
        self.known: dict[str, KnownImage] = {}
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, IndexerConfig.from_settings(crawler.settings))

    def spider_opened(self, spider=None):
        # Only images seen on pages this crawl can reach: a big gallery holds many other sites.
        domains = sorted({registrable_domain(d) for d in getattr(spider, "allowed_domains", None) or []})
        self.known = Gallery(self.config.gallery_uri).known_images(domains)
        self.crawler.stats.set_value("http/conditional/known_images", len(self.known))

    def process_request(self, request, spider=None):
        known = self.known.get(request.url) if "image_context" in request.meta else None
        if known is None:
            return None
        if known.etag:
            request.headers[b"If-None-Match"] = known.etag
        if known.last_modified:
            request.headers[b"If-Modified-Since"] = known.last_modified
        # Plain data: a retried request goes back to the scheduler, which may pickle it.
        request.meta["known_image"] = {"image_id": known.image_id, "etag": known.etag, "last_modified": known.last_modified}
        # A 304 is an answer for the spider, not an error for HttpErrorMiddleware.
        handled = request.meta.setdefault("handle_httpstatus_list", [])
        if 304 not in handled:
            handled.append(304)
        return None

    def process_response(self, request, response, spider=None):
        if response.status == 304:
            kind = "images" if "image_context" in request.meta else "pages"
            self.crawler.stats.inc_value(f"http/not_modified/{kind}")
        return response
