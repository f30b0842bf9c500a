"""The page cache: Scrapy's HTTP cache, kept to HTML pages, so a re-crawl asks each page "changed
since?" and, on a 304, reads the copy it kept (its links and images are then followed as usual).

Switched on by PageCacheAddon when GALLERY_PAGE_CACHE names a directory (by default one inside a
local gallery). Never cached: image bodies (images are revalidated against the gallery instead,
see conditional.py), rendered pages, site files, and anything the server marks no-store.
"""

import os
import pickle
import time
from pathlib import Path

from scrapy.downloadermiddlewares.httpcache import HttpCacheMiddleware
from scrapy.extensions.httpcache import RFC2616Policy, parse_cachecontrol
from scrapy.http import HtmlResponse
from scrapy.utils.project import data_path
from scrapy.utils.response import response_from_dict

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


class PageCacheStorage:
    """A storage backend (Scrapy's documented HTTPCACHE_STORAGE interface) with one file per
    page, where Scrapy's filesystem storage writes seven: creating the files was most of what
    keeping a page cost. Each file is written whole, then renamed into place, so a crash or
    another worker never reads half of one. Laid out as Scrapy's is,
    <HTTPCACHE_DIR>/<spider>/<fingerprint[:2]>/<fingerprint>.pickle; copies kept in Scrapy's own
    format by earlier versions are not read: those pages are fetched once more in full."""

    def __init__(self, settings):
        self.cachedir = Path(data_path(settings["HTTPCACHE_DIR"]))
        self.expiration_secs = settings.getint("HTTPCACHE_EXPIRATION_SECS")
        self._fingerprinter = None

    def open_spider(self, spider) -> None:
        self._fingerprinter = spider.crawler.request_fingerprinter

    def close_spider(self, spider) -> None:
        pass

    def retrieve_response(self, spider, request):
        path = self._entry_path(spider, request)
        try:
            if 0 < self.expiration_secs < time.time() - path.stat().st_mtime:
                return None
            data = pickle.loads(path.read_bytes())  # noqa: S301 (written by this class only)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return None
        request.meta["cache_timestamp"] = data.pop("timestamp")
        return response_from_dict(data)

    def store_response(self, spider, request, response) -> None:
        path = self._entry_path(spider, request)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(pickle.dumps(response.to_dict() | {"timestamp": time.time()}, protocol=4))
        os.replace(temporary, path)

    def _entry_path(self, spider, request) -> Path:
        key = self._fingerprinter.fingerprint(request).hex()
        return self.cachedir / spider.name / key[:2] / f"{key}.pickle"


class PageCacheAddon:
    def update_settings(self, settings) -> None:
        directory = PageCacheConfig.from_settings(settings).directory
        if directory is None:
            return
        for name, value in {
            "HTTPCACHE_ENABLED": True,
            "HTTPCACHE_DIR": directory,  # absolute: Scrapy would put a relative one under .scrapy/
            "HTTPCACHE_POLICY": "crawler.downloadermiddlewares.page_cache.PageCachePolicy",
            "HTTPCACHE_STORAGE": "crawler.downloadermiddlewares.page_cache.PageCacheStorage",
        }.items():
            settings.set(name, value, priority="addon")
