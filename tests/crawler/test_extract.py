import pytest
from parsel import Selector

from crawler.extract import extract_images, extract_license, extract_links, is_page_link

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
