"""Whole crawls of the fixture site through the real command line."""

import json
import re
import shutil
import socket

from indexer.analyze import query_hashes
from indexer.faces import FaceDetector
from indexer.decode import decode_bounded
from indexer.store import Gallery
from tests.conftest import crawl, run_gallery, run_gallery_json
from tests.fixture_site import BAD_IMAGES, FORMS, NOT_PAGES


def _sightings(gallery_path):
    return Gallery(str(gallery_path), create=False).sightings.to_arrow().to_pylist()


def test_every_image_form_is_extracted(fixture_site, crawled):
    _, gallery = crawled
    urls = {s["image_url"] for s in _sightings(gallery)}
    for form, path in FORMS.items():
        assert f"{fixture_site.url}/{path}" in urls, form
    # srcset: only the largest candidate is fetched.
    assert f"{fixture_site.url}/img/srcset-small.jpg" not in urls
    assert f"{fixture_site.url}/img/lazy-set-small.jpg" not in urls


def test_sighting_fields(fixture_site, crawled):
    _, gallery = crawled
    by_url = {s["image_url"]: s for s in _sightings(gallery)}
    plain = by_url[f"{fixture_site.url}/img/src.jpg"]
    assert plain["page_url"] == f"{fixture_site.url}/forms.html"
    assert plain["alt_text"] == "plain"
    assert plain["license_url"] == "https://creativecommons.org/licenses/by/4.0/"
    assert plain["domain"] == "127.0.0.1"
    assert plain["http_status"] == 200
    assert plain["rendered"] is False
    assert "robots:allow" in plain["policy"]


def test_robots_disallowed_folder_never_requested(fixture_site, crawled):
    summary, _ = crawled
    assert summary["blocked"].get("robots", 0) >= 1
    assert not [p for p in fixture_site.requests if p.startswith("/private/")]
    assert "/robots.txt" in fixture_site.requests


def test_links_to_documents_archives_and_media_are_never_requested(fixture_site, crawled):
    summary, _ = crawled
    assert not set(NOT_PAGES) & set(fixture_site.requests)
    assert summary["links_skipped"] == len(NOT_PAGES)


def test_summary_counts_links_fetched_but_not_taken(crawled):
    """A link that answered 404 and one that was not HTML are counted, in the JSON and the text."""
    summary, gallery = crawled
    assert summary["http_errors"] == {"404": 1}  # gone.html
    assert summary["not_html"] == 1  # notes.txt
    text = run_gallery("stats", "--gallery", str(gallery)).stdout
    assert "HTTP 404" in text and "fetched, not HTML" in text and "links not requested" in text


def test_exact_duplicates_share_one_image_row(fixture_site, crawled):
    _, gallery = crawled
    sightings = _sightings(gallery)
    dupes = [s for s in sightings if s["image_url"].endswith(("dupe-a.jpg", "dupe-b.jpg"))]
    # dupe-a on two pages, dupe-b on one: three sightings, one image.
    assert len(dupes) == 3
    assert len({s["image_id"] for s in dupes}) == 1
    assert {s["page_url"].rsplit("/", 1)[1] for s in dupes} == {"dupes.html", "dupes2.html"}


def test_exact_duplicates_are_known_by_sha256_before_decode(crawled):
    summary, gallery = crawled
    stats = Gallery(str(gallery), create=False).last_crawl()
    # dupe-b.jpg has dupe-a.jpg's bytes: one more sighting, never a second analysis.
    assert stats["indexer/before_decode/exact_duplicate"] == summary["duplicates_exact"] == 1


def test_bad_images_are_counted_skips(crawled):
    summary, gallery = crawled
    for reason in BAD_IMAGES.values():
        assert summary["skipped"].get(reason) == 1, (reason, summary["skipped"])
    assert not [s for s in _sightings(gallery) if "/bad/" in s["image_url"]]


def test_faces_are_pixelated_before_storage(crawled):
    _, gallery = crawled
    store = Gallery(str(gallery), create=False)
    face_ids = {s["image_id"] for s in store.sightings.to_arrow().to_pylist() if "/faces/" in s["image_url"]}
    assert len(face_ids) == 2
    detector = FaceDetector()
    for image in store.get_images(sorted(face_ids), with_thumbnail=True):
        assert image["face_count"] >= 1
        thumbnail = decode_bounded(image["thumbnail"]).image
        assert max(thumbnail.size) <= 512
        assert detector.detect(thumbnail) == []


