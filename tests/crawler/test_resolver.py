"""The resolver Scrapy connects with refuses the addresses the network guard refuses."""

import pytest
from scrapy.utils.test import get_crawler
from twisted.internet import reactor
from twisted.internet.error import DNSLookupError

from crawler.resolver import GuardedResolver
from gallery.site import StaticSite
from tests.conftest import run_gallery, run_gallery_json


def _resolver(**settings) -> GuardedResolver:
    return GuardedResolver.from_crawler(get_crawler(settings_dict=settings), reactor)


@pytest.mark.parametrize(
    ("address", "allow_loopback", "allowed"),
    [
        ("93.184.215.14", False, True),
        ("127.0.0.1", False, False),
        ("127.0.0.1", True, True),
        ("10.1.2.3", True, False),
        ("169.254.169.254", True, False),  # cloud metadata: never
    ],
)
def test_the_connected_address_is_checked(address, allow_loopback, allowed):
    resolver = _resolver(POLICY_ALLOW_LOOPBACK=allow_loopback)
    if allowed:
        assert resolver.checked(address, "host.test") == address
    else:
        with pytest.raises(DNSLookupError, match="host.test now resolves to a refused address"):
            resolver.checked(address, "host.test")


def test_crawls_connect_through_it(tmp_path):
    """With the request checks taken out, the resolver alone keeps a crawl off loopback; with
    loopback allowed, a crawl by host name works through it."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<!doctype html><html><body><p>hello</p></body></html>")
    no_guard = '{"crawler.downloadermiddlewares.site_policy.SitePolicyMiddleware": null}'
    with StaticSite(tmp_path / "site") as site:
        seed = site.url.replace("127.0.0.1", "localhost") + "/"
        refused = run_gallery(
            "crawl", seed, "--gallery", str(tmp_path / "g1"), "--set", f"DOWNLOADER_MIDDLEWARES={no_guard}", "--json", check=False
        )
        assert site.requests == [], refused.stderr[-3000:]
        assert "now resolves to a refused address (address_loopback)" in refused.stderr
        allowed = run_gallery_json("crawl", seed, "--gallery", str(tmp_path / "g2"), "--allow-loopback")
        assert allowed["pages"] == 1 and "/" in site.requests
