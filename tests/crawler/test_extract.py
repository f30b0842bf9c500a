import pytest
from parsel import Selector

from collections import Counter

from crawler.extract import (
    MAX_JSONLD_BYTES,
    MAX_STYLESHEET_BYTES,
    css_image_urls,
    extract_images,
    extract_license,
    extract_links,
    extract_stylesheets,
    is_page_link,
    jsonld_images,
)

PAGE = "http://a.test/dir/page.html"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<img src="x.jpg" alt="X">', [("http://a.test/dir/x.jpg", "X")]),
        ('<img src="/x.jpg#frag">', [("http://a.test/x.jpg", None)]),
        ('<img srcset="s.jpg 100w, l.jpg 900w, m.jpg 400w" src="s.jpg">', [("http://a.test/dir/l.jpg", None)]),
        ('<img srcset="a.jpg, b.jpg 2x">', [("http://a.test/dir/b.jpg", None)]),
        ('<img src="data:image/gif;base64,AA" data-src="lazy.jpg">', [("http://a.test/dir/lazy.jpg", None)]),
        ('<img data-srcset="a.jpg 1x, b.jpg 3x">', [("http://a.test/dir/b.jpg", None)]),
        (
            '<picture><source srcset="p.webp 800w"><source srcset="p.jpg 400w"><img src="p-small.jpg" alt="P"></picture>',
            [("http://a.test/dir/p.webp", "P")],
        ),
        ('<meta property="og:image" content="https://cdn.test/og.jpg">', [("https://cdn.test/og.jpg", None)]),
        ('<base href="http://cdn.test/assets/"><img src="b.jpg">', [("http://cdn.test/assets/b.jpg", None)]),
        ('<img src="a.jpg"><img src="a.jpg">', [("http://a.test/dir/a.jpg", None)]),
        ('<img src="javascript:alert(1)"><img src="">', []),
        ('<img src="data:image/png;base64,AAAA">', []),
    ],
    ids=["src", "absolute-path", "srcset-w", "srcset-x", "data-src", "data-srcset", "picture", "og", "base", "dedup",
         "junk", "data-uri"],
)
def test_extract_images(html, expected):
    refs = extract_images(Selector(text=f"<html><head></head><body>{html}</body></html>"), PAGE)
    assert [(r.url, r.alt) for r in refs] == expected


D = "http://a.test/dir/"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<img src="x.jpg">', [(D + "x.jpg", "img")]),
        ('<img srcset="s.jpg 1x, l.jpg 2x">', [(D + "l.jpg", "srcset")]),
        ('<picture><source srcset="p.webp"><img src="p.jpg"></picture>', [(D + "p.webp", "srcset")]),
        ('<meta property="og:image" content="/og.jpg">', [("http://a.test/og.jpg", "og")]),
        # The most common gallery pattern: a thumbnail linking to its full-size image.
        (
            '<a href="photo-large.jpg"><img src="photo-thumb.jpg" alt="T"></a>',
            [(D + "photo-thumb.jpg", "img"), (D + "photo-large.jpg", "anchor")],
        ),
        ('<a href="big.PNG?v=2">full size</a>', [(D + "big.PNG?v=2", "anchor")]),
        ('<a href="page.html"><img src="t.jpg"></a><a href="doc.pdf">pdf</a>', [(D + "t.jpg", "img")]),
        ('<meta name="twitter:image" content="https://cdn.test/tw.jpg">', [("https://cdn.test/tw.jpg", "twitter")]),
        ('<meta name="twitter:image:src" content="tw2.jpg">', [(D + "tw2.jpg", "twitter")]),
        (
            '<script type="application/ld+json">{"@type": "Article", "image": "/ld.jpg"}</script>',
            [("http://a.test/ld.jpg", "jsonld")],
        ),
        (
            '<script type="application/ld+json">{"@graph": [{"@type": "ImageObject", "contentUrl": "io.jpg",'
            ' "caption": "cap"}, {"@type": "Product", "image": ["p1.jpg", {"@type": "ImageObject", "url": "p2.jpg"}]}]}'
            "</script>",
            [(D + "io.jpg", "jsonld"), (D + "p1.jpg", "jsonld"), (D + "p2.jpg", "jsonld")],
        ),
        ('<script type="application/ld+json">{not json</script><img src="a.jpg">', [(D + "a.jpg", "img")]),
        ('<link rel="image_src" href="/src.jpg">', [("http://a.test/src.jpg", "link")]),
        ('<svg><image href="s1.jpg"/></svg>', [(D + "s1.jpg", "svg")]),
        (
            '<svg xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="s2.jpg"/></svg>',
            [(D + "s2.jpg", "svg")],
        ),
        ('<div style="background-image: url(\'bg.jpg\')"></div>', [(D + "bg.jpg", "css")]),
        ('<div style="background:#fff url(bg2.jpg) no-repeat"></div>', [(D + "bg2.jpg", "css")]),
        ('<style>.hero { background-image: url("/hero.jpg"); } @font-face { src: url(f.woff2) }</style>',
         [("http://a.test/hero.jpg", "css")]),
        ('<video poster="poster.jpg"><source src="v.mp4"></video>', [(D + "poster.jpg", "poster")]),
        # The first source that names a URL is the one recorded.
        ('<img src="same.jpg"><meta name="twitter:image" content="same.jpg">', [(D + "same.jpg", "img")]),
    ],
    ids=["img", "srcset", "picture", "og", "thumbnail-link", "image-link", "not-image-links", "twitter",
         "twitter-src", "jsonld", "jsonld-imageobject", "jsonld-invalid", "image_src", "svg-href",
         "svg-xlink", "inline-style", "inline-shorthand", "style-block", "poster", "first-source-wins"],
)
def test_each_image_records_how_it_was_found(html, expected):
    refs = extract_images(Selector(text=f"<html><head></head><body>{html}</body></html>"), PAGE)
    assert [(r.url, r.via) for r in refs] == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "jsonld_invalid"),
        ('{"image": "' + "x" * MAX_JSONLD_BYTES + '"}', "jsonld_too_large"),
        ("[" * 100_000 + "]" * 100_000, "jsonld_too_large"),
    ],
    ids=["not-json", "too-big", "too-deep"],
)
def test_bad_jsonld_is_a_counted_skip(text, reason):
    skipped = Counter()
    assert jsonld_images(text, skipped) == []
    assert skipped == {reason: 1}


