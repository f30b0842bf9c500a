import io

import numpy as np
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


def _with_orientation(img: Image.Image, orientation) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


# The pixels a camera writes for each EXIF orientation, given the upright picture.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_exif_orientation_decodes_upright(orientation):
    upright = make_picture(7, (300, 200))
    decoded = decode_bounded(_with_orientation(upright.transpose(STORED_AS[orientation]), orientation))
    assert decoded.image.size == (300, 200) and (decoded.width, decoded.height) == (300, 200)
    difference = np.abs(np.asarray(decoded.image, np.int16) - np.asarray(upright, np.int16)).mean()
    assert difference < 4, f"orientation {orientation} not undone (mean difference {difference:.1f})"
    assert decoded.notes == ()


@pytest.mark.parametrize("orientation", [0, 9, 65535], ids=["zero", "nine", "max"])
def test_invalid_exif_orientation_is_upright_and_noted(orientation):
    picture = make_picture(8, (300, 200))
    decoded = decode_bounded(_with_orientation(picture, orientation))
    assert decoded.image.size == (300, 200)
    assert decoded.notes == ("exif_orientation_invalid",)


def test_unreadable_exif_is_noted_not_fatal():
    # An IFD that claims five entries and ends after the first tag number.
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03"
    buffer = io.BytesIO()
    make_picture(9, (120, 80)).save(buffer, "JPEG", exif=broken)
    decoded = decode_bounded(buffer.getvalue())
    assert decoded.image.size == (120, 80)


def test_animated_image_keeps_first_frame_and_says_so():
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "blue", "green")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_bounded(buffer.getvalue())
    assert decoded.image.getpixel((10, 10)) == (255, 0, 0)
    assert decoded.notes == ("animated_first_frame",)
