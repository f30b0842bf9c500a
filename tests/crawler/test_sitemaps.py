import gzip
import zlib

import pytest

from crawler.sitemaps import MAX_SITEMAP_BYTES, MAX_SITEMAP_ENTRIES, SitemapPage, read_sitemap
from robots_policy.robots import MAX_ROBOTS_SITEMAPS, sitemap_urls
from robots_policy.site import SitePolicy
from robots_policy.cache import CachedFetch

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>http://a.test/p1.html</loc>
    <image:image><image:loc>http://a.test/i1.jpg</image:loc></image:image>
    <image:image><image:loc> http://a.test/i2.jpg </image:loc><image:caption>two</image:caption></image:image>
  </url>
  <url><loc>http://a.test/p2.html</loc><lastmod>2024-01-01</lastmod></url>
  <url><image:image><image:loc>http://a.test/no-page.jpg</image:loc></image:image></url>
</urlset>"""

INDEX = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>http://a.test/s1.xml</loc></sitemap><sitemap><loc>http://a.test/s2.xml.gz</loc></sitemap>
</sitemapindex>"""


def test_image_sitemap_pages_and_images():
    content = read_sitemap(URLSET)
    assert content.kind == "urlset"
    assert content.pages == [
        SitemapPage("http://a.test/p1.html", ("http://a.test/i1.jpg", "http://a.test/i2.jpg")),
        SitemapPage("http://a.test/p2.html", ()),
    ]
    assert not content.skipped


def test_sitemap_index_and_gzip():
    content = read_sitemap(gzip.compress(INDEX))
    assert content.kind == "sitemapindex"
    assert content.sitemaps == ["http://a.test/s1.xml", "http://a.test/s2.xml.gz"]


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"<!-- " + b" " * (1024 * 1024) + b" -->"
    parts = [packer.compress(b"<urlset>")] + [packer.compress(chunk) for _ in range(MAX_SITEMAP_BYTES // len(chunk) + 5)]
    return b"".join(parts) + packer.flush()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_bomb(), "sitemap_too_large"),
        (b"\x1f\x8bnot gzip at all", "sitemap_invalid"),
        (b"<html><body>not a sitemap</body></html>", "sitemap_invalid"),
        (b"", "sitemap_invalid"),
        (
            b"<sitemapindex>" + b"<sitemap><loc>http://a.test/s.xml</loc></sitemap>" * (MAX_SITEMAP_ENTRIES + 10) + b"</sitemapindex>",
            "sitemap_too_many_entries",
        ),
    ],
    ids=["gzip-bomb", "bad-gzip", "html", "empty", "huge-index"],
)
def test_bad_sitemaps_are_bounded_counted_skips(body, reason):
    content = read_sitemap(body)
    assert content.skipped[reason] == 1
    assert len(content.sitemaps) <= MAX_SITEMAP_ENTRIES
    assert not content.pages


def test_robots_sitemap_lines():
    text = "User-agent: *\nDisallow: /x\n\nSitemap: http://a.test/s.xml\nsitemap: /rel.xml\n"
    assert sitemap_urls(text) == ["http://a.test/s.xml", "/rel.xml"]
    many = "".join(f"Sitemap: http://a.test/{n}.xml\n" for n in range(500))
    assert len(sitemap_urls(many)) == MAX_ROBOTS_SITEMAPS
    policy = SitePolicy.from_fetches(
        robots=CachedFetch(status=200, body=text.encode(), fetched_at=0.0),
        ai_txt=CachedFetch(status=404, body=b"", fetched_at=0.0),
        tdmrep=CachedFetch(status=404, body=b"", fetched_at=0.0),
    )
    assert policy.sitemaps == ("http://a.test/s.xml", "/rel.xml")