def test_stats_reports_counts_and_reasons(crawled):
    summary, gallery = crawled
    stats = run_gallery_json("stats", "--gallery", str(gallery))
    assert stats["images"] == summary["images_stored"]
    assert stats["sightings"] == summary["sightings_written"]
    assert stats["last_crawl"]["blocked"]["robots"] >= 1
    assert stats["last_crawl"]["skipped"]["empty"] == 1
    assert stats["faces"]["images_with_faces_masked"] == 2  # the two portraits on faces.html
    # The crawl printed "finished"; the stats of its run say so too (once null: written too early).
    assert summary["finish_reason"] == stats["last_crawl"]["finish_reason"] == "finished"


def test_search_finds_resized_recompressed_copy(fixture_site, crawled, tmp_path):
    from PIL import Image

    _, gallery = crawled
    original = fixture_site.root / "img" / "src.jpg"
    copy = tmp_path / "copy.jpg"
    Image.open(original).resize((300, 225)).save(copy, quality=60)
    result = run_gallery_json("search", str(copy), "--gallery", str(gallery))
    assert result["matches"], "no match for a resized copy"
    best = result["matches"][0]
    assert best["sightings"][0]["image_url"] == f"{fixture_site.url}/img/src.jpg"
    # The same picture found by each hash kind on its own.
    sha256, hashes = query_hashes(original.read_bytes())
    for query in (f"sha256:{sha256}", f"pdq:{hashes.pdq.hex()}", f"phash:{hashes.phash.hex()}"):
        found = run_gallery_json("search", "--hash", query, "--gallery", str(gallery))["matches"]
        assert found and found[0]["image"]["image_id"] == sha256, query


