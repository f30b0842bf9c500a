"""The command line contract: JSON on stdout, one-line errors, non-zero exit on failure."""

import json

import pytest

from tests.conftest import run_gallery, run_gallery_json


def test_demo_crawls_the_bundled_site(tmp_path):
    summary = run_gallery_json("demo", "--gallery", str(tmp_path / "g"))
    assert summary["images_stored"] == 6
    assert summary["duplicates_exact"] == 1
    assert summary["blocked"] == {"robots": 1}
    stats = run_gallery_json("stats", "--gallery", str(tmp_path / "g"))
    assert (stats["images"], stats["sightings"]) == (6, 8)


def test_stats_counts_tombstones(tmp_path):
    # Issue 14 bug 4: the CLI contract names tombstones among the counts.
    from indexer.store import Gallery

    store = Gallery(str(tmp_path / "g"))
    store.add_tombstones(
        [{"tombstone_id": str(i), "kind": "domain", "value": f"d{i}.test", "request_id": "r"} for i in range(3)]
    )
    assert run_gallery_json("stats", "--gallery", str(tmp_path / "g"))["tombstones"] == 3
    assert "tombstones: 3" in run_gallery("stats", "--gallery", str(tmp_path / "g")).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--hash", "ab" * 32], "no kind"),
        (["search", "--hash", "md5:00"], "unknown hash kind"),
        (["search"], "either IMAGE_FILE or --hash"),
        (["search", "/nonexistent.jpg"], "cannot read"),
        (["stats"], "no gallery"),
        (["crawl", "ftp://example.test/"], "not an http(s) URL"),
    ],
)
def test_errors_are_one_line(tmp_path, args, message):
    gallery = tmp_path / "missing"
    if args[0] == "search":
        run_gallery("demo", "--gallery", str(gallery), "--json")
    result = run_gallery(*args, "--gallery", str(gallery), check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_search_rejects_a_non_image(tmp_path):
    gallery = tmp_path / "g"
    run_gallery("demo", "--gallery", str(gallery), "--json")
    bogus = tmp_path / "bogus.jpg"
    bogus.write_text("<html>not an image</html>")
    result = run_gallery("search", str(bogus), "--gallery", str(gallery), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {bogus} is not a usable image (not_an_image: not a recognised image format)"


def test_crawl_help_fits_80_columns_with_defaults():
    """At 80 columns no option name is cut, and the options with a default say it."""
    text = run_gallery("crawl", "--help", env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for name in ("--concurrency-per-host", "--no-allow-loopback", "--render-budget", "--page-cache", "--quiet", "--verbose"):
        assert name in text, name
    assert "…" not in text
    flat = " ".join(text.split())  # defaults may wrap onto the next line
    for option, default in (("--delay", "0.25"), ("--max-pages", "no limit"), ("--render-budget", "15"), ("--gallery", "./gallery")):
        after = flat[flat.index(option + " "):]
        assert f"[default: ({default})" in after[: after.index("--", 3)], (option, after[:200])


def test_json_output_is_one_document(tmp_path):
    gallery = tmp_path / "g"
    run_gallery("demo", "--gallery", str(gallery), "--json")
    result = run_gallery("search", "--hash", "phash:" + "00" * 8, "--max-distance", "64", "--gallery", str(gallery), "--json")
    document = json.loads(result.stdout)
    assert len(document["matches"]) == 6
    assert all(m["image"]["pdq"].startswith("pdq:") for m in document["matches"])


def test_stats_counts_faces_and_lists_uncertain_ones(tmp_path):
    from dataclasses import replace

    from indexer.ingest import GalleryWriter
    from indexer.store import Gallery
    from tests.fixture_site import random_image, sighting

    flagged, masked, plain = replace(random_image(), face_count=1, face_uncertain=True), replace(random_image(), face_count=2), random_image()
    writer = GalleryWriter(Gallery(str(tmp_path / "g")))
    for index, image in enumerate((flagged, masked, plain)):
        writer.add(image, sighting(f"http://a.test/{index}.jpg"))
    writer.write(writer.take_batch())
    stats = run_gallery_json("stats", "--uncertain-faces", "--gallery", str(tmp_path / "g"))
    assert stats["faces"] == {"images_with_faces_masked": 2, "faces_masked": 3, "images_face_uncertain": 1}
    assert [(r["image_id"], r["image_url"]) for r in stats["uncertain_faces"]] == [(flagged.image_id, "http://a.test/0.jpg")]
    text = run_gallery("stats", "--uncertain-faces", "--gallery", str(tmp_path / "g")).stdout
    assert "faces masked: 3 in 2 images" in text and flagged.image_id[:16] in text
