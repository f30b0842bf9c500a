"""Image sitemaps: which pages a sitemap lists, the images (`<image:loc>`) it says each shows,
and the further sitemaps an index names. Pure and bounded: a sitemap is read from bytes held in
memory, gzip included, and every overrun is a counted skip by reason.

Scrapy's `Sitemap` keeps only the text of a <url>'s direct children, so the nested
<image:image><image:loc> of Google's image extension would be lost; this walks the elements
itself, with the same safe parser settings (no entities, no network).
"""

import zlib
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO

import lxml.etree

MAX_SITEMAP_BYTES = 10 * 1024 * 1024  # one sitemap after decompression (the protocol allows 50 MB)
MAX_SITEMAP_ENTRIES = 50_000  # <url> or <sitemap> elements read from one file (the protocol's own limit)
MAX_IMAGES_PER_PAGE = 1_000  # <image:loc> per <url> (the extension's own limit)
MAX_SITEMAP_FILES = 200  # sitemap files fetched per crawl, indexes included
MAX_INDEX_DEPTH = 2  # robots.txt -> index -> sitemap; an index inside that is not followed

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SitemapPage:
    loc: str
    images: tuple[str, ...]


@dataclass
class SitemapContent:
    kind: str | None = None  # "urlset", "sitemapindex", or None when unreadable
    sitemaps: list[str] = field(default_factory=list)  # what an index names
    pages: list[SitemapPage] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def read_sitemap(body: bytes) -> SitemapContent:
    """What one sitemap file says; gzip is unpacked up to MAX_SITEMAP_BYTES."""
    content = SitemapContent()
    if body[:2] == _GZIP_MAGIC:
        body = _gunzip(body, content.skipped)
        if body is None:
            return content
    if len(body) > MAX_SITEMAP_BYTES:
        content.skipped["sitemap_too_large"] += 1
        return content
    try:
        _walk(body, content)
    except lxml.etree.XMLSyntaxError:
        content.skipped["sitemap_invalid"] += 1
    return content


def _walk(body: bytes, content: SitemapContent) -> None:
    events = lxml.etree.iterparse(
        BytesIO(body),
        events=("start", "end"),
        recover=True,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    entries = 0
    for event, elem in events:
        name = _local(elem)
        if event == "start":
            if content.kind is None:
                content.kind = name if name in ("urlset", "sitemapindex") else None
                if content.kind is None:
                    content.skipped["sitemap_invalid"] += 1
                    return
            continue
        if name not in ("url", "sitemap"):
            continue
        entries += 1
        if entries > MAX_SITEMAP_ENTRIES:
            content.skipped["sitemap_too_many_entries"] += 1
            return
        loc = _child_text(elem, "loc")
        if name == "sitemap" and loc:
            content.sitemaps.append(loc)
        elif name == "url" and loc:
            images = [text for image in elem if _local(image) == "image" if (text := _child_text(image, "loc"))]
            if len(images) > MAX_IMAGES_PER_PAGE:
                content.skipped["sitemap_too_many_images"] += 1
                images = images[:MAX_IMAGES_PER_PAGE]
            content.pages.append(SitemapPage(loc, tuple(images)))
        # Done with it: a 50,000-entry file is read in constant memory.
        elem.clear()
        parent = elem.getparent()
        if parent is not None:
            while elem.getprevious() is not None:
                del parent[0]


def _gunzip(body: bytes, skipped: Counter) -> bytes | None:
    """At most MAX_SITEMAP_BYTES of a gzip body: a gzip bomb stops there, a counted skip."""
    unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = unpacker.decompress(body, MAX_SITEMAP_BYTES + 1)
    except zlib.error:
        skipped["sitemap_invalid"] += 1
        return None
    if len(data) > MAX_SITEMAP_BYTES:
        skipped["sitemap_too_large"] += 1
        return None
    return data


def _local(elem) -> str:
    tag = elem.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child_text(elem, name: str) -> str | None:
    for child in elem:
        if _local(child) == name and child.text and child.text.strip():
            return child.text.strip()
    return None
