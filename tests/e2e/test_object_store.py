"""The gallery on S3-compatible object storage (moto's server on 127.0.0.1): crawl, search,
stats, and concurrent appends from two writers that lose no row."""

import threading
import uuid

import boto3

from indexer.store import Gallery, storage_options, utcnow
from tests.conftest import crawl, run_gallery_json


def test_storage_options_from_the_environment():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"}
    assert storage_options("s3://b/p", env) == {"endpoint": "http://127.0.0.1:9000", "allow_http": "true", "region": "eu-west-1"}
    assert storage_options("s3://b/p", {"AWS_ENDPOINT_URL": "https://s3.example"}) == {"endpoint": "https://s3.example"}
    assert storage_options("./gallery", env) is None


def test_crawl_into_s3_then_search_and_stats(s3, fixture_site):
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    summary = crawl(fixture_site.url, uri)
    assert summary["images_stored"] > 5
    stats = run_gallery_json("stats", "--gallery", uri)
    assert stats["images"] == summary["images_stored"]
    image_id = Gallery(uri, create=False).images.to_arrow()["image_id"][0].as_py()
    found = run_gallery_json("search", "--hash", f"sha256:{image_id}", "--gallery", uri)
    assert found["matches"][0]["image"]["image_id"] == image_id
    keys = boto3.client("s3").list_objects_v2(Bucket="galleries", Prefix=uri.split("/")[-1])["KeyCount"]
    assert keys > 0


def _sighting(n: int, writer: str) -> dict:
    return {
        "sighting_id": f"{writer}-{n}",
        "image_id": f"{writer}-{n}",
        "image_url": f"http://a.example/{writer}/{n}.jpg",
        "page_url": "http://a.example/",
        "domain": "a.example",
        "alt_text": None,
        "license_url": None,
        "fetched_at": utcnow(),
        "http_status": 200,
        "rendered": False,
        "policy": "test",
    }


def test_concurrent_appends_from_two_writers_lose_no_row(s3):
    uri = f"s3://galleries/{uuid.uuid4().hex}"
    Gallery(uri)  # tables created once, as the first crawl would
    batches, per_batch = 8, 5
    errors = []

    def write(writer: str) -> None:
        gallery = Gallery(uri)  # a connection of its own, as another worker has
        try:
            for b in range(batches):
                gallery.add_sightings([_sighting(b * per_batch + i, writer) for i in range(per_batch)])
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = Gallery(uri, create=False).sightings.to_arrow()["sighting_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 2 * batches * per_batch
