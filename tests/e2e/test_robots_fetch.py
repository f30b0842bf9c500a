"""robots.txt fetch outcomes per RFC 9309 §2.3.1, end to end: 2xx parsed, 4xx allow all,
5xx and unreachable disallow all (and nothing else is requested from that host)."""

import pytest

from gallery.demo import make_picture
from gallery.site import Canned, StaticSite
from tests.conftest import crawl
from tests.fixture_site import jpeg_bytes


@pytest.fixture
def tiny_site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "photo.jpg").write_bytes(jpeg_bytes(make_picture(900)))
    (root / "index.html").write_text('<html><body><img src="photo.jpg"></body></html>')
    return root


@pytest.mark.parametrize(
    ("robots", "stored", "blocked"),
    [
        (Canned(200, b"User-agent: gallery-crawler\nDisallow: /photo.jpg\n"), 0, {"robots": 1}),
        (Canned(200, b"User-agent: *\nAllow: /\n"), 1, {}),
        (Canned(404), 1, {}),
        (Canned(410), 1, {}),
        (Canned(503), 0, {"robots_5xx": 1}),
        (Canned(0), 0, {"robots_unreachable": 1}),
    ],
    ids=["200-disallow-image", "200-allow", "404", "410", "503", "unreachable"],
)
def test_robots_fetch_outcome(tiny_site, tmp_path, robots, stored, blocked):
    with StaticSite(tiny_site, canned={"/robots.txt": robots}) as site:
        summary = crawl(site.url, tmp_path / "gallery")
    assert summary["images_stored"] == stored
    assert summary["blocked"] == blocked
    if blocked.get("robots_5xx") or blocked.get("robots_unreachable"):
        assert set(site.requests) == {"/robots.txt"}, "nothing but robots.txt may be requested"
