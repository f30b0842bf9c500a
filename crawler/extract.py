"""Where a page's images and links are: pure functions over parsed HTML (and its CSS)."""

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urldefrag, urljoin, urlsplit

from parsel import Selector
from scrapy.linkextractors import IGNORED_EXTENSIONS

# How an image was found, recorded on its sighting (`found_via`). One name per source.
VIA_IMG = "img"  # <img src> (and data-src lazy attributes)
VIA_SRCSET = "srcset"  # a srcset candidate: <img srcset>, <picture><source>
VIA_OG = "og"  # <meta property="og:image">
VIA_TWITTER = "twitter"  # <meta name="twitter:image">
VIA_JSONLD = "jsonld"  # JSON-LD `image`, `thumbnailUrl`, ImageObject `contentUrl`/`url`
VIA_LINK = "link"  # <link rel="image_src">
VIA_ANCHOR = "anchor"  # <a href="photo-large.jpg">: the full-size image behind a thumbnail
VIA_SVG = "svg"  # SVG <image href|xlink:href>
VIA_CSS = "css"  # inline style, <style> and linked stylesheets
VIA_POSTER = "poster"  # <video poster>
VIA_SITEMAP = "sitemap"  # <image:loc> in an image sitemap
VIA_RENDERED = "rendered"  # only the rendered page showed it (its DOM or its requests)

# Bounds on what a page can make us parse; each overrun is a counted skip.
MAX_JSONLD_BYTES = 256 * 1024  # one <script type="application/ld+json"> block
MAX_JSONLD_NODES = 5_000  # objects and lists walked in one block
MAX_STYLESHEET_BYTES = 1024 * 1024  # one <style> block or linked stylesheet
MAX_CSS_URLS = 500  # image URLs taken from one stylesheet

# Path endings of a link that is an image itself rather than a page (SVG is left out: we do
# not decode it).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageRef:
    url: str
    alt: str | None
    via: str = VIA_IMG


def base_url(sel: Selector, page_url: str) -> str:
    base = sel.css("base::attr(href)").get()
    return urljoin(page_url, base.strip()) if base else page_url


def extract_images(sel: Selector, page_url: str, *, skipped: Counter | None = None) -> list[ImageRef]:
    """Every image a reader of the page would see, once each (the first source that names a
    URL wins): <img> (src, srcset, lazy data-src/data-srcset; from a srcset the largest
    candidate), <picture><source srcset>, og:image, twitter:image, JSON-LD, <link
    rel="image_src">, links to image files, SVG <image>, <video poster>, and CSS in style
    attributes and <style> blocks. Linked stylesheets are `extract_stylesheets`' part.

    `skipped` counts what was too big or malformed to read, by reason."""
    skipped = skipped if skipped is not None else Counter()
    base = base_url(sel, page_url)
    refs: list[ImageRef] = []

    for picture in sel.css("picture"):
        img = picture.css("img")
        candidates = [(c, VIA_SRCSET) for s in picture.css("source") for c in _srcset(s.attrib.get("srcset", ""))]
        candidates += _img_candidates(img[0]) if img else []
        best = _largest(candidates)
        if best:
            refs.append(ImageRef(best[0], _alt(img[0]) if img else None, best[1]))

    for img in sel.xpath("//img[not(ancestor::picture)]"):
        best = _largest(_img_candidates(img))
        if best:
            refs.append(ImageRef(best[0], _alt(img), best[1]))
            link = img.xpath("ancestor::a[1]/@href").get()
            if link and looks_like_image(link):
                refs.append(ImageRef(link, _alt(img), VIA_ANCHOR))

    og_alt = sel.css('meta[property="og:image:alt"]::attr(content)').get()
    for prop in ("og:image", "og:image:url", "og:image:secure_url"):
        for content in sel.css(f'meta[property="{prop}"]::attr(content)').getall():
            refs.append(ImageRef(content.strip(), og_alt, VIA_OG))
    twitter_alt = sel.css('meta[name="twitter:image:alt"]::attr(content)').get()
    for name in ("twitter:image", "twitter:image:src"):
        for content in sel.xpath(f'//meta[@name="{name}" or @property="{name}"]/@content').getall():
            refs.append(ImageRef(content.strip(), twitter_alt, VIA_TWITTER))
    for text in sel.xpath('//script[@type="application/ld+json"]/text()').getall():
        refs += [ImageRef(url, alt, VIA_JSONLD) for url, alt in jsonld_images(text, skipped)]
    for href in sel.css('link[rel~="image_src"]::attr(href)').getall():
        refs.append(ImageRef(href, None, VIA_LINK))
    for anchor in sel.xpath("//a[@href][not(.//img)]"):
        href = anchor.attrib["href"]
        if looks_like_image(href):
            refs.append(ImageRef(href, _text(anchor), VIA_ANCHOR))
    for image in sel.xpath("//*[local-name()='image']"):
        href = image.attrib.get("href") or image.attrib.get("xlink:href")
        if href:
            refs.append(ImageRef(href, None, VIA_SVG))
    for poster in sel.xpath("//video/@poster").getall():
        refs.append(ImageRef(poster, None, VIA_POSTER))
    for style in sel.xpath("//*[not(self::style)][@style]/@style").getall():
        refs += [ImageRef(url, None, VIA_CSS) for url in css_image_urls(style, skipped)]
    for text in sel.xpath("//style/text()").getall():
        refs += [ImageRef(url, None, VIA_CSS) for url in css_image_urls(text, skipped)]

    seen: set[str] = set()
    unique = []
    for ref in refs:
        url = absolute_url(base, ref.url)
        if url and url not in seen:
            seen.add(url)
            unique.append(ImageRef(url, ref.alt, ref.via))
    return unique


