import io

import pytest
from PIL import Image

from gallery.demo import make_picture
from indexer.decode import DecodeLimits, ImageRejected, decode_bounded
from tests.fixture_site import jpeg_bytes, png_bomb


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


GOOD_JPEG = jpeg_bytes(make_picture(1, (2000, 1500)))


@pytest.mark.parametrize(
    ("data", "limits", "reason"),
    [
        (b"", DecodeLimits(), "empty"),
        (b"<!doctype html><p>hello</p>", DecodeLimits(), "not_an_image"),
        (b"GIF89a" + b"\0" * 3, DecodeLimits(), "not_an_image"),  # header cut short: unidentifiable
        (png_bomb(), DecodeLimits(), "too_many_pixels"),
        (GOOD_JPEG[: len(GOOD_JPEG) // 3], DecodeLimits(), "corrupt"),
        (GOOD_JPEG, DecodeLimits(max_bytes=1000), "too_large"),
        (GOOD_JPEG, DecodeLimits(max_pixels=1_000_000), "too_many_pixels"),
    ],
    ids=["empty", "html", "short-gif", "png-bomb", "truncated-jpeg", "too-many-bytes", "too-many-pixels"],
)
def test_rejections(data, limits, reason):
    with pytest.raises(ImageRejected) as info:
        decode_bounded(data, limits)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (GOOD_JPEG, "JPEG"),
        (_encoded(make_picture(2).convert("RGBA"), "PNG"), "PNG"),
        (_encoded(make_picture(3).convert("L"), "PNG"), "PNG"),
        (_encoded(make_picture(4).convert("CMYK"), "JPEG"), "JPEG"),
        (_encoded(make_picture(5).convert("P"), "GIF"), "GIF"),
        (_encoded(make_picture(6), "WEBP"), "WEBP"),
    ],
    ids=["jpeg", "png-rgba", "png-grey", "jpeg-cmyk", "gif", "webp"],
)
def test_decodes_to_bounded_rgb(data, fmt):
    decoded = decode_bounded(data)
    assert decoded.format == fmt
    assert decoded.image.mode == "RGB"
    assert max(decoded.image.size) <= 512
    assert (decoded.width, decoded.height) == Image.open(io.BytesIO(data)).size


def test_jpeg_draft_mode_decodes_at_reduced_scale():
    # A 2000 px JPEG is decoded at 1/2 scale (1000 px), not at full size, then thumbnailed.
    img = Image.open(io.BytesIO(GOOD_JPEG))
    img.draft("RGB", (512, 512))
    assert img.size == (1000, 750)
    assert decode_bounded(GOOD_JPEG).image.size == (512, 384)