def test_a_huge_stylesheet_is_a_counted_skip():
    skipped = Counter()
    assert css_image_urls(".a { background: url(a.jpg) }" * (MAX_STYLESHEET_BYTES // 20), skipped) == []
    assert skipped == {"css_too_large": 1}


def test_css_image_urls_unescape_and_skip_data_and_fonts():
    css = (
        "/* .x { background: url(commented.jpg) } */ .a{background-image:url( 'a\\20 b.jpg' )}"
        " .b{background:url(data:image/png;base64,AA)} @import url(other.css);"
        " .c{list-style-image:url(c.png)} .d{background-image:image-set(url(d1.jpg) 1x, url(d2.jpg) 2x)}"
    )
    assert css_image_urls(css, Counter()) == ["a b.jpg", "c.png", "d1.jpg", "d2.jpg"]


def test_extract_stylesheets_and_image_links_are_not_pages():
    sel = Selector(
        text='<link rel="stylesheet" href="s.css"><link rel="alternate stylesheet" href="/t.css">'
        '<link rel="icon" href="i.png"><a href="big.jpg">big</a><a href="next.html">next</a>'
    )
    assert extract_stylesheets(sel, PAGE) == [D + "s.css", "http://a.test/t.css"]
    assert extract_links(sel, PAGE) == [D + "next.html"]


def test_extract_links_and_license():
    sel = Selector(text='<a href="a.html#x">a</a><a href="mailto:x@y">m</a><a href="/b">b</a><a rel="license" href="/lic">l</a>')
    assert extract_links(sel, PAGE) == ["http://a.test/dir/a.html", "http://a.test/b", "http://a.test/lic"]
    assert extract_license(sel, PAGE) == "http://a.test/lic"


@pytest.mark.parametrize(
    ("url", "page"),
    [
        ("http://a.test/guide/", True),
        ("http://a.test/guide/index.html", True),
        ("http://a.test/api.php?x=1.pdf", True),  # the query is not the path
        ("http://a.test/v1.2/", True),
        ("http://a.test/manual.pdf", False),
        ("http://a.test/src.tar.gz", False),
        ("http://a.test/demo.ipynb", False),
        ("http://a.test/CLIP.MP4", False),
        ("http://a.test/photo.jpg", False),
    ],
)
def test_only_page_links_are_followed(url, page):
    assert is_page_link(url) is page
