"""Recurring crawls: a re-crawl asks every page and image "changed since?" (ETag, Last-Modified),
so what is unchanged costs a 304 and refreshes the gallery's rows; what changed is fetched again."""

import os
import shutil
from urllib.parse import urlsplit

import pytest

from gallery.demo import make_picture
from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import crawl, run_gallery_json
from tests.fixture_site import build_fixture_site, jpeg_bytes

PAGES = {"/", "/forms.html", "/base.html", "/dupes.html", "/dupes2.html", "/bad.html", "/faces.html"}


def snapshot(gallery) -> tuple[dict, dict]:
    """(images by image_id, sightings by sighting_id), thumbnails left out."""
    store = Gallery(str(gallery), create=False)
    images = {r["image_id"]: r for r in store.get_images(sorted(store.image_ids()))}
    sightings = {r["sighting_id"]: r for r in store.sightings.to_arrow().to_pylist()}
    return images, sightings


def answers_by_path(site, since: int) -> dict[str, list]:
    found: dict[str, list] = {}
    for answer in site.answers[since:]:
        found.setdefault(answer.path, []).append(answer)
    return found


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.fixture(scope="module")
def recrawled(fixture_site, crawled, tmp_path_factory):
    """The session's crawled gallery crawled again, after a steward opted one stored picture out
    by its PDQ hash and a removal died between deleting an image row and its sightings."""
    gallery = tmp_path_factory.mktemp("recrawled") / "gallery"
    shutil.copytree(crawled[1], gallery)
    images, sightings = snapshot(gallery)
    by_path = {path_of(s["image_url"]): s["image_id"] for s in sightings.values()}
    opted_out, interrupted = by_path["/img/src.jpg"], by_path["/faces/astronaut.jpg"]
    store = Gallery(str(gallery))
    store.add_optout_entries([f"pdq:{bytes(images[opted_out]['pdq']).hex()}"])
    store.delete_images([interrupted])
    since = len(fixture_site.answers)
    summary = crawl(fixture_site.url, gallery)
    return {
        "gallery": gallery,
        "summary": summary,
        "answers": answers_by_path(fixture_site, since),
        "before": (images, sightings),
        "after": snapshot(gallery),
        "opted_out": opted_out,
        "interrupted": interrupted,
    }


def test_unchanged_pages_and_images_are_answered_304(recrawled):
    answers, summary = recrawled["answers"], recrawled["summary"]
    _, sightings = recrawled["before"]
    assert {p: [a.status for a in answers[p]] for p in PAGES} == {p: [304] for p in PAGES}
    image_paths = {path_of(s["image_url"]) for s in sightings.values()}
    assert {p: [a.status for a in answers[p]] for p in image_paths} == {p: [304] for p in image_paths}
    assert all(answers[p][0].if_none_match and answers[p][0].if_modified_since for p in PAGES | image_paths)
    assert summary["not_modified"] == {"pages": len(PAGES), "images": len(image_paths)}
    assert summary["pages"] == len(PAGES)  # kept pages were read again, links and all
    assert summary["images_stored"] == 0


def test_a_304_refreshes_last_seen_and_fetched_at(recrawled):
    (images, sightings), (images_after, sightings_after) = recrawled["before"], recrawled["after"]
    skipped = {recrawled["opted_out"], recrawled["interrupted"]}
    assert set(images_after) == set(images) - {recrawled["interrupted"]}
    assert set(sightings_after) == set(sightings)
    for image_id, image in images_after.items():
        if image_id not in skipped:
            assert image["first_seen"] == images[image_id]["first_seen"]
            assert image["last_seen"] > images[image_id]["last_seen"]
    refreshed = [s for s in sightings_after.values() if s["image_id"] not in skipped]
    assert refreshed
    for row in refreshed:
        assert row["fetched_at"] > sightings[row["sighting_id"]]["fetched_at"]
    fetched = [s for s in refreshed if sightings[s["sighting_id"]]["http_status"] == 200]
    assert fetched and all(s["http_status"] == 304 and s["etag"] and "not_modified" in s["policy"] for s in fetched)


def test_a_304_gets_the_checks_a_download_would(recrawled):
    """Opted out since: the 304 does not bring it back. Its image row gone: nothing to point at."""
    summary = recrawled["summary"]
    (images, sightings), (images_after, sightings_after) = recrawled["before"], recrawled["after"]
    assert summary["blocked"].get("optout_pdq") == 1, summary["blocked"]
    assert summary["skipped"].get("image_removed") == 1, summary["skipped"]
    opted_out = recrawled["opted_out"]
    assert images_after[opted_out]["last_seen"] == images[opted_out]["last_seen"]
    for image_id in (opted_out, recrawled["interrupted"]):
        rows = [s for s in sightings_after.values() if s["image_id"] == image_id]
        assert rows and all(s == sightings[s["sighting_id"]] for s in rows)
    assert recrawled["interrupted"] not in images_after


def test_stats_report_the_not_modified_counts(recrawled):
    stats = run_gallery_json("stats", "--gallery", str(recrawled["gallery"]))
    assert stats["last_crawl"]["not_modified"] == recrawled["summary"]["not_modified"]
    assert stats["images"] == len(recrawled["after"][0])


def test_a_changed_image_is_fetched_and_stored_again(tmp_path):
    """With the page cache in a directory of its own (--page-cache), outside the gallery."""
    gallery, pages = tmp_path / "gallery", tmp_path / "pages"
    with StaticSite(build_fixture_site(tmp_path / "site")) as site:
        crawl(site.url, gallery, "--page-cache", str(pages))
        images, sightings = snapshot(gallery)
        changed = site.root / "img" / "src.jpg"
        changed.write_bytes(jpeg_bytes(make_picture(999)))
        os.utime(changed, (changed.stat().st_atime + 5, changed.stat().st_mtime + 5))  # a later Last-Modified too
        since = len(site.answers)
        summary = crawl(site.url, gallery, "--page-cache", str(pages))
        answers = answers_by_path(site, since)
    assert [a.status for a in answers["/img/src.jpg"]] == [200]
    assert answers["/img/src.jpg"][0].if_none_match  # asked conditionally, and the answer was "yes, changed"
    assert all(answers[p][0].status == 304 for p in PAGES)
    assert summary["images_stored"] == 1
    assert summary["not_modified"] == {"pages": len(PAGES), "images": len({s["image_url"] for s in sightings.values()}) - 1}
    images_after, sightings_after = snapshot(gallery)
    (new_image,) = set(images_after) - set(images)
    assert [s["image_url"] for s in sightings_after.values() if s["image_id"] == new_image] == [f"{site.url}/img/src.jpg"]
    assert any(pages.rglob("*")) and not (gallery / "page-cache").exists()
