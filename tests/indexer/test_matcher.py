"""The one matcher (indexer/matcher.py) against a real LanceDB gallery: edited copies found and
labelled, unrelated and flat pictures not, removal by image and its tombstones through it."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from gallery.demo import make_picture
from indexer.analyze import analyze_image
from indexer.faces import FaceDetector
from indexer.hash_index import GalleryHashIndex, HammingIndex
from indexer.hashes import DIHEDRAL, dihedral_hashes, perceptual_hashes
from indexer.ingest import GalleryWriter
from indexer.matcher import LOOSE_PART_PDQ, match, query_picture
from indexer.removal import build_request, load_tombstones, process_requests
from indexer.search import GallerySource, query_note, search_image, search_picture
from indexer.store import Gallery
from tests.fixture_site import jpeg_bytes, sighting


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def cutout(seed: int) -> Image.Image:
    """A transparent picture: an oval of a photo-like picture, the corners clear."""
    img = make_picture(seed, (400, 300)).convert("RGBA")
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse((20, 15, 380, 285), fill=255)
    img.putalpha(mask)
    return img


def on(img: Image.Image, colour: str) -> Image.Image:
    flat = Image.new("RGB", img.size, colour)
    flat.paste(img, mask=img.getchannel("A"))
    return flat


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A gallery of: a picture, another picture, a transparent one stored as a JPEG on black."""
    detector = FaceDetector()
    stored = {
        "picture": jpeg_bytes(make_picture(21, (480, 360))),
        "other": jpeg_bytes(make_picture(22, (480, 360))),
        "sticker_on_black": jpeg_bytes(on(cutout(23), "black")),
    }
    uri = str(tmp_path_factory.mktemp("matcher") / "g")
    writer = GalleryWriter(Gallery(uri))
    ids = {}
    for name, data in stored.items():
        image = analyze_image(data, detector=detector)
        ids[name] = image.image_id
        writer.add(image, sighting(f"http://a.test/{name}.jpg"))
    writer.write(writer.take_batch())
    return uri, ids


def test_upright_variant_is_what_the_gallery_stores_and_each_turn_is_found():
    img = make_picture(5, (400, 300))
    variants = dihedral_hashes(img)
    assert variants["identity"] == perceptual_hashes(img)
    pixels = np.asarray(img)
    for name, turn in DIHEDRAL.items():
        turned = perceptual_hashes(Image.fromarray(np.ascontiguousarray(turn(pixels))))
        assert bin(int.from_bytes(turned.pdq) ^ int.from_bytes(variants[name].pdq)).count("1") <= 24, name
        assert turned.phash == variants[name].phash or name != "identity"


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda im: im.resize((240, 180)), "resized"),
        (ImageOps.mirror, "mirrored"),
        (ImageOps.flip, "mirrored"),
        (lambda im: im.transpose(Image.Transpose.ROTATE_90), "rotated"),
        (lambda im: im.transpose(Image.Transpose.ROTATE_180), "rotated"),
    ],
)
def test_edited_copies_are_found_and_labelled(gallery, edit, kind):
    uri, ids = gallery
    hits = search_image(Gallery(uri, create=False), jpeg_bytes(edit(make_picture(21, (480, 360))), quality=75))
    assert [hit.image["image_id"] for hit in hits] == [ids["picture"]]
    assert hits[0].how.kind == kind and hits[0].how.hash in ("pdq", "phash")
    document = hits[0].to_json()
    assert document["kind"] == kind and document["label"] and document["distance"] == hits[0].how.distance
    assert document["sightings"][0]["image_url"] == "http://a.test/picture.jpg"


