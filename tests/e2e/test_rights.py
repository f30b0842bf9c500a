"""One page per rights signal: which images land, and which requests never reach the server."""

import io
import json

import pytest
from PIL import Image

from gallery.demo import make_picture
from gallery.site import Canned, StaticSite
from indexer.hashes import sha256_hex
from indexer.store import Gallery
from tests.conftest import crawl, run_gallery, run_gallery_json
from tests.fixture_site import jpeg_bytes

XMP_PROHIBITED = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
    b'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"/></rdf:RDF></x:xmpmeta>'
)

# page -> (extra <head> markup, image path, is the image stored?, is the image ever requested?)
PAGES = {
    "plain.html": ("", "img/plain.jpg", True, True),
    "meta-noimageai.html": ('<meta name="robots" content="noimageai">', "img/meta-noimageai.jpg", False, False),
    "meta-ua-noai.html": ('<meta name="gallery-crawler" content="noai">', "img/meta-ua-noai.jpg", False, False),
    "meta-other-bot.html": ('<meta name="otherbot" content="noimageai">', "img/meta-other-bot.jpg", True, True),
    "meta-tdm.html": ('<meta name="tdm-reservation" content="1">', "img/meta-tdm.jpg", False, False),
    "tdm/reserved.html": ("", "img/tdm-reserved.jpg", False, False),
    "tdm/override.html": ('<meta name="tdm-reservation" content="0">', "img/tdm-override.jpg", True, True),
    "aitxt.html": ("", "img/aitxt.png", False, False),
    "cu/page.html": ("", "img/cu-page.jpg", True, True),
    "cu-image.html": ("", "cu/image.jpg", False, False),
    "xmp.html": ("", "img/xmp.jpg", False, True),
    "optout-hash.html": ("", "img/optout-hash.jpg", False, True),
    "optout/page.html": ("", "img/optout-page.jpg", False, False),
}
HEADER_PAGES = {
    # served with headers: page -> (headers, image path, stored?, requested?)
    "header-noai.html": ((("X-Robots-Tag", "noai"),), "img/header-noai.jpg", False, False),
    "header-scoped.html": ((("X-Robots-Tag", "gallery-crawler: noimageindex"),), "img/header-scoped.jpg", False, False),
    "header-other-bot.html": ((("X-Robots-Tag", "otherbot: noai"),), "img/header-other-bot.jpg", True, True),
    "header-tdm.html": ((("tdm-reservation", "1"),), "img/header-tdm.jpg", False, False),
    "header-content-usage.html": ((("Content-Usage", "train-ai=n"),), "img/header-cu.jpg", False, False),
    "image-header.html": ((), "img/image-header.jpg", False, True),
}


@pytest.fixture(scope="module")
def rights_crawl(tmp_path_factory):
    root = tmp_path_factory.mktemp("rights")
    canned = {}
    all_pages = {**{k: (v[0], *v[1:]) for k, v in PAGES.items()}, **HEADER_PAGES}
    for seed, (page, (head, image, _, _)) in enumerate(all_pages.items(), start=1000):
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        picture = make_picture(seed)
        if image.endswith(".png"):
            picture.save(root / image)
        elif image == "img/xmp.jpg":
            picture.save(root / image, quality=90, xmp=XMP_PROHIBITED)
        else:
            (root / image).write_bytes(jpeg_bytes(picture))
        html = f'<html><head>{head if isinstance(head, str) else ""}</head><body><img src="/{image}"></body></html>'
        if isinstance(head, tuple) and head:
            canned[f"/{page}"] = Canned(200, html.encode(), "text/html", headers=head)
        else:
            (root / page).parent.mkdir(parents=True, exist_ok=True)
            (root / page).write_text(html)
    canned["/img/image-header.jpg"] = Canned(
        200, (root / "img/image-header.jpg").read_bytes(), "image/jpeg", headers=(("X-Robots-Tag", "noimageai"),)
    )
    (root / "index.html").write_text("".join(f'<a href="/{page}">{page}</a> ' for page in all_pages))
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\nContent-Usage: /cu/image train-ai=n\n")
    (root / "ai.txt").write_text("User-Agent: *\nDisallow: *.png\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "tdmrep.json").write_text(
        json.dumps([{"location": "/tdm/", "tdm-reservation": 1}, {"location": "/img/tdm-*", "tdm-reservation": 0}])
    )
    with StaticSite(root, canned=canned) as site:
        optouts = tmp_path_factory.mktemp("optouts") / "list.txt"
        optouts.write_text(
            f"# steward list\n{site.url}/optout/\nsha256:{sha256_hex((root / 'img/optout-hash.jpg').read_bytes())}\n"
        )
        gallery = tmp_path_factory.mktemp("g") / "gallery"
        summary = crawl(site.url, gallery, "--optout-list", str(optouts))
        yield site, gallery, summary, {**PAGES, **HEADER_PAGES}


