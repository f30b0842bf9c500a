"""An object store that refuses requests: a fault-injecting proxy (tests/servers.py StoreProxy)
in front of moto's S3 server. A crawl stops with one line and counts only what was committed;
a missing bucket or refused credentials fail at the start with one line."""

import json
import time
import uuid

import httpx
import pytest

from gallery.service import ServiceConfig, create_app
from indexer.ingest import GalleryWriter
from indexer.store import Gallery
from tests.conftest import run_gallery
from tests.fixture_site import random_image, sighting
from tests.gallery.test_service import ServiceThread
from tests.servers import StoreProxy


@pytest.fixture
def proxy(s3):
    with StoreProxy(int(s3["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])) as running:
        yield running


def gallery_through(proxy: StoreProxy, *args: str, timeout: float = 240):
    """The `gallery` command line talking to the store through the proxy."""
    return run_gallery(*args, check=False, timeout=timeout, env={"AWS_ENDPOINT_URL": proxy.url})


def crawl_through(proxy: StoreProxy, site_url: str, uri: str, *extra: str):
    args = ["crawl", site_url + "/", "--gallery", uri, "--allow-loopback", "--delay", "0", *extra, "--json"]
    return gallery_through(proxy, *args)


def assert_one_error_line(result, *expected: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-5000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(text in last for text in expected), last
    logged = [line for line in result.stderr.splitlines() if "] ERROR: " in line or "CRITICAL" in line]
    assert len(logged) <= 1, "\n".join(logged)


def table_rows(uri: str) -> tuple[list[dict], list[dict]]:
    store = Gallery(uri, create=False)
    images = store.images.to_arrow().select(["image_id"]).to_pylist()
    sightings = store.sightings.to_arrow().select(["image_id", "image_url", "page_url"]).to_pylist()
    return images, sightings


def crawl_refused_midway(proxy: StoreProxy, site_url: str, *, status: int, code: str) -> tuple[str, dict]:
    """Crawl the site while the store starts refusing writes after about one batch; check the
    crawl stopped with one line and that its summary says exactly what is in the gallery."""
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    Gallery(uri)  # its tables made beforehand: the writes counted below are the crawl's appends
    proxy.refuse_writes(after=12, status=status, code=code)
    started = time.monotonic()
    # Small batches: several appends during the crawl, so the refusals start between two of them.
    result = crawl_through(proxy, site_url, uri, "--set", "INDEXER_BATCH_SIZE=2")
    assert time.monotonic() - started < 150  # the store's retries end; nothing retries forever
    assert_one_error_line(result, "crawl stopped", uri, code, f"HTTP {status}")
    assert proxy.refused >= 1
    summary = json.loads(result.stdout)
    assert summary["finish_reason"] == "gallery_write_failed" and code in summary["error"]
    proxy.allow()
    images, sightings = table_rows(uri)
    assert 0 < len(images) < 10  # some of the site's 10 images made it, not all
    assert summary["images_stored"] == len(images)
    assert summary["sightings_written"] == len(sightings)
    assert summary["skipped"]["gallery_write_failed"] > 0
    assert {s["image_id"] for s in sightings} <= {i["image_id"] for i in images}  # none points at nothing
    return uri, summary


def test_store_refusing_writes_mid_crawl_then_recrawl(proxy, fixture_site):
    uri, _ = crawl_refused_midway(proxy, fixture_site.url, status=403, code="AccessDenied")
    images, sightings = table_rows(uri)
    stats = json.loads(gallery_through(proxy, "stats", "--gallery", uri, "--json").stdout)
    assert (stats["images"], stats["sightings"]) == (len(images), len(sightings))

    # Writes allowed again: a re-crawl completes the gallery, every image with its sightings.
    again = crawl_through(proxy, fixture_site.url, uri)
    assert again.returncode == 0, again.stderr[-3000:]
    images, sightings = table_rows(uri)
    assert len(images) == 10 and {s["image_id"] for s in sightings} == {i["image_id"] for i in images}
    assert len(sightings) == len({(s["image_url"], s["page_url"]) for s in sightings}) == 12  # none twice


def test_store_unavailable_mid_crawl(proxy, fixture_site):
    # 503 is retried by the store client: the crawl still stops, in bounded time.
    crawl_refused_midway(proxy, fixture_site.url, status=503, code="SlowDown")


def test_missing_bucket_is_one_line(s3, fixture_site):
    uri = "s3://no-such-bucket/gallery"
    crawl = run_gallery("crawl", fixture_site.url + "/", "--gallery", uri, "--allow-loopback", check=False)
    assert_one_error_line(crawl, "crawl failed", uri, "NoSuchBucket")
    stats = run_gallery("stats", "--gallery", uri, check=False)
    assert_one_error_line(stats, uri, "NoSuchBucket")


def test_refused_credentials_are_one_line(s3, proxy, fixture_site):
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    proxy.refuse_everything(code="InvalidAccessKeyId")
    crawl = gallery_through(proxy, "crawl", fixture_site.url + "/", "--gallery", uri, "--allow-loopback")
    assert_one_error_line(crawl, "crawl failed", "InvalidAccessKeyId", "HTTP 403")
    remove = gallery_through(proxy, "remove", "--domain", "example.com", "--gallery", uri)
    assert_one_error_line(remove, "InvalidAccessKeyId")


def test_store_refusing_writes_mid_removal_then_rerun(s3, proxy):
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    writer = GalleryWriter(Gallery(uri))
    for host in ("gone.test", "gone.test", "kept.test"):
        writer.add(random_image(), sighting(f"http://{host}/{uuid.uuid4().hex}.jpg", f"http://{host}/"))
    writer.write(writer.take_batch())
    # The tombstones' append fails: before any row is deleted. Deletes still pass, so the failed
    # removal lets go of its lock (one left behind lasts its lease: tests/indexer/test_purge_lock.py).
    proxy.refuse_writes(after=1, methods=("PUT", "POST"))
    args = ("remove", "--domain", "gone.test", "--gallery", uri)
    assert_one_error_line(gallery_through(proxy, *args), "removal stopped", "rerun", "AccessDenied")
    proxy.allow()
    assert len(table_rows(uri)[1]) == 3

    rerun = gallery_through(proxy, *args, "--json")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["purged"] and (report["sightings_removed"], report["images_removed"]) == (2, 2)
    assert [s["image_url"].split("/")[2] for s in table_rows(uri)[1]] == ["kept.test"]


def test_service_answers_503_when_the_store_refuses_a_removal(s3, proxy, monkeypatch):
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    writer = GalleryWriter(Gallery(uri))
    for host in ("gone.test", "kept.test"):
        writer.add(random_image(), sighting(f"http://{host}/a.jpg", f"http://{host}/"))
    writer.write(writer.take_batch())
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the service reaches the store through the proxy
    app = create_app(ServiceConfig(gallery_uri=uri, steward_keys=frozenset({"steward"})))
    with ServiceThread(app) as service, httpx.Client(base_url=service.url, timeout=120) as client:
        proxy.refuse_writes()
        body = {"domain": "gone.test", "basis": "erasure", "requester": "Data Subject"}
        response = client.post("/removals", json=body, headers={"Authorization": "Bearer steward"})
        assert response.status_code == 503, response.text
        assert "AccessDenied" in response.json()["error"]
        proxy.allow()
        # Filed again once the store takes writes: done, and gone.
        response = client.post("/removals", json=body, headers={"Authorization": "Bearer steward"})
        assert response.status_code == 201, response.text
        assert response.json()["purged"] is True
    assert [s["page_url"] for s in table_rows(uri)[1]] == ["http://kept.test/"]