def captioned(img: Image.Image) -> Image.Image:
    """The picture with a white caption bar under it, as reposts carry one."""
    out = Image.new("RGB", (img.width, img.height + img.height // 6), "white")
    out.paste(img, (0, 0))
    ImageDraw.Draw(out).text((10, img.height + 12), "you will not believe this", fill="black", font_size=28)
    return out


@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_a_crop_and_a_captioned_copy_are_found_with_the_part_that_matched(gallery, service_index):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    index = GalleryHashIndex(store) if service_index else None
    original = make_picture(21, (480, 360))
    # The query is 10% a side short of the stored picture: the stored one contains it.
    crop = original.crop((48, 36, 432, 324))
    hits = search_image(store, jpeg_bytes(crop, quality=85), hash_index=index)
    assert [hit.image["image_id"] for hit in hits] == [ids["picture"]]
    how = hits[0].how
    assert (how.kind, how.stored_region, how.region) == ("contains", "centre_80", (0.0, 0.0, 1.0, 1.0))
    assert not how.confident and "contains your picture" in how.label and "middle 80%" in how.label
    # The query has a caption bar under the stored picture: the stored one is its upper part.
    hits = search_image(store, jpeg_bytes(captioned(original), quality=85), hash_index=index)
    assert [hit.image["image_id"] for hit in hits] == [ids["picture"]]
    how, document = hits[0].how, hits[0].to_json()
    left, top, right, bottom = how.region
    assert how.kind == "crop" and (left, top, right) == (0.0, 0.0, 1.0) and 0.8 <= bottom <= 0.9
    assert document["region"] == [round(v, 4) for v in how.region] and "a crop of your picture" in document["label"]
    assert "regions" not in document["image"]


def test_exact_file_says_so_and_the_service_index_agrees(gallery):
    uri, ids = gallery
    store = Gallery(uri, create=False)
    data = jpeg_bytes(make_picture(22, (480, 360)))
    for index in (None, GalleryHashIndex(store)):
        hits = search_image(store, data, hash_index=index)
        assert [(h.image["image_id"], h.how.kind, h.how.label) for h in hits] == [(ids["other"], "exact", "exact file")]


def test_a_transparent_query_finds_its_copy_flattened_on_black(gallery):
    uri, ids = gallery
    hits = search_image(Gallery(uri, create=False), png_bytes(cutout(23)))
    assert [hit.image["image_id"] for hit in hits] == [ids["sticker_on_black"]]
    assert hits[0].how.background == "black" and "transparent parts black" in hits[0].how.label


@pytest.mark.parametrize(
    "query",
    [
        Image.new("RGB", (1, 1), "white"),
        Image.new("RGB", (640, 480), (200, 30, 30)),
        make_picture(99, (300, 300)),
        captioned(Image.new("RGB", (480, 360), "white")),
    ],
    ids=["1x1", "flat colour", "unrelated", "captioned blank"],
)
@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_bad_or_unrelated_queries_match_nothing(gallery, query, service_index):
    uri, _ = gallery
    store = Gallery(uri, create=False)
    index = GalleryHashIndex(store) if service_index else None
    assert search_image(store, png_bytes(query), hash_index=index) == []


def test_a_query_that_cannot_be_matched_every_way_says_so(gallery):
    uri, _ = gallery
    store = Gallery(uri, create=False)

    def note_for(picture_image: Image.Image) -> str | None:
        picture = query_picture(png_bytes(picture_image))
        return query_note(picture, search_picture(store, picture))

    assert "flat or near-blank" in note_for(Image.new("RGB", (640, 480), (200, 30, 30)))
    assert "flat or near-blank" in note_for(Image.new("RGB", (1, 1), "white"))
    flag = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(flag).rectangle((0, 0, 200, 300), fill=(200, 0, 0))
    assert "few details" in note_for(flag)  # textured enough for hashes, too few keypoints to align
    import skimage.data

    assert note_for(Image.fromarray(skimage.data.coffee())) is None  # unmatched, but searched every way


def test_removal_by_image_takes_a_mirrored_copy_and_tombstones_turned_ones(gallery, tmp_path):
    import shutil

    uri, ids = gallery
    copy = str(tmp_path / "g")
    shutil.copytree(uri, copy)
    query = tmp_path / "mirrored.jpg"
    query.write_bytes(jpeg_bytes(ImageOps.mirror(make_picture(21, (480, 360))), quality=85))
    store = Gallery(copy, create=False)
    report = process_requests(store, [build_request([("image", str(query))], basis="copyright")])[0]
    assert report.to_json()["images_removed"] == 1
    assert store.get_images([ids["picture"]]) == [] and store.get_images([ids["other"]])
    # A later crawl hashes each picture upright only: the tombstones carry every turn of the query.
    tombstones = load_tombstones(store)
    turned = perceptual_hashes(decode_upright(jpeg_bytes(make_picture(21, (480, 360)).transpose(Image.Transpose.ROTATE_270))))
    assert tombstones.blocks_image(image_id="0" * 64, phash=turned.phash, pdq=turned.pdq)
    unrelated = query_picture(jpeg_bytes(make_picture(99, (480, 360)))).hashes
    assert not tombstones.blocks_image(image_id="0" * 64, phash=unrelated.phash, pdq=unrelated.pdq)


def decode_upright(data: bytes) -> Image.Image:
    from indexer.decode import decode_bounded

    return decode_bounded(data).image


def test_within_any_is_a_brute_force_scan():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    index = HammingIndex(hashes)
    queries = []
    for row in (1, 2, 3):
        bits = np.unpackbits(hashes[row])
        bits[rng.choice(256, 31, replace=False)] ^= 1
        queries.append(np.packbits(bits).tobytes())
    queries.append(rng.integers(0, 256, 32, dtype=np.uint8).tobytes())
    words = hashes.view(">u8").astype(np.uint64)
    brute = set()
    for query in queries:
        q = np.frombuffer(query, ">u8").astype(np.uint64)
        brute |= set(np.flatnonzero(np.bitwise_count(words ^ q).sum(axis=1) <= 31).tolist())
    assert set(index.within_any(queries, max_distance=31).tolist()) == brute == {1, 2, 3}


class CountedSource(GallerySource):
    """The gallery's real hash source, counting the lookups the matcher asks of it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, tuple[bytes, ...], int]] = []

    def candidates(self, kind, values, max_distance):
        self.asked.append((kind, tuple(values), max_distance))
        return super().candidates(kind, values, max_distance)


@pytest.mark.parametrize("service_index", [False, True], ids=["scan", "service index"])
def test_verification_asks_each_lookup_once_and_the_hash_matches_stay_the_same(gallery, service_index):
    """Search's strict part lookups repeat the values of its loose ones: they are answered from the
    loose answer, narrowed, with the same matches as on their own."""
    uri, ids = gallery
    store = Gallery(uri, create=False)
    index = GalleryHashIndex(store) if service_index else None
    original = make_picture(21, (480, 360))
    for query in (original.crop((48, 36, 432, 324)), captioned(original), ImageOps.mirror(original)):
        picture = query_picture(jpeg_bytes(query, quality=85))
        on_hashes = match(CountedSource(store, index), picture)
        source = CountedSource(store, index)
        verified = match(source, picture, thumbnails=store.thumbnails)
        assert [row["image_id"] for row, _ in on_hashes] == [ids["picture"]]
        assert [(row["image_id"], how) for row, how in verified[: len(on_hashes)]] == [(row["image_id"], how) for row, how in on_hashes]
        asked = [(kind, values) for kind, values, _ in source.asked]
        assert len(asked) == len(set(asked))
        assert ("regions", LOOSE_PART_PDQ) in {(kind, distance) for kind, _, distance in source.asked}