# Links not worth a request as a page: Scrapy's LinkExtractor list (documents, archives, media,
# images: a linked picture is taken
# as an image, VIA_ANCHOR, not fetched as a page) plus what it lacks that documentation sites link to.
NOT_PAGE_EXTENSIONS = frozenset(IGNORED_EXTENSIONS) | {"ipynb", "gz", "bz2", "xz", "zst", "tgz", "whl", "epub", "parquet", "csv"}


def extract_stylesheets(sel: Selector, page_url: str) -> list[str]:
    """The stylesheets a page links, whose rules may hold background images."""
    base = base_url(sel, page_url)
    hrefs = sel.xpath('//link[contains(concat(" ", normalize-space(@rel), " "), " stylesheet ")]/@href').getall()
    return list(dict.fromkeys(url for url in (absolute_url(base, h) for h in hrefs) if url))


def extract_links(sel: Selector, page_url: str) -> list[str]:
    """Pages linked from this one; links to image files are images (extract_images), not pages."""
    base = base_url(sel, page_url)
    links = (absolute_url(base, href) for href in sel.css("a::attr(href), area::attr(href)").getall())
    return list(dict.fromkeys(link for link in links if link and not looks_like_image(link)))


def is_page_link(url: str) -> bool:
    """False for a link whose path ends in a known non-page extension (.pdf, .zip, .ipynb, .mp4...):
    it would be downloaded only to be dropped as not HTML."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower().lstrip(".")
    return suffix not in NOT_PAGE_EXTENSIONS


def extract_license(sel: Selector, page_url: str) -> str | None:
    href = sel.css('link[rel~="license"]::attr(href), a[rel~="license"]::attr(href)').get()
    return absolute_url(base_url(sel, page_url), href) if href else None


def looks_like_image(href: str) -> bool:
    return urlsplit(href.strip()).path.lower().endswith(IMAGE_EXTENSIONS)


# -- CSS --------------------------------------------------------------------------------

# Declarations whose url() values are images a visitor sees (not fonts, not @import).
_CSS_IMAGE_DECLARATION = re.compile(
    r"(?:^|[;{\s])(?:background(?:-image)?|list-style(?:-image)?|border-image(?:-source)?|content|mask(?:-image)?)"
    r"\s*:([^;{}]*)",
    re.I,
)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6}\s?|.)")


def css_image_urls(text: str, skipped: Counter) -> list[str]:
    """Image URLs in CSS (rules or one style attribute), unresolved, in order; a stylesheet
    over MAX_STYLESHEET_BYTES is skipped whole (counted as `css_too_large`)."""
    if len(text) > MAX_STYLESHEET_BYTES:
        skipped["css_too_large"] += 1
        return []
    urls: list[str] = []
    for declaration in _CSS_IMAGE_DECLARATION.finditer(_CSS_COMMENT.sub("", text)):
        for match in _CSS_URL.finditer(declaration.group(1)):
            url = _CSS_ESCAPE.sub(_unescape, next(g for g in match.groups() if g is not None)).strip()
            if url and not url.startswith(("data:", "#")):
                urls.append(url)
                if len(urls) >= MAX_CSS_URLS:
                    skipped["css_too_many_urls"] += 1
                    return list(dict.fromkeys(urls))
    return list(dict.fromkeys(urls))


def _unescape(match: re.Match) -> str:
    escaped = match.group(1)
    if re.fullmatch(r"[0-9a-fA-F]{1,6}\s?", escaped):
        code = int(escaped.strip(), 16)
        return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
    return escaped


# -- JSON-LD ----------------------------------------------------------------------------

# Keys of a schema.org object whose value is an image (a URL, an ImageObject, or a list).
_JSONLD_IMAGE_KEYS = ("image", "thumbnailUrl", "logo", "primaryImageOfPage")


def jsonld_images(text: str, skipped: Counter) -> list[tuple[str, str | None]]:
    """(URL, caption) of every image a JSON-LD block names; a block that is too big or not
    JSON is a counted skip (`jsonld_too_large`, `jsonld_invalid`)."""
    if len(text) > MAX_JSONLD_BYTES:
        skipped["jsonld_too_large"] += 1
        return []
    try:
        data = json.loads(text)
    except ValueError:
        skipped["jsonld_invalid"] += 1
        return []
    except RecursionError:  # nesting deeper than the parser's stack: not a page's metadata
        skipped["jsonld_too_large"] += 1
        return []
    found: list[tuple[str, str | None]] = []
    stack, walked = [data], 0
    while stack:
        node = stack.pop()
        walked += 1
        if walked > MAX_JSONLD_NODES:
            skipped["jsonld_too_large"] += 1
            break
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            if _is_image_object(node):
                url = node.get("contentUrl") or node.get("url")
                if isinstance(url, str):
                    caption = node.get("caption") or node.get("name")
                    found.append((url, caption if isinstance(caption, str) else None))
            for key in _JSONLD_IMAGE_KEYS:
                value = node.get(key)
                values = value if isinstance(value, list) else [value]
                found += [(v, None) for v in values if isinstance(v, str)]
            stack.extend(reversed([v for v in node.values() if isinstance(v, (dict, list))]))
    return found


def _is_image_object(node: dict) -> bool:
    kind = node.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return "ImageObject" in kinds


# -- <img> and srcset -------------------------------------------------------------------

# A srcset candidate: URL, then an optional width ("800w") or density ("2x") descriptor.
_CANDIDATE = re.compile(r"^(\S+?)(?:\s+(\d+(?:\.\d+)?)([wx]))?$")


def _srcset(value: str) -> list[tuple[str, float]]:
    candidates = []
    for part in re.split(r",\s+|,(?=[^\s,]+\s+\d)", value.strip()):
        match = _CANDIDATE.match(part.strip().rstrip(","))
        if match:
            url, number, unit = match.groups()
            # A srcset uses widths or densities, not both: either way, larger means larger.
            size = float(number) if unit == "w" else float(number or 1)
            candidates.append((url, size))
    return candidates


def _img_candidates(img: Selector) -> list[tuple[tuple[str, float], str]]:
    attrs = img.attrib
    # Lazy loaders keep the real image in data-* and a placeholder in src: prefer data-*.
    for name in ("data-srcset", "srcset"):
        found = [c for c in _srcset(attrs.get(name, "")) if not c[0].startswith("data:")]
        if found:
            return [(c, VIA_SRCSET) for c in found]
    for name in ("data-src", "data-lazy-src", "data-original", "src"):
        value = attrs.get(name, "").strip()
        if value and not value.startswith("data:"):
            return [((value, 1.0), VIA_IMG)]
    return []


def _largest(candidates: list[tuple[tuple[str, float], str]]) -> tuple[str, str] | None:
    """(URL, via) of the largest candidate that is not a data: URL."""
    real = [c for c in candidates if not c[0][0].startswith("data:")]
    if not real:
        return None
    (url, _), via = max(real, key=lambda c: c[0][1])
    return url, via


def _alt(img: Selector) -> str | None:
    alt = img.attrib.get("alt")
    return alt.strip() if alt is not None else None


def _text(element: Selector) -> str | None:
    text = " ".join(" ".join(element.xpath(".//text()").getall()).split())
    return text or None


def absolute_url(base: str, href: str | None) -> str | None:
    """`href` resolved against `base`, without its fragment; None unless http(s)."""
    if not href:
        return None
    url = urldefrag(urljoin(base, href.strip()))[0]
    return url if url.startswith(("http://", "https://")) else None
