import io

import numpy as np
import pytest
from PIL import Image

from gallery.demo import make_picture
from indexer.analyze import query_hashes
from indexer.hashes import format_hash, hamming, parse_hash, perceptual_hashes
from tests.fixture_site import jpeg_bytes


@pytest.mark.parametrize(
    ("text", "kind", "nbytes"),
    [("phash:" + "ab" * 8, "phash", 8), ("PDQ:" + "0f" * 32, "pdq", 32), ("sha256:" + "00" * 32, "sha256", 32)],
)
def test_parse_hash(text, kind, nbytes):
    parsed_kind, value = parse_hash(text)
    assert (parsed_kind, len(value)) == (kind, nbytes)
    assert parse_hash(format_hash(kind, value)) == (kind, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ab" * 32, "no kind"),
        ("md5:" + "ab" * 16, "unknown hash kind"),
        ("phash:abc", "16 hex digits"),
        ("pdq:" + "zz" * 32, "not hexadecimal"),
    ],
)
def test_parse_hash_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_hash(text)


def test_perceptual_hashes_survive_resize_and_recompression():
    original = jpeg_bytes(make_picture(7, (800, 600)))
    buffer = io.BytesIO()
    Image.open(io.BytesIO(original)).resize((400, 300)).save(buffer, "JPEG", quality=50)
    _, a = query_hashes(original)
    _, b = query_hashes(buffer.getvalue())
    _, other = query_hashes(jpeg_bytes(make_picture(8, (800, 600))))
    assert hamming(a.pdq, b.pdq) <= 31 < hamming(a.pdq, other.pdq)
    assert hamming(a.phash, b.phash) <= 8 < hamming(a.phash, other.phash)


def test_phash_is_imagehash_phash_and_regions_hash_their_crops():
    # pHash is computed here, from one grey image per picture; galleries stored imagehash's.
    import imagehash
    import pdqhash

    from indexer.regions import REGION_BYTES, STORED_REGIONS, region_hashes
    from robots_policy.match_thresholds import LOW_INFORMATION_PDQ_QUALITY

    for seed, size in ((11, (512, 384)), (12, (301, 512)), (14, (512, 77)), (13, (40, 33))):
        img = make_picture(seed, size)
        expected = np.packbits(imagehash.phash(img).hash.flatten().astype(np.uint8)).tobytes()
        hashes = perceptual_hashes(img)
        assert hashes.phash == expected
        assert hashes.pdq == np.packbits(np.asarray(pdqhash.compute(np.asarray(img))[0], np.uint8)).tobytes()
        # Each stored region: the hashes of that crop of the picture scaled to 256, done alone.
        small = img.copy()
        small.thumbnail((256, 256), Image.Resampling.BILINEAR)
        stored = region_hashes(img)
        for i, (left, top, right, bottom) in enumerate(STORED_REGIONS.values()):
            w, h = small.size
            crop = small.crop((round(left * w), round(top * h), max(round(right * w), round(left * w) + 1), max(round(bottom * h), round(top * h) + 1)))
            pdq_bits, quality = pdqhash.compute(np.asarray(crop))
            alone = np.packbits(np.asarray(pdq_bits, np.uint8)).tobytes() + np.packbits(imagehash.phash(crop).hash.flatten().astype(np.uint8)).tobytes()
            flat = quality < LOW_INFORMATION_PDQ_QUALITY
            assert stored[i * REGION_BYTES : (i + 1) * REGION_BYTES] == (bytes(REGION_BYTES) if flat else alone), f"region {i} of seed {seed}"


@pytest.mark.parametrize("size", [(5, 5), (16, 12), (70, 300), (129, 64), (512, 341), (341, 512), (1500, 1100)])
def test_pdq_is_the_reference_pdqhash(size):
    # indexer/pdq.py samples the reference's filters instead of running them over every pixel:
    # the same bits and quality, for every turn and mirror too (galleries stored pdqhash's).
    import pdqhash

    from indexer.pdq import pdq, pdq_dihedral

    rgb = np.asarray(make_picture(size[0] * 7 + size[1], size))
    bits, quality = pdq(rgb)
    reference, reference_quality = pdqhash.compute(rgb)
    assert quality == reference_quality > 0
    assert np.array_equal(bits, np.asarray(reference, np.uint8))
    turned, quality = pdq_dihedral(rgb)
    reference, _ = pdqhash.compute_dihedral(rgb)
    assert [t.tolist() for t in turned] == [np.asarray(r, np.uint8).tolist() for r in reference]


def test_pdq_of_a_picture_too_small_is_zeros():
    from indexer.pdq import pdq

    bits, quality = pdq(np.asarray(make_picture(3, (40, 4))))
    assert quality == 0 and not bits.any()
