"""Where a page's images and links are: pure functions over parsed HTML."""

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urldefrag, urljoin, urlsplit

from parsel import Selector
from scrapy.linkextractors import IGNORED_EXTENSIONS


@dataclass(frozen=True)
class ImageRef:
    url: str
    alt: str | None


def base_url(sel: Selector, page_url: str) -> str:
    base = sel.css("base::attr(href)").get()
    return urljoin(page_url, base.strip()) if base else page_url


def extract_images(sel: Selector, page_url: str) -> list[ImageRef]:
    """Every image a reader of the page would see, once each, in document order.

    Sources: <img> (src, srcset, lazy data-src/data-srcset), <picture><source srcset>,
    and og:image. From a srcset the largest candidate is taken.
    """
    base = base_url(sel, page_url)
    refs: list[ImageRef] = []

    for picture in sel.css("picture"):
        img = picture.css("img")
        candidates = [c for s in picture.css("source") for c in _srcset(s.attrib.get("srcset", ""))]
        candidates += _img_candidates(img[0]) if img else []
        best = _largest(candidates)
        if best:
            refs.append(ImageRef(best, _alt(img[0]) if img else None))

    for img in sel.xpath("//img[not(ancestor::picture)]"):
        best = _largest(_img_candidates(img))
        if best:
            refs.append(ImageRef(best, _alt(img)))

    og_alt = sel.css('meta[property="og:image:alt"]::attr(content)').get()
    for prop in ("og:image", "og:image:url", "og:image:secure_url"):
        for content in sel.css(f'meta[property="{prop}"]::attr(content)').getall():
            refs.append(ImageRef(content.strip(), og_alt))

    seen: set[str] = set()
    unique = []
    for ref in refs:
        url = _absolute(base, ref.url)
        if url and url not in seen:
            seen.add(url)
            unique.append(ImageRef(url, ref.alt))
    return unique


# Links not worth a request as a page: Scrapy's LinkExtractor list (documents, archives, media,
# images: a linked picture is no sighting) plus what it lacks that documentation sites link to.
NOT_PAGE_EXTENSIONS = frozenset(IGNORED_EXTENSIONS) | {"ipynb", "gz", "bz2", "xz", "zst", "tgz", "whl", "epub", "parquet", "csv"}


def extract_links(sel: Selector, page_url: str) -> list[str]:
    base = base_url(sel, page_url)
    links = (_absolute(base, href) for href in sel.css("a::attr(href), area::attr(href)").getall())
    return list(dict.fromkeys(link for link in links if link))


def is_page_link(url: str) -> bool:
    """False for a link whose path ends in a known non-page extension (.pdf, .zip, .ipynb, .mp4...):
    it would be downloaded only to be dropped as not HTML."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower().lstrip(".")
    return suffix not in NOT_PAGE_EXTENSIONS


def extract_license(sel: Selector, page_url: str) -> str | None:
    href = sel.css('link[rel~="license"]::attr(href), a[rel~="license"]::attr(href)').get()
    return _absolute(base_url(sel, page_url), href) if href else None


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


def _img_candidates(img: Selector) -> list[tuple[str, float]]:
    attrs = img.attrib
    # Lazy loaders keep the real image in data-* and a placeholder in src: prefer data-*.
    for name in ("data-srcset", "srcset"):
        found = [c for c in _srcset(attrs.get(name, "")) if not c[0].startswith("data:")]
        if found:
            return found
    for name in ("data-src", "data-lazy-src", "data-original", "src"):
        value = attrs.get(name, "").strip()
        if value and not value.startswith("data:"):
            return [(value, 1.0)]
    return []


def _largest(candidates: list[tuple[str, float]]) -> str | None:
    real = [c for c in candidates if not c[0].startswith("data:")]
    return max(real, key=lambda c: c[1])[0] if real else None


def _alt(img: Selector) -> str | None:
    alt = img.attrib.get("alt")
    return alt.strip() if alt is not None else None


def _absolute(base: str, href: str | None) -> str | None:
    if not href:
        return None
    url = urldefrag(urljoin(base, href.strip()))[0]
    return url if url.startswith(("http://", "https://")) else None
