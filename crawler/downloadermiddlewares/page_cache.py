"""The page cache: Scrapy's HTTP cache, kept to HTML pages, so a re-crawl asks each page "changed
since?" and, on a 304, reads the copy it kept (its links and images are then followed as usual).

Switched on by PageCacheAddon when GALLERY_PAGE_CACHE names a directory (by default one inside a
local gallery). Never cached: image bodies (images are revalidated against the gallery instead,
see conditional.py), rendered pages, site files, and anything the server marks no-store.
"""

from scrapy.downloadermiddlewares.httpcache import HttpCacheMiddleware
from scrapy.extensions.httpcache import RFC2616Policy, parse_cachecontrol
from scrapy.http import HtmlResponse

from crawler.config import PageCacheConfig

# Request meta that marks what is not a plain page fetch: an image, a page rendered by the
# browser (the cache would skip the browser), a robots.txt/ai.txt/tdmrep.json fetch.
NOT_A_PAGE = ("image_context", "playwright", "site_file")


class PageCachePolicy(RFC2616Policy):
    def should_cache_request(self, request) -> bool:
        return not any(request.meta.get(key) for key in NOT_A_PAGE) and super().should_cache_request(request)

    def should_cache_response(self, response, request) -> bool:
        return isinstance(response, HtmlResponse) and super().should_cache_response(response, request)

    def is_cached_response_fresh(self, cachedresponse, request) -> bool:
        # A browser guesses a lifetime from Last-Modified; a crawler asks again instead, unless
        # the server gave one (max-age, Expires).
        max_age = b"max-age" in parse_cachecontrol(cachedresponse.headers.get(b"Cache-Control", b""))
        if max_age or b"Expires" in cachedresponse.headers:
            return super().is_cached_response_fresh(cachedresponse, request)
        for validator, condition in ((b"ETag", b"If-None-Match"), (b"Last-Modified", b"If-Modified-Since")):
            if validator in cachedresponse.headers:
                request.headers[condition] = cachedresponse.headers[validator]
        return False

    def is_cached_response_valid(self, cachedresponse, response, request) -> bool:
        # Only the server's own "not modified": a 5xx is not an old page being still there.
        return response.status == 304


class PageCacheMiddleware(HttpCacheMiddleware):
    def process_exception(self, request, exception, spider=None):
        # Scrapy would answer a failed download with the kept copy; a crawl records only what
        # the site answers now.
        request.meta.pop("cached_response", None)
        return None


class PageCacheAddon:
    def update_settings(self, settings) -> None:
        directory = PageCacheConfig.from_settings(settings).directory
        if directory is None:
            return
        for name, value in {
            "HTTPCACHE_ENABLED": True,
            "HTTPCACHE_DIR": directory,  # absolute: Scrapy would put a relative one under .scrapy/
            "HTTPCACHE_POLICY": "crawler.downloadermiddlewares.page_cache.PageCachePolicy",
            "HTTPCACHE_STORAGE": "scrapy.extensions.httpcache.FilesystemCacheStorage",
            "HTTPCACHE_GZIP": True,
        }.items():
            settings.set(name, value, priority="addon")
