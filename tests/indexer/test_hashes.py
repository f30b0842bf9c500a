import io

import pytest
from PIL import Image

from gallery.demo import make_picture
from indexer.analyze import query_hashes
from indexer.hashes import format_hash, hamming, parse_hash
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
