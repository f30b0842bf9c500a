"""Near-duplicate marking at write time: a copy that is not byte-identical points at the first
stored image of its cluster, whoever wrote that image and whenever."""

import pytest

from gallery.demo import make_picture
from indexer.analyze import analyze_image
from indexer.faces import FaceDetector
from indexer.hash_index import NearDuplicateFinder
from indexer.ingest import GalleryWriter
from indexer.store import Gallery
from tests.fixture_site import jpeg_bytes, sighting


@pytest.fixture(scope="module")
def pictures():
    """An original, two resized and recompressed copies of it, and an unrelated picture."""
    detector = FaceDetector()
    original = make_picture(7, (480, 360))
    files = [
        jpeg_bytes(original),
        jpeg_bytes(original.resize((400, 300)), quality=70),
        jpeg_bytes(original.resize((320, 240)), quality=60),
        jpeg_bytes(make_picture(8, (480, 360))),
    ]
    return [analyze_image(data, detector=detector) for data in files]


def write(writer: GalleryWriter, *images) -> None:
    for image in images:
        writer.add(image, sighting(f"http://a.test/{image.image_id[:8]}.jpg"))
    writer.write(writer.take_batch())


def heads(uri: str) -> dict[str, str | None]:
    return {row["image_id"]: row["duplicate_of"] for row in Gallery(uri, create=False).images.to_arrow().to_pylist()}


def test_copies_point_at_the_first_stored_image(tmp_path, pictures):
    original, copy, smaller_copy, other = pictures
    uri = str(tmp_path / "g")
    writer = GalleryWriter(Gallery(uri))
    write(writer, original, other)
    write(writer, copy)  # found in the rows committed since the index was built
    write(GalleryWriter(Gallery(uri)), smaller_copy)  # found in an index built from the table
    assert heads(uri) == {
        original.image_id: None,
        other.image_id: None,
        copy.image_id: original.image_id,
        smaller_copy.image_id: original.image_id,
    }


def test_a_copy_in_the_same_batch_points_at_the_first(tmp_path, pictures):
    original, copy, _, _ = pictures
    uri = str(tmp_path / "g")
    write(GalleryWriter(Gallery(uri)), original, copy)
    assert heads(uri) == {original.image_id: None, copy.image_id: original.image_id}


def test_what_another_writer_committed_meanwhile_is_found(tmp_path, pictures):
    original, copy, _, other = pictures
    uri = str(tmp_path / "g")
    mine, theirs = GalleryWriter(Gallery(uri)), GalleryWriter(Gallery(uri))
    write(mine, other)  # my index is built before their original exists
    write(theirs, original)
    write(mine, copy)
    assert heads(uri)[copy.image_id] == original.image_id


def test_a_deleted_image_is_never_pointed_at(tmp_path, pictures):
    """Rows deleted after the index was built (a removal's delete) are checked, not trusted."""
    original, copy, _, other = pictures
    uri = str(tmp_path / "g")
    write(GalleryWriter(Gallery(uri)), original)
    writer = GalleryWriter(Gallery(uri))
    write(writer, other)  # its index is built from a table holding the original
    Gallery(uri, create=False).images.delete(f"image_id = '{original.image_id}'")
    write(writer, copy)
    assert heads(uri) == {other.image_id: None, copy.image_id: None}


def test_compaction_keeps_every_row_and_what_the_finder_knows(tmp_path, pictures):
    """Gallery.compact merges the small files the writes left: every row stays, a finder whose
    fragments it replaced reads them anew (each image once), and copies are still found."""
    original, copy, _, other = pictures
    uri = str(tmp_path / "g")
    writer = GalleryWriter(Gallery(uri), compact_every=None)
    write(writer, original)
    write(writer, other)
    gallery = writer.gallery

    def stored():
        return gallery.images.to_arrow().sort_by("image_id"), gallery.sightings.to_arrow().sort_by("sighting_id")

    finder = NearDuplicateFinder(gallery)
    finder.refresh()
    before = stored()
    assert len(gallery.images.to_lance().get_fragments()) == 2
    gallery.compact()
    assert len(gallery.images.to_lance().get_fragments()) == 1
    assert stored() == before
    finder.refresh()
    everything = finder.candidates("pdq", [original.hashes.pdq], max_distance=256)
    assert sorted(row["image_id"] for row in everything) == sorted([original.image_id, other.image_id])
    write(writer, copy)
    assert heads(uri)[copy.image_id] == original.image_id