def test_each_signal_decides_storage(rights_crawl):
    site, gallery, summary, pages = rights_crawl
    stored = {s["image_url"] for s in Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()}
    for page, (_, image, should_store, _) in pages.items():
        assert (f"{site.url}/{image}" in stored) is should_store, page


def test_reserved_images_are_never_requested(rights_crawl):
    site, _, _, pages = rights_crawl
    for page, (_, image, _, requested) in pages.items():
        assert (f"/{image}" in site.requests) is requested, page
    assert "/optout/page.html" not in site.requests
    assert "/tdm/reserved.html" in site.requests  # a reserved page is still read for links


def test_blocks_are_counted_by_reason(rights_crawl):
    _, gallery, summary, _ = rights_crawl
    expected = {
        "meta_noimageai": 1, "meta_noai": 1, "meta_tdm_reservation": 1, "tdmrep_reservation": 1, "aitxt": 1,
        "robots_content_usage": 1, "xmp_data_mining": 1, "optout_sha256": 1, "optout_url_prefix": 1,
        "header_noai": 1, "header_noimageindex": 1, "header_tdm_reservation": 1, "header_content_usage": 1,
        "header_noimageai": 1,
    }
    assert summary["blocked"] == expected, json.dumps(summary["blocked"])
    # The opt-out by sha256 was decided on the bytes' hash, before any decode.
    assert Gallery(str(gallery), create=False).last_crawl()["indexer/before_decode/optout"] == 1
    stats = run_gallery_json("stats", "--gallery", str(gallery), "--exclusions")
    assert sorted(r["reason"] for r in stats["exclusions"]) == sorted(expected)


def test_provenance_is_recorded(rights_crawl):
    site, gallery, _, _ = rights_crawl
    rows = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
    plain = next(r for r in rows if r["image_url"] == f"{site.url}/img/plain.jpg")
    for check in ("net:ok", "optout:none", "robots:allow(200)", "content-usage:none", "aitxt:allow",
                  "header:none", "meta:none", "tdmrep:none", "xmp:none", "optout-hash:none"):
        assert check in plain["policy"], (check, plain["policy"])


def test_optout_entries_kept_in_gallery_apply_to_later_crawls(rights_crawl, tmp_path):
    site, _, _, _ = rights_crawl
    gallery = tmp_path / "g"
    run_gallery("optout", "add", f"{site.url}/img/plain.jpg", "--gallery", str(gallery), "--create")
    assert run_gallery_json("optout", "list", "--gallery", str(gallery))["entries"] == [f"{site.url}/img/plain.jpg"]
    summary = crawl(site.url, gallery)
    assert summary["blocked"]["optout_url_prefix"] == 1
    run_gallery("optout", "remove", f"{site.url}/img/plain.jpg", "--gallery", str(gallery))
    assert run_gallery_json("optout", "list", "--gallery", str(gallery))["entries"] == []


def test_bad_optout_list_names_its_line(tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text("example.org\nsha256:123\n")
    result = run_gallery("crawl", "http://127.0.0.1:9/", "--gallery", str(tmp_path / "g"), "--optout-list", str(bad), check=False)
    assert result.returncode == 1
    assert f"{bad}:2:" in result.stderr and len(result.stderr.strip().splitlines()) == 1
