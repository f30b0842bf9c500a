from dataclasses import replace
from datetime import timedelta

import lancedb
import pyarrow as pa
import pytest

from gallery.demo import make_picture
from indexer.analyze import analyze_image
from indexer.faces import FaceDetector
from indexer.ingest import GalleryWriter
from indexer.records import sighting_row
from indexer.search import search_hash
from indexer.store import SIGHTINGS_SCHEMA, Gallery, KnownImage
from tests.fixture_site import jpeg_bytes, sighting


@pytest.fixture(scope="module")
def analyzed():
    detector = FaceDetector()
    return [analyze_image(jpeg_bytes(make_picture(seed)), detector=detector) for seed in (1, 2)]


def _ingest(uri: str, analyzed, sightings) -> GalleryWriter:
    writer = GalleryWriter(Gallery(uri))
    for image, seen_at in zip(analyzed, sightings):
        writer.add(image, seen_at)
    writer.write(writer.take_batch())
    return writer


def test_writes_are_idempotent(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    sightings = [sighting("http://a.test/1.jpg"), sighting("http://a.test/2.jpg")]
    _ingest(uri, analyzed, sightings)
    _ingest(uri, analyzed, sightings)
    assert Gallery(uri).counts() == {"images": 2, "sightings": 2, "tombstones": 0}
    # A new place for a known image adds a sighting, not an image.
    _ingest(uri, analyzed[:1], [sighting("http://a.test/1.jpg", "http://a.test/other")])
    assert Gallery(uri).counts() == {"images": 2, "sightings": 3, "tombstones": 0}


def test_last_seen_refreshed_on_resighting(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    _ingest(uri, analyzed[:1], [sighting("http://a.test/1.jpg")])
    first = Gallery(uri).get_images([analyzed[0].image_id])[0]
    _ingest(uri, analyzed[:1], [sighting("http://a.test/1.jpg")])
    again = Gallery(uri).get_images([analyzed[0].image_id])[0]
    assert again["first_seen"] == first["first_seen"]
    assert again["last_seen"] > first["last_seen"]


def test_contract_columns(tmp_path, analyzed):
    gallery = Gallery(str(tmp_path / "g"))
    images = set(gallery.images.schema.names)
    sightings = set(gallery.sightings.schema.names)
    assert {"image_id", "phash", "pdq", "width", "height", "format", "bytes", "face_count", "face_uncertain", "thumbnail",
            "first_seen", "last_seen", "duplicate_of"} <= images
    assert {"image_id", "image_url", "page_url", "domain", "alt_text", "license_url", "fetched_at",
            "http_status", "rendered", "policy"} <= sightings


def test_search_by_each_hash_kind(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    _ingest(uri, analyzed, [sighting("http://a.test/1.jpg"), sighting("http://a.test/2.jpg")])
    gallery = Gallery(uri)
    target = analyzed[0]
    for kind, value in (("sha256", bytes.fromhex(target.image_id)), ("pdq", target.hashes.pdq), ("phash", target.hashes.phash)):
        hits = search_hash(gallery, kind, value)
        assert [h.image["image_id"] for h in hits] == [target.image_id], kind
        assert hits[0].distance == 0
        assert [s["image_url"] for s in hits[0].sightings] == ["http://a.test/1.jpg"]


def test_memory_index_matches_lancedb_scan(tmp_path, analyzed):
    from indexer.hash_index import GalleryHashIndex

    uri = str(tmp_path / "g")
    gallery = Gallery(uri, fresh_reads=True)
    index = GalleryHashIndex(gallery)
    assert index.search("pdq", analyzed[0].hashes.pdq, max_distance=31) == []  # empty gallery
    _ingest(uri, analyzed, [sighting("http://a.test/1.jpg"), sighting("http://a.test/2.jpg")])
    for kind in ("pdq", "phash"):
        for image in analyzed:
            value = getattr(image.hashes, kind)
            for max_distance in (0, 8, 31, 64, 256):
                got = [(m.image["image_id"], m.distance) for m in index.search(kind, value, max_distance=max_distance)]
                want = [(m.image["image_id"], m.distance) for m in gallery.nearest(kind, value, max_distance=max_distance)]
                assert sorted(got) == sorted(want), (kind, max_distance)


def test_refuses_a_python_package_as_gallery(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    with pytest.raises(ValueError, match="Python package"):
        Gallery(str(tmp_path))


def test_a_sighting_seen_again_replaces_its_row(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    first = sighting("http://a.test/1.jpg")
    _ingest(uri, analyzed[:1], [replace(first, etag='"v1"')])
    later = replace(first, fetched_at=first.fetched_at + timedelta(days=1), http_status=304, etag='"v1"')
    writer = GalleryWriter(Gallery(uri))
    # The same sighting twice in one batch (two <img> of one page) is one row, not an error.
    writer.add_sighting(analyzed[0].image_id, later)
    writer.add_sighting(analyzed[0].image_id, later)
    writer.write(writer.take_batch())
    rows = Gallery(uri).sightings.to_arrow().to_pylist()
    assert len(rows) == 1
    assert (rows[0]["fetched_at"], rows[0]["http_status"], rows[0]["etag"]) == (later.fetched_at, 304, '"v1"')


def test_known_images_keep_each_urls_latest_validators(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    old, new = sighting("http://a.test/1.jpg"), sighting("http://a.test/1.jpg")
    old = replace(old, fetched_at=new.fetched_at - timedelta(days=7), etag='"old"')
    # The URL's bytes changed since: a second image, and the latest answer's validators win.
    _ingest(uri, analyzed, [old, replace(new, last_modified="Mon, 01 Jan 2024 00:00:00 GMT")])
    _ingest(uri, analyzed[:1], [sighting("http://a.test/none.jpg")])  # answered without validators
    _ingest(uri, analyzed[:1], [replace(sighting("http://b.test/2.jpg", "http://b.test/"), etag='"b"')])
    known = Gallery(uri).known_images()
    assert known["http://a.test/1.jpg"] == KnownImage(analyzed[1].image_id, None, "Mon, 01 Jan 2024 00:00:00 GMT")
    assert "http://a.test/none.jpg" not in known
    assert set(Gallery(uri).known_images(["b.test"])) == {"http://b.test/2.jpg"}


def test_a_gallery_made_before_the_validator_columns_still_works(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    old_schema = pa.schema([f for f in SIGHTINGS_SCHEMA if f.name not in ("etag", "last_modified")])
    db = lancedb.connect(uri)
    row = sighting_row(analyzed[0].image_id, sighting("http://a.test/1.jpg"))
    old_row = {k: v for k, v in row.items() if k in old_schema.names}
    db.create_table("sightings", schema=old_schema).add(pa.Table.from_pylist([old_row], schema=old_schema))
    gallery = Gallery(uri)
    assert {"etag", "last_modified"} <= set(gallery.sightings.schema.names)
    assert gallery.sightings.to_arrow().to_pylist()[0]["etag"] is None
    assert gallery.known_images() == {}
    _ingest(uri, analyzed[1:], [replace(sighting("http://a.test/2.jpg"), etag='"e"')])
    assert Gallery(uri).counts() == {"images": 1, "sightings": 2, "tombstones": 0}
    assert Gallery(uri).known_images()["http://a.test/2.jpg"].etag == '"e"'


def test_face_counts_and_uncertain_images(tmp_path, analyzed):
    uri = str(tmp_path / "g")
    masked = replace(analyzed[0], face_count=3, face_uncertain=True)
    _ingest(uri, [masked, analyzed[1]], [sighting("http://a.test/1.jpg"), sighting("http://a.test/2.jpg")])
    gallery = Gallery(uri)
    assert gallery.face_counts() == {"images_with_faces_masked": 1, "faces_masked": 3, "images_face_uncertain": 1}
    assert [r["image_id"] for r in gallery.face_uncertain_images()] == [masked.image_id]


def test_lance_metadata_cache_stays_within_its_bound(tmp_path, monkeypatch):
    # Lance caches each version's manifest; a crawl commits one per batch, and unbounded the
    # cache grew with the square of the batches (benchmarks/memory.py).
    import indexer.store as store

    bound = 48 * 1024
    monkeypatch.setattr(store, "METADATA_CACHE_BYTES", bound)
    monkeypatch.setattr(store, "_session", None)  # a fresh process-wide session, with this bound
    gallery = Gallery(str(tmp_path / "g"))
    for n in range(40):
        gallery.add_sightings([sighting_row(f"{n:064x}", sighting(f"http://a.test/{n}.jpg"))])
        gallery.refresh()
    # Unbounded, these 40 commits cached about 1.5 MB; the bound is kept to within Lance's slack.
    assert store._session.size_bytes <= 2 * bound


def test_lookup_index_takes_new_rows_without_rewriting_full_files(tmp_path, analyzed, monkeypatch):
    """At a crawl's end the image_id index takes the rows written since; files already full
    (ROWS_PER_FILE rows) are kept as they are, not merged into ever larger ones."""
    monkeypatch.setattr("indexer.commits.ROWS_PER_FILE", 1)  # every one-row write is a full file
    gallery = Gallery(str(tmp_path / "g"))
    writer = GalleryWriter(gallery, compact_every=None)

    def seen_on(page: int) -> None:  # one more sighting row, in a file of its own
        writer.add(analyzed[0], sighting("http://a.test/1.jpg", f"http://a.test/{page}"))
        writer.write(writer.take_batch())

    seen_on(0)
    gallery.index_lookup_columns()
    seen_on(1)
    seen_on(2)
    before = {f.fragment_id for f in gallery.sightings.to_lance().get_fragments()}
    gallery.index_lookup_columns()
    dataset = gallery.sightings.to_lance()
    assert {f.fragment_id for f in dataset.get_fragments()} == before and len(before) == 3
    [index] = [i for i in dataset.describe_indices() if i.field_names == ["image_id"]]
    assert index.num_rows_indexed == 3  # the new rows are in the index, not scanned
