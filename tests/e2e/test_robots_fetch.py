"""robots.txt fetch outcomes per RFC 9309 §2.3.1, end to end: 2xx parsed, 4xx allow all,
5xx and unreachable disallow all (and nothing else is requested from that host)."""

import pytest

from gallery.demo import make_picture
from gallery.site import Canned, StaticSite
from tests.conftest import crawl, run_gallery_json
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
    refused = bool(blocked.get("robots_5xx") or blocked.get("robots_unreachable"))
    with StaticSite(tiny_site, canned={"/robots.txt": robots}) as site:
        summary = crawl(site.url, tmp_path / "gallery", refused=refused)
    assert summary["images_stored"] == stored
    assert summary["blocked"] == blocked
    if blocked.get("robots_5xx") or blocked.get("robots_unreachable"):
        assert set(site.requests) == {"/robots.txt"}, "nothing but robots.txt may be requested"


def _redirect(location: str) -> Canned:
    return Canned(301, b"", headers=(("Location", location),))


@pytest.mark.parametrize(
    ("canned", "stored", "blocked"),
    [
        # robots.txt moved: the rules found at the end of the redirects apply to this host.
        ({"/robots.txt": _redirect("/moved/robots.txt"), "/moved/robots.txt": Canned(200, b"User-agent: *\nDisallow: /photo\n")}, 0, {"robots": 1}),
        # A redirect loop never yields rules. RFC 9309 lets a crawler call that "unavailable"
        # (allow all) after 5 hops; we take the safe side: unreachable, everything disallowed.
        ({"/robots.txt": _redirect("/loop-a"), "/loop-a": _redirect("/loop-b"), "/loop-b": _redirect("/loop-a")}, 0, {"robots_unreachable": 1}),
    ],
    ids=["moved", "loop"],
)
def test_robots_redirects(tiny_site, tmp_path, canned, stored, blocked):
    with StaticSite(tiny_site, canned=canned) as site:
        summary = crawl(site.url, tmp_path / "gallery", refused="robots_unreachable" in blocked)
    assert (summary["images_stored"], summary["blocked"]) == (stored, blocked)
    assert site.requests.count("/loop-a") <= 3  # at most 5 redirects followed


def test_slow_site_files_are_bounded(tiny_site, tmp_path):
    # robots.txt slower than the site-file timeout: unreachable, so the host is disallowed;
    # a slow tdmrep.json only costs its timeout and reserves nothing.
    with StaticSite(tiny_site, canned={"/robots.txt": Canned(200, b"", delay=3)}) as site:
        summary = crawl(site.url, tmp_path / "a", "--set", "POLICY_SITE_FILE_TIMEOUT=1", refused=True)
    assert summary["blocked"] == {"robots_unreachable": 1}
    with StaticSite(tiny_site, canned={"/.well-known/tdmrep.json": Canned(200, b"[]", delay=3)}) as site:
        summary = crawl(site.url, tmp_path / "b", "--set", "POLICY_SITE_FILE_TIMEOUT=1")
    assert (summary["images_stored"], summary["blocked"]) == (1, {})


def test_crawl_delay_applies_to_the_host_slot(tiny_site, tmp_path):
    with StaticSite(tiny_site, canned={"/robots.txt": Canned(200, b"User-agent: *\nCrawl-delay: 0.5\n")}) as site:
        summary = crawl(site.url, tmp_path / "gallery")
        stats = run_gallery_json("stats", "--gallery", str(tmp_path / "gallery"))
    assert summary["images_stored"] == 1
    assert stats["last_crawl"]["crawl_delays"] == {"127.0.0.1": 0.5}


def test_image_redirect_to_link_local_is_blocked(tiny_site, tmp_path):
    # Images may live on other hosts, so only the network guard stands between a redirect and
    # the cloud metadata address: it refuses before any connection is made.
    refused_target = "http://169.254.169.254/latest/meta-data/"  # refused, never connected to
    with StaticSite(tiny_site, canned={"/photo.jpg": _redirect(refused_target)}) as site:
        summary = crawl(site.url, tmp_path / "g")
    assert summary["blocked"] == {"address_link_local": 1}
    assert summary["images_stored"] == 0