def test_search_takes_several_files_and_says_how_each_matched(fixture_site, crawled, tmp_path):
    from PIL import Image, ImageDraw, ImageOps

    _, gallery = crawled
    mirrored, resized, bogus = tmp_path / "mirrored.jpg", tmp_path / "resized.jpg", tmp_path / "bogus.jpg"
    ImageOps.mirror(Image.open(fixture_site.root / "img" / "src.jpg")).save(mirrored, quality=80)
    Image.open(fixture_site.root / "img" / "og.jpg").convert("RGB").resize((320, 240)).save(resized, quality=60)
    # A repost with a caption bar under the picture: the stored picture is a part of it.
    original = Image.open(fixture_site.root / "img" / "src.jpg").convert("RGB")
    captioned = Image.new("RGB", (original.width, original.height * 7 // 6), "white")
    captioned.paste(original, (0, 0))
    ImageDraw.Draw(captioned).text((8, original.height + 8), "seen at the fair", fill="black", font_size=20)
    captioned.save(tmp_path / "captioned.jpg", quality=85)
    result = run_gallery_json("search", str(mirrored), str(resized), str(tmp_path / "captioned.jpg"), "--gallery", str(gallery))
    assert set(result["queries"]) == {str(mirrored), str(resized), str(tmp_path / "captioned.jpg")} and "matches" not in result
    part = result["queries"][str(tmp_path / "captioned.jpg")]["matches"][0]
    assert part["kind"] == "crop" and part["region"][:3] == [0.0, 0.0, 1.0] and 0.8 <= part["region"][3] <= 0.9
    assert part["sightings"][0]["image_url"] == f"{fixture_site.url}/img/src.jpg"
    best = result["queries"][str(mirrored)]["matches"][0]
    assert best["kind"] == "mirrored" and best["transform"] == "flip_left_right" and best["hash"] in ("pdq", "phash")
    assert best["sightings"][0]["image_url"] == f"{fixture_site.url}/img/src.jpg"
    assert result["queries"][str(resized)]["matches"][0]["kind"] == "resized"
    # One unusable file among several: the others are still answered, the exit status says so.
    bogus.write_text("not an image")
    text = run_gallery("search", str(mirrored), str(bogus), str(tmp_path / "captioned.jpg"), "--gallery", str(gallery), check=False)
    assert text.returncode == 1 and "not a usable image" in text.stderr
    assert "mirrored copy (mirrored left to right): " in text.stdout
    assert "a crop of your picture (the part 0–100% across, 0–8" in " ".join(text.stdout.split())


def test_recrawl_is_idempotent(fixture_site, crawled, tmp_path):
    _, gallery = crawled
    copy = tmp_path / "gallery"
    shutil.copytree(gallery, copy)
    before = run_gallery_json("stats", "--gallery", str(copy))
    summary = crawl(fixture_site.url, copy)
    after = run_gallery_json("stats", "--gallery", str(copy))
    assert summary["images_stored"] == 0
    assert (after["images"], after["sightings"]) == (before["images"], before["sightings"])


def test_max_pages_says_what_is_left_and_a_jobdir_goes_on(fixture_site, tmp_path):
    """A crawl stopped by --max-pages says how many links it left and how to go on; run again
    with the same --jobdir and a larger limit, it does. The first run is what `--json` shows
    while a crawl runs: a heartbeat on stderr, JSON alone on stdout, no per-response log."""
    gallery, state = tmp_path / "g", tmp_path / "state"
    args = ("crawl", fixture_site.url + "/", "--gallery", str(gallery), "--allow-loopback", "--render", "never", "--jobdir", str(state))
    first = run_gallery(*args, "--max-pages", "2", "--set", "GALLERY_HEARTBEAT=0.2", "--json")  # default --delay: 0.25 s
    summary = json.loads(first.stdout)
    assert summary["pages"] == 2
    left = summary["pages_left"]
    assert left >= 3  # index.html links to seven pages
    assert summary["go_on"] == f"{left} link(s) left unvisited at --max-pages 2: run again with --jobdir {state} and a larger --max-pages to go on"
    beats = [line for line in first.stderr.splitlines() if line.startswith("crawl: ")]
    assert beats and all(re.fullmatch(r"crawl: \d+ pages, \d+ images, \d+ blocked, queue \d+", b) for b in beats), first.stderr
    # Every seed on this machine and no --delay given: said once.
    assert first.stderr.count("--delay 0 is fine for a server you own") == 1
    assert "Crawled (200)" not in first.stderr and "] INFO: " not in first.stderr, first.stderr[-3000:]

    second = json.loads(run_gallery(*args, "--max-pages", "4", "--delay", "0", "--json").stdout)
    assert second["pages"] == 2 and second["pages_left"] == left - 2
    assert Gallery(str(gallery), create=False).last_crawl()["crawl/pages"] == 2


def test_loopback_refused_without_flag(fixture_site, tmp_path):
    """Every seed refused: one line that names the flag, exit 1, and no empty gallery left."""
    result = run_gallery("crawl", fixture_site.url + "/", "--gallery", str(tmp_path / "g"), "--json", check=False)
    summary = json.loads(result.stdout)
    assert summary["blocked"] == {"address_loopback": 1}
    assert summary["pages"] == 0
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: nothing crawled") and "--allow-loopback" in last and "was removed" in last, last
    assert not (tmp_path / "g").exists()
    assert "--delay 0" not in result.stderr  # the note is for crawls that may reach this machine


def test_a_server_that_is_down_says_why_in_one_line(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    existing = tmp_path / "g"
    Gallery(str(existing))  # a gallery the crawl did not create stays
    result = run_gallery("crawl", f"http://127.0.0.1:{port}/", "--gallery", str(existing), "--allow-loopback", "--quiet", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # --quiet: the error alone, then the summary on stdout
    assert lines[0].startswith("error: nothing crawled") and "robots.txt could not be fetched" in lines[0]
    assert "Connection refused" in lines[0] and "removed" not in lines[0]
    assert "crawl summary" in result.stdout
    assert existing.exists()


def test_the_crawl_process_opens_no_control_port(fixture_site, tmp_path):
    # Scrapy (2.19 on) would otherwise serve an HTTP port that runs Python code sent to it.
    result = run_gallery(
        "crawl", fixture_site.url + "/", "--gallery", str(tmp_path / "g"), "--allow-loopback", "--max-pages", "1",
        "--set", f"REMOTE_CONTROL_JOBS_DIR={tmp_path / 'control'}", "--json", "-v",
    )  # fmt: skip
    assert "Crawled" in result.stderr  # the crawl's own log is here, with -v
    assert "Remote control" not in result.stderr
    assert not (tmp_path / "control").exists()
