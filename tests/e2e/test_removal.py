"""Removal against a gallery built by crawling the fixture site: each selector, a crash between
tombstone and delete, a re-crawl after removal, and what is left on disk.

`gallery remove` runs in-process through Typer's runner where only its output matters (no
reactor is involved), and as a real process where the process itself is the point (the kill).
"""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lance.file import LanceFileReader
from PIL import Image
from typer.testing import CliRunner

from gallery.cli import app
from indexer.store import Gallery, utcnow
from tests.conftest import REPO, crawl

# Tables that hold the request itself, by design: what must never come back, and the audit.
REQUEST_TABLES = ("tombstones.lance", "removal_log.lance")


@pytest.fixture
def gallery(crawled, tmp_path) -> Path:
    """A private copy of the session's crawled gallery, free to change."""
    copy = tmp_path / "gallery"
    shutil.copytree(crawled[1], copy)
    return copy


def gallery_cli(*args: str, expect: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def remove_json(gallery: Path, *args: str) -> dict:
    return json.loads(gallery_cli("remove", *args, "--gallery", str(gallery), "--json").stdout)


def sightings(gallery: Path) -> list[dict]:
    return Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def traces(gallery: Path, needle: str) -> list[str]:
    """Every file of the gallery, outside the request tables, that still holds `needle`: Lance
    files decoded (Lance compresses strings, so their raw bytes would hide it), the rest raw."""
    found = []
    for path in sorted(gallery.rglob("*")):
        if not path.is_file() or path.relative_to(gallery).parts[0] in REQUEST_TABLES:
            continue
        if path.suffix == ".lance":  # data files and index pages
            table = LanceFileReader(str(path)).read_all().to_table()
            values = [v for c in table.columns if str(c.type) == "string" for v in c.to_pylist()]
            hit = any(v and needle in v for v in values)
        else:
            hit = needle.encode() in path.read_bytes()
        if hit:
            found.append(str(path.relative_to(gallery)))
    return found


def test_each_selector(fixture_site, gallery, tmp_path):
    site, root = fixture_site.url, fixture_site.root
    copy = tmp_path / "og-copy.jpg"
    Image.open(root / "img" / "og.jpg").resize((300, 225)).save(copy, quality=60)
    batch = tmp_path / "requests.jsonl"
    lines = [
        {"url": f"{site}/img/src.jpg", "basis": "copyright", "reference": "DMCA-1"},
        {"url_prefix": f"{site}/faces/", "basis": "erasure", "requester": "data subject"},
        {"hash": f"sha256:{sha256_of(root / 'img' / 'dupe-a.jpg')}", "basis": "copyright"},
        {"image": str(copy), "basis": "opt-out"},
    ]
    batch.write_text("\n".join(json.dumps(line) for line in lines))
    before = len(sightings(gallery))
    ran = gallery_cli("remove", "--requests", str(batch), "--gallery", str(gallery), "--json", "-v")
    document = json.loads(ran.stdout)
    assert document["errors"] == []
    # -v: a line per request on stderr as each is done (a bar on a terminal), stdout left to the JSON.
    progress = ran.stderr.strip().splitlines()
    assert [line.split(" request ")[0] for line in progress[:4]] == [f"remove: {n}/4" for n in range(1, 5)], progress
    assert progress[0].endswith("removed 2 rows") and progress[4:] == [
        "remove: 4/4 purging removed rows from disk",
        "remove: 4/4 verifying the purge",
    ]
    removed = {r["selectors"][0]["kind"]: (r["sightings_removed"], r["images_removed"]) for r in document["requests"]}
    assert removed == {"url": (1, 1), "url_prefix": (2, 2), "hash": (3, 1), "image": (1, 1)}
    assert all(r["purged"] for r in document["requests"])
    [image_request] = [r for r in document["requests"] if r["selectors"][0]["kind"] == "image"]
    assert image_request["near_matches_removed"] == 1  # the resized copy is not byte-identical
    left = {s["image_url"] for s in sightings(gallery)}
    assert len(left) == before - 7
    for gone in ("img/src.jpg", "faces/astronaut.jpg", "img/dupe-a.jpg", "img/dupe-b.jpg", "img/og.jpg"):
        assert f"{site}/{gone}" not in left

    # Every sighting left is on 127.0.0.1: a domain request would take everything.
    refused = CliRunner().invoke(app, ["remove", "--domain", "127.0.0.1", "--gallery", str(gallery)])
    assert refused.exit_code == 1 and "--yes-all" in refused.stderr and refused.stdout == ""
    assert len(sightings(gallery)) == before - 7
    everything = remove_json(gallery, "--domain", "127.0.0.1", "--yes-all")
    assert everything["purged"] and sightings(gallery) == []

    listed = json.loads(gallery_cli("removals", "--gallery", str(gallery), "--json").stdout)
    assert len(listed["requests"]) == 5 and {r["state"] for r in listed["requests"]} == {"done"}
    [erasure] = [r for r in listed["requests"] if r["basis"] == "erasure"]
    assert erasure["deadline"] and erasure["flag"] is None


def test_kill_between_tombstone_and_delete_then_rerun(fixture_site, gallery):
    url = f"{fixture_site.url}/img/picture.jpg"
    # The real command line in its own process, SIGKILLed right after the tombstones are written.
    killer = (
        "import os, signal, sys\n"
        "import indexer.removal.processing as processing\n"
        "processing._delete_rows = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from gallery.cli import main\n"
        "sys.argv = ['gallery'] + sys.argv[1:]\n"
        "main()\n"
    )
    args = ["remove", "--url", url, "--basis", "erasure", "--gallery", str(gallery)]
    killed = subprocess.run([sys.executable, "-c", killer, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = Gallery(str(gallery), create=False)
    assert [(t["kind"], t["value"]) for t in store.tombstone_rows()] == [("url", url)]
    assert url in {s["image_url"] for s in sightings(gallery)}  # not deleted yet
    [pending] = json.loads(gallery_cli("removals", "--gallery", str(gallery), "--json").stdout)["requests"]
    assert pending["state"] == "incomplete" and pending["deadline"]

    report = remove_json(gallery, *args[1:-2])
    assert report["sightings_removed"] == 1 and report["purged"]
    assert report["received_at"] == pending["received_at"]  # the deadline runs from the first attempt
    assert url not in {s["image_url"] for s in sightings(gallery)}
    again = gallery_cli(*args)
    assert "already processed" in again.stdout and "0 rows" in again.stdout
    assert len(Gallery(str(gallery), create=False).removal_log_rows()) == 1


def test_recrawl_brings_nothing_removed_back(fixture_site, gallery):
    site, root = fixture_site.url, fixture_site.root
    src_sha = sha256_of(root / "img" / "src.jpg")
    dupe_url = f"{site}/img/dupe-a.jpg"
    assert traces(gallery, dupe_url), "the scan must see a URL that is there"
    assert any("_indices" in t for t in traces(gallery, src_sha)), "and an id in the image_id index"
    remove_json(gallery, "--url-prefix", f"{site}/img/dupe-", "--basis", "opt-out")
    remove_json(gallery, "--hash", f"sha256:{src_sha}", "--basis", "copyright")
    assert traces(gallery, dupe_url) == []
    assert traces(gallery, f"{site}/img/src.jpg") == []
    assert traces(gallery, src_sha) == []
    after_removal = {s["image_url"] for s in sightings(gallery)}

    summary = crawl(site, gallery)
    # dupe-a and dupe-b refused before being requested; src.jpg fetched but refused by its hash.
    assert summary["blocked"].get("tombstone") == 3, summary["blocked"]
    assert Gallery(str(gallery), create=False).last_crawl()["indexer/before_decode/tombstone"] == 1  # src.jpg, by its sha256
    assert {s["image_url"] for s in sightings(gallery)} == after_removal
    assert src_sha not in Gallery(str(gallery), create=False).image_ids()
    assert traces(gallery, dupe_url) == []


def test_removal_clears_the_page_cache(fixture_site, gallery):
    """Kept pages may name or show what was removed: a removal deletes them with the rows."""
    page = f"{fixture_site.url}/forms.html"
    cache = gallery / "page-cache"
    assert any(page.encode() in p.read_bytes() for p in cache.rglob("*.pickle"))
    dry = remove_json(gallery, "--url", page, "--dry-run")
    assert dry["dry_run"] and cache.is_dir()
    remove_json(gallery, "--url", page)
    assert [p.name for p in gallery.iterdir() if p.name.startswith("page-cache")] == []
    assert traces(gallery, page) == []


def test_removal_purges_the_exclusion_log_too(fixture_site, gallery):
    """The crawls' log of what they were refused names URLs too: a removal takes those out."""
    private = f"{fixture_site.url}/private/"
    other = {"run_id": "r", "url": "http://other.test/a.jpg", "page_url": None, "reason": "robots", "at": utcnow()}
    Gallery(str(gallery), create=False).add_exclusions([other])
    logged = Gallery(str(gallery), create=False).exclusions.to_arrow().to_pylist()
    assert any(row["url"].startswith(private) for row in logged)
    report = remove_json(gallery, "--url-prefix", private)
    assert report["purged"] is True
    left = Gallery(str(gallery), create=False).exclusions.to_arrow().to_pylist()
    assert not any(row["url"].startswith(private) for row in left)
    assert [row["url"] for row in left] == [other["url"]]
    assert traces(gallery, private) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--colour", "red"], "No such option"),
        (["--hash", "pdq:1234"], "must be 64 hex digits"),
        (["--hash", "ab" * 32], "ambiguous"),
        (["--url", "http://a.test/x", "--requests", "r.csv"], "not both"),
        (["--domain", "example.com", "--notice", "n.json"], "copyright"),
    ],
)
def test_bad_input_changes_nothing(gallery, args, message):
    before = len(sightings(gallery))
    result = CliRunner().invoke(app, ["remove", *args, "--gallery", str(gallery)])
    assert result.exit_code != 0 and message in result.stderr, result.stderr
    assert len(sightings(gallery)) == before
    assert Gallery(str(gallery), create=False).tombstone_rows() == []


def test_non_image_file_and_zero_matches(gallery, tmp_path):
    bogus = tmp_path / "bogus.jpg"
    bogus.write_text("<html>not a picture</html>")
    result = CliRunner().invoke(app, ["remove", "--image", str(bogus), "--gallery", str(gallery)])
    assert result.exit_code == 1 and "not a usable image" in result.stderr
    nothing = gallery_cli("remove", "--url", "http://127.0.0.1:1/none.jpg", "--gallery", str(gallery))
    assert "0 rows" in nothing.stdout
    assert [r["rows_removed"] for r in Gallery(str(gallery), create=False).removal_log_rows()] == [0]