def _blank(size, colour, fmt="JPEG") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def test_blank_pictures_match_nothing_by_hash_alone(tmp_path):
    """Flat pictures all hash alike: they are never clustered, searched or removed by hash, only
    by their exact bytes (a plain white query once 'matched' every formula image of a manual)."""
    from indexer.removal import build_request, process_requests
    from indexer.search import search_image

    detector = FaceDetector()
    white, off_white = _blank((300, 200), "white"), _blank((320, 180), (250, 250, 250), "PNG")
    blanks = [analyze_image(data, detector=detector) for data in (white, off_white)]
    assert all(image.hashes.low_information for image in blanks)
    uri = str(tmp_path / "g")
    write(GalleryWriter(Gallery(uri)), *blanks)
    assert set(heads(uri).values()) == {None}
    gallery = Gallery(uri, create=False)
    assert [hit.image["image_id"] for hit in search_image(gallery, white)] == [blanks[0].image_id]
    assert search_image(gallery, _blank((640, 480), "white", "PNG")) == []
    query = tmp_path / "white.jpg"
    query.write_bytes(white)
    report = process_requests(gallery, [build_request([("image", str(query))], basis="copyright")])[0]
    assert (report.images_removed, report.tombstones_written) == (1, 1)  # its bytes, no hash tombstones
    assert set(heads(uri)) == {blanks[1].image_id}


def _chain():
    """A ~ B and B ~ C (20 bits apart), but not A ~ C (40): one cluster only through B."""
    from dataclasses import replace

    from indexer.hashes import ImageHashes
    from tests.fixture_site import random_image

    def flipped(bits: int) -> bytes:
        value = int.from_bytes(bytes(32), "big") ^ ((1 << bits) - 1)
        return value.to_bytes(32, "big")

    chain = []
    for bits in (0, 20, 40):
        image = random_image()  # its own random pHash: the PDQ distances alone decide
        chain.append(replace(image, hashes=ImageHashes(phash=image.hashes.phash, pdq=flipped(bits))))
    return chain


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 0, 1), (1, 2, 0)])
@pytest.mark.parametrize("batched", [True, False])
def test_the_count_does_not_depend_on_the_order_images_come_in(tmp_path, order, batched):
    """Issue 19: two identical crawls counted 12, then 13. Marked as they come, A, C, B counts
    only B (C had no neighbour yet); settled at the end, every order counts two, one head."""
    chain = _chain()
    uri = str(tmp_path / "g")
    writer = GalleryWriter(Gallery(uri))
    for index in order:
        write(writer, chain[index]) if batched else writer.add(chain[index], sighting(f"http://a.test/{index}.jpg"))
    if not batched:
        writer.write(writer.take_batch())
    assert writer.settle_near_duplicates() == 2
    stored = heads(uri)
    [head] = [image_id for image_id, duplicate_of in stored.items() if duplicate_of is None]
    assert all(duplicate_of in (None, head) for duplicate_of in stored.values())


def test_settled_against_a_cluster_stored_before(tmp_path):
    """New images joined to a stored cluster are all its near-duplicates, pointing at its head."""
    a, b, c = _chain()
    uri = str(tmp_path / "g")
    write(GalleryWriter(Gallery(uri)), a)
    writer = GalleryWriter(Gallery(uri))
    write(writer, c)  # no neighbour yet: a head of its own, for now
    write(writer, b)  # joins a (stored) and c
    assert writer.settle_near_duplicates() == 2
    assert heads(uri) == {a.image_id: None, b.image_id: a.image_id, c.image_id: a.image_id}
