"""Script-built pages crawled with a real Chromium: what each --render mode finds, and that the
browser obeys the crawl's policy and cleans up after itself."""

import pytest

from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import crawl
from tests.render_site import SCRIPT_IMAGES, STATIC_IMAGES, build_render_site

BUDGET = "8"  # seconds per rendered page; the hanging page costs this much


@pytest.fixture(scope="module")
def render_site(tmp_path_factory):
    with StaticSite(build_render_site(tmp_path_factory.mktemp("render-site"))) as site:
        yield site


@pytest.fixture(scope="module")
def crawls(render_site, tmp_path_factory):
    """One crawl per mode: mode -> (summary, sightings by image URL)."""
    results = {}
    for mode in ("auto", "always", "never"):
        gallery = tmp_path_factory.mktemp(f"render-{mode}") / "gallery"
        summary = crawl(render_site.url, gallery, "--render", mode, "--render-budget", BUDGET)
        sightings = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
        results[mode] = summary, {s["image_url"]: s for s in sightings}
    return results


def _urls(site, paths):
    return {f"{site.url}/{path}" for path in paths}


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_script_inserted_images_are_found_when_rendering(render_site, crawls, mode):
    summary, sightings = crawls[mode]
    # Every rendered document was watched for script-built images (not only its network).
    assert "dom_unwatched" not in summary["render"]["counts"], summary["render"]["counts"]
    for page, paths in SCRIPT_IMAGES.items():
        for url in _urls(render_site, paths):
            assert url in sightings, (page, url, crawls[mode][0]["render"])
            assert sightings[url]["rendered"] is True
            assert sightings[url]["page_url"] == f"{render_site.url}/{page}"
    assert _urls(render_site, STATIC_IMAGES["static.html"]) <= set(sightings)


def test_never_finds_only_the_static_images(render_site, crawls):
    summary, sightings = crawls["never"]
    assert set(sightings) == _urls(render_site, STATIC_IMAGES["static.html"])
    assert not any(s["rendered"] for s in sightings.values())
    assert summary["render"]["pages"] == 0


def test_auto_renders_only_the_script_built_pages(crawls):
    auto, always = crawls["auto"][0], crawls["always"][0]
    # Every script-built page plus the one that hangs; not the index, not the static page.
    assert auto["render"]["counts"]["started"] == len(SCRIPT_IMAGES) + 1
    assert always["render"]["counts"]["started"] == len(SCRIPT_IMAGES) + 3


def test_browser_requests_obey_robots(render_site, crawls):
    for mode in ("auto", "always"):
        summary, sightings = crawls[mode]
        # The script's fetch() was refused in the browser, its <img> by the spider's gate.
        assert summary["blocked"]["robots"] >= 2
        assert f"{render_site.url}/private/secret.jpg" not in sightings
    assert not [path for path in render_site.requests if path.startswith("/private/")]


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_every_page_is_closed_and_a_hung_page_is_a_counted_skip(crawls, mode):
    summary, _ = crawls[mode]
    assert summary["render"]["pages_open_at_close"] == 0
    assert summary["render"]["skipped"] == {"timeout": 1}  # hangs.html, cut by its budget
    assert summary["finish_reason"] == "finished"


def test_misbehaving_pages_are_contained(render_site, crawls):
    summary, _ = crawls["auto"]
    counts = summary["render"]["counts"]
    assert counts["js_errors"] >= 1
    assert counts["popups_closed"] == 1
    assert counts["navigation_blocked"] == 1
    # The endless page is cut after its scroll steps (or, on a loaded machine, by its budget,
    # which may cut a slow lazy page too: what they built so far is kept either way).
    assert counts.get("capped/steps", 0) + counts.get("capped/time", 0) >= 1
    assert "/popup.html" not in render_site.requests
    assert "/elsewhere.html" not in render_site.requests


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_a_page_adding_images_forever_is_bounded_and_keeps_what_it_built(render_site, crawls, mode):
    summary, sightings = crawls[mode]
    # It is cut (by its scroll steps, or on a loaded machine by the scroll time), never by the
    # page budget: the render succeeds with the image it showed first. Only hangs.html times out.
    counts = summary["render"]["counts"]
    assert counts.get("capped/steps", 0) + counts.get("capped/time", 0) >= 2  # endless.html and forever.html
    assert summary["render"]["skipped"] == {"timeout": 1}
    assert [url for url in sightings if "forever" in url] == [f"{render_site.url}/img/forever.jpg?n=0"]
