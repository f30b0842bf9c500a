"""The `images` spider: follow a site's pages, request each image found once, hand bytes on."""

from urllib.parse import urlsplit

import scrapy
from scrapy.http import HtmlResponse

from crawler.extract import extract_images, extract_license, extract_links
from crawler.items import ImageItem
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
        self._pages_requested: set[str] = set()
        self._images_requested: set[str] = set()

    async def start(self):
        for seed in self.seeds:
            request = self._page_request(seed)
            if request:
                yield request

    def _in_scope(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def _page_request(self, url: str) -> scrapy.Request | None:
        if url in self._pages_requested or not self._in_scope(url):
            return None
        if self.max_pages is not None and len(self._pages_requested) >= self.max_pages:
            self.crawler.stats.inc_value("crawl/pages_over_limit")
            return None
        self._pages_requested.add(url)
        return scrapy.Request(url, callback=self.parse_page, meta={"policy_trail": []})

    def parse_page(self, response):
        if not isinstance(response, HtmlResponse):
            self.crawler.stats.inc_value("crawl/skipped/not_html")
            return
        self.crawler.stats.inc_value("crawl/pages")
        page_trail = response.meta.get("policy_trail", [])
        reservation = response.meta.get("page_reservation")
        license_url = extract_license(response.selector, response.url)
        for ref in extract_images(response.selector, response.url):
            if reservation:
                # The page reserves its images (noimageai, tdm-reservation...): never request them.
                report_block(self.crawler, url=ref.url, reason=reservation, page_url=response.url)
                continue
            if ref.url in self._images_requested:
                # Already fetched for another page: record one more sighting, no download.
                yield ImageItem(
                    image_url=ref.url,
                    page_url=response.url,
                    alt_text=ref.alt,
                    license_url=license_url,
                    rendered=False,
                    policy=" ".join(page_trail),
                )
                continue
            self._images_requested.add(ref.url)
            yield scrapy.Request(
                ref.url,
                callback=self.parse_image,
                priority=IMAGE_PRIORITY,
                meta={
                    "allow_offsite": True,  # images often live on a CDN host
                    "policy_trail": [],
                    "image_context": {
                        "page_url": response.url,
                        "alt_text": ref.alt,
                        "license_url": license_url,
                        "rendered": False,
                    },
                    "page_policy_trail": page_trail,
                },
            )
        for link in extract_links(response.selector, response.url):
            request = self._page_request(link)
            if request:
                yield request

    def parse_image(self, response):
        context = response.meta["image_context"]
        original_url = response.request.meta.get("redirect_urls", [response.url])[0]
        # Provenance: what the image passed, then what its page passed (each check once).
        trail = response.meta.get("policy_trail", []) + response.meta.get("page_policy_trail", [])
        yield ImageItem(
            image_url=original_url,
            policy=" ".join(dict.fromkeys(trail)),
            http_status=response.status,
            body=response.body,
            **context,
        )
