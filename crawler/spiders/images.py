"""The `images` spider: follow a site's pages, request each image found once, hand bytes on."""

from collections import Counter
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.defer import CancelledError
from scrapy.http import HtmlResponse

from crawler.claims import Claim, LocalClaims
from crawler.config import RenderConfig
from crawler.frontier.scheduler import RECOVERED, shared_frontier
from crawler.extract import (
    MAX_STYLESHEET_BYTES,
    VIA_CSS,
    VIA_IMG,
    VIA_OG,
    VIA_RENDERED,
    VIA_SITEMAP,
    VIA_SRCSET,
    ImageRef,
    absolute_url,
    css_image_urls,
    extract_images,
    extract_license,
    extract_links,
    extract_stylesheets,
    is_page_link,
)
from crawler.items import ImageItem
from crawler.render import RenderFailed
from crawler.render_heuristic import HostRenderLearner, page_signals, should_render
from crawler.shared_policy import known_site, origin_of
from crawler.sitemaps import MAX_INDEX_DEPTH, MAX_SITEMAP_BYTES, MAX_SITEMAP_FILES, read_sitemap
from crawler.signals import Blocked, report_block

# Images first: a fetched image is bytes held in memory until the pipeline has it.
IMAGE_PRIORITY = 10
# Stylesheets and sitemaps lead to images: ahead of pages, behind images.
SOURCE_PRIORITY = 5
# The sources whose images the render heuristic weighs (as before the other sources existed):
# a page's CSS or JSON-LD image says nothing about what its scripts build.
_MARKUP_SOURCES = (VIA_IMG, VIA_SRCSET, VIA_OG)


def _split(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v.strip()]


