"""Visual words (indexer/keypoints.py) against a real LanceDB gallery: a copy no hash comes near
(the gallery holds a page the picture was pasted into; the original is searched) is found through
the words and confirmed on the stored thumbnail, an unrelated picture is not, and removal takes
the words with the row."""

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageOps

from indexer.analyze import analyze_image
from indexer.faces import FaceDetector
from indexer.hash_index import GalleryHashIndex
from indexer.ingest import GalleryWriter
from indexer.keypoints import MIN_SHARED, STORED_KEYPOINTS, WORD_BYTES, WordIndex, query_words, stored_words
from indexer.matcher import match, query_picture
from indexer.removal import build_request, process_requests
from indexer.search import GallerySource, search_image
from indexer.store import IMAGES_SCHEMA, Gallery
from tests.fixture_site import jpeg_bytes, random_image, sighting


def sample(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def page_with(img: Image.Image) -> Image.Image:
    """The picture at half a wide page's width, under a header bar and above a line of text: a
    screenshot of a news page, as a crawl stores it."""
    page = Image.new("RGB", (1000, 800), (246, 246, 246))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 1000, 80), fill=(40, 60, 120))
    draw.text((30, 20), "news.example — Photos", fill="white", font_size=36)
    page.paste(img.resize((500, 500)), (60, 130))
    draw.text((600, 200), "Readers sent us\nthis picture\nyesterday.", fill="black", font_size=40)
    return page


class HashesOnly:
    """A source's hash lookups without its visual words: what the matcher found before them."""

    def __init__(self, source: GallerySource):
        self.candidates = source.candidates


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A page showing the astronaut, the cameraman, a cup of coffee."""
    detector = FaceDetector()
    uri = str(tmp_path_factory.mktemp("words") / "g")
    writer = GalleryWriter(Gallery(uri))
    ids = {}
    for name, img in (("page", page_with(sample("astronaut"))), ("camera", sample("camera")), ("coffee", sample("coffee"))):
        image = analyze_image(jpeg_bytes(img, quality=90), detector=detector)
        ids[name] = image.image_id
        writer.add(image, sighting(f"http://a.test/{name}.jpg"))
    writer.write(writer.take_batch())
    return uri, ids


@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_the_original_finds_a_stored_page_that_contains_it_only_through_words(gallery, service_index):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    index = GalleryHashIndex(store) if service_index else None
    data = jpeg_bytes(sample("astronaut"), quality=85)
    picture = query_picture(data)
    source = GallerySource(store, index)
    assert match(HashesOnly(source), picture, thumbnails=store.thumbnails) == []  # no hash comes near
    hits = search_image(store, data, hash_index=index)
    assert [hit.image["image_id"] for hit in hits] == [ids["page"]]
    how, document = hits[0].how, hits[0].to_json()
    assert how.kind == "contains" and not how.confident and "checked on the pixels" in how.label
    assert "words" not in document["image"] and document["verified"]["agreement"] >= 0.7


@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_a_mirrored_copy_votes_through_its_mirrored_words(gallery, service_index):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    source = GallerySource(store, GalleryHashIndex(store) if service_index else None)
    words = query_words(np.asarray(ImageOps.mirror(sample("camera")).convert("L")))
    voted = source.word_candidates(list(words), limit=5)
    assert voted[0][0]["image_id"] == ids["camera"] and voted[0][1] is True


def test_an_unrelated_picture_matches_nothing(gallery):
    uri, _ = gallery
    store = Gallery(uri, create=False)
    for name in ("chelsea", "rocket", "coins"):
        assert search_image(store, jpeg_bytes(sample(name), quality=85), hash_index=GalleryHashIndex(store)) == [], name


def test_words_are_small_and_a_flat_picture_has_none():
    words = stored_words(sample("astronaut"))
    assert 0 < len(words) <= STORED_KEYPOINTS * WORD_BYTES and len(words) % WORD_BYTES == 0
    assert stored_words(Image.new("RGB", (300, 200), "white")) == b""


def test_rows_without_words_hold_none():
    """A gallery stored before words were kept (null) and a picture without keypoints (empty)
    are never voted for; a picture's own words vote for it."""
    words = stored_words(sample("coffee"))
    index = WordIndex([None, b"", words, None])
    assert [row for row, _, _ in index.vote([words], limit=10)] == [2]
    assert index.vote([b""], limit=10) == []
    assert WordIndex([None, None]).vote([words], limit=10) == []
    assert len(words) // WORD_BYTES >= MIN_SHARED


def test_a_gallery_from_before_words_gets_the_column_and_removal_takes_them(tmp_path):
    """An older row (no words) is kept and searchable; a removal by image deletes the row, words
    and all, from the in-memory index too, and the purge verification finds nothing left."""
    uri = str(tmp_path / "g")
    writer = GalleryWriter(Gallery(uri))
    detector = FaceDetector()
    old = random_image()
    image = analyze_image(jpeg_bytes(page_with(sample("astronaut")), quality=90), detector=detector)
    writer.add(old, sighting("http://a.test/old.jpg"))
    writer.add(image, sighting("http://a.test/page.jpg"))
    writer.write(writer.take_batch())
    store = Gallery(uri, create=False)
    assert "words" in IMAGES_SCHEMA.names and "words" in store.images.schema.names
    index = GalleryHashIndex(store)
    words = list(query_picture(jpeg_bytes(sample("astronaut"), quality=85)).words)
    assert [row["image_id"] for row, _ in index.word_candidates(words, limit=5)][:1] == [image.image_id]
    query = tmp_path / "page.jpg"
    query.write_bytes(jpeg_bytes(page_with(sample("astronaut")), quality=90))
    [report] = process_requests(store, [build_request([("image", str(query))], basis="erasure")])
    assert report.images_removed == 1 and report.purged  # verified on disk, or PurgeFailed
    assert image.image_id not in {row["image_id"] for row, _ in index.word_candidates(words, limit=5)}
