"""One small crawl of a site whose images are shown through every source besides <img>: each
lands in the gallery with how it was found, and robots.txt holds for what CSS and sitemaps name."""

import pytest

from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import crawl
from tests.sources_site import BLOCKED, FOUND_VIA, build_sources_site


@pytest.fixture(scope="module")
def sources_crawl(tmp_path_factory):
    with StaticSite(build_sources_site(tmp_path_factory.mktemp("sources-site"))) as site:
        gallery = tmp_path_factory.mktemp("sources") / "gallery"
        summary = crawl(site.url, gallery, "--render", "never")
        sightings = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
        yield site, summary, {s["image_url"]: s for s in sightings}


def test_every_source_lands_with_how_it_was_found(sources_crawl):
    site, _, sightings = sources_crawl
    found = {url.removeprefix(site.url + "/"): s["found_via"] for url, s in sightings.items()}
    assert {path: found.get(path) for path in FOUND_VIA} == FOUND_VIA
    # The sitemap's images are sightings on the page the sitemap says shows them.
    assert sightings[f"{site.url}/img/sitemap-page.jpg"]["page_url"] == f"{site.url}/sitemap-page.html"
    assert sightings[f"{site.url}/img/sitemap-only.jpg"]["page_url"] == f"{site.url}/sources.html"
    assert sightings[f"{site.url}/img/linked-css.jpg"]["page_url"] == f"{site.url}/sources.html"
    assert "robots:allow" in sightings[f"{site.url}/img/linked-css.jpg"]["policy"]


def test_robots_holds_for_css_and_sitemap_images(sources_crawl):
    site, summary, sightings = sources_crawl
    assert not [path for path in site.requests if path.startswith("/private/")]
    assert summary["blocked"]["robots"] >= len(BLOCKED) + 1  # and the index's /private/ sitemap
    assert not [url for url in sightings if "/private/" in url]


def test_bad_sources_are_bounded_counted_skips(sources_crawl):
    _, summary, sightings = sources_crawl
    assert summary["sources_skipped"] == {"jsonld_invalid": 1, "stylesheet_too_large": 1, "sitemap_too_large": 1}
    assert summary["sources"]["sitemaps"] == 3  # the index, the image sitemap and the bomb
    assert summary["finish_reason"] == "finished"
    assert not [url for url in sightings if url.endswith("never.jpg") or "/fonts/" in url]