class ImagesSpider(scrapy.Spider):
    name = "images"

    def __init__(self, seeds=None, allowed_domains=None, max_pages=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seeds = _split(seeds)
        if not self.seeds:
            raise ValueError("the images spider needs seeds: -a seeds=URL[,URL...]")
        hosts = [urlsplit(seed).hostname for seed in self.seeds]
        self.allowed_domains = sorted({h for h in hosts if h} | set(_split(allowed_domains)))
        self.max_pages = int(max_pages) if max_pages else None
        # Replaced by Scrapy's SpiderState when a JOBDIR is set, so the claims below survive a pause.
        self.state: dict = {}
        self.claims = LocalClaims(lambda: self.state)
        self._sitemap_origins: set[str] = set()  # origins whose robots.txt sitemaps were queued
        self.seed_failures: dict[str, str] = {}  # seed URL -> why it was not crawled

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.render = RenderConfig.from_settings(crawler.settings)
        spider.render_learner = HostRenderLearner(probe_pages=spider.render.probe_pages)
        frontier = shared_frontier(crawler)
        if frontier is not None:
            spider.claims = frontier.claims
        return spider

    async def start(self):
        stats = self.crawler.stats
        stats.set_value("crawl/seeds", len(self.seeds))
        stats.set_value("crawl/max_pages", self.max_pages)
        stats.set_value("crawl/jobdir", self.crawler.settings.get("JOBDIR"))
        stats.set_value("crawl/frontier", bool(self.crawler.settings.get("GALLERY_FRONTIER")))
        # A worker may have died between claiming a seed and queueing it: the seen-set decides.
        for request in self._page_requests(self.seeds, recheck=True):
            request.errback = self.seed_failed
            yield request
        # Resumed from a JOBDIR: the links an earlier run left at its --max-pages, if this
        # run's limit has room for them.
        for request in self._page_requests(sorted(self._pages_left())):
            yield request

    def _pages_left(self) -> set[str]:
        """Links found but not requested, the page limit being reached: kept in the spider's
        state, so a crawl resumed from its JOBDIR with a larger --max-pages goes on with them."""
        return self.state.setdefault("pages_left", set())

    def seed_failed(self, failure):
        """Remember why a seed was not crawled (a crawl whose every seed failed says so and
        exits non-zero); Scrapy then counts and logs the failure as for any page."""
        request = failure.request
        seed = request.meta.get("redirect_urls", [request.url])[0]
        if failure.check(Blocked):
            why = failure.value.reason + (f" ({failure.value.detail})" if failure.value.detail else "")
        elif failure.check(HttpError):
            why = f"HTTP {failure.value.response.status}"
        else:
            why = failure.getErrorMessage() or type(failure.value).__name__
        self.seed_failures[seed] = why
        self.crawler.stats.set_value("crawl/seed_failures", dict(self.seed_failures))
        return failure

    def _in_scope(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def _page_requests(self, urls: list[str], *, recheck: bool = False) -> list[scrapy.Request]:
        """Requests for the pages not claimed before (claimed together: one round trip on a
        shared frontier); with `recheck`, also for those claimed before but perhaps never
        queued (the dupefilter's seen-set drops those that were)."""
        urls = [url for url in urls if self._in_scope(url)]
        requests, left = [], self._pages_left()
        for url, claim in zip(urls, self.claims.claim_all("pages", urls, limit=self.max_pages)):
            if claim is Claim.OVER_LIMIT:
                self.crawler.stats.inc_value("crawl/pages_over_limit")
                left.add(url)
            elif claim is Claim.NEW or recheck:
                left.discard(url)
                requests.append(scrapy.Request(url, callback=self.parse_page, meta={"policy_trail": []}))
        self.crawler.stats.set_value("crawl/pages_left", len(left))
        return requests

    def parse_page(self, response):
        if not isinstance(response, HtmlResponse):
            self.crawler.stats.inc_value("crawl/skipped/not_html")
            return
        self.crawler.stats.inc_value("crawl/pages")
        recheck = response.meta.get(RECOVERED, False)
        page_trail = response.meta.get("policy_trail", [])
        reservation = response.meta.get("page_reservation")
        license_url = extract_license(response.selector, response.url)
        refs = self._extract(response)
        sitemap_images = response.meta.get("sitemap_images") or []
        known = {ref.url for ref in refs}
        refs += [ImageRef(url, None, VIA_SITEMAP) for url in sitemap_images if url not in known]
        render = None if reservation else self._render_request(response, refs, page_trail=page_trail, license_url=license_url)
        if render is not None:
            # The page's images are requested once it is rendered (all marked rendered), or
            # from these static refs if the render fails.
            yield render
        else:
            yield from self._image_requests(
                response.url,
                refs,
                license_url=license_url,
                page_trail=page_trail,
                reservation=reservation,
                rendered=False,
                recheck=recheck,
            )
        if not reservation:
            yield from self._stylesheet_requests(response, license_url=license_url, page_trail=page_trail)
        yield from self._sitemap_requests(response.url)
        yield from self._page_requests(self._links(response), recheck=recheck)

    def _links(self, response) -> list[str]:
        """The page's links worth fetching as pages; links to documents, archives and media are
        counted (crawl/links_skipped) and never requested."""
        links = extract_links(response.selector, response.url)
        pages = [link for link in links if is_page_link(link)]
        if len(pages) < len(links):
            self.crawler.stats.inc_value("crawl/links_skipped", len(links) - len(pages))
        return pages

    def _extract(self, response) -> list[ImageRef]:
        skipped: Counter = Counter()
        refs = extract_images(response.selector, response.url, skipped=skipped)
        for reason, count in skipped.items():
            self.crawler.stats.inc_value(f"crawl/skipped/{reason}", count)
        return refs

    def _stylesheet_requests(self, response, *, license_url, page_trail):
        """The page's linked stylesheets, each fetched once (the dupefilter) through the same
        checks as every request, bounded in size; their rules' images count for this page."""
        for url in extract_stylesheets(response.selector, response.url):
            yield scrapy.Request(
                url,
                callback=self.parse_stylesheet,
                errback=self.source_failed,
                priority=SOURCE_PRIORITY,
                meta={
                    "allow_offsite": True,  # stylesheets often live on a CDN host
                    "policy_trail": [],
                    "download_maxsize": MAX_STYLESHEET_BYTES,
                    "source_kind": "stylesheet",
                    "source_page": {"url": response.url, "license_url": license_url, "trail": list(page_trail)},
                },
            )

    def parse_stylesheet(self, response):
        page = response.meta["source_page"]
        self.crawler.stats.inc_value("crawl/stylesheets")
        text = response.body.decode(getattr(response, "encoding", None) or "utf-8", errors="replace")
        skipped: Counter = Counter()
        urls = css_image_urls(text, skipped)
        for reason, count in skipped.items():
            self.crawler.stats.inc_value(f"crawl/skipped/{reason}", count)
        # url() in a stylesheet is relative to the stylesheet, not to the page.
        refs = list({ref.url: ref for ref in (ImageRef(absolute_url(response.url, u), None, VIA_CSS) for u in urls) if ref.url}.values())
        trail = list(dict.fromkeys(page["trail"] + response.meta.get("policy_trail", [])))
        yield from self._image_requests(
            page["url"], refs, license_url=page["license_url"], page_trail=trail, reservation=None, rendered=False
        )

    def source_failed(self, failure):
        """A stylesheet or sitemap that could not be read is a counted skip; the crawl goes on."""
        kind = failure.request.meta.get("source_kind", "source")
        if failure.check(IgnoreRequest):
            return None  # a policy block, counted and logged where it happened
        if failure.check(DownloadCancelledError, CancelledError):
            # Scrapy cancels a download past its download_maxsize (announced, or once received).
            self.crawler.stats.inc_value(f"crawl/skipped/{kind}_too_large")
        else:
            self.crawler.stats.inc_value(f"crawl/skipped/{kind}_failed")
        self.logger.info("%s %s skipped: %s", kind, failure.request.url, failure.getErrorMessage())
        return None

    def _sitemap_requests(self, page_url: str):
        """Once per origin in scope: the sitemaps its robots.txt names."""
        origin = origin_of(page_url)
        site = known_site(self.crawler, origin)
        if site is None or not site.sitemaps or origin in self._sitemap_origins:
            return
        self._sitemap_origins.add(origin)
        yield from self._sitemap_fetches([absolute_url(origin + "/", url) for url in site.sitemaps], depth=0)

    def _sitemap_fetches(self, urls: list[str], *, depth: int):
        urls = [url for url in dict.fromkeys(urls) if url and self._in_scope(url)]
        for url, claim in zip(urls, self.claims.claim_all("sitemaps", urls, limit=MAX_SITEMAP_FILES)):
            if claim is Claim.OVER_LIMIT:
                self.crawler.stats.inc_value("crawl/skipped/sitemap_over_limit")
            elif claim is Claim.NEW:
                yield scrapy.Request(
                    url,
                    callback=self.parse_sitemap,
                    errback=self.source_failed,
                    priority=SOURCE_PRIORITY,
                    meta={
                        "policy_trail": [],
                        # Compressed or not, a sitemap past this is cut by Scrapy (a counted skip).
                        "download_maxsize": MAX_SITEMAP_BYTES,
                        "source_kind": "sitemap",
                        "sitemap_depth": depth,
                    },
                )

    def parse_sitemap(self, response):
        self.crawler.stats.inc_value("crawl/sitemaps")
        content = read_sitemap(response.body)
        for reason, count in content.skipped.items():
            self.crawler.stats.inc_value(f"crawl/skipped/{reason}", count)
        depth = response.meta.get("sitemap_depth", 0)
        if content.sitemaps:
            if depth + 1 > MAX_INDEX_DEPTH:
                self.crawler.stats.inc_value("crawl/skipped/sitemap_too_deep", len(content.sitemaps))
            else:
                yield from self._sitemap_fetches([absolute_url(response.url, u) for u in content.sitemaps], depth=depth + 1)
        trail = response.meta.get("policy_trail", [])
        pages = [(absolute_url(response.url, p.loc), [absolute_url(response.url, i) for i in p.images]) for p in content.pages]
        pages = [(url, [i for i in images if i]) for url, images in pages if url and self._in_scope(url)]
        claims = self.claims.claim_all("pages", [url for url, _ in pages], limit=self.max_pages)
        left = self._pages_left()
        for (url, images), claim in zip(pages, claims):
            if claim is Claim.OVER_LIMIT:
                left.add(url)
            else:
                left.discard(url)
            if claim is Claim.NEW:
                # The page is fetched first, so that a reservation it carries (noimageai...)
                # keeps its images out, as for the images it shows itself.
                yield scrapy.Request(
                    url, callback=self.parse_page, meta={"policy_trail": [], "sitemap_images": images}
                )
            elif images:
                # Its page is crawled already (or over the page limit): the images on their own,
                # through every check an image request passes.
                self.crawler.stats.inc_value("crawl/sitemap/images_without_page", len(images))
                refs = [ImageRef(i, None, VIA_SITEMAP) for i in dict.fromkeys(images)]
                yield from self._image_requests(url, refs, license_url=None, page_trail=trail, reservation=None, rendered=False)
        self.crawler.stats.set_value("crawl/pages_left", len(left))

    def _render_request(self, response, refs: list[ImageRef], *, page_trail, license_url) -> scrapy.Request | None:
        """A second request for this page, rendered by the browser, when the mode says so."""
        if self.render.mode == "never":
            return None
        depth_limit = self.crawler.settings.getint("DEPTH_LIMIT")
        if depth_limit and response.meta.get("depth", 0) >= depth_limit:
            # The render request would sit one level deeper and be dropped by DepthMiddleware,
            # taking the page's deferred images with it.
            return None
        reason = "always"
        if self.render.mode == "auto":
            markup_images = sum(1 for ref in refs if ref.via in _MARKUP_SOURCES)
            hint = should_render(page_signals(response.selector, images=markup_images))
            if not hint.render:
                return None
            if not self.render_learner.worth_rendering(urlsplit(response.url).hostname or ""):
                self.crawler.stats.inc_value("render/skipped_host")
                return None
            reason = hint.reason
        self.crawler.stats.inc_value(f"render/hint/{reason}")
        # Plain data only: this meta may be pickled by a disk or Redis queue. Everything the
        # browser needs is added by the download handler at download time.
        return scrapy.Request(
            response.url,
            callback=self.parse_rendered,
            errback=self.render_failed,
            dont_filter=True,  # the same URL as the page just parsed
            meta={
                "playwright": True,
                "dont_retry": True,  # a failed render falls back to the static page's images
                "policy_trail": [],
                "static_images": [[ref.url, ref.alt, ref.via] for ref in refs],
                "static_trail": list(page_trail),
                "static_license": license_url,
            },
        )

    def parse_rendered(self, response):
        if not isinstance(response, HtmlResponse):
            self.crawler.stats.inc_value("crawl/skipped/render_not_html")
            return self._static_fallback(response.request)
        return self._parse_rendered_html(response)

    def _parse_rendered_html(self, response):
        meta = response.meta
        static = [ImageRef(*ref) for ref in meta["static_images"]]
        static_via = {ref.url: ref.via for ref in static}
        # What the static HTML showed keeps its source; the rest only the browser revealed.
        refs = [ImageRef(r.url, r.alt, static_via.get(r.url, VIA_RENDERED)) for r in self._extract(response)]
        found = {ref.url for ref in refs}
        # Images the page asked the network for (CSS backgrounds, script-made Image objects)
        # and anything the static HTML had that the script removed again.
        refs += [
            ImageRef(url, None, static_via.get(url, VIA_RENDERED))
            for url in meta.get("render_image_urls", [])
            if url not in found
        ]
        found |= {ref.url for ref in refs}
        refs += [ref for ref in static if ref.url not in found]
        found_more = bool(found - {ref.url for ref in static})
        self.render_learner.record(urlsplit(response.url).hostname or "", found_more=found_more)
        if found_more:
            self.crawler.stats.inc_value("render/found_more")
        license_url = extract_license(response.selector, response.url) or meta.get("static_license")
        trail = list(dict.fromkeys(meta.get("policy_trail", []) + meta.get("static_trail", [])))
        yield from self._image_requests(
            response.url,
            refs,
            license_url=license_url,
            page_trail=trail,
            reservation=meta.get("page_reservation"),
            rendered=True,
            recheck=meta.get(RECOVERED, False),
        )
        yield from self._page_requests(self._links(response), recheck=meta.get(RECOVERED, False))

    def render_failed(self, failure):
        """A render that did not happen is a counted skip; the static page's images still count."""
        if failure.check(RenderFailed):
            reason = failure.value.reason
        elif failure.check(IgnoreRequest):
            reason = "blocked"  # a policy block, reported where it happened
        else:
            return failure
        self.crawler.stats.inc_value(f"crawl/skipped/render_{reason}")
        return list(self._static_fallback(failure.request))

    def _static_fallback(self, request):
        meta = request.meta
        return self._image_requests(
            request.url,
            [ImageRef(*ref) for ref in meta["static_images"]],
            license_url=meta.get("static_license"),
            page_trail=meta.get("static_trail", []),
            reservation=None,
            rendered=False,
            recheck=meta.get(RECOVERED, False),
        )

    def _image_requests(
        self, page_url: str, refs: list[ImageRef], *, license_url, page_trail, reservation, rendered: bool, recheck: bool = False
    ):
        """Requests for images not claimed before, a sighting for the others; with `recheck`
        (a page taken back from a dead worker) claimed ones are requested too, in case they
        were never queued: the seen-set drops those that were."""
        if reservation:
            # The page reserves its images (noimageai, tdm-reservation...): never request them.
            for ref in refs:
                report_block(self.crawler, url=ref.url, reason=reservation, page_url=page_url)
            return
        for ref, claim in zip(refs, self.claims.claim_all("images", [ref.url for ref in refs])):
            # What the page says about this image: the sighting's crawled fields (ImageItem)
            # but the image URL and the policy trail, which the image's own fetch settles.
            context = {"page_url": page_url, "alt_text": ref.alt, "license_url": license_url, "rendered": rendered, "found_via": ref.via}
            if claim is Claim.SEEN:
                # Already fetched for another page: record one more sighting, no download.
                yield ImageItem(image_url=ref.url, policy=" ".join(page_trail), **context)
                if not recheck:
                    continue
            yield scrapy.Request(
                ref.url,
                callback=self.parse_image,
                priority=IMAGE_PRIORITY,
                meta={
                    "allow_offsite": True,  # images often live on a CDN host
                    "policy_trail": [],
                    "image_context": context,
                    "page_policy_trail": page_trail,
                },
            )

    def parse_image(self, response):
        context = response.meta["image_context"]
        original_url = response.request.meta.get("redirect_urls", [response.url])[0]
        # Provenance: what the image passed, then what its page passed (each check once).
        trail = response.meta.get("policy_trail", []) + response.meta.get("page_policy_trail", [])
        etag, last_modified = _header(response, b"ETag"), _header(response, b"Last-Modified")
        if response.status == 304:
            # Asked with the validators of a stored image (ConditionalImageMiddleware): it is unchanged.
            known = response.meta["known_image"]
            yield ImageItem(
                image_url=original_url,
                policy=" ".join(dict.fromkeys(trail)),
                http_status=response.status,
                image_id=known["image_id"],
                etag=etag or known["etag"],
                last_modified=last_modified or known["last_modified"],
                **context,
            )
            return
        yield ImageItem(
            image_url=original_url,
            policy=" ".join(dict.fromkeys(trail)),
            http_status=response.status,
            body=response.body,
            etag=etag,
            last_modified=last_modified,
            **context,
        )


def _header(response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None
