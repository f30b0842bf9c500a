"""A small site showing images through every source the extractor reads besides <img>: links to
full-size files, social meta tags, JSON-LD, CSS (inline, <style>, linked), SVG, video posters and
image sitemaps; with robots.txt disallowing /private/, reached through CSS and a sitemap too, and
sources too big or broken to read."""

import gzip
import json
import zlib
from pathlib import Path

from gallery.demo import make_picture
from tests.fixture_site import jpeg_bytes

# image path -> the found_via its sighting must carry
FOUND_VIA = {
    "img/thumb.jpg": "img",
    "img/large.jpg": "anchor",
    "img/twitter.jpg": "twitter",
    "img/jsonld.jpg": "jsonld",
    "img/image-src.jpg": "link",
    "img/svg.jpg": "svg",
    "img/inline-style.jpg": "css",
    "img/style-block.jpg": "css",
    "img/linked-css.jpg": "css",
    "img/poster.jpg": "poster",
    "img/sitemap-only.jpg": "sitemap",
    "img/sitemap-page.jpg": "sitemap",
}
# Reached only through a stylesheet and a sitemap; robots.txt disallows them.
BLOCKED = ("private/css-secret.jpg", "private/sitemap-secret.jpg")
STYLESHEET_MAX = 1024 * 1024  # crawler.extract.MAX_STYLESHEET_BYTES, kept apart to test it


def build_sources_site(root: Path) -> Path:
    root = Path(root)
    for folder in ("img", "private", "css"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for seed, path in enumerate([*FOUND_VIA, *BLOCKED], start=900):
        (root / path).write_bytes(jpeg_bytes(make_picture(seed, (96, 72))))
    jsonld = json.dumps({"@context": "https://schema.org", "@type": "Article", "image": {"@type": "ImageObject", "contentUrl": "/img/jsonld.jpg"}})
    sources = (
        '<head><meta name="twitter:image" content="/img/twitter.jpg">'
        f'<script type="application/ld+json">{jsonld}</script>'
        '<script type="application/ld+json">{"image": "/img/never.jpg",</script>'
        '<link rel="image_src" href="/img/image-src.jpg">'
        '<link rel="stylesheet" href="/css/site.css"><link rel="stylesheet" href="/css/huge.css">'
        "<style>.banner { background-image: url('/img/style-block.jpg') }</style></head><body>"
        '<a href="/img/large.jpg"><img src="/img/thumb.jpg" alt="thumb"></a>'
        '<svg width="10" height="10"><image href="/img/svg.jpg" width="10" height="10"/></svg>'
        '<div style="background: url(/img/inline-style.jpg)">hero</div>'
        '<video poster="/img/poster.jpg"></video><div class="banner">banner</div></body>'
    )
    (root / "sources.html").write_text(f"<!doctype html><html>{sources}</html>")
    (root / "index.html").write_text('<!doctype html><html><body><a href="sources.html">sources</a></body></html>')
    (root / "sitemap-page.html").write_text("<!doctype html><html><body><p>only in the sitemap</p></body></html>")
    # url() in a stylesheet is relative to the stylesheet.
    (root / "css" / "site.css").write_text(
        ".a { background-image: url(../img/linked-css.jpg) } .b { background: url('../private/css-secret.jpg') }"
        " @font-face { font-family: x; src: url(../fonts/x.woff2) }"
    )
    (root / "css" / "huge.css").write_text(".x { color: red }\n" * (10 * STYLESHEET_MAX // 18))
    image_ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"'

    def url(page: str, *images: str) -> str:
        found = "".join(f"<image:image><image:loc>/{i}</image:loc></image:image>" for i in images)
        return f"<url><loc>/{page}</loc>{found}</url>"

    (root / "sitemap-images.xml").write_text(
        f"<urlset {image_ns}>"
        + url("sitemap-page.html", "img/sitemap-page.jpg")
        + url("sources.html", "img/sitemap-only.jpg", "private/sitemap-secret.jpg")
        + "</urlset>"
    )
    # A gzip bomb: a few KB that unpack to far more than a sitemap may be.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(b"<urlset>") + b"".join(packer.compress(b" " * 2**20) for _ in range(64)) + packer.flush()
    (root / "bomb.xml.gz").write_bytes(bomb)
    (root / "sitemap-index.xml.gz").write_bytes(
        gzip.compress(
            b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            b"<sitemap><loc>/sitemap-images.xml</loc></sitemap><sitemap><loc>/bomb.xml.gz</loc></sitemap>"
            b"<sitemap><loc>/private/sitemap.xml</loc></sitemap></sitemapindex>"
        )
    )
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n\nSitemap: /sitemap-index.xml.gz\n")
    return root
