"""The matcher's verification stage (indexer/verify.py) against a real LanceDB gallery: edited
copies the hashes alone miss are found by lining them up with the stored thumbnails (faces
pixelated there), and an unrelated picture that is a loose hash candidate is turned away."""

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageFilter

from indexer import verify
from indexer.analyze import analyze_image
from indexer.faces import FaceDetector
from indexer.hash_index import GalleryHashIndex
from indexer.hashes import hamming
from indexer.ingest import GalleryWriter
from indexer.matcher import LOOSE_WHOLE_PDQ, match, query_picture
from indexer.search import GallerySource, search_image
from indexer.store import Gallery
from robots_policy.match_thresholds import MATCH_DISTANCE
from tests.fixture_site import jpeg_bytes, sighting


def sample(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Three real photos: an astronaut (her face is pixelated in the stored thumbnail), a
    cameraman and a cup of coffee."""
    detector = FaceDetector()
    uri = str(tmp_path_factory.mktemp("verify") / "g")
    writer = GalleryWriter(Gallery(uri))
    ids, faces = {}, {}
    for name in ("astronaut", "camera", "coffee"):
        image = analyze_image(jpeg_bytes(sample(name), quality=90), detector=detector)
        ids[name], faces[name] = image.image_id, image.face_count
        writer.add(image, sighting(f"http://a.test/{name}.jpg"))
    writer.write(writer.take_batch())
    assert faces["astronaut"] >= 1  # the thumbnail verification reads differs from the query there
    return uri, ids


def rotated(img: Image.Image, degrees: float) -> Image.Image:
    return img.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor="white")


def turned_crop(img: Image.Image) -> Image.Image:
    """Turned 3°, then 10% cut off each side (the white corners go with it)."""
    turned = rotated(img, 3)
    w, h = turned.size
    return turned.crop((w // 10, h // 10, w - w // 10, h - h // 10))


def captioned_and_tilted(img: Image.Image) -> Image.Image:
    """A caption bar under the picture, the whole turned 2° (a photographed printout)."""
    out = Image.new("RGB", (img.width, img.height * 5 // 4), "white")
    out.paste(img, (0, 0))
    ImageDraw.Draw(out).text((20, img.height + 10), "you will not believe this", fill="black", font_size=32)
    return rotated(out, 2)


EDITED = [
    ("astronaut", lambda im: rotated(im, 5), "rotated"),
    ("coffee", turned_crop, "contains"),
    ("camera", captioned_and_tilted, "crop"),
]


@pytest.mark.parametrize(("name", "edit", "kind"), EDITED, ids=[kind for _, _, kind in EDITED])
@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_an_edited_copy_the_hashes_miss_is_found_on_the_thumbnail(gallery, name, edit, kind, service_index):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    index = GalleryHashIndex(store) if service_index else None
    data = jpeg_bytes(edit(sample(name)), quality=80)
    assert match(GallerySource(store, index), query_picture(data)) == []  # hashes alone: nothing
    hits = search_image(store, data, hash_index=index)
    assert [hit.image["image_id"] for hit in hits] == [ids[name]]
    how, document = hits[0].how, hits[0].to_json()
    assert how.kind == kind and not how.confident and "checked on the pixels" in how.label
    assert document["verified"]["agreement"] >= 0.7 and document["sightings"][0]["image_url"] == f"http://a.test/{name}.jpg"
    if kind == "rotated":
        assert 4 <= how.angle <= 6 and "turned 5° anticlockwise" in how.label
    if kind == "contains":  # the whole query is inside the stored picture
        assert how.region[0] < 0.05 and how.region[2] > 0.95
    if kind == "crop":  # the stored picture is the query's upper four fifths
        left, top, right, bottom = how.region
        assert left < 0.05 and top < 0.05 and right > 0.95 and 0.75 <= bottom <= 0.88


def coins_in_the_cameramans_shadow() -> Image.Image:
    """The coins photo's detail over the cameraman's light and shade: PDQ and pHash look at the
    coarse light and shade and call it close; nothing in it is the cameraman's picture."""
    camera, coins = sample("camera"), sample("coins").resize((512, 512))
    blur = ImageFilter.GaussianBlur(16)
    mixed = np.asarray(camera.filter(blur), float) + np.asarray(coins, float) - np.asarray(coins.filter(blur), float)
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_an_unrelated_loose_candidate_is_turned_away(gallery, service_index):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    data = jpeg_bytes(coins_in_the_cameramans_shadow(), quality=85)
    picture = query_picture(data)
    stored = store.get_images([ids["camera"]])[0]
    distance = hamming(picture.hashes.pdq, bytes(stored["pdq"]))
    assert MATCH_DISTANCE["pdq"] < distance <= LOOSE_WHOLE_PDQ  # a loose candidate, not a hash match
    assert search_image(store, data, hash_index=GalleryHashIndex(store) if service_index else None) == []


@pytest.mark.parametrize("shape", [(1, 400), (400, 1), (12, 400)])
def test_a_strip_has_no_keypoints_and_no_error(shape):
    strip = np.random.default_rng(5).integers(0, 255, shape, dtype=np.uint8)
    assert len(verify.features(strip).points) == 0 and not verify.can_align(strip)
