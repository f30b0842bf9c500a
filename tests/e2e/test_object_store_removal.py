"""Removal on a gallery in S3-compatible object storage (moto's server on 127.0.0.1): each
selector through the command line, what is left in the bucket, a re-crawl, and a removal
running while another process appends."""

import hashlib
import json
import subprocess
import sys
import uuid
from datetime import datetime

import boto3
import pytest
from lance.file import LanceFileReader
from typer.testing import CliRunner

from gallery.cli import app
from indexer.store import Gallery, storage_options
from tests.conftest import REPO, crawl

BUCKET = "galleries"
# Tables that hold the request itself, by design: what must never come back, and the audit.
REQUEST_TABLES = ("tombstones.lance", "removal_log.lance")


@pytest.fixture(scope="module")
def crawled_s3(s3, fixture_site) -> str:
    """The fixture site crawled once into the bucket; tests work on copies of it."""
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    crawl(fixture_site.url, uri)
    return uri


@pytest.fixture
def gallery(crawled_s3) -> str:
    """A private copy of the crawled gallery (Lance paths are relative: a copied prefix opens)."""
    client = boto3.client("s3")
    source, target = crawled_s3.split("/")[-1], uuid.uuid4().hex
    for key in _keys(source):
        client.copy_object(Bucket=BUCKET, Key=target + key.removeprefix(source), CopySource={"Bucket": BUCKET, "Key": key})
    return f"s3://{BUCKET}/{target}"


def _keys(prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def gallery_cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def remove_json(uri: str, *args: str) -> dict:
    return json.loads(gallery_cli("remove", *args, "--gallery", uri, "--json"))


def image_urls(uri: str) -> set[str]:
    return set(Gallery(uri, create=False).sightings.to_arrow()["image_url"].to_pylist())


def bucket_traces(uri: str, needle: str, *, only: tuple[str, ...] = ()) -> list[str]:
    """Every object under the gallery's prefix, outside the request tables (or within `only`),
    that holds `needle`.

    Raw bytes for every object: this proves manifests, transaction files and deletion files do
    not spell it out, and it sees objects Lance no longer lists. Lance compresses strings in its
    own files, so raw bytes of those prove nothing; they are decoded too, every column.
    """
    client = boto3.client("s3")
    prefix = uri.split("/")[-1]
    found = []
    for key in _keys(prefix):
        table_dir = key.split("/")[1]
        if table_dir in REQUEST_TABLES or (only and table_dir not in only):
            continue
        raw = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        hit = needle.encode() in raw
        if key.endswith(".lance") and not hit:
            object_uri = f"s3://{BUCKET}/{key}"
            table = LanceFileReader(object_uri, storage_options=storage_options(object_uri)).read_all().to_table()
            hit = any(needle in v for c in table.columns if str(c.type) == "string" for v in c.to_pylist() if v)
        if hit:
            found.append(key)
    return found


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_selector_removes_and_purges_on_s3(fixture_site, gallery):
    site, root = fixture_site.url, fixture_site.root
    src_url, dupe_url, face_url = f"{site}/img/src.jpg", f"{site}/img/dupe-a.jpg", f"{site}/faces/astronaut.jpg"
    dupe_sha = sha256_of(root / "img" / "dupe-a.jpg")
    for needle in (src_url, dupe_url, face_url, dupe_sha):
        assert bucket_traces(gallery, needle), f"the scan must see {needle} while it is there"
    before = image_urls(gallery)

    by_url = remove_json(gallery, "--url", src_url, "--basis", "copyright")
    by_prefix = remove_json(gallery, "--url-prefix", f"{site}/faces/", "--basis", "erasure")
    by_hash = remove_json(gallery, "--hash", f"sha256:{dupe_sha}")
    assert (by_url["sightings_removed"], by_url["images_removed"]) == (1, 1)
    assert (by_prefix["sightings_removed"], by_prefix["images_removed"]) == (2, 2)
    assert (by_hash["sightings_removed"], by_hash["images_removed"]) == (3, 1)  # dupe-a, dupe-b, og page
    assert by_url["purged"] and by_prefix["purged"] and by_hash["purged"]
    assert by_hash["files_scanned"] > 0
    left = image_urls(gallery)
    assert len(left) == len(before) - 5
    assert not {src_url, dupe_url, face_url, f"{site}/img/dupe-b.jpg"} & left
    for needle in (src_url, dupe_url, face_url, f"{site}/faces/", dupe_sha):
        assert bucket_traces(gallery, needle) == [], needle

    summary = crawl(site, gallery)
    assert summary["blocked"].get("tombstone", 0) >= 4, summary["blocked"]
    assert image_urls(gallery) == left
    assert bucket_traces(gallery, src_url) == [] and bucket_traces(gallery, dupe_sha) == []

    listed = json.loads(gallery_cli("removals", "--gallery", gallery, "--json"))
    assert {r["request_id"] for r in listed["requests"]} == {r["request_id"] for r in (by_url, by_prefix, by_hash)}
    assert {r["state"] for r in listed["requests"]} == {"done"}
    [erasure] = [r for r in listed["requests"] if r["basis"] == "erasure"]
    assert erasure["deadline"] and erasure["rows_removed"] == 4


def test_domain_removal_on_s3(fixture_site, gallery):
    report = remove_json(gallery, "--domain", "127.0.0.1", "--yes-all")
    assert report["purged"] and report["sightings_removed"] > 5
    assert image_urls(gallery) == set()
    # The crawl's exclusion log keeps the URLs it was refused (never stored); the rows are gone.
    assert bucket_traces(gallery, fixture_site.url, only=("images.lance", "sightings.lance")) == []


# Another process appending new images and their sightings, batch by batch, as a crawl does.
APPENDER = """
import sys, time
from indexer.ingest import GalleryWriter
from indexer.store import Gallery
from tests.fixture_site import random_image, sighting

uri, batches, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
writer = GalleryWriter(Gallery(uri), compact_every=3)  # compacting as a long crawl does, around the purge too
for b in range(batches):
    for i in range(per_batch):
        writer.add(random_image(), sighting(f"http://kept.test/{b}/{i}.jpg", "http://kept.test/"))
    writer.write(writer.take_batch())
    print(time.time(), flush=True)  # when this batch was committed
    time.sleep(0.2)  # a crawl's pace: the appends go on for the whole removal
"""


def test_removal_while_another_process_appends_loses_no_appended_row(fixture_site, gallery):
    batches, per_batch = 12, 5
    appender = subprocess.Popen(
        [sys.executable, "-c", APPENDER, gallery, str(batches), str(per_batch)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = appender.stdout.readline()
        assert first, appender.stderr.read()  # appends under way
        report = remove_json(gallery, "--url-prefix", f"{fixture_site.url}/img/")
        out, err = appender.communicate(timeout=180)
    finally:
        appender.kill()
    assert appender.returncode == 0, err
    assert report["purged"] and report["sightings_removed"] > 3
    committed = [float(line) for line in (first + out).split()]
    purged_at = datetime.fromisoformat(report["purged_at"]).timestamp()
    assert committed[0] < purged_at < committed[-1], "the appends must span the purge"
    urls = image_urls(gallery)
    appended = {u for u in urls if u.startswith("http://kept.test/")}
    assert len(appended) == batches * per_batch
    assert not [u for u in urls if u.startswith(f"{fixture_site.url}/img/")]
    store = Gallery(gallery, create=False)
    assert store.images.count_rows() == len(set(store.sightings.to_arrow()["image_id"].to_pylist()))
    assert bucket_traces(gallery, f"{fixture_site.url}/img/") == []
