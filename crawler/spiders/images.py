"""The `images` spider: follow a site's pages, request each image found once, hand bytes on."""

from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse

from crawler.claims import Claim, LocalClaims
from crawler.config import RenderConfig
from crawler.frontier.scheduler import RECOVERED, shared_frontier
from crawler.extract import ImageRef, extract_images, extract_license, extract_links, is_page_link
from crawler.items import ImageItem
from crawler.render import RenderFailed
from crawler.render_heuristic import HostRenderLearner, page_signals, should_render
from crawler.signals import report_block

# Images first: a fetched image is bytes held in memory until the pipeline has it.
IMAGE_PRIORITY = 10


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
        # A worker may have died between claiming a seed and queueing it: the seen-set decides.
        for request in self._page_requests(self.seeds, recheck=True):
            yield request

    def _in_scope(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def _page_requests(self, urls: list[str], *, recheck: bool = False) -> list[scrapy.Request]:
        """Requests for the pages not claimed before (claimed together: one round trip on a
        shared frontier); with `recheck`, also for those claimed before but perhaps never
        queued (the dupefilter's seen-set drops those that were)."""
        urls = [url for url in urls if self._in_scope(url)]
        requests = []
        for url, claim in zip(urls, self.claims.claim_all("pages", urls, limit=self.max_pages)):
            if claim is Claim.OVER_LIMIT:
                self.crawler.stats.inc_value("crawl/pages_over_limit")
            elif claim is Claim.NEW or recheck:
                requests.append(scrapy.Request(url, callback=self.parse_page, meta={"policy_trail": []}))
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
        refs = extract_images(response.selector, response.url)
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
        yield from self._page_requests(self._links(response), recheck=recheck)

    def _links(self, response) -> list[str]:
        """The page's links worth fetching as pages; links to documents, archives and media are
        counted (crawl/links_skipped) and never requested."""
        links = extract_links(response.selector, response.url)
        pages = [link for link in links if is_page_link(link)]
        if len(pages) < len(links):
            self.crawler.stats.inc_value("crawl/links_skipped", len(links) - len(pages))
        return pages

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
            hint = should_render(page_signals(response.selector, images=len(refs)))
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
                "static_images": [[ref.url, ref.alt] for ref in refs],
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
        static = [ImageRef(url, alt) for url, alt in meta["static_images"]]
        refs = extract_images(response.selector, response.url)
        found = {ref.url for ref in refs}
        # Images the page asked the network for (CSS backgrounds, script-made Image objects)
        # and anything the static HTML had that the script removed again.
        refs += [ImageRef(url, None) for url in meta.get("render_image_urls", []) if url not in found]
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
            [ImageRef(url, alt) for url, alt in meta["static_images"]],
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
            context = {"page_url": page_url, "alt_text": ref.alt, "license_url": license_url, "rendered": rendered}
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
